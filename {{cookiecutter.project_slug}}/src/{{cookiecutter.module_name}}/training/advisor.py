"""Which method, batch size and run time suit this model, data and machine: the advice
`make advise` prints and the smoke stage stores in reports/smoke.json.

A rule-of-thumb decision tree (the data-size table of data/sizing.py, then the memory of the
device) combined with estimates for the actual base model: memory per method
(training/memory.py), the largest batch that fits, and the time of the full run (measured by
the smoke stage when reports/smoke.json is current, estimated from FLOPs otherwise).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sizing import size_verdict
from ..io import read_json
from ..models.loading import QLORA_EXTRA
from ..params import Params, TrainParams
from .hardware import GIB, Hardware, describe_hardware, detect_hardware
from .memory import MEMORY_FRACTION, MethodEstimate, estimate_method
from .model_size import ModelSize, read_model_size

# Training FLOPs per parameter and token: forward 2 + backward 4 for full fine-tuning; with a
# frozen base the backward skips the weight gradients (2), leaving ~4.
FLOPS_PER_PARAM_TOKEN = {"full": 6, "lora": 4, "qlora": 4}
ACHIEVABLE_FRACTION = 0.3  # of the measured matmul peak, for a whole training step
LONG_RUN_HOURS = 24
# Preference when several methods fit: LoRA keeps the base in full precision at the least
# compute; QLoRA when only a 4-bit base fits (on a GPU slower per step; a little less exact,
# and eval merges the adapter into the float base it was not trained on); full fine-tuning is
# listed as an alternative when it fits (worth a run from 10,000 rows: data/sizing.py).
PREFERENCE = ("lora", "qlora", "full")


@dataclass(frozen=True)
class DataFacts:
    rows: int | None  # None: no train split yet
    mean_tokens: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Measured:
    """From the smoke stage: the real training step on this machine."""

    seconds_per_step: float
    steps: int


@dataclass(frozen=True)
class RlCost:
    """What a GRPO run (the rl stage) generates: every step samples `prompts` x `generations`
    completions of up to `completion_length` tokens, scores them, then trains on them."""

    prompts: int
    generations: int
    completion_length: int
    steps: int
    seconds_per_step: float | None = None  # measured by the smoke stage

    @property
    def tokens_per_step(self) -> int:
        return self.prompts * self.generations * self.completion_length

    @property
    def minutes(self) -> float | None:
        """The rl stage's run time at the measured seconds per step (None: not measured)."""
        if self.seconds_per_step is None:
            return None
        return self.seconds_per_step * self.steps / 60


def rl_cost(params: Params, seconds_per_step: float | None = None) -> RlCost | None:
    """The rl stage's cost when rl.enabled, else None."""
    rl = params.rl
    if not rl.enabled:
        return None
    return RlCost(
        rl.prompts_per_step,
        rl.num_generations,
        rl.max_completion_length,
        rl.max_steps,
        seconds_per_step,
    )


def rl_note(cost: RlCost) -> str:
    """What the rl stage will cost: generated tokens, and minutes where smoke measured a step."""
    head = (
        f"rl: each GRPO step generates {cost.prompts} prompts x {cost.generations} completions "
        f"x up to {cost.completion_length} tokens (~{cost.tokens_per_step:,} tokens, generated "
        f"one at a time, then scored and trained on); {cost.steps} steps"
    )
    if cost.minutes is None:
        return f"{head}: enable it and run `dvc repro smoke` to time a step"
    return (
        f"{head} ~{format_minutes(cost.minutes)} at the smoke stage's "
        f"{cost.seconds_per_step:.3g} s/step (rl.num_generations and "
        "rl.max_completion_length scale it)"
    )


@dataclass
class Advice:
    model: str
    params: int
    hardware: str
    memory_gib: float
    budget_gib: float
    hardware_tier: str  # which methods this much memory usually allows
    rows: int | None
    # few-shot | lora-watch-overfitting | lora-optimal | sft-dpo-or-full | no-data
    data_verdict: str
    data_advice: str
    estimates: list[MethodEstimate]
    recommended: str  # lora | qlora | full | api
    recommendation: str
    alternatives: list[str]
    configured_method: str
    configured_fits: bool
    batch_size: int
    max_batch_size: int
    max_length: int
    minutes: float | None
    time_source: str  # measured | estimated | unknown
    time_basis: str
    notes: list[str] = field(default_factory=list)
    summary: str = ""


