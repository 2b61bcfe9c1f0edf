"""Stage `curate`: every raw row is kept, quarantined with a reason, or removed as a duplicate.

Two streaming passes over data/raw/*.jsonl, so memory holds per-row decisions and MinHash
signatures, never the data set's text:
1. decide: parse, check the file format's schema and the chat schema, audit JSON targets,
   apply the quality filters, count tokens with the base model's tokenizer (each row's length,
   and the completion tokens TRL trains on once the row is cut to train.max_length: a row
   with none left is quarantined as `no_trainable_tokens`), drop exact duplicates, sign
   each surviving row for near-duplicate clustering, and count the normalised targets (a
   placeholder or dominant target is quarantined beyond a few copies, reported or fatal:
   curate.dominant_target);
2. write: the kept rows (TRL prompt/completion form) to data/curated/, every rejected line
   verbatim with file, line and reason to data/quarantine.jsonl, every duplicate with the row it
   duplicates to data/curated/duplicates.jsonl, and counts to reports/curate.json (with the
   distribution of trainable tokens per kept row), where rows_in == kept + quarantined +
   duplicates always holds; `scoring` says how the task will be scored (a null task.scorer on
   free-text targets means chrF, for every later stage: params.load_params reads it back)."""

from ..cli import run_stage
from ..data.curate_report import plot_targets, plot_token_lengths, summary_lines, token_histogram
from ..data.curation import check_curated, curate, raw_files, token_counting
from ..io import write_json
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CURATE_REPORT,
    CURATED,
    DUPLICATES,
    PREFERENCES,
    QUARANTINE,
    RAW_DIR,
    TARGET_PLOT,
    TOKEN_PLOT,
    TOKEN_PLOT_DATA,
)

OUTPUTS = {
    "kept": CURATED,
    "preference": PREFERENCES,
    "quarantined": QUARANTINE,
    "duplicate": DUPLICATES,
}


def main() -> None:
    params = load_params(curate_report=None)  # this stage writes what the report says
    cfg = params.curate
    max_tokens = cfg.max_tokens or params.train.max_length
    files = raw_files(RAW_DIR)
    with token_counting(files, BASE_MODEL_DIR, params.train, max_tokens) as counting:
        decisions, report = curate(files, OUTPUTS, params.task, cfg, counting)
    write_json(CURATE_REPORT, report)
    lengths = list(decisions.tokens.values())
    write_json(TOKEN_PLOT_DATA, token_histogram(lengths, max_tokens))
    plot_token_lengths(lengths, max_tokens, TOKEN_PLOT)
    plot_targets(report["targets"].get("top", []), TARGET_PLOT)
    for line in summary_lines(report, cfg.dominant_target):
        print(f"curate: {line}")
    check_curated(report, cfg.max_reject_fraction, QUARANTINE)


if __name__ == "__main__":
    run_stage("curate", main)
