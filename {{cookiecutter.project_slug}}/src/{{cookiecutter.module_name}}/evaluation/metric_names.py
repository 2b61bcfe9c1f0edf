"""The metric names: the keys of each model's eval report (reports/eval/<model>.json), of
reports/eval_by_step.json and of reports/metrics.json. dvc.yaml's plots and the Makefile's
`make exp-show` column filter name them too (tests/test_metric_names.py checks both)."""

TASK_ACCURACY = "task_accuracy"
"""Share of the task items whose score reaches task.min_score."""

TASK_SCORE = "task_score"
"""Mean task item score: a graded scorer's partial credit, else equal to task_accuracy."""

EXACT_MATCH = "exact_match"
"""Share of the task outputs equal to their target."""

FORMAT_CORRECT = "format_correct"
"""Share of the task outputs in the target's format."""

FORMAT_DRIFT = "format_drift"
"""Share of the task outputs that start in the target's format and continue with other text."""

GENERAL_QA = "general_qa"
"""Share of the general QA suite's items answered right (data/suites)."""

INSTRUCTION_FOLLOW = "instruction_follow"
"""Share of the instruction suite's items whose every check passes (data/suites)."""

FORGETTING_SCORE = "forgetting_score"
"""Share of the general items the base gets right that the model gets wrong."""

VAL_LOSS = "val_loss"
"""Mean loss on the val rows' trained tokens (none for the few-shot baseline and DPO)."""

TASK_METRICS = (TASK_ACCURACY, TASK_SCORE, EXACT_MATCH, FORMAT_CORRECT, FORMAT_DRIFT)
"""The means over the task items (scoring.task_metrics)."""

GENERAL_SUITES = (GENERAL_QA, INSTRUCTION_FOLLOW)
"""The general suites, each a metric: the share of its items right."""

MODEL_METRICS = (*TASK_METRICS, *GENERAL_SUITES, FORGETTING_SCORE, VAL_LOSS)
"""Every metric measured on one model."""


def interval_keys(name: str) -> tuple[str, str]:
    """reports/metrics.json's keys of `name`'s 95 % interval: `<name>_lo`, `<name>_hi`."""
    return f"{name}_lo", f"{name}_hi"


def interval_text(metrics: dict, name: str, digits: int = 3) -> str:
    """` [lo, hi]`, `name`'s interval in `metrics` to `digits` decimals; "" where it has none."""
    lo, hi = interval_keys(name)
    if lo not in metrics or hi not in metrics:
        return ""
    return f" [{metrics[lo]:.{digits}f}, {metrics[hi]:.{digits}f}]"