def data_verdict(rows: int | None) -> tuple[str, str]:
    """The data-size table (data/sizing.py) for the train split: (verdict, advice)."""
    if rows is None:
        return "no-data", "no data/splits/train.jsonl yet: run `dvc repro split`"
    return size_verdict(rows)


def hardware_tier(hw: Hardware) -> str:
    """Which methods and model sizes this much VRAM usually allows, as a rule of thumb (the
    estimates of `advise` are for this model)."""
    if hw.kind == "cpu":
        return (
            "no GPU: API fine-tuning (OpenAI, Together AI); a small model that fits in RAM "
            "trains with LoRA on the CPU, a 1-2B one with QLoRA (4-bit base)"
        )
    vram = hw.memory_bytes / GIB
    if vram < 8:
        return "<8 GB VRAM: API fine-tuning (OpenAI, Together AI)"
    if vram < 16:
        return "8-16 GB VRAM: QLoRA (+ Unsloth) on 7-8B models"
    if vram < 24:
        return "16-24 GB VRAM: QLoRA on 7-70B models"
    if vram < 48:
        return "24 GB+ VRAM: LoRA or QLoRA on any model"
    return "48 GB+ VRAM: LoRA or full fine-tuning (LoRA up to 70B)"


def choose_method(estimates: list[MethodEstimate]) -> str:
    """The first method in PREFERENCE that fits, or `api` when none does."""
    fitting = {e.method for e in estimates if e.fits}
    return next((m for m in PREFERENCE if m in fitting), "api")


def train_steps(rows: int, train: TrainParams) -> int:
    """Optimizer steps of the full run (as the smoke stage counts them)."""
    per_step = train.batch_size * train.grad_accum
    return math.ceil(math.ceil(rows / per_step) * train.num_epochs)


def estimated_minutes(
    method: str, model: ModelSize, hw: Hardware, data: DataFacts, train: TrainParams
) -> tuple[float | None, str]:
    """FLOPs of the run over ACHIEVABLE_FRACTION of the measured matmul rate.

    FLOPs = FLOPS_PER_PARAM_TOKEN[method] x params x tokens, tokens = rows x epochs x mean row
    length (train.max_length when the rows carry no token counts). Data-parallel GPUs divide
    the time."""
    if data.rows is None or hw.matmul_flops is None or method not in FLOPS_PER_PARAM_TOKEN:
        return None, "no train split or no measured matmul rate"
    tokens_per_row = data.mean_tokens or train.max_length
    tokens = data.rows * train.num_epochs * tokens_per_row
    flops = FLOPS_PER_PARAM_TOKEN[method] * model.params * tokens
    rate = hw.matmul_flops * ACHIEVABLE_FRACTION * hw.devices
    basis = (
        f"{FLOPS_PER_PARAM_TOKEN[method]} x {model.params / 1e6:.0f}M params x "
        f"{tokens:,.0f} tokens at {ACHIEVABLE_FRACTION:.0%} of a measured "
        f"{hw.matmul_flops / 1e12:.2f} TFLOP/s matmul"
    )
    return flops / rate / 60, basis


def method_text(estimate: MethodEstimate | None, hw: Hardware, budget_gib: float) -> str:
    method = estimate.method if estimate else "api"
    where = " on the CPU" if hw.kind == "cpu" else ""
    if estimate and estimate.needs_checkpointing:
        where += " with train.gradient_checkpointing: true"
    return {
        "lora": f"LoRA SFT{where}",
        "qlora": f"QLoRA SFT (4-bit nf4 base; `pip install -e '.[{QLORA_EXTRA}]'`){where}",
        "full": f"full fine-tuning{where}",
        "api": (
            f"API fine-tuning (OpenAI, Together AI) or a smaller base model: no method fits "
            f"in {budget_gib:.1f} GiB"
        ),
    }[method]


