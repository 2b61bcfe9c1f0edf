"""`make advise`: which method, batch size and run time suit this model, data and machine.

Seed 001's decision tree (data size, then VRAM) combined with estimates for the actual base
model: memory per method, the largest batch that fits, and the time of the full run (measured
by the smoke stage when reports/smoke.json is current, estimated from FLOPs otherwise). Prints
only; the smoke stage stores the same advice in reports/smoke.json.

Memory model (bytes, per device):
- full:  16 per parameter: fp32 weights 4 + gradients 4 + Adam's two moments 8 (bf16 mixed
  precision keeps fp32 master weights, so it is ~16 too);
- lora:  the frozen base at 4 per parameter (train loads it in float32; bf16 is autocast), plus
  16 per adapter parameter, plus activations;
- qlora: 0.55 per parameter of the quantised linear layers (nf4 + double-quantised scales);
  embeddings, norms and the LM head stay unquantised at 4; plus adapter and activations. It
  runs on CUDA and on the CPU (bitsandbytes >= 0.46.1), where a 4-bit base is what lets a
  1-2B model train in a laptop's RAM;
plus a fixed runtime overhead (CUDA context or Python + libraries). A method fits when that
total at batch size 1 stays within 90 % of the device's memory; when it does only with
gradient checkpointing, the advice says to turn it on.
"""

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..cli import run_stage
from ..data.sizing import size_verdict
from ..io import read_json, read_jsonl
from ..models.loading import QLORA_EXTRA, base_source, cpu_has_fast_bf16
from ..params import Params, TrainParams, load_params
from ..paths import BASE_MODEL_DIR, SMOKE_REPORT, TRAIN_SPLIT

GIB = 1024**3
MEMORY_FRACTION = 0.9
MAX_BATCH = 64
RUNTIME_OVERHEAD = 1 * GIB
FULL_BYTES_PER_PARAM = 16
ADAPTER_BYTES_PER_PARAM = 16
BASE_WEIGHT_BYTES = 4
NF4_BYTES_PER_PARAM = 0.55
# Activations per token and layer = ACTIVATION_FACTOR x dtype bytes x hidden, i.e. ~34 x hidden
# bytes in bf16 (Korthikanti et al. 2022, without their attention-score term: SDPA/flash
# attention does not store the seq x seq matrix).
ACTIVATION_FACTOR = 17
LOGIT_BYTES = 8  # per token and vocabulary entry: fp32 logits and their gradient
# Training FLOPs per parameter and token: forward 2 + backward 4 for full fine-tuning; with a
# frozen base the backward skips the weight gradients (2), leaving ~4.
FLOPS_PER_PARAM_TOKEN = {"full": 6, "lora": 4, "qlora": 4}
ACHIEVABLE_FRACTION = 0.3  # of the measured matmul peak, for a whole training step
LONG_RUN_HOURS = 24
# Preference when several methods fit: LoRA keeps the base in full precision at the least
# compute; QLoRA when only a 4-bit base fits (on a GPU slower per step; a little less exact,
# and eval merges the adapter into the float base it was not trained on); full fine-tuning is
# listed as an alternative when it fits (seed 001: for 10,000+ rows).
PREFERENCE = ("lora", "qlora", "full")
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelSize:
    """What the estimates need to know about the base model."""

    params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    q_dim: int  # attention heads x head dim
    kv_dim: int  # key/value heads x head dim
    tied: bool = True
    name: str = "base"

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one Llama-style decoder layer."""
        h, i, q, kv = self.hidden, self.intermediate, self.q_dim, self.kv_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())


@dataclass(frozen=True)
class Hardware:
    kind: Literal["cpu", "cuda"]
    name: str
    memory_bytes: int  # per device: VRAM of one GPU, or the system RAM
    devices: int = 1
    cores: int = 1
    bf16: bool = False  # native bf16 matmuls
    matmul_flops: float | None = None  # measured peak of one device in the training dtype


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
class MethodEstimate:
    method: str
    gib_at_batch_1: float
    gib_per_sequence: float
    max_batch: int
    fits: bool
    needs_checkpointing: bool = False  # fits only with train.gradient_checkpointing: true


@dataclass
class Advice:
    model: str
    params: int
    hardware: str
    memory_gib: float
    budget_gib: float
    seed_tier: str
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


# ------------------------------------------------------------------------- the rules


def data_verdict(rows: int | None) -> tuple[str, str]:
    """Seed 001's data-size table for the train split: (verdict, advice)."""
    if rows is None:
        return "no-data", "no data/splits/train.jsonl yet: run `dvc repro split`"
    return size_verdict(rows)


