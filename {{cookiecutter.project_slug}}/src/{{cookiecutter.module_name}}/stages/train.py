"""Stage `train`: TRL SFTTrainer + PEFT on the train split, checkpoints kept.

Loss is computed on the completion (the assistant turn) only. A checkpoint is written every
`train.save_steps` steps under models/checkpoints (a DVC `persist` output): after a crash,
`dvc repro` resumes from the last complete checkpoint when the training params and data are
unchanged, and starts clean when they are not. Train loss goes to reports/train via
transformers' built-in dvclive integration; eval measures every checkpoint's val loss (with
its task scores), so training runs no val passes."""

import os
import time

from ..cli import run_stage
from ..io import read_jsonl, write_json
from ..params import load_params
from ..paths import (
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    TRAIN_LOG_DIR,
    TRAIN_SPLIT,
    TRAIN_STATS,
)
from ..training.checkpoints import write_manifest
from ..training.guards import LossGuard
from ..training.trainer import (
    build_trainer,
    check_method_supported,
    count_sequence_tokens,
    fingerprint,
    hyperparameters,
    launch_command,
    start_run,
)


def main() -> None:
    params = load_params()
    check_method_supported(params.train)
    command = launch_command(params.train.processes, params.train.machines)
    if command:  # this process becomes `accelerate launch`, which starts the workers
        print(f"train: accelerate launch {' '.join(command[3:])}", flush=True)
        os.execv(command[0], command)
    train_rows = read_jsonl(TRAIN_SPLIT)
    run = start_run("train", CHECKPOINTS_DIR, TRAIN_LOG_DIR, fingerprint(params))
    guard = LossGuard(CHECKPOINTS_DIR, params.train.max_loss_spike)
    trainer = build_trainer(
        params, train_rows, None, CHECKPOINTS_DIR, callbacks=[*run.callbacks, guard]
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=run.resume_arg)
    seconds = time.perf_counter() - started
    if not run.main_process:
        return
    manifest = write_manifest(CHECKPOINTS_DIR, CHECKPOINTS_MANIFEST)
    tokens = count_sequence_tokens(trainer.processing_class, train_rows) * params.train.num_epochs
    write_json(
        TRAIN_STATS,
        {
            "train_loss": round(result.training_loss, 4),
            "global_step": result.global_step,
            "train_seconds": round(seconds, 1),
            "tokens_per_second": None if run.resume_from else round(tokens / seconds, 1),
            "checkpoints": list(manifest["checkpoints"]),
            "bf16": trainer.args.bf16,
            "processes": trainer.args.world_size,
            "hyperparameters": hyperparameters(params.train),
        },
    )
    print(f"train: {result.global_step} steps in {seconds:.0f}s, loss {result.training_loss:.3f}")


if __name__ == "__main__":
    run_stage("train", main)
