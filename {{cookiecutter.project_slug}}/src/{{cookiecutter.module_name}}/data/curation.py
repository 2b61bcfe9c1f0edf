"""Curation (stage `curate`; the passes and outputs are described in stages/curate.py): the
raw files in, pass 1 (data/curator.py decides every row's fate), pass 2 (data/writers.py writes
each row to the output of its kind) and the report (data/curate_report.py) out. The caller
names every path.
"""

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import StageError
from ..io import iter_lines
from ..models.chat_template import folds_system
from ..params import CurateParams, TaskParams, TrainParams
from .curate_report import ReportBuilder
from .curator import Curator
from .decisions import Decisions
from .masking import TokenCounter, token_counter
from .reasons import ALL_REASONS
from .workers import worker_pool
from .writers import write_rows

PARALLEL_MIN_BYTES = 8 << 20  # below ~10k rows, starting worker processes costs more than it saves
MAX_WORKERS = 4


@dataclass(frozen=True)
class Counting:
    """How pass 1 counts tokens: with `count` in this process, or in `pool`'s workers (each
    loads the tokenizer); with neither, rows are not counted (and never too long)."""

    count: TokenCounter | None = None
    pool: Any = None
    max_tokens: int | None = None  # longer rows are quarantined as too_long
    max_length: int | None = None  # train.max_length: what TRL cuts a row to
    chat: dict[str, Any] = field(default_factory=dict)  # how rows are rendered, for the report


def raw_files(raw_dir: Path) -> list[Path]:
    files = sorted(raw_dir.glob("*.jsonl"))
    if not files:
        raise StageError(f"no *.jsonl files in {raw_dir}/: add your training data there")
    empty = [str(path) for path in files if not any(True for _ in iter_lines(path))]
    if empty:
        raise StageError(f"{', '.join(empty)}: no rows (the file is empty); remove or fill it")
    return files


@contextmanager
def token_counting(
    files: list[Path], base_dir: Path, train: TrainParams, max_tokens: int
) -> Iterator[Counting]:
    """Counting as training renders and masks the rows: the tokenizer of the base model in
    `base_dir`, rows cut to train.max_length, train.assistant_turns trained; in worker
    processes when the input is large enough to pay for starting them."""
    from ..models.loading import load_tokenizer

    total = sum(path.stat().st_size for path in files)
    processes = min(os.cpu_count() or 1, MAX_WORKERS)
    turns, max_length = train.assistant_turns, train.max_length
    tokenizer = load_tokenizer(base_dir)
    chat = {"assistant_turns": turns, "system_folded": folds_system(tokenizer)}
    if total >= PARALLEL_MIN_BYTES and processes > 1:
        with worker_pool(processes, base_dir, turns) as pool:
            yield Counting(None, pool, max_tokens, max_length, chat)
    else:
        yield Counting(token_counter(tokenizer, turns), None, max_tokens, max_length, chat)


def check_files(files: list[Path], curator: Curator) -> Decisions:
    """Pass 1: every line of every file, in order, through `curator`."""
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="curate: check") as bar:
        for path in files:
            curator.add_file(str(path), iter_lines(path), bar.update)
    return curator.finish()


def curate(
    files: list[Path],
    outputs: dict[str, Path],
    task: TaskParams,
    cfg: CurateParams,
    counting: Counting = Counting(),
) -> tuple[Decisions, dict[str, Any]]:
    """Both passes over `files`, streaming: every row is written to exactly one of
    `outputs` (kept, preference, quarantined, duplicate); returns the decisions and
    reports/curate.json's content."""
    started = time.perf_counter()
    curator = Curator(
        task, cfg, counting.count, counting.max_tokens, counting.pool, counting.max_length
    )
    decisions = check_files(files, curator)
    decisions.chat = counting.chat
    checked = time.perf_counter()
    builder = ReportBuilder(decisions, ALL_REASONS)
    write_rows(files, decisions, outputs, builder.add)
    report = builder.report(counting.max_tokens, cfg.max_reject_fraction, counting.max_length, task)
    logging.info(
        "check + dedup %.1f s, write + report %.1f s",
        checked - started,
        time.perf_counter() - checked,
    )
    return decisions, report


def check_curated(report: dict, max_reject_fraction: float, quarantine: Path) -> None:
    """Fail instead of training on scraps: too many rows rejected, or none left to train on."""
    if report["reject_fraction"] > max_reject_fraction:
        reason, n = max(report["reasons"].items(), key=lambda item: item[1])
        raise StageError(
            f"{report['reject_fraction']:.0%} of rows were rejected, above "
            f"curate.max_reject_fraction={max_reject_fraction} (most: {reason}, {n} rows); "
            f"see {quarantine} for each row's reason"
        )
    if report["kept_sft"] == 0:
        raise StageError(f"no training rows survived curation; see {quarantine}")
