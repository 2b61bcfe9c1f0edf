"""Direct preference optimisation on top of the last SFT checkpoint (stage `dpo`; the method
and its outputs are described in stages/dpo.py): pair filtering, the resume fingerprint, the
TRL DPOTrainer built from params, and the run itself.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..data.chat import Messages
from ..data.textnorm import normalise
from ..errors import StageError
from ..io import content_hash, read_jsonl
from ..params import Params
from .checkpoints import manifest_checkpoints
from .stacked import run_settings, run_stacked, sft_pointer, stacked_trainer, weights_hash

HOW_TO_ENABLE = "dvc exp run -S dpo.enabled=true"
FINAL_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


@dataclass(frozen=True)
class DpoFiles:
    """What the dpo stage reads (the base, the SFT manifest, the pairs, the held-out splits)
    and writes (checkpoints, their manifest, the loss log, the stats, the off marker)."""

    base: Path
    sft_manifest: Path
    preferences: Path
    raw_dir: Path  # where pairs come from, named when there are too few
    val_split: Path
    test_split: Path
    checkpoints: Path
    manifest: Path
    log_dir: Path
    stats: Path
    disabled_marker: Path


def user_text(prompt: Messages) -> str:
    """The user turns of a prompt, normalised: what makes two prompts the same question."""
    return normalise("\n".join(m["content"] for m in prompt if m["role"] == "user"))


def drop_held_out(pairs: list[dict], held_out: list[dict]) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): pairs whose user text is also a val/test row's are dropped, so DPO
    never trains on the prompts that select and score the checkpoints."""
    seen = {user_text(row["prompt"]) for row in held_out}
    kept, dropped = [], []
    for pair in pairs:
        (dropped if user_text(pair["prompt"]) in seen else kept).append(pair)
    return kept, dropped


def check_enough(found: int, min_pairs: int, dropped: int, files: DpoFiles) -> None:
    """Fail, saying where pairs come from, when fewer than dpo.min_pairs are usable."""
    if found >= min_pairs:
        return
    overlap = f" ({dropped} more were dropped: their prompt is a val/test row's)" if dropped else ""
    raise StageError(
        f"dpo.enabled is true but {files.preferences} has {found} usable preference "
        f"pairs{overlap}, fewer than dpo.min_pairs={min_pairs}. Pairs come from files in "
        f"{files.raw_dir}/ in the `preference` format (rows with prompt, chosen and rejected: "
        f"see {files.raw_dir}/README.md); add pairs there and run `dvc repro`, lower "
        "dpo.min_pairs, or "
        "turn DPO off with dpo.enabled=false"
    )


def last_sft_checkpoint(manifest: Path) -> Path:
    done = manifest_checkpoints(manifest)
    if not done:
        raise StageError(f"{manifest} lists no SFT checkpoint: run `dvc repro train`")
    return done[-1]


def fingerprint(params: Params, pairs: list[dict], sft_checkpoint: Path) -> dict[str, str]:
    """What a DPO checkpoint depends on; resuming is only safe when all of it is unchanged.
    `pairs` are the pairs trained on, so a change to the preference file or to the held-out
    rows that filter it counts."""
    return {
        "params": content_hash(
            {
                "dpo": params.dpo.model_dump(),
                "train": params.train.model_dump(exclude={"max_loss_spike"}),
                "seed": params.seed,
            }
        ),
        "pairs": content_hash(pairs),
        "sft_checkpoint": sft_checkpoint.as_posix(),
        "sft_weights": weights_hash(sft_checkpoint),
    }


def max_length(params: Params) -> int:
    return params.dpo.max_length or params.train.max_length


def final_rewards(log_history: list[dict]) -> dict[str, float]:
    """The last logged training loss and DPO rewards (TRL logs them every logging_steps)."""
    logged = [entry for entry in log_history if "rewards/accuracies" in entry]
    if not logged:
        return {}
    return {key: round(logged[-1][key], 4) for key in FINAL_KEYS if key in logged[-1]}


def to_dataset(pairs: list[dict]):
    from datasets import Dataset

    keys = ("prompt", "chosen", "rejected")
    return Dataset.from_list([{key: pair[key] for key in keys} for pair in pairs])


def dpo_config(params: Params, output_dir: Path, **overrides: Any):
    """DPOConfig from the dpo section; precision, checkpointing and devices as in train."""
    from trl import DPOConfig

    dpo = params.dpo
    settings: dict[str, Any] = {
        **run_settings(params, DPOConfig, dpo.logging_steps, dpo.save_steps),
        "output_dir": str(output_dir),
        "beta": dpo.beta,
        "per_device_train_batch_size": dpo.batch_size,
        "gradient_accumulation_steps": dpo.grad_accum,
        "learning_rate": dpo.learning_rate,
        "num_train_epochs": dpo.num_epochs,
        "max_length": max_length(params),
    }
    settings.update(overrides)
    return DPOConfig(**settings)


def build_trainer(
    params: Params,
    base_dir: Path,
    pairs: list[dict],
    sft_checkpoint: Path,
    output_dir: Path,
    callbacks=None,
):
    """DPOTrainer on the SFT model (on the base in `base_dir`) with a fresh LoRA adapter;
    ref_model=None makes TRL use the model with that adapter disabled, i.e. the SFT model, as
    the reference."""
    from trl import DPOTrainer

    from ..models.loading import load_model_with_adapter, load_tokenizer
    from .trainer import lora_config

    trainer_class = stacked_trainer(DPOTrainer, sft_pointer(sft_checkpoint, "dpo"))
    adapter = params.train.model_copy(
        update={"lora_r": params.dpo.lora_r, "lora_alpha": params.dpo.lora_alpha}
    )
    return trainer_class(
        model=load_model_with_adapter(sft_checkpoint, base_dir),
        ref_model=None,
        args=dpo_config(params, output_dir),
        train_dataset=to_dataset(pairs),
        processing_class=load_tokenizer(base_dir),
        peft_config=lora_config(adapter),
        callbacks=callbacks,
    )


def train_dpo(params: Params, files: DpoFiles) -> dict | None:
    """Train DPO on top of the last SFT checkpoint (resuming when nothing changed), write the
    checkpoints' manifest and return the run's stats; None on the processes of a distributed
    run other than the main one."""
    sft_checkpoint = last_sft_checkpoint(files.sft_manifest)
    held_out = read_jsonl(files.val_split) + read_jsonl(files.test_split)
    pairs, dropped = drop_held_out(read_jsonl(files.preferences), held_out)
    check_enough(len(pairs), params.dpo.min_pairs, len(dropped), files)
    build = partial(build_trainer, params, files.base, pairs, sft_checkpoint, files.checkpoints)
    done = run_stacked("dpo", build, fingerprint(params, pairs, sft_checkpoint), files)
    if done is None:
        return None
    trainer, end = done
    result, seconds, manifest = end.result, end.seconds, end.manifest
    return {
        "enabled": True,
        "sft_checkpoint": sft_checkpoint.name,
        "pairs": len(pairs),
        "pairs_dropped_held_out": len(dropped),
        "global_step": result.global_step,
        "train_loss": round(result.training_loss, 4),
        "train_seconds": round(seconds, 1),
        "checkpoints": list(manifest["checkpoints"]),
        "bf16": trainer.args.bf16,
        "final": final_rewards(trainer.state.log_history),
    }
