"""Stage `split`: deterministic train/val/test split by content hash.

A row's split depends only on its id (a hash of its normalised content) and the seed, so the
same row lands in the same split on every run, and adding data never moves existing rows.
"""

import hashlib
from collections import Counter

from .cli import run_stage
from .jsonio import file_hash, read_jsonl, write_json, write_jsonl
from .params import load_params
from .paths import CURATED, SPLIT_REPORT, TEST_SPLIT, TRAIN_SPLIT, VAL_SPLIT

SPLITS = ("train", "val", "test")


def unit_interval(row_id: str, seed: int) -> float:
    """Map (seed, id) to a uniform number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(row_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    u = unit_interval(row_id, seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_rows(
    rows: list[dict], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, list[dict]]:
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for row in rows:
        splits[assign_split(row["id"], seed, val_fraction, test_fraction)].append(row)
    return splits


def main() -> None:
    params = load_params()
    rows = read_jsonl(CURATED)
    splits = split_rows(rows, params.seed, params.split.val_fraction, params.split.test_fraction)
    empty = [name for name, part in splits.items() if not part]
    if empty:
        raise ValueError(f"{CURATED} has {len(rows)} rows: too few to fill the {empty} split(s)")
    outputs = {"train": TRAIN_SPLIT, "val": VAL_SPLIT, "test": TEST_SPLIT}
    for name, path in outputs.items():
        write_jsonl(path, splits[name])
    counts = Counter({name: len(part) for name, part in splits.items()})
    write_json(
        SPLIT_REPORT,
        {
            "counts": dict(counts),
            "fractions": {name: round(n / len(rows), 4) for name, n in counts.items()},
            "sha256": {name: file_hash(path) for name, path in outputs.items()},
        },
    )
    print(f"split: {dict(counts)} (seed {params.seed})")


if __name__ == "__main__":
    run_stage("split", main)
