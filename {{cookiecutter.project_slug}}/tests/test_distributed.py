"""The train stage on two processes (DDP). `train.processes: 2` makes the stage's dvc.yaml cmd
start itself again with `accelerate launch --config_file accelerate.yaml`; on a machine
without CUDA that is DDP on the CPU (backend gloo). A fresh run, then a crash and a resume,
each a subprocess with a timeout in a throwaway project with the tiny model."""

import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import mtimes, stop_tree
from {{ cookiecutter.module_name }} import paths
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.paths import CHECKPOINTS_DIR, TRAIN_LOG_DIR, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.stages.train import LAUNCH_CONFIGS
from {{ cookiecutter.module_name }}.training import trainer
from {{ cookiecutter.module_name }}.training.checkpoints import STAGING_DIR, complete_checkpoints

PROJECT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.module_name }}"
PROCESSES = 2
TIMEOUT_S = 300
# With the conftest's 24 train rows and batch size 4: 3 optimizer steps an epoch on two
# processes (a global batch of 8), 6 in two epochs, a checkpoint every 2 of them.
EPOCHS = 2
SAVE_STEPS = 2
LAUNCHER_ENV = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")


def train_cmd() -> list[str]:
    """The train stage's command as dvc.yaml runs it, with this interpreter for `python`."""
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    cmd = shlex.split(dvc_yaml["stages"]["train"]["cmd"])
    assert cmd[0] == "python", cmd
    return [sys.executable, *cmd[1:]]


