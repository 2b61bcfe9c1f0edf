"""Building the SFT trainer (TRL SFTTrainer + PEFT) from params, for train and smoke, and
what a crash-safe run needs around it: the resume fingerprint, resume-or-clean-start, the
dvclive logger, and the `accelerate launch` relaunch for several processes.

Loss is computed on the assistant turns only (train.assistant_turns: every answer of a
multi-turn chat, or the last), as data/masking.py finds them; checkpoints are written
atomically (checkpoints.py) in a batch order a resumed run reproduces (samplers.py).
"""

import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.masking import AssistantTurns, ChatEncoder, RowError
from ..errors import StageError
from ..io import content_hash, file_hash, write_json
from ..models.loading import (
    bitsandbytes_problem,
    has_gpu,
    load_base_model,
    load_tokenizer,
    quantization_config,
    use_bf16,
)
from ..params import Params, TrainParams
from .checkpoints import (
    AtomicCheckpoints,
    SortedAdapterConfig,
    checkpoint_step,
    complete_checkpoints,
    remove_partial,
    write_manifest,
)
from .samplers import ResumableLengthGrouping

RUN_FINGERPRINT = "fingerprint.json"


@functools.cache
def crash_safe(trainer_class: type) -> type:
    """`trainer_class` (SFTTrainer, DPOTrainer, ...) with atomic, byte-reproducible
    checkpoints and a resumable data order mixed in."""
    mixins = (AtomicCheckpoints, SortedAdapterConfig, ResumableLengthGrouping)
    return type(trainer_class.__name__, (*mixins, trainer_class), {})


def check_method_supported(train: TrainParams) -> None:
    """Fail before any work when the method or backend cannot run on this machine: unsloth
    needs CUDA; qlora runs wherever the installed bitsandbytes has 4-bit layers (CUDA, and
    the CPU since bitsandbytes 0.46.1)."""
    if train.backend == "unsloth" and not has_gpu():
        raise StageError(
            "train.backend=unsloth needs a CUDA GPU and none was found; on this machine use "
            "train.backend=trl (the same adapters, with train.method lora or qlora)"
        )
    if train.method == "qlora":
        problem = bitsandbytes_problem("cuda" if has_gpu() else "cpu")
        if problem:
            raise StageError(
                f"train.method=qlora needs bitsandbytes' 4-bit layers: {problem} (or use "
                "train.method=lora: the same adapters on an unquantised base)"
            )
    if train.backend == "unsloth":
        try:
            import unsloth  # noqa: F401  (patches transformers/TRL: import it first)
        except ImportError as error:
            raise StageError(
                "train.backend=unsloth needs `pip install -e .[unsloth]` (its own pins)"
            ) from error


def to_dataset(rows: list[dict], tokenizer, turns: AssistantTurns):
    """The rows rendered and tokenized, with a `completion_mask` of 1 on the trained tokens
    (data/masking.py). TRL takes pre-tokenized rows as they are and builds its labels from the
    mask (then cuts to max_length, drops rows left with none, packs), so it trains on exactly
    the tokens curate counted."""
    from datasets import Dataset

    try:
        encoded = ChatEncoder(tokenizer, turns)([r["prompt"] + r["completion"] for r in rows])
    except RowError as error:
        row = rows[error.index]
        raise StageError(f"{row.get('source', f'row {error.index}')}: {error.reason}") from None
    return Dataset.from_dict(
        {"input_ids": [e.ids for e in encoded], "completion_mask": [e.mask() for e in encoded]}
    )


def lora_config(train: TrainParams):
    from peft import LoraConfig

    return LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=train.target_modules,
        task_type="CAUSAL_LM",
    )


def checkpointing_arg(config_class) -> str:
    """transformers 5.2x renamed `gradient_checkpointing` to `activation_checkpointing`."""
    new_name = "activation_checkpointing"
    return new_name if new_name in config_class.__dataclass_fields__ else "gradient_checkpointing"


