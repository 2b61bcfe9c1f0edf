"""The names eval gives its models (base, fewshot, checkpoint-N, and dpo-checkpoint-N or
rl-checkpoint-N for a checkpoint stacked on an SFT one), their training steps, and back from a
name to the checkpoint and the manifest that records it."""

from collections.abc import Mapping
from pathlib import Path

from ..io import read_json
from ..models.loading import SFT_POINTER
from ..training.checkpoints import STACKED_STAGES, checkpoint_step

BASE = "base"
FEWSHOT = "fewshot"


def stacked_stage(checkpoint: Path) -> str | None:
    """The stage (dpo or rl) that trained `checkpoint` on top of an SFT checkpoint, as its
    sft_checkpoint.json says; None for an SFT checkpoint."""
    pointer = checkpoint / SFT_POINTER
    if not pointer.exists():
        return None
    return read_json(pointer).get("stage", "dpo")  # pointers without one predate rl


def model_name(checkpoint: Path | None) -> str:
    """Report name: base, checkpoint-N (SFT), dpo-checkpoint-N or rl-checkpoint-N."""
    if checkpoint is None:
        return BASE
    stage = stacked_stage(checkpoint)
    return f"{stage}-{checkpoint.name}" if stage else checkpoint.name


def model_step(checkpoint: Path | None) -> int:
    """Training step of a model; a stacked checkpoint's continues from its SFT checkpoint's."""
    if checkpoint is None:
        return 0
    start = read_json(checkpoint / SFT_POINTER)["step"] if stacked_stage(checkpoint) else 0
    return start + checkpoint_step(checkpoint.name)


def split_name(name: str) -> tuple[str | None, str]:
    """(stacked stage or None, checkpoint dir name) of a report name."""
    stage, _, rest = name.partition("-")
    return (stage, rest) if stage in STACKED_STAGES else (None, name)


def checkpoint_dir(name: str, checkpoints_dir: Path, stacked_dirs: Mapping[str, Path]) -> Path:
    """Where the checkpoint a report is named after lives (the inverse of model_name): under
    `checkpoints_dir` (SFT) or its stage's dir in `stacked_dirs` (dpo, rl)."""
    stage, checkpoint = split_name(name)
    return (stacked_dirs[stage] if stage else checkpoints_dir) / checkpoint


def checkpoint_manifest(
    name: str, sft_manifest: Path, stacked_manifests: Mapping[str, Path]
) -> Path:
    """The manifest that records the checkpoint a report is named after."""
    stage, _ = split_name(name)
    return stacked_manifests[stage] if stage else sft_manifest