def advise(
    model: ModelSize,
    hw: Hardware,
    data: DataFacts,
    train: TrainParams,
    measured: Measured | None = None,
    rl: RlCost | None = None,
) -> Advice:
    """The whole decision, from plain facts; no files, no hardware queries."""
    budget_gib = hw.memory_bytes * MEMORY_FRACTION / GIB
    estimates = [estimate_method(m, model, hw, train) for m in PREFERENCE]
    by_method = {e.method: e for e in estimates}
    recommended = choose_method(estimates)
    verdict, data_advice = data_verdict(data.rows)
    configured = by_method[train.method]
    batch_for = configured if configured.fits else by_method.get(recommended)
    max_batch = batch_for.max_batch if batch_for else 0
    alternatives = [e.method for e in estimates if e.fits and e.method != recommended]

    if measured is not None:
        minutes: float | None = measured.seconds_per_step * measured.steps / 60
        source = "measured"
        basis = f"smoke stage: {measured.seconds_per_step:.3g} s/step x {measured.steps} steps"
    else:
        minutes, basis = estimated_minutes(train.method, model, hw, data, train)
        source = "estimated" if minutes is not None else "unknown"

    notes = method_notes(train, configured, recommended, budget_gib)
    notes += batch_notes(train, configured, max_batch)
    notes += data_notes(verdict, train, by_method["full"].fits)
    if minutes is not None and minutes > LONG_RUN_HOURS * 60:
        notes.append(
            f"~{minutes / 60:.0f} h is a long run: use a GPU, a smaller base model, or fewer "
            "rows/epochs (a fine-tune should take hours, not days)"
        )
    if rl is not None:
        notes.append(rl_note(rl))
    if hw.devices > 1:
        notes.append(
            f"estimates are per GPU; {hw.devices} GPUs train data-parallel (each holds a copy)"
        )

    advice = Advice(
        model=model.name,
        params=model.params,
        hardware=describe_hardware(hw),
        memory_gib=round(hw.memory_bytes / GIB, 1),
        budget_gib=round(budget_gib, 1),
        hardware_tier=hardware_tier(hw),
        rows=data.rows,
        data_verdict=verdict,
        data_advice=data_advice,
        estimates=estimates,
        recommended=recommended,
        recommendation=method_text(by_method.get(recommended), hw, budget_gib),
        alternatives=alternatives,
        configured_method=train.method,
        configured_fits=configured.fits,
        batch_size=train.batch_size,
        max_batch_size=max_batch,
        max_length=train.max_length,
        minutes=round(minutes, 1) if minutes is not None else None,
        time_source=source,
        time_basis=basis,
        notes=notes,
    )
    advice.summary = summarise(advice)
    return advice


def method_notes(
    train: TrainParams, configured: MethodEstimate, recommended: str, budget: float
) -> list[str]:
    if configured.needs_checkpointing:
        return [
            f"train.method={train.method} fits only with train.gradient_checkpointing: true "
            "(recomputes activations: slower steps, far less memory)"
        ]
    if configured.fits:
        return []
    fix = f"set train.method={recommended}" if recommended != "api" else "see the advice above"
    return [
        f"train.method={train.method} needs ~{configured.gib_at_batch_1:.1f} GiB at batch size "
        f"1, more than the {budget:.1f} GiB budget: {fix}"
    ]


def batch_notes(train: TrainParams, configured: MethodEstimate, max_batch: int) -> list[str]:
    if not configured.fits or train.batch_size <= max_batch:
        return []
    accum = math.ceil(train.batch_size * train.grad_accum / max_batch)
    note = (
        f"train.batch_size={train.batch_size} is above the estimated maximum {max_batch} at "
        f"max_length {train.max_length}: set batch_size {max_batch} and grad_accum {accum} "
        "(about the same effective batch)"
    )
    if not train.gradient_checkpointing and not configured.needs_checkpointing:
        note += ", or train.gradient_checkpointing: true"
    return [note]