def run_train(project: Path) -> str:
    """Run the train stage in `project`; its output, or a failure naming what went wrong."""
    env = {key: value for key, value in os.environ.items() if key not in LAUNCHER_ENV}
    source = str(PROJECT / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    env |= {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        train_cmd(),
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_tree(process)
        output, _ = process.communicate()
        pytest.fail(f"train did not finish in {TIMEOUT_S} s (a hung rank?):\n{output[-6000:]}")
    assert process.returncode == 0, f"train failed ({process.returncode}):\n{output[-6000:]}"
    return output


def use_two_processes(project: Path) -> None:
    shutil.copy(PROJECT / "accelerate.yaml", project / "accelerate.yaml")
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["train"] |= {"processes": PROCESSES, "num_epochs": EPOCHS, "save_steps": SAVE_STEPS}
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def logged_steps(curve: str) -> list[int]:
    lines = (TRAIN_LOG_DIR / "plots" / "metrics" / curve).read_text().splitlines()
    header = lines[0].split("\t")
    return [int(float(line.split("\t")[header.index("step")])) for line in lines[1:]]


def adapter(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "adapter_model.safetensors")


@pytest.mark.e2e
def test_two_processes_train_then_crash_and_resume(project: Path) -> None:
    use_two_processes(project)
    rows = len(TRAIN_SPLIT.read_text().splitlines())
    batch_size = yaml.safe_load(Path("params.yaml").read_text())["train"]["batch_size"]
    steps = math.ceil(rows / (batch_size * PROCESSES)) * EPOCHS
    names = [f"checkpoint-{step}" for step in range(SAVE_STEPS, steps + 1, SAVE_STEPS)]
    assert steps == 6 and names[-1] == f"checkpoint-{steps}"  # the data is what the plan says

    output = run_train(project)

    assert "accelerate launch" in output, output[-3000:]
    stats = read_json(paths.TRAIN_STATS)
    assert stats["processes"] == PROCESSES
    assert stats["global_step"] == steps  # half the single-process steps: the global batch
    checkpoints = complete_checkpoints(CHECKPOINTS_DIR)
    assert [path.name for path in checkpoints] == names
    assert stats["checkpoints"] == names
    for checkpoint in checkpoints:
        state = read_json(checkpoint / "trainer_state.json")
        assert state["global_step"] == int(checkpoint.name.split("-")[1])
        for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt"):
            assert (checkpoint / name).is_file(), f"{checkpoint.name} lacks {name}"
        # every rank's RNG state made it into the checkpoint before it was renamed into place
        assert sorted(path.name for path in checkpoint.glob("rng_state*")) == [
            f"rng_state_{rank}.pth" for rank in range(PROCESSES)
        ]
    assert not list((CHECKPOINTS_DIR / STAGING_DIR).glob("*")), "a checkpoint stayed staged"
    # the adapters trained: LoRA's B matrices start at zero
    first, last = adapter(checkpoints[0]), adapter(checkpoints[-1])
    lora_b = [key for key in last if "lora_B" in key]
    assert lora_b
    assert all(torch.isfinite(tensor).all() for tensor in last.values())
    assert all(last[key].abs().sum() > 0 for key in lora_b)
    assert any(not torch.equal(first[key], last[key]) for key in last)
    # one process logs: each step once, in order (two writers would duplicate or garble rows)
    logged = logged_steps("loss.tsv")
    assert len(logged) >= 3 and logged == sorted(set(logged)), f"train loss: steps {logged}"

    # A crash after the second-last checkpoint: the last one and the stats never got written.
    resume_point, lost = checkpoints[-2], checkpoints[-1]
    kept = mtimes(resume_point)
    trained = adapter(lost)
    shutil.rmtree(lost)
    paths.TRAIN_STATS.unlink()

    output = run_train(project)

    assert f"resuming from {resume_point}" in output, output[-3000:]
    assert mtimes(resume_point) == kept, f"{resume_point.name} was rewritten, not resumed from"
    assert [path.name for path in complete_checkpoints(CHECKPOINTS_DIR)] == names
    stats = read_json(paths.TRAIN_STATS)
    assert stats["processes"] == PROCESSES
    assert stats["global_step"] == steps
    assert stats["tokens_per_second"] is None  # only set for a run that started clean
    logged = logged_steps("loss.tsv")
    assert logged == sorted(set(logged)), f"train loss: steps {logged} after the resume"
    assert logged[-1] == steps
    # both ranks resumed at the same step on the same batches (a rank that started over would
    # have hung the other): the resumed run ends bit for bit where the uninterrupted one did
    resumed = adapter(lost)
    differ = [key for key, tensor in trained.items() if not torch.equal(resumed[key], tensor)]
    assert not differ, f"{len(differ)} adapter tensors differ from the uninterrupted run"


def test_one_process_trains_in_this_process() -> None:
    assert trainer.launch_command(1, environ={}, configs=LAUNCH_CONFIGS) is None


def test_more_processes_relaunch_with_accelerate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("accelerate.yaml").touch()
    command = trainer.launch_command(4, environ={}, configs=LAUNCH_CONFIGS)
    assert command is not None and command[0] == sys.executable
    assert command[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "accelerate.yaml",
        "--num_processes",
        "4",
        "-m",
        f"{PACKAGE}.stages.train",
    ]


def test_a_launched_worker_does_not_relaunch() -> None:
    assert (
        trainer.launch_command(2, environ={"LOCAL_WORLD_SIZE": "2"}, configs=LAUNCH_CONFIGS) is None
    )


def test_launched_processes_must_match_the_param() -> None:
    with pytest.raises(StageError, match=r"set train\.processes=4"):
        trainer.launch_command(2, environ={"LOCAL_WORLD_SIZE": "4"}, configs=LAUNCH_CONFIGS)


def test_relaunch_needs_the_accelerate_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="accelerate.yaml"):
        trainer.launch_command(2, environ={}, configs=LAUNCH_CONFIGS)


def test_shipped_accelerate_config_launches_workers() -> None:
    """accelerate's own loader reads the config; MULTI_GPU is what makes `accelerate launch`
    start --num_processes workers (torchrun), on GPUs and, without CUDA, on the CPU."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(PROJECT / "accelerate.yaml"))
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.num_machines == 1
    assert config.mixed_precision == "no"  # left to train.bf16
    assert config.num_processes == -1  # always passed: train.processes, or by hand
