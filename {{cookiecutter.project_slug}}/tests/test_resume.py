"""Crash safety of the train stage, with real SIGKILLs: a run killed between checkpoints, or
in the middle of writing one, resumes from the last complete checkpoint and ends with the
same loss and the same adapter weights as a run that was never interrupted; and two identical
runs write byte-identical checkpoints, whatever each process's string hash seed.

Every run is a separate `python -m ...train` process on one thread, so the runs are
bit-for-bit comparable."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import run_python
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.paths import CHECKPOINTS_DIR, CHECKPOINTS_MANIFEST, PARAMS
from {{ cookiecutter.module_name }}.training.checkpoints import (
    STAGING_DIR,
    complete_checkpoints,
    model_files,
)

pytestmark = pytest.mark.e2e

MODULE = "{{ cookiecutter.module_name }}"
FIRST = "checkpoint-4"
FINAL = "checkpoint-12"  # 24 train rows, batch 4, two epochs; save_steps 4: 4, 8, 12

# Runs the train stage in this process (training/sft_run.py calls the build_trainer it imported,
# so that is the name patched) and SIGKILLs it at a chosen point: `step` kills right
# after that optimizer step, `save` kills while that step's checkpoint is being written
# (weights and optimizer on disk, RNG and trainer state not yet).
KILLER = f"""
import os, signal, sys
from transformers import Trainer, TrainerCallback
from {MODULE}.stages import train
from {MODULE}.training import sft_run

where, at = sys.argv[1], int(sys.argv[2])

class KillAfterStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if where == "step" and state.global_step == at:
            os.kill(os.getpid(), signal.SIGKILL)

save_rng_state = Trainer._save_rng_state
def save_rng_then_maybe_die(self, output_dir):
    if where == "save" and self.state.global_step == at:
        os.kill(os.getpid(), signal.SIGKILL)
    save_rng_state(self, output_dir)
Trainer._save_rng_state = save_rng_then_maybe_die

build_trainer = sft_run.build_trainer
def with_killer(*args, callbacks=None, **kwargs):
    return build_trainer(*args, callbacks=[*(callbacks or []), KillAfterStep()], **kwargs)
sft_run.build_trainer = with_killer
train.main()
"""


def run_train(*killer_args: str, **env: str) -> subprocess.CompletedProcess:
    command = ["-c", KILLER, *killer_args] if killer_args else ["-m", f"{MODULE}.stages.train"]
    return run_python(*command, **env)


def final_state() -> tuple[dict[str, torch.Tensor], list[float]]:
    """The last checkpoint's adapter tensors and every logged training loss."""
    checkpoint = CHECKPOINTS_DIR / FINAL
    adapter = load_file(checkpoint / "adapter_model.safetensors")
    history = read_json(checkpoint / "trainer_state.json")["log_history"]
    return adapter, [entry["loss"] for entry in history if "loss" in entry]


def assert_same_run(reference: tuple, resumed: tuple) -> None:
    ref_adapter, ref_losses = reference
    adapter, losses = resumed
    assert losses == ref_losses, f"losses {losses} != uninterrupted {ref_losses}"
    assert adapter.keys() == ref_adapter.keys()
    for name, tensor in ref_adapter.items():
        assert torch.equal(adapter[name], tensor), f"{name} differs from the uninterrupted run"


def checkpoint_names() -> list[str]:
    return [path.name for path in complete_checkpoints(CHECKPOINTS_DIR)]


def test_a_killed_run_resumes_to_the_uninterrupted_result(project: Path) -> None:
    # two epochs of length-grouped batches: the resume lands inside the second epoch
    params = yaml.safe_load(PARAMS.read_text())
    params["train"] |= {"num_epochs": 2, "group_by_length": True}
    PARAMS.write_text(yaml.safe_dump(params))
    done = run_train()
    assert done.returncode == 0, done.stderr[-3000:]
    reference = final_state()
    assert len(reference[1]) == 7  # logging_steps 2: steps 1, 2, 4, ..., 12

    # Killed between checkpoints: step 9 is lost, checkpoint-8 is the resume point.
    shutil.rmtree(CHECKPOINTS_DIR)
    killed = run_train("step", "9")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert checkpoint_names() == ["checkpoint-4", "checkpoint-8"]
    resumed = run_train()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from models/checkpoints/checkpoint-8" in resumed.stdout
    assert checkpoint_names() == ["checkpoint-4", "checkpoint-8", FINAL]
    assert_same_run(reference, final_state())

    # Killed while writing the last checkpoint: the half-written one stays out of sight.
    shutil.rmtree(CHECKPOINTS_DIR / FINAL)
    killed = run_train("save", "12")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (CHECKPOINTS_DIR / STAGING_DIR / FINAL / "adapter_model.safetensors").exists()
    assert checkpoint_names() == ["checkpoint-4", "checkpoint-8"]
    resumed = run_train()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from models/checkpoints/checkpoint-8" in resumed.stdout
    assert not (CHECKPOINTS_DIR / STAGING_DIR / FINAL).exists()
    assert checkpoint_names() == ["checkpoint-4", "checkpoint-8", FINAL]
    assert_same_run(reference, final_state())


def test_identical_runs_write_identical_checkpoints(project: Path) -> None:
    # PEFT keeps target_modules as a set and writes adapter_config.json in the set's order,
    # which Python's per-process string hashing changes: two hash seeds that order this
    # model's modules differently (checked: 1 and 2 do) must still give the same bytes.
    saved = {}
    for seed in ("1", "2"):
        shutil.rmtree(CHECKPOINTS_DIR, ignore_errors=True)
        done = run_train(PYTHONHASHSEED=seed)
        assert done.returncode == 0, done.stderr[-3000:]
        saved[seed] = {
            f"{checkpoint.name}/{path.name}": path.read_bytes()
            for checkpoint in complete_checkpoints(CHECKPOINTS_DIR)
            for path in model_files(checkpoint)
        }
        saved[seed]["manifest"] = CHECKPOINTS_MANIFEST.read_bytes()
    config = json.loads(saved["1"][f"{FIRST}/adapter_config.json"])
    assert len(config["target_modules"]) > 1
    assert saved["1"].keys() == saved["2"].keys()
    for name, content in saved["1"].items():
        assert saved["2"][name] == content, f"{name} differs between identical runs"
