"""GRPO on top of the SFT checkpoint select's rule picks on val (stage `rl`; the method and its
outputs are described in stages/rl.py): the prompts, the rewards (the task's own scorer and
format check, plus the rl.reward hook), the resume fingerprint, the TRL GRPOTrainer built from
params, and the run itself."""

import importlib
import inspect
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..evaluation.reports import load_reports
from ..io import content_hash, file_hash, read_jsonl
from ..params import Params
from ..selection.guardrails import choose, ranking_metric
from .checkpoints import verify_checkpoint
from .rewards import (
    KL_KEY,
    LENGTH_KEY,
    REWARD_KEY,
    REWARD_NAMES,
    RewardFunction,
    reward_functions,
    reward_rows,
)
from .stacked import run_settings, run_stacked, sft_pointer, stacked_trainer, weights_hash

HOW_TO_ENABLE = "dvc exp run -S rl.enabled=true"
CURVES = (REWARD_KEY, KL_KEY, LENGTH_KEY, *(f"rewards/{name}/mean" for name in REWARD_NAMES))
"""What TRL logs by step that the stats and the report's RL figure show."""


@dataclass(frozen=True)
class RlFiles:
    """What the rl stage reads (the base, the SFT checkpoints, their manifest and eval reports,
    the train split) and writes (checkpoints, their manifest, the log, the stats, the off
    marker)."""

    base: Path
    sft_checkpoints: Path
    sft_manifest: Path
    eval_dir: Path
    train_split: Path
    checkpoints: Path
    manifest: Path
    log_dir: Path
    stats: Path
    disabled_marker: Path


def prompt_rows(train_rows: list[dict]) -> list[dict]:
    """The task rows of the train split as GRPO rows (prompt, target); the replay rows are
    general chats the task scorer cannot score."""
    return reward_rows([row for row in train_rows if row.get("origin") != "replay"])


def starting_checkpoint(params: Params, files: RlFiles) -> Path:
    """The SFT checkpoint select's rule picks on eval's val reports: the best ranking metric
    among the checkpoints passing the guardrails (selection/guardrails.choose)."""
    sft = [report for report in load_reports(files.eval_dir) if not report.get("stage")]
    if not any(report["role"] == "checkpoint" for report in sft):
        raise StageError(f"{files.eval_dir} has no SFT checkpoint reports: run `dvc repro eval`")
    chosen, _ = choose(sft, params.select, ranking_metric(params.task))
    return verify_checkpoint(files.sft_manifest, files.sft_checkpoints / chosen["model"])