def seed_tier(hw: Hardware) -> str:
    """Seed 001's VRAM tree, as a rule of thumb; the estimates below are for this model."""
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


def compute_bytes(bf16_setting: bool | str, hw: Hardware) -> int:
    """Bytes per activation value: 2 under bf16 (train.bf16, `auto` = native bf16), else 4."""
    on = hw.bf16 if bf16_setting == "auto" else bool(bf16_setting)
    return 2 if on else 4


def adapter_params(model: ModelSize, r: int, target_modules: str | list[str]) -> int:
    """LoRA parameters: r x (in + out) per targeted linear layer. Names outside the Llama set
    add nothing (the adapter is small next to the base either way)."""
    shapes = model.linear_shapes()
    names = LINEAR_NAMES if target_modules == "all-linear" else target_modules
    return model.layers * sum(r * sum(shapes[n]) for n in names if n in shapes)


def activation_bytes_per_token(model: ModelSize, dtype_bytes: int, checkpointing: bool) -> int:
    """Activations kept for the backward pass, per token of a sequence:

        layers x 17 x dtype_bytes x hidden     (~34 x hidden per layer in bf16)
      + vocab x 8                              (fp32 logits and their gradient)

    With gradient checkpointing only each layer's input (dtype_bytes x hidden) is kept and one
    layer's activations are recomputed at a time."""
    per_layer = ACTIVATION_FACTOR * dtype_bytes * model.hidden
    if checkpointing:
        layers = model.layers * dtype_bytes * model.hidden + per_layer
    else:
        layers = model.layers * per_layer
    return layers + model.vocab * LOGIT_BYTES


def static_bytes(method: str, model: ModelSize, train: TrainParams) -> int:
    """Memory that does not grow with the batch: weights, gradients, optimizer, runtime."""
    adapter = adapter_params(model, train.lora_r, train.target_modules) * ADAPTER_BYTES_PER_PARAM
    if method == "full":
        weights = model.params * FULL_BYTES_PER_PARAM
    elif method == "lora":
        weights = model.params * BASE_WEIGHT_BYTES + adapter
    else:
        unquantised = model.params - model.linear_params
        weights = model.linear_params * NF4_BYTES_PER_PARAM
        weights += unquantised * BASE_WEIGHT_BYTES + adapter
    return int(weights) + RUNTIME_OVERHEAD


def max_batch_size(budget: int, fixed: int, per_sequence: int, cap: int = MAX_BATCH) -> int:
    """The largest batch with fixed + batch x per_sequence <= budget (0: not even one)."""
    if fixed >= budget:
        return 0
    return min(cap, (budget - fixed) // max(per_sequence, 1))


def estimate_method(
    method: str, model: ModelSize, hw: Hardware, train: TrainParams
) -> MethodEstimate:
    """Memory at batch size 1 and the largest batch for one method on one device, with the
    configured gradient checkpointing, or with checkpointing when only that fits."""
    budget = int(hw.memory_bytes * MEMORY_FRACTION)
    fixed = static_bytes(method, model, train)
    dtype_bytes = compute_bytes(train.bf16, hw)

    def per_sequence(checkpointing: bool) -> int:
        return activation_bytes_per_token(model, dtype_bytes, checkpointing) * train.max_length

    checkpointing = train.gradient_checkpointing
    batch = max_batch_size(budget, fixed, per_sequence(checkpointing))
    if batch == 0 and not checkpointing:
        with_checkpointing = max_batch_size(budget, fixed, per_sequence(True))
        if with_checkpointing:
            checkpointing, batch = True, with_checkpointing
    sequence = per_sequence(checkpointing)
    return MethodEstimate(
        method=method,
        gib_at_batch_1=round((fixed + sequence) / GIB, 2),
        gib_per_sequence=round(sequence / GIB, 3),
        max_batch=batch,
        fits=batch >= 1,
        needs_checkpointing=checkpointing and not train.gradient_checkpointing,
    )


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


# --------------------------------------------------------------------------- advise


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
            "rows/epochs (the seed: hours, not days)"
        )
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
        seed_tier=seed_tier(hw),
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
            "the seeds say 1-3 epochs, picked by val loss"
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


