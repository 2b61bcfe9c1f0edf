"""Stage `split`: deterministic, stratified, group-aware train/val/test split, then a
contamination check and the optional replay mix.

- A group's split depends only on its id (the content hash of its first row) and the seed, so
  the same rows land in the same split on every run, and adding data never moves existing
  rows. Near-duplicate groups (from curate) stay in one split.
- Stratified by `split.stratify_by`: every stratum with at least MIN_STRATUM_GROUPS groups
  gets at least one val and one test group (the train group nearest the boundary moves).
- Contamination: a train row that contains most of a val/test row or an eval-suite item is
  removed (or reported, or fails the stage: `split.contamination`).
- Replay: `split.replay_fraction` of the train split comes from data/replay, tagged
  `origin: replay`; replay rows only ever go to train."""

from collections import Counter

from ..cli import run_stage
from ..data.data_report import write_data_report
from ..data.splitting import (
    MAX_LISTED_OVERLAPS,
    counts_by_stratum,
    eval_items,
    find_contamination,
    groups_across_splits,
    replay_count,
    replay_rows,
    split_rows,
)
from ..errors import StageError
from ..io import file_hash, read_json, read_jsonl, write_json, write_jsonl
from ..params import load_params
from ..paths import (
    CURATE_REPORT,
    CURATED,
    PREFERENCES,
    REPLAY,
    SPLIT_REPORT,
    SPLITS_DIR,
    TEST_SPLIT,
    TRAIN_SPLIT,
    VAL_SPLIT,
)


def main() -> None:
    params = load_params()
    cfg = params.split
    rows = [row | {"origin": "task"} for row in read_jsonl(CURATED)]
    splits = split_rows(rows, params.seed, cfg.val_fraction, cfg.test_fraction, cfg.stratify_by)
    empty = [name for name, part in splits.items() if not part]
    if empty:
        raise StageError(f"{CURATED} has {len(rows)} rows: too few to fill the {empty} split(s)")

    n_task_train = len(splits["train"])
    splits["train"] += replay_rows(
        REPLAY, replay_count(n_task_train, cfg.replay_fraction), params.seed
    )
    overlaps = find_contamination(splits["train"], eval_items(splits["val"], splits["test"]), cfg)
    contaminated = {record["train"] for record in overlaps}
    if overlaps and cfg.contamination == "fail":
        raise StageError(
            f"{len(contaminated)} train rows overlap val/test or an eval suite "
            f"(split.contamination=fail); see {SPLIT_REPORT}"
        )
    if cfg.contamination == "remove":
        splits["train"] = [row for row in splits["train"] if row["source"] not in contaminated]

    outputs = {"train": TRAIN_SPLIT, "val": VAL_SPLIT, "test": TEST_SPLIT}
    for name, path in outputs.items():
        write_jsonl(path, splits[name])
    preferences = split_rows(
        read_jsonl(PREFERENCES) if PREFERENCES.exists() else [],
        params.seed,
        cfg.val_fraction,
        cfg.test_fraction,
    )
    for name, part in preferences.items():
        write_jsonl(SPLITS_DIR / f"preference_{name}.jsonl", part)

    counts = {name: len(part) for name, part in splits.items()}
    report = {
        "counts": counts,
        "task_rows": {
            name: sum(r["origin"] == "task" for r in part) for name, part in splits.items()
        },
        "replay_rows": sum(r["origin"] == "replay" for r in splits["train"]),
        "preference_rows": {name: len(part) for name, part in preferences.items()},
        "fractions": {
            name: round(n / max(sum(counts.values()), 1), 4) for name, n in counts.items()
        },
        "stratify_by": cfg.stratify_by,
        "strata": counts_by_stratum(splits, cfg.stratify_by),
        "groups_multi_row": sum(1 for n in Counter(r.get("group") for r in rows).values() if n > 1),
        # near-duplicate overlap between splits: zero by construction, counted to prove it
        "groups_across_splits": groups_across_splits(splits),
        "contamination": {
            "action": cfg.contamination,
            "ngram": cfg.ngram,
            "min_overlap": cfg.min_overlap,
            "train_rows": len(contaminated),
            "removed": len(contaminated) if cfg.contamination == "remove" else 0,
            "overlaps": overlaps[:MAX_LISTED_OVERLAPS],
        },
        "sha256": {name: file_hash(path) for name, path in outputs.items()},
    }
    write_json(SPLIT_REPORT, report)
    if CURATE_REPORT.exists():
        write_data_report(read_json(CURATE_REPORT), report)
    verb = "removed" if cfg.contamination == "remove" else "kept (warn)"
    print(
        f"split: {counts} (seed {params.seed}); {report['replay_rows']} replay rows; "
        f"{len(contaminated)} contaminated train rows {verb}"
    )


if __name__ == "__main__":
    run_stage("split", main)
