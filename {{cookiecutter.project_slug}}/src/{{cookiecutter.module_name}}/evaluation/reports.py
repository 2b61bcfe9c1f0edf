"""The eval stage's reports on disk (one JSON per model), read back in a fixed order by select,
and the views built from them: the per-step plot rows and the loss history with val losses."""

from pathlib import Path

from ..io import read_json, write_json
from .metric_names import (
    FORGETTING_SCORE,
    FORMAT_CORRECT,
    FORMAT_DRIFT,
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
    TASK_ACCURACY,
    TASK_SCORE,
    VAL_LOSS,
)

PLOTTED = (
    TASK_ACCURACY,
    TASK_SCORE,
    FORMAT_CORRECT,
    FORMAT_DRIFT,
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
)
ROLE_ORDER = {"base": 0, "fewshot": 1, "checkpoint": 2}


def report_path(name: str, eval_dir: Path) -> Path:
    return eval_dir / f"{name}.json"


def write_reports(reports: list[dict], eval_dir: Path) -> None:
    """Replace every report in `eval_dir` by `reports`, each marked as scored on val."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    for stale in eval_dir.glob("*.json"):
        stale.unlink()
    for report in reports:
        report["split"] = "val"
        report.setdefault(VAL_LOSS, None)  # the few-shot baseline has none
        write_json(report_path(report["model"], eval_dir), report)


def load_reports(*eval_dirs: Path) -> list[dict]:
    """Eval reports (eval's, and eval_rl's where given): base, few-shot, then checkpoints by
    step."""
    reports = [read_json(path) for eval_dir in eval_dirs for path in eval_dir.glob("*.json")]
    return sorted(reports, key=lambda r: (ROLE_ORDER[r["role"]], r["step"]))


def plot_rows(reports: list[dict]) -> list[dict]:
    return [
        {
            "step": r["step"],
            VAL_LOSS: r[VAL_LOSS],
            **{k: r["metrics"].get(k) for k in (*PLOTTED, FORGETTING_SCORE)},
        }
        for r in reports
        if r["role"] != "fewshot"
    ]


def with_val_losses(log_history: list[dict], reports: list[dict]) -> list[dict]:
    """The trainer's log history (train loss) with the val loss eval measured for the base
    (step 0) and each SFT checkpoint added as `eval_loss` entries, as a trainer's own val
    passes would log them: the loss curves of the diagnosis and the report read both."""
    val = [
        {"step": r["step"], "eval_loss": r[VAL_LOSS]}
        for r in reports
        if r.get(VAL_LOSS) is not None and r["role"] != "fewshot" and not r.get("stage")
    ]
    return sorted([*log_history, *val], key=lambda entry: entry["step"])