def data_notes(verdict: str, train: TrainParams, full_fits: bool) -> list[str]:
    notes = []
    if verdict in ("few-shot", "lora-watch-overfitting") and train.num_epochs > 3:
        notes.append(
            f"train.num_epochs={train.num_epochs:g} on under 1,000 rows risks overfitting: "
            "1-3 epochs, picked by val loss, is the usual range"
        )
    if verdict == "sft-dpo-or-full" and full_fits:
        notes.append("full fine-tuning fits in memory: worth a run against LoRA at this size")
    return notes


def summarise(advice: Advice) -> str:
    """One line: what to do, whether the configured method fits, batch and time."""
    head, fits = advice_head(advice), configured_fit(advice)
    time_part = (
        f"; full run ~{format_minutes(advice.minutes)} ({advice.time_source})"
        if advice.minutes is not None
        else ""
    )
    return (
        f"{head}; train.method={advice.configured_method} {fits}; max batch "
        f"{advice.max_batch_size} at max_length {advice.max_length}{time_part}"
    )


def advice_head(advice: Advice) -> str:
    """The recommendation, with the data-size verdict where it changes what to do."""
    if advice.data_verdict == "few-shot":
        return (
            f"few-shot prompting instead ({advice.rows} rows < 100); "
            f"to fine-tune anyway: {advice.recommendation}"
        )
    if advice.data_verdict == "sft-dpo-or-full":
        return f"{advice.recommendation}; 10,000+ rows: consider SFT + DPO or full fine-tuning"
    return advice.recommendation


def configured_fit(advice: Advice) -> str:
    configured = next(e for e in advice.estimates if e.method == advice.configured_method)
    if configured.needs_checkpointing:
        return "fits with gradient checkpointing"
    return "fits" if configured.fits else "does not fit"


def format_minutes(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def read_data(rows: list[dict]) -> DataFacts:
    """Row count and token lengths (the `tokens` field curate writes, where present)."""
    lengths = [row["tokens"] for row in rows if isinstance(row.get("tokens"), int)]
    return DataFacts(
        rows=len(rows),
        mean_tokens=sum(lengths) / len(lengths) if lengths else None,
        max_tokens=max(lengths) if lengths else None,
    )


def read_measured(path: Path, rows: int | None, train: TrainParams) -> Measured | None:
    """The smoke stage's timing, if its report exists and counts the same full run."""
    if not path.exists() or rows is None:
        return None
    report = read_json(path)
    seconds, steps = report.get("seconds_per_step"), report.get("full_run_steps")
    if seconds is None or steps != train_steps(rows, train):
        return None  # stale: written for other params or data
    return Measured(float(seconds), int(steps))


def read_rl_measured(path: Path, params: Params) -> float | None:
    """The smoke stage's seconds per GRPO step, if it timed the rl stage's current shape."""
    cost = rl_cost(params)
    if cost is None or not path.exists():
        return None
    measured = read_json(path).get("rl") or {}
    if measured.get("tokens_per_step") != cost.tokens_per_step:
        return None  # stale: timed for other rl params
    return float(measured["seconds_per_step"])


def collect(
    params: Params,
    train_rows: list[dict] | None,
    base_dir: Path,
    measured: Measured | None = None,
    measure: bool = True,
    rl_seconds_per_step: float | None = None,
) -> Advice:
    """Advice for the base model in `base_dir` on this machine (`train_rows` None: no split
    yet)."""
    data = read_data(train_rows) if train_rows is not None else DataFacts(rows=None)
    hardware = detect_hardware(params.train.bf16, measure=measure and measured is None)
    rl = rl_cost(params, rl_seconds_per_step)
    return advise(read_model_size(base_dir), hardware, data, params.train, measured, rl)


def advice_from_smoke(
    params: Params, train_rows: list[dict], report: dict, base_dir: Path
) -> Advice:
    """The smoke stage's advice, timed by its own measured seconds per step."""
    measured = Measured(report["seconds_per_step"], report["full_run_steps"])
    rl_seconds = (report.get("rl") or {}).get("seconds_per_step")
    return collect(params, train_rows, base_dir, measured, rl_seconds_per_step=rl_seconds)
