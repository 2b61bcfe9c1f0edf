"""Stage `select`: pick the checkpoint with the best **val** task accuracy (never train loss)
among those that pass the guardrails, score it, the base and the few-shot baseline once on
the held-out **test** split, diagnose the run (overfitting, forgetting, format drift,
contamination), export the adapter and a model card to models/selected (the export stage
makes the merged and GGUF models from it), and
write the headline metrics with bootstrap intervals and paired comparisons against the
baselines, the per-item test scores (reports/test_items.json, for comparing experiments) and
the report (Markdown and HTML, with figures).

A fine-tune that fails every guardrail is a result, not a crash: the best-effort checkpoint is
exported, marked `guardrails_passed: false`, and the stage exits 0. Findings whose fixes
contradict each other (underfitting with forgetting or overfitting) are printed as one verdict
with one command (selection/verdict.py, also in reports/diagnosis.json and the report). The
work is selection/run.py's."""

from ..cli import run_stage
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    CURATE_REPORT,
    DATA_REPORT,
    DIAGNOSIS,
    DPO_DIR,
    DPO_MANIFEST,
    EVAL_CACHE_DIR,
    EVAL_DIR,
    LOSS_FIGURE,
    METRICS,
    METRICS_FIGURE,
    REPORT_HTML,
    REPORT_MD,
    RL_DIR,
    RL_EVAL_DIR,
    RL_FIGURE,
    RL_MANIFEST,
    SELECTED_DIR,
    SPLIT_REPORT,
    TEST_ITEMS,
    TEST_SPLIT,
    TRAIN_SPLIT,
    TRAINING_EXAMPLE,
)
from ..selection.run import SelectFiles, select

FILES = SelectFiles(
    base=BASE_MODEL_DIR,
    eval_dir=EVAL_DIR,
    checkpoints=CHECKPOINTS_DIR,
    sft_manifest=CHECKPOINTS_MANIFEST,
    dpo=DPO_DIR,
    dpo_manifest=DPO_MANIFEST,
    rl=RL_DIR,
    rl_manifest=RL_MANIFEST,
    rl_eval_dir=RL_EVAL_DIR,
    rl_figure=RL_FIGURE,
    test_split=TEST_SPLIT,
    train_split=TRAIN_SPLIT,
    curate_report=CURATE_REPORT,
    split_report=SPLIT_REPORT,
    eval_cache=EVAL_CACHE_DIR,
    data_report=DATA_REPORT,
    training_example=TRAINING_EXAMPLE,
    selected=SELECTED_DIR,
    metrics=METRICS,
    diagnosis=DIAGNOSIS,
    test_items=TEST_ITEMS,
    report_md=REPORT_MD,
    report_html=REPORT_HTML,
    loss_figure=LOSS_FIGURE,
    metrics_figure=METRICS_FIGURE,
)


def main() -> None:
    for line in select(load_params(), FILES):
        print(f"select: {line}")


if __name__ == "__main__":
    run_stage("select", main)
