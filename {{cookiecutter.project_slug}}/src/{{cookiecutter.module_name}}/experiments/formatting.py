"""Text helpers shared by the experiment reports: metric values and the ends of logs."""

from typing import Any

from ..evaluation.metric_names import interval_text

LOG_TAIL = 12  # lines of `dvc queue logs` shown for a failed experiment


def log_tail(text: str, lines: int = LOG_TAIL) -> list[str]:
    """The last non-blank lines of a log (progress-bar carriage returns collapsed)."""
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in kept if line.strip()][-lines:]


def number(value: Any, metrics: dict | None = None, key: str | None = None) -> str:
    """A metric to 3 decimals, with its `_lo`/`_hi` interval when metrics.json has one."""
    if value is None:
        return ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    text = f"{value:.3f}"
    return text + interval_text(metrics, key) if metrics and key else text