def describe_hardware(hw: Hardware) -> str:
    if hw.kind == "cuda":
        count = f"{hw.devices} x " if hw.devices > 1 else ""
        return f"CUDA: {count}{hw.name}, {hw.memory_bytes / GIB:.1f} GiB each"
    bf16 = "native bf16" if hw.bf16 else "no native bf16 (fp32)"
    return f"CPU: {hw.name}, {hw.cores} cores, {hw.memory_bytes / GIB:.1f} GiB RAM, {bf16}"


def render(advice: Advice) -> str:
    """A short block for people."""
    lines = [
        f"Training advice for {advice.model} ({advice.params / 1e6:,.1f}M parameters)",
        f"  hardware  {advice.hardware}",
        f"  seed 001  {advice.seed_tier}",
        f"  data      {advice.data_advice}",
        f"  memory    per device, {advice.budget_gib:.1f} GiB budget "
        f"({MEMORY_FRACTION:.0%} of {advice.memory_gib:.1f} GiB), max_length {advice.max_length}:",
        f"            {'method':<8}{'batch 1':>10}{'+/sequence':>12}{'max batch':>11}",
    ]
    for e in advice.estimates:
        batch = f"{e.max_batch}{' (ckpt)' if e.needs_checkpointing else ''}" if e.fits else "no fit"
        lines.append(
            f"            {e.method:<8}{e.gib_at_batch_1:>6.2f} GiB{e.gib_per_sequence:>8.3f} GiB"
            f"{batch:>11}"
        )
    if any(e.needs_checkpointing for e in advice.estimates):
        lines.append("            (ckpt): fits only with train.gradient_checkpointing: true")
    fits = configured_fit(advice)
    also = f" (also fits: {', '.join(advice.alternatives)})" if advice.alternatives else ""
    lines += [
        f"  advice    {advice_head(advice)}{also}",
        f"            configured train.method={advice.configured_method}: {fits}",
        f"  batch     train.batch_size={advice.batch_size}; largest that fits: "
        f"{advice.max_batch_size} (capped at {MAX_BATCH})",
    ]
    if advice.minutes is None:
        lines.append(f"  time      unknown ({advice.time_basis})")
    else:
        lines.append(
            f"  time      ~{format_minutes(advice.minutes)} for the full run, "
            f"{advice.time_source} ({advice.time_basis})"
        )
    lines += [f"  note      {note}" for note in advice.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------ gathering facts


def config_fields(config: Any) -> dict[str, Any]:
    """The size fields of a transformers config (attribute names are mapped, so GPT-2's
    n_embd reads as hidden_size)."""
    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "intermediate_size",
        "vocab_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "tie_word_embeddings",
        "attention_bias",
        "mlp_bias",
    )
    return {key: getattr(config, key, None) for key in keys}