def sft_config(train: TrainParams, output_dir: Path, seed: int, **overrides: Any):
    """SFTConfig from params; `overrides` let smoke reuse the exact same settings."""
    from trl import SFTConfig

    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "learning_rate": train.learning_rate,
        "num_train_epochs": train.num_epochs,
        "lr_scheduler_type": train.lr_scheduler,
        "warmup_steps": train.warmup_ratio,
        "weight_decay": train.weight_decay,
        # TRL does not truncate padding-free batches; curate already quarantined every row
        # longer than max_length (params.py checks curate.max_tokens allows no longer ones)
        "max_length": None if train.padding_free and not train.packing else train.max_length,
        "packing": train.packing,
        "padding_free": train.padding_free,
        "completion_only_loss": True,
        checkpointing_arg(SFTConfig): train.gradient_checkpointing,
        "train_sampling_strategy": "group_by_length" if train.group_by_length else "random",
        "bf16": use_bf16(train.bf16),
        "logging_steps": train.logging_steps,
        "logging_first_step": True,
        # on by default, it replaces a NaN/inf step loss by the mean of the steps since the
        # last log (0.0 right after one): LossGuard would never see it. The guard decides.
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": train.save_steps,
        # no val passes while training: eval measures the val loss of the base and of every
        # checkpoint on the model it loads to generate (evaluation/val_loss.py)
        "eval_strategy": "no",
        "per_device_eval_batch_size": max(train.batch_size, 16),  # smoke's before/after passes
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # DDP: every trainable weight is used each step
        "use_cpu": not has_gpu(),
    }
    settings.update(overrides)
    return SFTConfig(**settings)


UNSLOTH_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def unsloth_model(train: TrainParams, seed: int, base_dir: Path):
    """Base model and LoRA adapters from Unsloth's patched loader (CUDA only)."""
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(
        model_name=str(base_dir),
        max_seq_length=train.max_length,
        load_in_4bit=train.method == "qlora",
        dtype=None,
    )
    modules = train.target_modules
    return FastLanguageModel.get_peft_model(
        model,
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=UNSLOTH_ALL_LINEAR if modules == "all-linear" else modules,
        use_gradient_checkpointing="unsloth" if train.gradient_checkpointing else False,
        random_state=seed,
    )


def build_trainer(
    params: Params,
    base_dir: Path,
    train_rows: list[dict],
    val_rows: list[dict] | None,
    output_dir: Path,
    callbacks: list | None = None,
    **overrides: Any,
):
    """The one place a trainer is built, on the base in `base_dir`: train and smoke both call
    it."""
    train = params.train
    check_method_supported(train)  # imports unsloth, when asked for, before TRL
    from trl import SFTTrainer

    args = sft_config(train, output_dir, params.seed, **overrides)
    if train.backend == "unsloth":
        model, peft_config = unsloth_model(train, params.seed, base_dir), None
    else:
        model = load_base_model(base_dir, quantization_config=base_quantization(train, args.bf16))
        peft_config = None if train.method == "full" else lora_config(train)
    tokenizer, turns = load_tokenizer(base_dir), train.assistant_turns
    sft_trainer = crash_safe(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=to_dataset(train_rows, tokenizer, turns),
        eval_dataset=to_dataset(val_rows, tokenizer, turns) if val_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*(callbacks or []), skip_checkpoint_near_the_end()],
    )
    if train.method == "qlora" and train.backend == "trl":
        adapters_in_float32(sft_trainer.model)
    return sft_trainer


def base_quantization(train: TrainParams, bf16: bool):
    """The 4-bit config a qlora run loads its base with (compute dtype follows the run's
    resolved bf16), or None for lora and full."""
    return quantization_config(bf16) if train.method == "qlora" else None


def adapters_in_float32(model) -> None:
    """Undo TRL's cast of a quantised model's LoRA weights to bf16. The optimizer would update
    bf16 weights: bf16's spacing near 0.04 (a LoRA A weight at r 8) is 2.4e-4, so Adam steps
    of ~1e-4 (the learning rate) round away. And without bf16 autocast PEFT runs the adapters
    in their own dtype: emulated bf16, ~100x slower, on an AVX2-only CPU. As with lora, the
    weights stay float32 and bf16 autocast, where on, does the compute."""
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()