def user_reward(spec: str) -> RewardFunction:
    """The function rl.reward names (module:function), importable from the project root."""
    module_name, _, function_name = spec.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` runs a stage
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise StageError(
            f"rl.reward {spec}: cannot import {module_name} ({error}); put it in "
            f"{module_name.replace('.', '/')}.py beside params.yaml, or install it"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise StageError(f"rl.reward {spec}: {module_name} has no function {function_name}")
    if function_name in REWARD_NAMES:
        raise StageError(
            f"rl.reward {spec}: {function_name} is a built-in reward's name, and TRL logs "
            "each reward under its function's name: rename the function"
        )
    return function


def rewards(params: Params) -> tuple[list[RewardFunction], list[float]]:
    """(reward_funcs, reward_weights): the task score and the format check, then rl.reward."""
    funcs, weights = reward_functions(params.task, params.rl.reward_weights.model_dump())
    if params.rl.reward:
        funcs.append(user_reward(params.rl.reward))
        weights.append(params.rl.reward_weight)
    return funcs, weights


def reward_source_hash(params: Params) -> str | None:
    """Hash of rl.reward's source file: an edited reward must not resume an old run."""
    if not params.rl.reward:
        return None
    return file_hash(Path(inspect.getsourcefile(user_reward(params.rl.reward))))


def fingerprint(params: Params, rows: list[dict], sft_checkpoint: Path) -> dict[str, str | None]:
    """What an RL checkpoint depends on; resuming is only safe when all of it is unchanged:
    the rewards score with the task section, so it counts too."""
    return {
        "params": content_hash(
            {
                "rl": params.rl.model_dump(),
                "task": params.task.model_dump(),
                "train": params.train.model_dump(exclude={"max_loss_spike"}),
                "seed": params.seed,
            }
        ),
        "prompts": content_hash(rows),
        "reward_source": reward_source_hash(params),
        "sft_checkpoint": sft_checkpoint.as_posix(),
        "sft_weights": weights_hash(sft_checkpoint),
    }


def logged_steps(log_history: list[dict]) -> list[dict]:
    """The entries of a GRPO trainer's log history that hold a step's rewards and loss."""
    return [entry for entry in log_history if REWARD_KEY in entry]


def reward_weights(trainer) -> dict[str, float]:
    """Each reward the trainer sums, by the name TRL logs it under, with its weight."""
    return dict(zip(trainer.reward_func_names, trainer.args.reward_weights, strict=True))


def curves(log_history: list[dict], which: int) -> dict[str, float]:
    """The CURVES values of one logged step (`which`: 0 the first, -1 the last)."""
    logged = logged_steps(log_history)
    if not logged:
        return {}
    entry = logged[which]
    return {key: round(entry[key], 4) for key in (*CURVES, "step") if key in entry}


def grpo_config(params: Params, output_dir: Path, weights: list[float], **overrides: Any):
    """GRPOConfig from the rl section; precision, checkpointing and devices as in train.
    TRL counts its batch in completions: prompts_per_step x num_generations."""
    from trl import GRPOConfig

    rl = params.rl
    settings: dict[str, Any] = {
        **run_settings(params, GRPOConfig, rl.logging_steps, rl.save_steps),
        "output_dir": str(output_dir),
        "per_device_train_batch_size": rl.prompts_per_step * rl.num_generations,
        "num_generations": rl.num_generations,
        "max_completion_length": rl.max_completion_length,
        "temperature": rl.temperature,
        "beta": rl.beta,
        "learning_rate": rl.learning_rate,
        "max_steps": rl.max_steps,
        "reward_weights": weights,
    }
    settings.update(overrides)
    return GRPOConfig(**settings)


def to_dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def build_trainer(
    params: Params,
    base_dir: Path,
    rows: list[dict],
    start: Path | None,
    output_dir: Path,
    callbacks=None,
    **overrides: Any,
):
    """GRPOTrainer with a fresh LoRA adapter on the SFT checkpoint `start` merged into the
    base in `base_dir` (on the bare base when `start` is None: the smoke run, before any SFT).
    With rl.beta > 0 the KL reference is that model with the adapter disabled: the SFT model."""
    from trl import GRPOTrainer

    from ..models.loading import load_base_model, load_model_with_adapter, load_tokenizer
    from .trainer import crash_safe, lora_config

    funcs, weights = rewards(params)
    if start is None:
        trainer_class, model = crash_safe(GRPOTrainer), load_base_model(base_dir)
    else:
        trainer_class = stacked_trainer(GRPOTrainer, sft_pointer(start, "rl"))
        model = load_model_with_adapter(start, base_dir)
    adapter = params.train.model_copy(
        update={"lora_r": params.rl.lora_r, "lora_alpha": params.rl.lora_alpha}
    )
    return trainer_class(
        model=model,
        reward_funcs=funcs,
        args=grpo_config(params, output_dir, weights, **overrides),
        train_dataset=to_dataset(rows),
        processing_class=load_tokenizer(base_dir),
        peft_config=lora_config(adapter),
        callbacks=callbacks,
    )


def check_prompts(rows: list[dict], params: Params, files: RlFiles) -> None:
    if len(rows) < params.rl.prompts_per_step:
        raise StageError(
            f"rl.enabled is true but {files.train_split} has {len(rows)} task rows, fewer "
            f"than rl.prompts_per_step={params.rl.prompts_per_step}"
        )


def train_rl(params: Params, files: RlFiles) -> dict | None:
    """Train GRPO on top of the chosen SFT checkpoint (resuming when nothing changed), write
    the checkpoints' manifest and return the run's stats; None on the processes of a
    distributed run other than the main one."""
    sft_checkpoint = starting_checkpoint(params, files)
    rows = prompt_rows(read_jsonl(files.train_split))
    check_prompts(rows, params, files)
    build = partial(build_trainer, params, files.base, rows, sft_checkpoint, files.checkpoints)
    done = run_stacked("rl", build, fingerprint(params, rows, sft_checkpoint), files)
    if done is None:
        return None
    trainer, end = done
    history = trainer.state.log_history
    return {
        "enabled": True,
        "sft_checkpoint": sft_checkpoint.name,
        "prompts": len(rows),
        "rewards": reward_weights(trainer),
        "global_step": end.result.global_step,
        "train_seconds": round(end.seconds, 1),
        "checkpoints": list(end.manifest["checkpoints"]),
        "bf16": trainer.args.bf16,
        "first": curves(history, 0),
        "final": curves(history, -1),
    }
