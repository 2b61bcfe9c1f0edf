"""Curate in tests as the stage does: the streaming path (data/curation.curate, both passes
writing JSONL files), on raw files, or on (file, line, bytes) triples written to files first."""

import tempfile
from collections.abc import Iterable
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.module_name }}.data.curation import Counting, curate
from {{ cookiecutter.module_name }}.data.decisions import Decisions
from {{ cookiecutter.module_name }}.data.masking import TokenCounter
from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.params import CurateParams, TaskParams

OUTPUTS = {
    "kept": "train_pool.jsonl",
    "preference": "preferences.jsonl",
    "quarantined": "quarantine.jsonl",
    "duplicate": "duplicates.jsonl",
}


@dataclass
class CurateResult:
    """What curate wrote, read back, with its decisions and report."""

    kept: list[dict]
    preferences: list[dict]
    quarantined: list[dict]
    duplicates: list[dict]
    decisions: Decisions
    report: dict[str, Any]

    @property
    def rows_in(self) -> int:
        return self.decisions.rows_in


def curate_counted(
    files: list[Path], task: TaskParams, cfg: CurateParams, counting: Counting
) -> CurateResult:
    """curate on `files`, counting tokens as `counting` says; the outputs in a temporary
    directory."""
    with tempfile.TemporaryDirectory(prefix="curated-") as out:
        outputs = {kind: Path(out) / name for kind, name in OUTPUTS.items()}
        decisions, report = curate(files, outputs, task, cfg, counting)
        written = [read_jsonl(outputs[kind]) for kind in OUTPUTS]
    return CurateResult(*written, decisions, report)


def curate_files(
    files: list[Path],
    task: TaskParams,
    cfg: CurateParams,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    max_length: int | None = None,
) -> CurateResult:
    """curate on `files`, tokens counted with `count_tokens` (None: not counted)."""
    counting = Counting(count_tokens, None, max_tokens, max_length)
    return curate_counted(files, task, cfg, counting)


def write_lines(lines: Iterable[tuple[str, int, bytes]]) -> list[Path]:
    """Write each (file, line, bytes) at its line of its file (blank lines fill the gaps, as
    curate skips them); the files in the order they first appear."""
    by_file: dict[str, list[tuple[int, bytes]]] = {}
    for file, line, data in lines:
        assert not Path(file).is_absolute(), f"{file}: write the lines under the working directory"
        by_file.setdefault(file, []).append((line, data))
    files = []
    for file, numbered in by_file.items():
        text, at = b"", 1
        for line, data in numbered:
            assert line >= at, f"{file}: line {line} after line {at - 1}"
            text += b"\n" * (line - at) + data + b"\n"
            at = line + 1
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        files.append(path)
    return files


def curate_lines(
    lines: Iterable[tuple[str, int, bytes]],
    task: TaskParams,
    cfg: CurateParams,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    max_length: int | None = None,
) -> CurateResult:
    """curate on the triples written to their files, relative names in a temporary working
    directory (as the stage reads data/raw/*.jsonl), so each row's source is file:line."""
    with tempfile.TemporaryDirectory(prefix="raw-") as root, chdir(root):
        files = write_lines(lines)
        return curate_files(files, task, cfg, count_tokens, max_tokens, max_length)