def _dims(cfg: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or hidden // heads
    kv_heads = cfg.get("num_key_value_heads") or heads
    intermediate = cfg.get("intermediate_size") or 4 * hidden
    return hidden, cfg["num_hidden_layers"], intermediate, heads * head_dim, kv_heads, head_dim


def llama_param_count(cfg: Mapping[str, Any]) -> int:
    """Parameters of a Llama-style decoder from its config: embeddings, per layer attention
    (q, k, v, o + optional biases), SwiGLU MLP (gate, up, down) and two RMSNorms, the final
    norm, and an LM head unless tied to the embeddings."""
    hidden, layers, intermediate, q_dim, kv_heads, head_dim = _dims(cfg)
    kv_dim = kv_heads * head_dim
    attention = 2 * hidden * q_dim + 2 * hidden * kv_dim
    if cfg.get("attention_bias"):
        attention += q_dim + 2 * kv_dim + hidden
    mlp = 3 * hidden * intermediate + (2 * intermediate + hidden if cfg.get("mlp_bias") else 0)
    embeddings = cfg["vocab_size"] * hidden
    head = 0 if cfg.get("tie_word_embeddings", False) else embeddings
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden + head


def model_size(cfg: Mapping[str, Any], params: int | None = None, name: str = "base") -> ModelSize:
    """ModelSize from config fields; `params` (an exact count) overrides the Llama formula."""
    hidden, layers, intermediate, q_dim, kv_heads, head_dim = _dims(cfg)
    return ModelSize(
        params=params if params is not None else llama_param_count(cfg),
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        vocab=cfg["vocab_size"],
        q_dim=q_dim,
        kv_dim=kv_heads * head_dim,
        tied=bool(cfg.get("tie_word_embeddings", False)),
        name=name,
    )


def exact_param_count(config: Any) -> int:
    """Build the model on the meta device (no memory, no weights) and count its parameters;
    tied weights count once, as `model.parameters()` yields them once."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return sum(p.numel() for p in model.parameters())


def read_model_size(base_dir: Path = BASE_MODEL_DIR) -> ModelSize:
    from transformers import AutoConfig

    source, extra = base_source(base_dir)
    config = AutoConfig.from_pretrained(source, trust_remote_code=False, **extra)
    fields = config_fields(config)
    try:
        params: int | None = exact_param_count(config)
    except (ValueError, ImportError, KeyError):  # an architecture this transformers lacks
        params = None
    return model_size(fields, params, name=source)


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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cpu_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def total_ram() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        import psutil

        return psutil.virtual_memory().total


def measure_matmul_flops(device: str, dtype, seconds: float = 0.3) -> float:
    """Peak matmul FLOP/s of one device: square matmuls repeated for ~`seconds`."""
    import torch

    size = 4096 if device == "cuda" else 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    a @ b  # warm-up: kernel selection, thread pool start
    sync()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4):
            a @ b
        sync()
        runs += 4
    return 2 * size**3 * runs / (time.perf_counter() - started)


def detect_hardware(bf16_setting: bool | str = "auto", measure: bool = True) -> Hardware:
    """This machine: the first CUDA GPU (and how many), else the CPU; optionally its
    measured matmul rate in the dtype training will use."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        hw = Hardware(
            kind="cuda",
            name=props.name,
            memory_bytes=props.total_memory,
            devices=torch.cuda.device_count(),
            cores=cpu_cores(),
            bf16=torch.cuda.is_bf16_supported(),
        )
    else:
        hw = Hardware(
            kind="cpu",
            name=cpu_name(),
            memory_bytes=total_ram(),
            cores=cpu_cores(),
            bf16=cpu_has_fast_bf16(),
        )
    if not measure:
        return hw
    dtype = torch.bfloat16 if compute_bytes(bf16_setting, hw) == 2 else torch.float32
    flops = measure_matmul_flops(hw.kind, dtype)
    return Hardware(**{**asdict(hw), "matmul_flops": flops})


def collect(
    params: Params,
    train_rows: list[dict] | None,
    measured: Measured | None = None,
    measure: bool = True,
) -> Advice:
    """Advice for models/base on this machine (`train_rows` None: no split yet)."""
    data = read_data(train_rows) if train_rows is not None else DataFacts(rows=None)
    hardware = detect_hardware(params.train.bf16, measure=measure and measured is None)
    return advise(read_model_size(), hardware, data, params.train, measured)


def advice_from_smoke(params: Params, train_rows: list[dict], report: dict) -> Advice:
    """The smoke stage's advice, timed by its own measured seconds per step."""
    measured = Measured(report["seconds_per_step"], report["full_run_steps"])
    return collect(params, train_rows, measured)


def main() -> None:
    params = load_params()
    rows = read_jsonl(TRAIN_SPLIT) if TRAIN_SPLIT.exists() else None
    n_rows = len(rows) if rows is not None else None
    measured = read_measured(SMOKE_REPORT, n_rows, params.train)
    print(render(collect(params, rows, measured)))


if __name__ == "__main__":
    run_stage("advise", main)
