"""docs/benchmarks.md: every section names the command that reproduces its figures, and every
command it names exists (a `make bench-*` target of the root Makefile, a script of benchmarks/)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.M)
# "Command:" / "Commands:" / "Command (in the demo project):" then, on that line or the
# next ones of the paragraph, a command in backticks
COMMAND = re.compile(r"^Commands?\b[^\n]*(?:\n(?!\n)[^\n]*)*?`[^`]+`", re.M)
MAKE_TARGET = re.compile(r"make (bench-[\w-]+)")
SCRIPT = re.compile(r"benchmarks/([\w.-]+\.(?:py|sh))")


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each `##` and `###` section, the body up to the next heading."""
    found = list(HEADING.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)]
    return [(m[2], text[m.end() : end]) for m, end in zip(found, ends, strict=True)]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", text, re.M))


def test_the_parsers_see_what_they_check() -> None:
    body = "Command: `make bench-x` (then\nmore)\n\n| a |\n|---|\n"
    assert COMMAND.search(body)
    assert not COMMAND.search("Command: none here\n\n`later` in another paragraph\n")
    assert sections("## A\ntext\n### B\nmore\n## C\n") == [
        ("A", "\ntext\n"),
        ("B", "\nmore\n"),
        ("C", "\n"),
    ]


@pytest.mark.parametrize(
    "heading, body",
    [
        pytest.param(heading, body, id=heading[:50])
        for heading, body in sections(DOC.read_text(encoding="utf-8"))
        if body.strip()  # a heading whose text is all in its subsections
    ],
)
def test_each_section_names_its_command(heading: str, body: str) -> None:
    assert COMMAND.search(body), (
        f"docs/benchmarks.md section {heading!r} names no command: add a line "
        f"'Command: `make bench-<name>`' (or the script and its arguments)"
    )


def test_each_named_make_target_exists() -> None:
    named = set(MAKE_TARGET.findall(DOC.read_text(encoding="utf-8")))
    assert named, "docs/benchmarks.md names no `make bench-*` target"
    missing = sorted(named - makefile_targets())
    assert not missing, f"docs/benchmarks.md names targets the root Makefile lacks: {missing}"


def test_each_named_script_exists() -> None:
    named = set(SCRIPT.findall(DOC.read_text(encoding="utf-8")))
    assert named, "docs/benchmarks.md names no script of benchmarks/"
    missing = sorted(name for name in named if not (ROOT / "benchmarks" / name).is_file())
    assert not missing, f"docs/benchmarks.md names scripts benchmarks/ lacks: {missing}"


def test_each_bench_target_runs_a_script_that_exists() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipes = re.findall(r"^(bench-[\w-]+):.*\n((?:\t.*\n?)+)", text, re.M)
    assert recipes
    for target, recipe in recipes:
        for script in SCRIPT.findall(recipe):
            assert (ROOT / "benchmarks" / script).is_file(), f"{target}: no benchmarks/{script}"
