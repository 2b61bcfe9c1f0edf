"""The loss guard in real tiny-model runs: a NaN loss stops SFT and DPO training at the step it
appears, naming the last good checkpoint. transformers' `logging_nan_inf_filter` (on by
default) would log the running mean instead, so the guard would never see the NaN."""

import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.params import Params, parse_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR
from {{ cookiecutter.module_name }}.training import dpo, trainer
from {{ cookiecutter.module_name }}.training.guards import LossGuard


class NanFromStep(TrainerCallback):
    """Fills a trainable weight with NaN just before optimizer step `step` (as a diverged
    update would), so that step's loss and every later one is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(math.nan)


def cut_short(completion: list[dict]) -> list[dict]:
    answer = completion[-1]["content"]
    return [{"role": "assistant", "content": answer[: len(answer) // 3]}]


def project_params() -> Params:
    return parse_params(yaml.safe_load(Path("params.yaml").read_text()))


def nan_run(params: Params, out: Path, guard: LossGuard, logging_steps: int):
    """An SFT trainer of 8 steps saving every 3 whose loss is NaN from step 5."""
    return trainer.build_trainer(
        params,
        BASE_MODEL_DIR,
        read_jsonl(Path("data/splits/train.jsonl")),
        None,
        out,
        callbacks=[guard, NanFromStep(5)],
        max_steps=8,
        logging_steps=logging_steps,
        save_steps=3,
        eval_on_start=False,
    )


def test_nan_loss_stops_a_real_sft_run(project: Path, tmp_path: Path) -> None:
    """Steps 1-4 train normally (checkpoint-3 saved), step 5's loss is NaN: the guard sees
    NaN, not the running mean, and stops the run there."""
    out = tmp_path / "run"
    params = project_params()
    guard = LossGuard(out, params.train.max_loss_spike)
    sft_trainer = nan_run(params, out, guard, logging_steps=1)
    stop = r"step 5: loss is nan\. Last good checkpoint: checkpoint-3\."
    with pytest.raises(StageError, match=stop):
        sft_trainer.train()
    assert len(guard.history) == 4 and all(math.isfinite(loss) for loss in guard.history)
    assert math.isnan(sft_trainer.state.log_history[-1]["loss"])  # logged as it was


def test_a_checkpoint_saved_after_the_last_good_log_is_not_named(
    project: Path, tmp_path: Path
) -> None:
    """Logs at steps 4 and 8, saves at 3 and 6, NaN from step 5: checkpoint-6 already holds
    NaN weights when step 8's log stops the run, so the last good one is checkpoint-3."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    sft_trainer = nan_run(project_params(), out, LossGuard(out, None), logging_steps=4)
    stop = r"step 8: loss is nan\. Last good checkpoint: checkpoint-3\."
    with pytest.raises(StageError, match=stop):
        sft_trainer.train()

    def finite(checkpoint: str) -> bool:
        weights = load_file(out / checkpoint / "adapter_model.safetensors")
        return all(bool(torch.isfinite(w).all()) for w in weights.values())

    assert finite("checkpoint-3") and not finite("checkpoint-6")


def test_nan_loss_stops_a_real_dpo_run(project: Path, tmp_path: Path) -> None:
    """The same for DPO: pairs on the train prompts, the tiny base as a full 'SFT' checkpoint."""
    rows = read_jsonl(Path("data/splits/train.jsonl"))
    pairs = [  # rejected: the answer cut short
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": cut_short(r["completion"])}
        for r in rows
    ]
    sft_checkpoint = shutil.copytree(Path("models/base"), tmp_path / "checkpoint-1")
    params = project_params()
    tiny_dpo = {"learning_rate": 5e-3, "batch_size": 4, "save_steps": 2, "logging_steps": 1}
    params = params.model_copy(update={"dpo": params.dpo.model_copy(update=tiny_dpo)})
    out = tmp_path / "dpo"
    guard = LossGuard(out, None)
    dpo_trainer = dpo.build_trainer(
        params, BASE_MODEL_DIR, pairs, sft_checkpoint, out, callbacks=[guard, NanFromStep(4)]
    )
    stop = r"step 4: loss is nan\. Last good checkpoint: checkpoint-2\."
    with pytest.raises(StageError, match=stop):
        dpo_trainer.train()
    assert len(guard.history) == 3


def test_the_trainers_leave_nan_to_the_guard(tmp_path: Path) -> None:
    params = parse_params({})
    assert trainer.sft_config(params.train, tmp_path, 0).logging_nan_inf_filter is False
    assert dpo.dpo_config(params, tmp_path).logging_nan_inf_filter is False
