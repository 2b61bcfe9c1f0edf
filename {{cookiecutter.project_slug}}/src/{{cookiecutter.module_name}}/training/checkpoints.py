"""Crash-safe training: checkpoints written atomically, found only when complete, ordered by
step (the data order a resumed run reproduces is in samplers.py)."""

import json
import os
import re
import shutil
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STAGING_DIR = ".staging"
"""Where a checkpoint is written before it is renamed into place (inside the output dir, so
the rename stays on one file system and is atomic)."""


def checkpoint_step(name: str) -> int:
    """'checkpoint-48' -> 48; anything else (the base model) is step 0."""
    match = CHECKPOINT_RE.match(Path(name).name)
    return int(match.group(1)) if match else 0


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints whose save finished, oldest first. A checkpoint only appears under its
    name once it is whole (see AtomicCheckpoints); trainer_state.json, written last, is
    checked too for directories written by a plain Trainer."""
    found = [
        path
        for path in output_dir.glob("checkpoint-*")
        if CHECKPOINT_RE.match(path.name) and (path / "trainer_state.json").exists()
    ]
    return sorted(found, key=lambda path: checkpoint_step(path.name))


def log_history(checkpoints: list[Path]) -> list[dict]:
    """The run's logged losses: the last checkpoint's trainer_state.json holds them all."""
    if not checkpoints:
        return []
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text())["log_history"]


def remove_partial(output_dir: Path) -> None:
    """Delete what a killed run left half-written: the staging dir and incomplete checkpoints."""
    shutil.rmtree(output_dir / STAGING_DIR, ignore_errors=True)
    for partial in set(output_dir.glob("checkpoint-*")) - set(complete_checkpoints(output_dir)):
        shutil.rmtree(partial)


class AtomicCheckpoints:
    """Trainer mixin: each checkpoint is written to `<output_dir>/.staging/checkpoint-N` and
    renamed to `<output_dir>/checkpoint-N` only when every file (weights, optimizer, RNG
    states of all processes, trainer state) is on disk, so a run killed mid-save never
    leaves a checkpoint that a resume could pick up.

    Use as `class Trainer(AtomicCheckpoints, SFTTrainer)`."""

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(self._get_output_dir(trial=trial))
        staging = run_dir / STAGING_DIR
        name = f"checkpoint-{self.state.global_step}"
        self._get_output_dir = lambda trial=None: str(staging)  # what super() saves under
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            final = run_dir / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging / name, final)
        self.accelerator.wait_for_everyone()
