"""Stop a training run that has gone wrong, at once and with the evidence: a NaN/inf loss or a
loss spike names the step, the loss and the last good checkpoint to go back to.

The trainers log NaN/inf losses as they are (`logging_nan_inf_filter` off in sft_config and
stacked.run_settings); transformers' default would log the running mean and hide them from the
guard."""

import math
import statistics
from pathlib import Path

from transformers import TrainerCallback

from ..errors import StageError
from .checkpoints import checkpoint_step, complete_checkpoints

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
    """Checks every logged training loss; raises StageError on the first problem.

    A logged loss is the mean over the steps since the previous log, so the problem began
    somewhere after the last good log: a checkpoint saved in between (save_steps not a
    multiple of logging_steps) may already hold NaN weights. The last good checkpoint is the
    newest one at or before the last step that logged a good loss."""

    def __init__(self, output_dir: Path, max_spike: float | None):
        self.output_dir = output_dir
        self.max_spike = max_spike
        self.history: list[float] = []
        self.good_step = 0  # the last step that logged a good loss (or was resumed from)

    def on_train_begin(self, args, state, control, **kwargs):
        self.good_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        problem = loss_problem(float(loss), self.history, self.max_spike)
        if problem:
            raise StageError(
                f"training stopped at step {state.global_step}: {problem}. Last good "
                f"checkpoint: {self.last_good_checkpoint()}. Try a lower train.learning_rate "
                "or more warmup (train.warmup_ratio), and check the data for broken rows."
            )
        self.history.append(float(loss))
        self.good_step = state.global_step

    def last_good_checkpoint(self) -> str:
        good = [
            path
            for path in complete_checkpoints(self.output_dir)
            if checkpoint_step(path.name) <= self.good_step
        ]
        return good[-1].name if good else "none yet"
