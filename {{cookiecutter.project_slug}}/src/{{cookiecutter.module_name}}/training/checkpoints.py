"""Crash-safe training: checkpoints written atomically, found only when complete, ordered by
step (the data order a resumed run reproduces is in samplers.py)."""

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import StageError
from ..io import file_digest, read_json, write_json

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STAGING_DIR = ".staging"
STACKED_STAGES = ("dpo", "rl")
"""The stages that train a second adapter on top of an SFT checkpoint; each names its
checkpoints' manifest models/<stage>.json."""
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


RESUME_ONLY = ("optimizer.pt", "scheduler.pt", "rng_state", "training_args.bin")
"""Files a checkpoint holds only to resume training: left out of the manifest's hashes."""


def model_files(checkpoint: Path) -> list[Path]:
    """The files that make the checkpoint's model and its logged history."""
    return sorted(
        path
        for path in checkpoint.iterdir()
        if path.is_file() and not path.name.startswith(RESUME_ONLY)
    )


def write_manifest(output_dir: Path, manifest: Path) -> dict:
    """Record the complete checkpoints of `output_dir` with the SHA-256 of their model files.

    The manifest is the DVC output of train (and dpo): it is small and versioned with the
    experiment, while the checkpoints themselves stay local. The stages that read checkpoints
    take the list from here and check the hashes (`manifest_checkpoints`)."""
    payload = {
        "directory": output_dir.as_posix(),
        "checkpoints": {
            path.name: {file.name: file_digest(file) for file in model_files(path)}
            for path in complete_checkpoints(output_dir)
        },
    }
    write_json(manifest, payload)
    return payload


def _stage(manifest: Path) -> str:
    return manifest.stem if manifest.stem in STACKED_STAGES else "train"


def manifest_checkpoints(manifest: Path, required: bool = True, verify: bool = True) -> list[Path]:
    """The checkpoints `manifest` lists, oldest first, each checked (`verify_checkpoint`)
    unless not `verify` (a reader of one or two of them checks those itself). A missing
    manifest is a StageError, unless not `required` (DPO, which may never have run)."""
    if not manifest.exists():
        if required:
            raise StageError(f"{manifest} not found: run `dvc repro {_stage(manifest)}` first")
        return []
    directory = Path(read_json(manifest)["directory"])
    listed = [directory / name for name in read_json(manifest)["checkpoints"]]
    for path in listed if verify else ():
        verify_checkpoint(manifest, path)
    return sorted(listed, key=lambda path: checkpoint_step(path.name))


def verify_checkpoint(manifest: Path, checkpoint: Path) -> Path:
    """`checkpoint`, after checking it is on this machine with the content `manifest` records;
    a missing, unlisted or different one is a StageError saying why and what fixes it."""
    retrain = f"`dvc repro -f {_stage(manifest)}` recreates them here"
    recorded = read_json(manifest)["checkpoints"].get(checkpoint.name)
    if recorded is None:
        raise StageError(f"{checkpoint} is not listed in {manifest}: {retrain}")
    if not checkpoint.is_dir():
        raise StageError(
            f"{checkpoint} is listed in {manifest} but not on this machine: checkpoints stay "
            f"where they were trained (DVC neither caches nor pushes them); {retrain}"
        )
    local = {file.name: file_digest(file) for file in model_files(checkpoint)}
    if local != recorded:
        raise StageError(
            f"{checkpoint} differs from the one {manifest} records: the local checkpoints come "
            f"from another run (e.g. after `dvc exp apply` or `git checkout`); {retrain}"
        )
    return checkpoint


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


ADAPTER_CONFIG = "adapter_config.json"
UNORDERED_KEYS = ("target_modules", "exclude_modules")
"""adapter_config.json lists that PEFT keeps as sets and writes in the set's order, which
changes from process to process (string hashing is randomised per process)."""


def sort_adapter_config(directory: Path) -> None:
    """Rewrite `directory`'s adapter_config.json, if any, with its module lists sorted, in
    PEFT's own layout (indent 2, sorted keys), so identical runs write identical bytes."""
    path = directory / ADAPTER_CONFIG
    if not path.exists():
        return
    config = json.loads(path.read_text())
    for key in UNORDERED_KEYS:
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


class SortedAdapterConfig:
    """Trainer mixin: every adapter the trainer saves, each checkpoint's included (Trainer
    saves those through save_model), has a byte-reproducible adapter_config.json."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            sort_adapter_config(Path(output_dir or self.args.output_dir))


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
