"""The names eval gives its models (base, fewshot, checkpoint-N, dpo-checkpoint-N), their
training steps, and back from a name to the checkpoint and the manifest that records it."""

from pathlib import Path

from ..io import read_json
from ..models.loading import SFT_POINTER
from ..training.checkpoints import checkpoint_step

BASE = "base"
FEWSHOT = "fewshot"
DPO_PREFIX = "dpo-"


def is_dpo(checkpoint: Path) -> bool:
    """A DPO checkpoint names the SFT checkpoint it is stacked on."""
    return (checkpoint / SFT_POINTER).exists()


def model_name(checkpoint: Path | None) -> str:
    """Report name: base, checkpoint-N (SFT) or dpo-checkpoint-N (DPO)."""
    if checkpoint is None:
        return BASE
    return DPO_PREFIX + checkpoint.name if is_dpo(checkpoint) else checkpoint.name


def model_step(checkpoint: Path | None) -> int:
    """Training step of a model; a DPO checkpoint's continues from its SFT checkpoint's."""
    if checkpoint is None:
        return 0
    start = read_json(checkpoint / SFT_POINTER)["step"] if is_dpo(checkpoint) else 0
    return start + checkpoint_step(checkpoint.name)


def checkpoint_dir(name: str, checkpoints_dir: Path, dpo_dir: Path) -> Path:
    """Where the checkpoint a report is named after lives (the inverse of model_name): under
    `checkpoints_dir` (SFT) or `dpo_dir` (DPO)."""
    if name.startswith(DPO_PREFIX):
        return dpo_dir / name.removeprefix(DPO_PREFIX)
    return checkpoints_dir / name


def checkpoint_manifest(name: str, sft_manifest: Path, dpo_manifest: Path) -> Path:
    """The manifest that records the checkpoint a report is named after."""
    return dpo_manifest if name.startswith(DPO_PREFIX) else sft_manifest
