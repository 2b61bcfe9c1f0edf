"""The forgetting fix's ladder has its numbers in selection/diagnose.py only: where the docs
state the ladder ("halve rank and alpha while rank > 4; then `split.replay_fraction` +0.1 (up to
0.4)"), their numbers are the code's."""

import re
from pathlib import Path

from {{ cookiecutter.module_name }}.selection.diagnose import RANK_FLOOR, REPLAY_CAP, REPLAY_STEP

PROJECT = Path(__file__).parents[1]
RANK_RULE = re.compile(r"halve rank and alpha while (?:the\s+)?rank\s+(?:is above|>)\s+(\d+)")
REPLAY_RULE = re.compile(r"`split\.replay_fraction`\s+\+([\d.]+)\s+\(?up to ([\d.]+)")


def pages() -> dict[str, str]:
    found = sorted((PROJECT / "docs").glob("*.md")) + [PROJECT / "README.md"]
    return {p.name: " ".join(p.read_text(encoding="utf-8").split()) for p in found if p.exists()}


def test_the_docs_state_the_ladder_with_the_codes_numbers() -> None:
    stated = 0
    for name, text in pages().items():
        for match in RANK_RULE.finditer(text):
            stated += 1
            assert int(match.group(1)) == RANK_FLOOR, f"{name}: {match.group(0)!r}"
        for match in REPLAY_RULE.finditer(text):
            stated += 1
            step, cap = (float(n.rstrip(".")) for n in match.groups())
            assert (step, cap) == (REPLAY_STEP, REPLAY_CAP), f"{name}: {match.group(0)!r}"
    assert stated, "no page states the forgetting fix's ladder (or its wording changed)"
