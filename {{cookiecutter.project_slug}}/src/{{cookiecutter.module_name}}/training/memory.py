"""Training memory per device, per method, and the largest batch that fits.

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

from dataclasses import dataclass

from ..params import TrainParams
from .hardware import GIB, Hardware, compute_bytes
from .model_size import LINEAR_NAMES, ModelSize

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


@dataclass(frozen=True)
class MethodEstimate:
    method: str
    gib_at_batch_1: float
    gib_per_sequence: float
    max_batch: int
    fits: bool
    needs_checkpointing: bool = False  # fits only with train.gradient_checkpointing: true


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
