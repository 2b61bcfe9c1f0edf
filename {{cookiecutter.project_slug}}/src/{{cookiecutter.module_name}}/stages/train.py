"""Stage `train`: TRL SFTTrainer + PEFT on the train split, checkpoints kept.

Loss is computed on the completion (the assistant turn) only. A checkpoint is written every
`train.save_steps` steps under models/checkpoints (a DVC `persist` output): after a crash,
`dvc repro` resumes from the last complete checkpoint when the training params and data are
unchanged, and starts clean when they are not. Train loss goes to reports/train via
transformers' built-in dvclive integration; eval measures every checkpoint's val loss (with
its task scores), so training runs no val passes."""

import os

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import (
    ACCELERATE_CONFIG,
    ACCELERATE_MULTI_NODE_CONFIG,
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    TRAIN_LOG_DIR,
    TRAIN_SPLIT,
    TRAIN_STATS,
)
from ..training.sft_run import TrainFiles, train_sft
from ..training.trainer import check_method_supported, launch_command

LAUNCH_CONFIGS = (ACCELERATE_CONFIG, ACCELERATE_MULTI_NODE_CONFIG)  # one machine, several
FILES = TrainFiles(
    base=BASE_MODEL_DIR,
    train_split=TRAIN_SPLIT,
    checkpoints=CHECKPOINTS_DIR,
    manifest=CHECKPOINTS_MANIFEST,
    log_dir=TRAIN_LOG_DIR,
)


def main() -> None:
    params = load_params()
    check_method_supported(params.train)
    processes, machines = params.train.processes, params.train.machines
    command = launch_command(processes, machines, configs=LAUNCH_CONFIGS)
    if command:  # this process becomes `accelerate launch`, which starts the workers
        print(f"train: accelerate launch {' '.join(command[3:])}", flush=True)
        os.execv(command[0], command)
    stats = train_sft(params, FILES)
    if stats is None:
        return
    write_json(TRAIN_STATS, stats)
    print(
        f"train: {stats['global_step']} steps in {stats['train_seconds']:.0f}s, "
        f"loss {stats['train_loss']:.3f}"
    )


if __name__ == "__main__":
    run_stage("train", main)
