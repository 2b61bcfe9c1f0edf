"""What the stages that train on top of an SFT checkpoint (dpo, rl) share: the outputs they
write when off, the sft_checkpoint.json pointer each of their checkpoints carries, the hash of
the SFT weights a resume depends on, and the crash-safe trainer that writes the pointer.

torch, transformers and TRL are imported inside the functions that run only when a stage
trains, so an off stage loads none of them."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..io import content_hash, file_hash, write_json
from ..params import Params
from .checkpoints import checkpoint_step, write_manifest


class StackedOutputs(Protocol):
    """What a stacked stage writes: checkpoints, their manifest, the log, stats, off marker."""

    checkpoints: Path
    manifest: Path
    log_dir: Path
    stats: Path
    disabled_marker: Path


def write_disabled(outputs: StackedOutputs, how_to_enable: str) -> None:
    """The stage is off: empty outputs (DVC needs them to exist) and a marker saying why."""
    for directory in (outputs.checkpoints, outputs.log_dir):
        if directory.exists():
            shutil.rmtree(directory)  # checkpoints of an earlier run must not be evaluated
        directory.mkdir(parents=True)
    write_json(outputs.disabled_marker, {"enabled": False, "enable_with": how_to_enable})
    write_manifest(outputs.checkpoints, outputs.manifest)  # no checkpoints
    write_json(outputs.stats, {"enabled": False})


def sft_pointer(sft_checkpoint: Path, stage: str) -> dict[str, Any]:
    """What each stacked checkpoint's sft_checkpoint.json says: the SFT checkpoint below it
    (path relative to the project) and the stage that trained it (evaluation/model_names)."""
    return {
        "checkpoint": sft_checkpoint.name,
        "path": sft_checkpoint.as_posix(),
        "step": checkpoint_step(sft_checkpoint.name),
        "stage": stage,
    }


def weights_hash(checkpoint: Path) -> str:
    """Hash of a checkpoint's weights and configs (adapter or full model), not optimizer state."""
    files = sorted(
        path
        for path in checkpoint.iterdir()
        if path.suffix == ".safetensors" or path.name in {"adapter_config.json", "config.json"}
    )
    return content_hash({path.name: file_hash(path) for path in files})


def run_stacked(
    stage: str, build: Callable[..., Any], stamp: dict, outputs: StackedOutputs
) -> tuple[Any, Any] | None:
    """Resume or start the stage's run (trainer.start_run), build its trainer with `build`
    (given the callbacks) and train it to the end: (trainer, trainer.RunEnd), or None on the
    processes of a distributed run other than the main one."""
    from .guards import LossGuard
    from .trainer import run_to_end, start_run

    run = start_run(stage, outputs.checkpoints, outputs.log_dir, stamp)
    # non-finite losses only: DPO's and GRPO's losses sit near 0, where a ratio test misfires
    trainer = build(callbacks=[*run.callbacks, LossGuard(outputs.checkpoints, None)])
    end = run_to_end(trainer, run, outputs.checkpoints, outputs.manifest)
    return None if end is None else (trainer, end)


def run_settings(
    params: Params, config_class: type, logging_steps: int, save_steps: int
) -> dict[str, Any]:
    """The TrainingArguments dpo and rl share with train: precision, checkpointing, devices,
    seeds, a checkpoint every `save_steps`, no eval passes (eval scores every checkpoint by
    generation), NaN losses logged as they are so LossGuard sees them (trainer.sft_config)."""
    from ..models.loading import has_gpu, use_bf16
    from .trainer import checkpointing_arg

    return {
        checkpointing_arg(config_class): params.train.gradient_checkpointing,
        "bf16": use_bf16(params.train.bf16),
        "logging_steps": logging_steps,
        "logging_first_step": True,
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "eval_strategy": "no",
        "seed": params.seed,
        "data_seed": params.seed,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "use_cpu": not has_gpu(),
    }


def stacked_trainer(trainer_class: type, pointer: dict[str, Any]) -> type:
    """`trainer_class` made crash-safe (trainer.crash_safe), writing `pointer` as
    sft_checkpoint.json beside every adapter it saves, inside the staging dir, so a checkpoint
    never appears without it."""
    from ..models.loading import SFT_POINTER
    from .trainer import crash_safe

    class Stacked(crash_safe(trainer_class)):
        def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
            super().save_model(output_dir, _internal_call)
            if self.args.should_save:
                write_json(Path(output_dir or self.args.output_dir) / SFT_POINTER, pointer)

    Stacked.__name__ = Stacked.__qualname__ = f"Stacked{trainer_class.__name__}"
    return Stacked
