"""The base model's val loss, step 0 of train's loss curve, cached across experiments.

Every run starts its curve with one val pass over the untrained base (`eval_on_start`). When
the base, the val split and the settings that decide the loss are unchanged, an earlier run's
value is logged in its place: one val pass saved per experiment (10-20 s on a 2-core CPU,
docs/benchmarks.md). Like eval's generations, the value lives under `.cache` (safe to delete).
"""

import importlib.metadata
from pathlib import Path

from ..io import content_hash, file_digest, read_json, write_json
from ..params import TrainParams
from ..paths import BASE_LOSS_CACHE_DIR, BASE_MODEL_DIR, VAL_SPLIT
from .modeling import use_bf16

LIBRARIES = ("torch", "transformers", "trl", "peft")


def base_loss_key(train: TrainParams) -> str:
    """What the base's val loss depends on: its weights, the val rows, how they are batched,
    truncated and computed, and the libraries computing it."""
    return content_hash(
        {
            "base": {path.name: file_digest(path) for path in sorted(BASE_MODEL_DIR.iterdir())},
            "val": file_digest(VAL_SPLIT),
            "max_length": train.max_length,
            "batch_size": train.batch_size,
            "processes": train.processes,
            "machines": train.machines,
            "packing": train.packing,
            "padding_free": train.padding_free,
            "bf16": use_bf16(train.bf16),
            "method": train.method,  # qlora evaluates a 4-bit base
            "libraries": [importlib.metadata.version(name) for name in LIBRARIES],
        }
    )


def cached_base_loss(key: str, cache_dir: Path = BASE_LOSS_CACHE_DIR) -> float | None:
    path = cache_dir / f"{key}.json"
    return read_json(path)["eval_loss"] if path.exists() else None


def base_loss_callback(key: str, cached: float | None, cache_dir: Path = BASE_LOSS_CACHE_DIR):
    """A callback that logs `cached` as the step-0 val loss (call `attach(trainer)` first;
    the trainer then runs without `eval_on_start`), or stores the value of the step-0 pass
    the trainer ran itself."""
    from transformers import TrainerCallback

    class BaseValLoss(TrainerCallback):
        trainer = None

        def attach(self, trainer) -> None:
            self.trainer = trainer

        def on_train_begin(self, args, state, control, **kwargs):
            if cached is not None and state.global_step == 0:
                self.trainer.log({"eval_loss": cached})  # history, dvclive, like a val pass

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if state.global_step == 0 and loss is not None and state.is_world_process_zero:
                write_json(cache_dir / f"{key}.json", {"eval_loss": loss})

    return BaseValLoss()
