"""The smoke run (stage `smoke`): the real training code on ~10 % of train for a few steps.

Passes when the loss is finite and falls on the smoke rows, and the saved adapter reloads to
the same outputs. Writes reports/smoke.json with seconds per step, an estimate of the full
run and `make advise`'s advice (method, batch size, time) timed by the measured steps; exits
non-zero with the reason when a check fails, so `train` never starts on a broken setup. The
first row of the dataset TRL built is rendered with its trained tokens highlighted
(reports/training_example.html) and curate's trainable-token count for it checked against
TRL's mask.
"""

import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from ..data.masking import token_counter
from ..document import write_html
from ..models.loading import load_model_with_adapter
from ..params import Params
from .example import ExamplePage, example_blocks, training_example
from .trainer import base_quantization, build_trainer


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (the first one, which warms up kernels, is dropped)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._started)

    @property
    def seconds_per_step(self) -> float:
        steady = self.durations[1:] or self.durations
        return sum(steady) / len(steady)


def smoke_rows(rows: list[dict], fraction: float, min_rows: int) -> list[dict]:
    """The first `fraction` of the train split (rows are in hash order, so this is a fair
    sample), never fewer than `min_rows`."""
    return rows[: max(min_rows, math.ceil(len(rows) * fraction))]


def full_run_steps(n_rows: int, params: Params) -> int:
    per_step = params.train.batch_size * params.train.grad_accum
    return math.ceil(math.ceil(n_rows / per_step) * params.train.num_epochs)


def check_loss(before: float, after: float) -> str | None:
    """Why the loss curve is unhealthy, or None."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"loss is not finite (before {before}, after {after}): lower train.learning_rate"
    if after >= before:
        return (
            f"loss did not fall on the smoke rows ({before:.4f} -> {after:.4f}): check the data "
            "and train.learning_rate"
        )
    return None


@torch.inference_mode()
def reload_matches(trainer, saved: Path, base_dir: Path, quantization: Any = None) -> bool:
    """The saved adapter, loaded fresh onto the base (`base_dir`), gives the trained model's logits.
    Both sides run without autocast: with bf16 training the trainer's model forward is
    wrapped in autocast, which is unwrapped here so the comparison is about the saved weights.

    A QLoRA adapter (`quantization`: the run's 4-bit config) is reloaded onto the same 4-bit
    base it was trained on: nf4 quantisation is deterministic, so a sound save matches at the
    same tolerance. Eval merges it into the float base instead; that model differs from the
    trained one by the base's quantisation error (tests/test_qlora.py), far more than the
    tolerance that catches a broken save."""
    batch = next(iter(trainer.get_eval_dataloader()))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    trained = model.eval()(**inputs).logits.float().cpu()
    reloaded = load_model_with_adapter(saved, base_dir, quantization=quantization).eval()
    # on a GPU: a float base loads on the CPU, a 4-bit one on the GPU
    logits = reloaded(**{k: v.to(reloaded.device) for k, v in inputs.items()}).logits
    return torch.allclose(trained, logits.float().cpu(), atol=1e-3, rtol=1e-3)


def run_smoke(
    params: Params,
    base_dir: Path,
    train_rows: list[dict],
    example_page: ExamplePage | None = None,
) -> dict:
    """The smoke run's report on the base in `base_dir`; `example_page`: where to write the
    training example."""
    rows = smoke_rows(train_rows, params.smoke.fraction, params.smoke.min_rows)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        trainer = build_trainer(
            params,
            base_dir,
            rows,
            rows,
            Path(tmp) / "run",
            callbacks=[timer],
            max_steps=params.smoke.max_steps,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            eval_on_start=False,
        )
        turns = params.train.assistant_turns
        count = token_counter(trainer.processing_class, turns)
        example = training_example(trainer, rows, params.train.max_length, count, turns)
        if example is not None and example_page is not None:
            blocks = example_blocks(trainer.processing_class, example, example_page)
            write_html(blocks, example_page.page, "What the model is trained on")
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        after = trainer.evaluate()["eval_loss"]
        saved = Path(tmp) / "adapter"
        trainer.save_model(str(saved))
        quantization = base_quantization(params.train, trainer.args.bf16)
        reload_ok = reload_matches(trainer, saved, base_dir, quantization)
    steps = full_run_steps(len(train_rows), params)
    report = {
        "rows": len(rows),
        "steps": params.smoke.max_steps,
        "loss_before": round(before, 4),
        "loss_after": round(after, 4),
        "seconds_per_step": round(timer.seconds_per_step, 3),
        "full_run_steps": steps,
        "full_run_minutes_estimate": round(timer.seconds_per_step * steps / 60, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "reload_matches": reload_ok,
        # curate's trainable-token count of one row against the mask TRL built for it
        "training_example": example.summary() if example else None,
    }
    problems = [check_loss(before, after)]
    if not reload_ok:
        problems.append("the saved adapter does not reload to the trained model's outputs")
    if params.rl.enabled:
        report["rl"] = run_rl_smoke(params, base_dir, rows, train_rows)
        problems.append(report["rl"]["problem"])
    report["problems"] = [p for p in problems if p]
    report["passed"] = not report["problems"]
    return report


def run_rl_smoke(
    params: Params, base_dir: Path, rows: list[dict], train_rows: list[dict]
) -> dict[str, Any]:
    """smoke.rl_steps GRPO steps on the smoke rows' task prompts, on the base (no SFT
    checkpoint exists yet), with the run's rewards: they load and score, the loss and the
    rewards are finite, and a step is timed for the rl stage's estimate."""
    from .advisor import rl_cost
    from .grpo import build_trainer, logged_steps, prompt_rows, reward_weights
    from .rewards import REWARD_KEY

    prompts = prompt_rows(rows)
    if len(prompts) < params.rl.prompts_per_step:  # a smoke sample of mostly replay rows
        prompts = prompt_rows(train_rows)[: params.rl.prompts_per_step]
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="smoke-rl-") as tmp:
        trainer = build_trainer(
            params,
            base_dir,
            prompts,
            None,
            Path(tmp),
            callbacks=[timer],
            max_steps=params.smoke.rl_steps,
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
        )
        trainer.train()
    logged = logged_steps(trainer.state.log_history)
    values = [entry[key] for entry in logged for key in ("loss", REWARD_KEY)]
    cost = rl_cost(params, timer.seconds_per_step)
    finite = bool(values) and all(math.isfinite(v) for v in values)
    return {
        "steps": params.smoke.rl_steps,
        "prompts": len(prompts),
        "rewards": reward_weights(trainer),
        "reward_first": round(logged[0][REWARD_KEY], 4) if logged else None,
        "reward_last": round(logged[-1][REWARD_KEY], 4) if logged else None,
        "loss_last": round(logged[-1]["loss"], 4) if logged else None,
        "seconds_per_step": round(timer.seconds_per_step, 3),
        "tokens_per_step": cost.tokens_per_step,
        "full_run_steps": cost.steps,
        "full_run_minutes_estimate": round(cost.minutes, 1),
        "problem": None
        if finite
        else (
            f"rl: the GRPO loss or reward is not finite ({values}): check rl.reward and "
            "lower rl.learning_rate"
        ),
    }
