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
from ..data.split_run import SplitFiles, split_and_write
from ..data.splitting import SplitSources
from ..io import read_json, write_json
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

FILES = SplitFiles(
    curated=CURATED,
    preferences=PREFERENCES,
    sources=SplitSources(REPLAY_ROWS, (GENERAL_QA_SUITE, INSTRUCTION_SUITE), SPLIT_REPORT),
    splits_dir=SPLITS_DIR,
    train=TRAIN_SPLIT,
    val=VAL_SPLIT,
    test=TEST_SPLIT,
)
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
    report, result = split_and_write(params, FILES)
    write_json(SPLIT_REPORT, report)
    if CURATE_REPORT.exists():
        write_data_report(read_json(CURATE_REPORT), report, DATA_FILES)
    verb = "removed" if params.split.contamination == "remove" else "kept (warn)"
    print(
        f"split: {report['counts']} (seed {params.seed}); {report['replay_rows']} replay rows; "
        f"{len(result.contaminated)} contaminated train rows {verb}"
    )


if __name__ == "__main__":
    run_stage("split", main)