def fingerprint(params: Params, train_split: Path) -> dict[str, str]:
    """What a checkpoint depends on (the params and the train split's content); resuming is
    only safe when all of it is unchanged."""
    return {
        # the spike threshold only decides when to stop, not what a checkpoint holds
        "params": content_hash(
            {"train": params.train.model_dump(exclude={"max_loss_spike"}), "seed": params.seed}
        ),
        "train_data": file_hash(train_split),
    }


def prepare_output_dir(output_dir: Path, expected: dict[str, str]) -> Path | None:
    """Return the checkpoint to resume from, or wipe the directory for a clean start."""
    stamp = output_dir / RUN_FINGERPRINT
    if stamp.exists() and json.loads(stamp.read_text()) == expected:
        remove_partial(output_dir)
        done = complete_checkpoints(output_dir)
        if done:
            return done[-1]
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    write_json(stamp, expected)
    return None


def prepare_run(output_dir: Path, expected: dict[str, str]) -> Path | None:
    """prepare_output_dir on the main process only; with `accelerate launch`, the other
    processes wait for it and get its answer, so every process (on every machine) resumes
    from the same checkpoint."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not has_gpu())  # the state TrainingArguments will reuse
    resume_from = prepare_output_dir(output_dir, expected) if state.is_main_process else None
    return broadcast_object_list([resume_from])[0]  # no-op with one process


def launch_command(
    processes: int,
    machines: int = 1,
    environ: Mapping[str, str] = os.environ,
    *,
    configs: tuple[Path, Path],
) -> list[str] | None:
    """The `accelerate launch` that runs this stage on `processes` processes per machine (DDP)
    on `machines` machines, or None when this process trains itself: one process on one
    machine, or a launcher (accelerate, torchrun) already started it. `configs`: accelerate's
    config files for one machine and for several. On several machines this machine's rank and
    the main machine's address come from the environment (machine_args)."""
    launched = environ.get("LOCAL_WORLD_SIZE")  # set by torchrun, which accelerate uses
    if launched is not None:
        if int(launched) != processes:
            raise StageError(
                f"{launched} processes per machine were launched but train.processes is "
                f"{processes}: set train.processes={launched} in params.yaml (it sets the "
                "global batch and is part of the run's fingerprint)"
            )
        return None
    if processes * machines == 1:
        return None
    config = configs[0] if machines == 1 else configs[1]
    if not config.exists():
        setting = f"train.processes={processes}" if machines == 1 else f"train.machines={machines}"
        raise StageError(f"{setting} needs {config} in the repo")
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(processes * machines),
        *(machine_args(machines, environ) if machines > 1 else []),
        "-m",
        f"{__package__.rpartition('.')[0]}.stages.train",
    ]


def machine_args(machines: int, environ: Mapping[str, str]) -> list[str]:
    """accelerate's multi-node options for this machine, from its environment (accelerate's
    option names, upper-cased): MACHINE_RANK and MAIN_PROCESS_IP, both required;
    MAIN_PROCESS_PORT overrides the config's port; NUM_MACHINES, when set, must equal
    train.machines (a rendezvous short of machines would wait, not fail)."""
    where = "(docs/teams-and-scale.md)"
    missing = sorted({"MACHINE_RANK", "MAIN_PROCESS_IP"} - {k for k, v in environ.items() if v})
    if missing:
        raise StageError(
            f"train.machines={machines} needs {' and '.join(missing)} set on every machine: "
            f"MACHINE_RANK 0 on the main machine and 1..{machines - 1} on the others, "
            f"MAIN_PROCESS_IP the main machine's address {where}"
        )
    number = {name: environ.get(name, "") for name in ("NUM_MACHINES", "MACHINE_RANK")}
    bad = [f"{name}={value!r}" for name, value in number.items() if value and not value.isdigit()]
    if bad:
        raise StageError(f"{', '.join(bad)}: expected a whole number {where}")
    if number["NUM_MACHINES"] and int(number["NUM_MACHINES"]) != machines:
        raise StageError(
            f"NUM_MACHINES is {number['NUM_MACHINES']} but train.machines is {machines}: set "
            f"train.machines={number['NUM_MACHINES']} in params.yaml (it sets the global batch "
            "and is part of the run's fingerprint)"
        )
    rank = int(number["MACHINE_RANK"])
    if rank >= machines:
        raise StageError(f"MACHINE_RANK={rank} is not below train.machines={machines} {where}")
    port = environ.get("MAIN_PROCESS_PORT")
    return [
        "--num_machines",
        str(machines),
        "--machine_rank",
        str(rank),
        "--main_process_ip",
        environ["MAIN_PROCESS_IP"],
        *(["--main_process_port", port] if port else []),
    ]


