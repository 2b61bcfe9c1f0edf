"""The guardrails select applies on val: a checkpoint that forgets too much, loses its format
or falls too far below the base on general QA is chosen only when none passes."""

from ..errors import StageError
from ..evaluation.metric_names import (
    FORGETTING_SCORE,
    FORMAT_CORRECT,
    GENERAL_QA,
    TASK_ACCURACY,
    TASK_SCORE,
)
from ..params import SelectParams, TaskParams


def ranking_metric(task: TaskParams) -> str:
    """The val metric checkpoints are ranked by: the mean graded score under a graded scorer
    (chrf, rougeL: a thresholded accuracy of free text is mostly noise), else task accuracy."""
    return TASK_SCORE if task.graded else TASK_ACCURACY


def guardrail_failures(metrics: dict, rules: SelectParams, base: dict | None) -> list[str]:
    """Why a checkpoint's val metrics break the guardrails (empty: it passes); the general-QA
    rule compares with the `base` model's metrics."""
    failures = []
    if metrics[FORGETTING_SCORE] > rules.max_forgetting:
        failures.append(
            f"forgetting_score {metrics['forgetting_score']} > "
            f"max_forgetting {rules.max_forgetting}"
        )
    if metrics[FORMAT_CORRECT] < rules.min_format_correct:
        failures.append(
            f"format_correct {metrics['format_correct']} < min_format_correct "
            f"{rules.min_format_correct}"
        )
    floor = round(base[GENERAL_QA] * rules.min_general_qa_ratio, 4) if base else 0.0
    if metrics[GENERAL_QA] < floor:
        failures.append(
            f"general_qa {metrics['general_qa']} < {floor} (min_general_qa_ratio "
            f"{rules.min_general_qa_ratio} x the base's {base['general_qa']})"
        )
    return failures


def choose(
    reports: list[dict], rules: SelectParams, metric: str = TASK_ACCURACY
) -> tuple[dict, bool]:
    """Best val `metric` (see ranking_metric) among checkpoints passing the guardrails (ties:
    better format, then the earlier step). Returns (report, guardrails_passed)."""
    checkpoints = [r for r in reports if r["role"] == "checkpoint"]
    if not checkpoints:
        raise StageError("no checkpoint eval reports: run the eval stage first")
    base = next((r["metrics"] for r in reports if r["role"] == "base"), None)
    passing = [r for r in checkpoints if not guardrail_failures(r["metrics"], rules, base)]

    def rank(report: dict) -> tuple:
        m = report["metrics"]
        return (m[metric], m[FORMAT_CORRECT], -report["step"])

    pool = passing or checkpoints
    return max(pool, key=rank), bool(passing)
