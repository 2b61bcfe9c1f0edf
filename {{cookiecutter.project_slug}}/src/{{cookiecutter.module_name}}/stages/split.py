"""Stage `split`: deterministic, stratified, group-aware train/val/test split, then a
contamination check and the optional replay mix.

- A group's split depends only on its id (the content hash of its first row) and the seed, so
  the same rows land in the same split on every run, and adding data never moves existing
  rows. Near-duplicate groups (from curate) stay in one split.
- Stratified by `split.stratify_by`: every stratum with at least MIN_STRATUM_GROUPS groups
  gets at least one val and one test group (the train group nearest the boundary moves).
  `auto` picks the most imbalanced of `task.score_fields` (none for text targets).
- Contamination: a train row that contains most of a val/test row or an eval-suite item is
  removed (or reported, or fails the stage: `split.contamination`).
- Replay: `split.replay_fraction` of the train split comes from the replay rows (the `replay`
  stage: data/replay's prompts with the base's own answers, by default), tagged `origin:
  replay`; replay rows only ever go to train."""

from ..cli import run_stage
from ..data.data_report import DataFiles, write_data_report
from ..data.splitting import SplitSources, make_splits, split_report
from ..io import file_hash, read_json, read_jsonl, write_json, write_jsonl
from ..params import load_params
from ..paths import (
    CURATE_REPORT,
    CURATED,
    DATA_REPORT,
    DUPLICATES,
    GENERAL_QA_SUITE,
    INSTRUCTION_SUITE,
    PREFERENCES,
    QUARANTINE,
    REPLAY_ROWS,
    SPLIT_REPORT,
    SPLITS_DIR,
    TARGET_PLOT,
    TEST_SPLIT,
    TOKEN_PLOT,
    TRAIN_SPLIT,
    TRAINING_EXAMPLE,
    VAL_SPLIT,
)

SOURCES = SplitSources(REPLAY_ROWS, (GENERAL_QA_SUITE, INSTRUCTION_SUITE), SPLIT_REPORT)
DATA_FILES = DataFiles(
    page=DATA_REPORT,
    curate_report=CURATE_REPORT,
    split_report=SPLIT_REPORT,
    quarantine=QUARANTINE,
    duplicates=DUPLICATES,
    target_plot=TARGET_PLOT,
    token_plot=TOKEN_PLOT,
    training_example=TRAINING_EXAMPLE,
)


def main() -> None:
    params = load_params()
    cfg = params.split
    rows = [row | {"origin": "task"} for row in read_jsonl(CURATED)]
    pairs = read_jsonl(PREFERENCES) if PREFERENCES.exists() else []
    result = make_splits(rows, pairs, SOURCES, params.seed, cfg, params.task.score_fields)

    outputs = {"train": TRAIN_SPLIT, "val": VAL_SPLIT, "test": TEST_SPLIT}
    for name, path in outputs.items():
        write_jsonl(path, result.splits[name])
    for name, part in result.preferences.items():
        write_jsonl(SPLITS_DIR / f"preference_{name}.jsonl", part)
    hashes = {name: file_hash(path) for name, path in outputs.items()}
    report = split_report(rows, result, cfg, hashes)
    write_json(SPLIT_REPORT, report)
    if CURATE_REPORT.exists():
        write_data_report(read_json(CURATE_REPORT), report, DATA_FILES)
    verb = "removed" if cfg.contamination == "remove" else "kept (warn)"
    print(
        f"split: {report['counts']} (seed {params.seed}); {report['replay_rows']} replay rows; "
        f"{len(result.contaminated)} contaminated train rows {verb}"
    )


if __name__ == "__main__":
    run_stage("split", main)