@dataclass(frozen=True)
class RunStart:
    resume_from: Path | None
    main_process: bool
    callbacks: list  # the dvclive logger, on the main process only

    @property
    def resume_arg(self) -> str | None:
        return str(self.resume_from) if self.resume_from else None


def start_run(stage: str, output_dir: Path, log_dir: Path, expected: dict[str, str]) -> RunStart:
    """What train and dpo do before training: resume or start clean (prepare_run), cut the
    log back to the resume point, and log to `log_dir` from the main process."""
    resume_from = prepare_run(output_dir, expected)
    main_process = is_main_process()
    if resume_from and main_process:
        print(f"{stage}: resuming from {resume_from} (its inputs are unchanged)")
        trim_log(log_dir, checkpoint_step(resume_from.name))
    callbacks = [dvclive_callback(log_dir, resume_from is not None)] if main_process else []
    return RunStart(resume_from, main_process, callbacks)


@dataclass(frozen=True)
class RunEnd:
    result: Any  # transformers' TrainOutput: training_loss, global_step
    seconds: float
    manifest: dict


def run_to_end(trainer, run: RunStart, checkpoints: Path, manifest_path: Path) -> RunEnd | None:
    """Train (resuming where `run` says), timed, then write the checkpoints' manifest; None on
    the processes of a distributed run other than the main one."""
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=run.resume_arg)
    seconds = time.perf_counter() - started
    if not run.main_process:
        return None
    return RunEnd(result, seconds, write_manifest(checkpoints, manifest_path))


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def skip_checkpoint_near_the_end():
    """A callback that skips a regular checkpoint, and its val-loss pass, when the run ends
    less than half a save interval later: the final checkpoint, always written, takes its
    place, so eval does not score two nearly identical models (steps 93 and 102 at
    save_steps 31). A crash in between resumes from the checkpoint before."""
    from transformers import TrainerCallback

    class SkipCheckpointNearTheEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if 0 < state.max_steps - state.global_step < args.save_steps / 2:
                control.should_save = False
            return control

    return SkipCheckpointNearTheEnd()


def dvclive_callback(log_dir: Path, resume: bool):
    """transformers' built-in DVCLive callback, pointed at reports/train and stepping by the
    trainer's global step so train and val loss share one x axis."""
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    class StepAlignedDVCLive(DVCLiveCallback):
        def on_log(self, args, state, control, **kwargs):
            if self.live is not None:
                self.live.step = state.global_step
            super().on_log(args, state, control, **kwargs)

    live = Live(str(log_dir), resume=resume, dvcyaml=None, save_dvc_exp=False, report=None)
    return StepAlignedDVCLive(live=live)


def trim_log(log_dir: Path, last_step: int) -> None:
    """Drop rows logged after `last_step` (by a run that crashed after its last checkpoint),
    so the resumed run's curve continues without duplicated steps."""
    for tsv in log_dir.glob("plots/metrics/**/*.tsv"):
        header, *rows = tsv.read_text().splitlines()
        step_col = header.split("\t").index("step")
        kept = [r for r in rows if int(float(r.split("\t")[step_col])) <= last_step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


def hyperparameters(train: TrainParams) -> dict[str, Any]:
    """The values this run trained with, after the preset was applied."""
    keys = ("preset", "method", "backend", "lora_r", "lora_alpha", "learning_rate", "num_epochs")
    return {key: getattr(train, key) for key in keys}


def count_sequence_tokens(tokenizer, rows: list[dict]) -> int:
    """Tokens per epoch (prompt + completion, as TRL tokenizes them)."""
    total = 0
    for row in rows:
        ids = tokenizer.apply_chat_template(
            row["prompt"] + row["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        total += len(ids)
    return total
