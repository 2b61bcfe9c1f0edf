"""The train stage's run: SFT on the train split, resumed from the last complete checkpoint
when the params and data are unchanged, and the run's stats."""

from dataclasses import dataclass
from pathlib import Path

from ..io import read_jsonl
from ..params import Params
from .guards import LossGuard
from .trainer import (
    build_trainer,
    count_sequence_tokens,
    fingerprint,
    hyperparameters,
    run_to_end,
    start_run,
)


@dataclass(frozen=True)
class TrainFiles:
    """What the train stage reads (the base, the train split) and writes (the checkpoints,
    their manifest, the loss log)."""

    base: Path
    train_split: Path
    checkpoints: Path
    manifest: Path
    log_dir: Path


def train_sft(params: Params, files: TrainFiles) -> dict | None:
    """Train, write the checkpoints' manifest and return the run's stats; None on the
    processes of a distributed run other than the main one."""
    train_rows = read_jsonl(files.train_split)
    run = start_run(
        "train", files.checkpoints, files.log_dir, fingerprint(params, files.train_split)
    )
    guard = LossGuard(files.checkpoints, params.train.max_loss_spike)
    trainer = build_trainer(
        params, files.base, train_rows, None, files.checkpoints, callbacks=[*run.callbacks, guard]
    )
    end = run_to_end(trainer, run, files.checkpoints, files.manifest)
    if end is None:
        return None
    result, seconds, manifest = end.result, end.seconds, end.manifest
    tokens = count_sequence_tokens(trainer.processing_class, train_rows) * params.train.num_epochs
    return {
        "train_loss": round(result.training_loss, 4),
        "global_step": result.global_step,
        "train_seconds": round(seconds, 1),
        "tokens_per_second": None if run.resume_from else round(tokens / seconds, 1),
        "checkpoints": list(manifest["checkpoints"]),
        "bf16": trainer.args.bf16,
        "processes": trainer.args.world_size,
        "hyperparameters": hyperparameters(params.train),
    }
