"""Small evaluation suites: lenient QA scoring and IFEval-style instruction checks.

Everything here is pure Python (standard library only) so it can be unit-tested
without a model. Two suite formats are used (one JSON object per line):

* general QA: ``{"id", "kind", "question", "answers": [...]}``, scored with
  :func:`score_general_qa`;
* instruction following: ``{"id", "prompt", "checks": [{"type": ..., ...}]}``,
  scored with :func:`check_instruction` (every check must pass).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import StageError

__all__ = [
    "CHECKS",
    "CHECK_FIELDS",
    "QA_WINDOW_WORDS",
    "check_instruction",
    "failed_checks",
    "load_suite",
    "canonical_answer",
    "score_general_qa",
    "validate_checks",
]

QA_WINDOW_WORDS = 40
"""Only the first this-many words of a model output are searched for an answer."""

_ARTICLES = frozenset({"a", "an", "the"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# A standalone number (optional sign, optional decimals) or a run of letters/digits.
_TOKEN = re.compile(r"(?<![^\W_])-?\d+(?:\.\d+)*(?![^\W_])|[^\W_]+")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_BULLET = re.compile(r"^\s*[-*] ")


def canonical_answer(text: str) -> str:
    """Lowercase, drop punctuation (keeping numbers like 3.5 or -4), articles and extra spaces.

    Thousands separators inside numbers are removed ("1,000" -> "1000") and apostrophes
    are deleted rather than split on ("don't" -> "dont").
    """
    text = text.lower().replace("'", "").replace("\u2019", "")
    text = _THOUSANDS.sub("", text)
    tokens = [tok for tok in _TOKEN.findall(text) if tok not in _ARTICLES]
    return " ".join(tokens)


def _contains_sequence(haystack: list[str], needle: list[str]) -> bool:
    """True if ``needle`` occurs as a contiguous run of tokens in ``haystack``."""
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def score_general_qa(output: str, answers: list[str]) -> bool:
    """Leniently score a QA output: any accepted answer appears as whole words/numbers.

    Only the first :data:`QA_WINDOW_WORDS` words of ``output`` are considered, so
    "The capital of France is Paris." matches "paris" while "17" never matches "7".
    """
    window = " ".join(output.split()[:QA_WINDOW_WORDS])
    tokens = canonical_answer(window).split()
    for answer in answers:
        needle = canonical_answer(answer).split()
        if needle and _contains_sequence(tokens, needle):
            return True
    return False


# --------------------------------------------------------------------------------------
# Instruction-following checks. Each takes (output, check_spec) and returns a bool.
# --------------------------------------------------------------------------------------


def _word_count(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())


def _sentence_count(text: str) -> int:
    """Number of sentences, splitting on ., ! or ? followed by whitespace or the end."""
    parts = _SENTENCE_END.split(text)
    return sum(1 for part in parts if re.search(r"[^\W_]", part))


def _has_word(text: str, word: str) -> bool:
    """Case-insensitive whole-word (or whole-phrase) search."""
    pattern = r"(?<![^\W_])" + re.escape(word.strip()) + r"(?![^\W_])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _check_max_words(output: str, spec: dict[str, Any]) -> bool:
    """At most ``value`` words."""
    return _word_count(output) <= int(spec["value"])


def _check_min_words(output: str, spec: dict[str, Any]) -> bool:
    """At least ``value`` words."""
    return _word_count(output) >= int(spec["value"])


def _check_max_sentences(output: str, spec: dict[str, Any]) -> bool:
    """At least one and at most ``value`` sentences."""
    return 1 <= _sentence_count(output) <= int(spec["value"])


def _check_all_lowercase(output: str, _spec: dict[str, Any]) -> bool:
    """Has letters and none of them is uppercase."""
    return output.islower()


def _check_all_uppercase(output: str, _spec: dict[str, Any]) -> bool:
    """Has letters and none of them is lowercase."""
    return output.isupper()


def _check_include_words(output: str, spec: dict[str, Any]) -> bool:
    """Every word in ``words`` appears (whole word, any case)."""
    return all(_has_word(output, w) for w in spec["words"])


def _check_exclude_words(output: str, spec: dict[str, Any]) -> bool:
    """No word in ``words`` appears (whole word, any case)."""
    return not any(_has_word(output, w) for w in spec["words"])


def _check_json_only(output: str, _spec: dict[str, Any]) -> bool:
    """The whole output (surrounding whitespace aside) parses as JSON."""
    try:
        json.loads(output.strip())
    except ValueError:
        return False
    return True


def _check_bullet_count(output: str, spec: dict[str, Any]) -> bool:
    """Exactly ``value`` lines start with "- " or "* " (after indentation)."""
    count = sum(1 for line in output.splitlines() if _BULLET.match(line))
    return count == int(spec["value"])


def _check_starts_with(output: str, spec: dict[str, Any]) -> bool:
    """Starts with ``text`` (case-insensitive, leading whitespace ignored)."""
    return output.lstrip().lower().startswith(str(spec["text"]).lower())


def _check_ends_with(output: str, spec: dict[str, Any]) -> bool:
    """Ends with ``text`` (case-insensitive, trailing whitespace ignored)."""
    return output.rstrip().lower().endswith(str(spec["text"]).lower())


def _check_no_commas(output: str, _spec: dict[str, Any]) -> bool:
    """Contains no comma."""
    return "," not in output


CheckFn = Callable[[str, dict[str, Any]], bool]

CHECKS: dict[str, CheckFn] = {
    "max_words": _check_max_words,
    "min_words": _check_min_words,
    "max_sentences": _check_max_sentences,
    "all_lowercase": _check_all_lowercase,
    "all_uppercase": _check_all_uppercase,
    "include_words": _check_include_words,
    "exclude_words": _check_exclude_words,
    "json_only": _check_json_only,
    "bullet_count": _check_bullet_count,
    "starts_with": _check_starts_with,
    "ends_with": _check_ends_with,
    "no_commas": _check_no_commas,
}
"""Registry of check type name -> function(output, check_spec) -> bool."""

CHECK_FIELDS: dict[str, tuple[str, ...]] = {
    "max_words": ("value",),
    "min_words": ("value",),
    "max_sentences": ("value",),
    "all_lowercase": (),
    "all_uppercase": (),
    "include_words": ("words",),
    "exclude_words": ("words",),
    "json_only": (),
    "bullet_count": ("value",),
    "starts_with": ("text",),
    "ends_with": ("text",),
    "no_commas": (),
}
"""Required fields (besides ``type``) for each check type."""


def validate_checks(checks: list[dict[str, Any]]) -> None:
    """Raise ValueError for an unknown check type or a missing required field."""
    for spec in checks:
        kind = spec.get("type")
        if kind not in CHECKS:
            raise StageError(f"unknown check type: {kind!r} (known: {', '.join(sorted(CHECKS))})")
        missing = [field for field in CHECK_FIELDS[kind] if field not in spec]
        if missing:
            raise StageError(f"check {kind!r} is missing field(s): {', '.join(missing)}")


def failed_checks(output: str, checks: list[dict[str, Any]]) -> list[str]:
    """Return the type names of the checks that ``output`` fails (empty list: all pass)."""
    validate_checks(checks)
    return [spec["type"] for spec in checks if not CHECKS[spec["type"]](output, spec)]


def check_instruction(output: str, checks: list[dict[str, Any]]) -> bool:
    """True if ``output`` passes every check."""
    return not failed_checks(output, checks)


def load_suite(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL suite; blank lines are skipped, every other line must be a JSON object."""
    path = Path(path)
    items: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise StageError(f"{path}:{lineno}: invalid JSON ({err.msg})") from err
            if not isinstance(item, dict):
                raise StageError(
                    f"{path}:{lineno}: expected a JSON object, got {type(item).__name__}"
                )
            items.append(item)
    return items
