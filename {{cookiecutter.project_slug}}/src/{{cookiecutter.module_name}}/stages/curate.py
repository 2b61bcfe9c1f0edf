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

import logging
import time

from ..cli import run_stage
from ..data.curate_report import (
    ReportBuilder,
    plot_targets,
    plot_token_lengths,
    scoring_lines,
    token_histogram,
)
from ..data.curation import ALL_REASONS, check_curated, decide, raw_files, write_rows
from ..io import write_json
from ..params import load_params
from ..paths import (
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


def main() -> None:
    params = load_params(curate_report=None)  # this stage writes what the report says
    cfg = params.curate
    max_tokens = cfg.max_tokens or params.train.max_length
    files = raw_files(RAW_DIR)
    started = time.perf_counter()
    max_length = params.train.max_length
    decisions = decide(files, params.task, cfg, max_tokens, params.train)
    checked = time.perf_counter()

    builder = ReportBuilder(decisions, ALL_REASONS)
    outputs = {
        "kept": CURATED,
        "preference": PREFERENCES,
        "quarantined": QUARANTINE,
        "duplicate": DUPLICATES,
    }
    write_rows(files, decisions, outputs, builder.add)
    report = builder.report(max_tokens, cfg.max_reject_fraction, max_length, params.task)
    write_json(CURATE_REPORT, report)
    lengths = list(decisions.tokens.values())
    write_json(TOKEN_PLOT_DATA, token_histogram(lengths, max_tokens))
    plot_token_lengths(lengths, max_tokens, TOKEN_PLOT)
    plot_targets(report["targets"].get("top", []), TARGET_PLOT)
    dups = report["duplicates"]
    logging.info(
        "check + dedup %.1f s, write + report %.1f s",
        checked - started,
        time.perf_counter() - checked,
    )
    print(
        f"curate: {report['rows_in']} rows in -> {report['kept']} kept, "
        f"{report['quarantined']} quarantined {report['reasons']}, "
        f"{dups['exact']} exact + {dups['near']} near duplicates removed\n"
        f"curate: {report['size_advice']}"
    )
    trainable = report["trainable"]
    if trainable["rows"]:
        print(
            f"curate: trained tokens per row (assistant turns, after max_length {max_length}): "
            f"min {trainable['min']}, median {trainable['p50']}, p95 {trainable['p95']}; "
            f"{trainable['trained_share']:.0%} of all tokens; {trainable['multi_turn']} "
            f"multi-turn rows (train.assistant_turns: {trainable['assistant_turns']})"
        )
    for finding in report["targets"].get("findings", []):
        print(
            f"curate: {finding['reason']}: {finding['target']!r} answers {finding['share']:.0%} "
            f"of the rows ({finding['count']}, e.g. {finding['example']}); "
            f"curate.dominant_target={cfg.dominant_target}"
        )
    for line in scoring_lines(report["scoring"]):
        print(f"curate: {line}")
    check_curated(report, cfg.max_reject_fraction)


if __name__ == "__main__":
    run_stage("curate", main)
