"""Which run is best: the runs that pass the guardrails, ranked by the val ranking metric."""

from ..evaluation.metric_names import VAL_LOSS
from .runs import Run


def val_key(metric: str) -> str:
    return f"val_{metric}"


def passes(run: Run) -> bool:
    return not run.failed and run.metrics.get("guardrails_passed") is True


def ranking(runs: list[Run], metric: str) -> list[Run]:
    """The runs that pass the guardrails, best val `metric` first (ties: lower val loss, then
    the earlier run in `runs`, so list the baseline first)."""
    ranked = [r for r in runs if passes(r) and r.metrics.get(val_key(metric)) is not None]

    def rank(run: Run) -> tuple[float, float]:
        loss = run.metrics.get(VAL_LOSS)
        return (-run.metrics[val_key(metric)], float("inf") if loss is None else loss)

    return sorted(ranked, key=rank)


def pick_winner(runs: list[Run], metric: str) -> Run | None:
    """The first of `ranking`; None when no run passes the guardrails."""
    ranked = ranking(runs, metric)
    return ranked[0] if ranked else None
