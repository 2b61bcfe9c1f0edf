"""Stop a training run that has gone wrong, at once and with the evidence: a NaN/inf loss or a
loss spike names the step, the loss and the last complete checkpoint to go back to."""

import math
import statistics
from pathlib import Path

from transformers import TrainerCallback

from ..errors import StageError
from .checkpoints import complete_checkpoints

SPIKE_WINDOW = 5
"""Logged losses the spike check compares against (their median)."""


def loss_problem(loss: float, history: list[float], max_spike: float | None) -> str | None:
    """Why `loss` must stop the run, or None. `history` holds the earlier logged losses."""
    if not math.isfinite(loss):
        return f"loss is {loss}"
    recent = history[-SPIKE_WINDOW:]
    if max_spike is not None and len(recent) == SPIKE_WINDOW:
        reference = statistics.median(recent)
        if reference > 0 and loss > max_spike * reference:
            return (
                f"loss {loss:.4g} is {loss / reference:.1f}x the median of the last "
                f"{SPIKE_WINDOW} logged losses ({reference:.4g}; train.max_loss_spike "
                f"{max_spike})"
            )
    return None


class LossGuard(TrainerCallback):
    """Checks every logged training loss; raises StageError on the first problem."""

    def __init__(self, output_dir: Path, max_spike: float | None):
        self.output_dir = output_dir
        self.max_spike = max_spike
        self.history: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        problem = loss_problem(float(loss), self.history, self.max_spike)
        if problem:
            checkpoints = complete_checkpoints(self.output_dir)
            last = checkpoints[-1].name if checkpoints else "none yet"
            raise StageError(
                f"training stopped at step {state.global_step}: {problem}. Last good "
                f"checkpoint: {last}. Try a lower train.learning_rate or more warmup "
                "(train.warmup_ratio), and check the data for broken rows."
            )
        self.history.append(float(loss))
