"""The size of a base model from its transformers config: its parameters (counted exactly on
the meta device, or by the Llama formula) and the shapes of the linear layers LoRA adapts."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.loading import base_source

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


def read_model_size(base_dir: Path) -> ModelSize:
    """The size of the base model in `base_dir` (its config only: no weights are loaded)."""
    from transformers import AutoConfig

    source, extra = base_source(base_dir)
    config = AutoConfig.from_pretrained(source, trust_remote_code=False, **extra)
    fields = config_fields(config)
    try:
        params: int | None = exact_param_count(config)
    except (ValueError, ImportError, KeyError):  # an architecture this transformers lacks
        params = None
    return model_size(fields, params, name=source)
