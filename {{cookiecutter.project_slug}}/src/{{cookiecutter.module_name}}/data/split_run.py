"""The split stage's run: the curated rows (tagged `origin: task`) and preference pairs split
by data/splitting.py, the three splits and the pairs' parts written, and the split report."""

from dataclasses import dataclass
from pathlib import Path

from ..io import file_hash, read_jsonl, write_jsonl
from ..params import Params
from .splitting import SplitResult, SplitSources, make_splits, split_report


@dataclass(frozen=True)
class SplitFiles:
    """What the split stage reads (the curated rows and pairs, `sources`) and writes (the
    splits, and the pairs' parts beside them in `splits_dir`)."""

    curated: Path
    preferences: Path  # optional: no file, no pairs
    sources: SplitSources
    splits_dir: Path
    train: Path
    val: Path
    test: Path


def split_and_write(params: Params, files: SplitFiles) -> tuple[dict, SplitResult]:
    """Split, write the splits, and return (reports/split.json's content, the split)."""
    cfg = params.split
    rows = [row | {"origin": "task"} for row in read_jsonl(files.curated)]
    pairs = read_jsonl(files.preferences) if files.preferences.exists() else []
    result = make_splits(rows, pairs, files.sources, params.seed, cfg, params.task.score_fields)
    outputs = {"train": files.train, "val": files.val, "test": files.test}
    for name, path in outputs.items():
        write_jsonl(path, result.splits[name])
    for name, part in result.preferences.items():
        write_jsonl(files.splits_dir / f"preference_{name}.jsonl", part)
    hashes = {name: file_hash(path) for name, path in outputs.items()}
    return split_report(rows, result, cfg, hashes), result
