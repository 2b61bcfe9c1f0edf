"""Loading the base model, tokenizer and adapters the same way in every stage.

Security defaults: `trust_remote_code=False` and safetensors only, everywhere.
"""

import functools
from pathlib import Path
from typing import Any

import torch

from .jsonio import read_json
from .paths import BASE_MODEL_DIR

MANIFEST = "manifest.json"
SAFE_LOADING = {"trust_remote_code": False, "use_safetensors": True}


def base_source(base_dir: Path = BASE_MODEL_DIR) -> tuple[str, dict[str, Any]]:
    """Where to load the base model from: the materialised dir, or a pinned hub id."""
    manifest_path = base_dir / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.exists() else {}
    if manifest.get("kind") == "hub":
        return manifest["hub_id"], {"revision": manifest["revision"]}
    if not (base_dir / "config.json").exists():
        raise FileNotFoundError(f"{base_dir} holds no model: run `dvc repro base` first")
    return str(base_dir), {}


def load_tokenizer(base_dir: Path = BASE_MODEL_DIR):
    from transformers import AutoTokenizer

    source, extra = base_source(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **extra)
    if tokenizer.chat_template is None:
        raise ValueError(f"the tokenizer of {source} has no chat template; use an instruct model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(base_dir: Path = BASE_MODEL_DIR, dtype: torch.dtype = torch.float32, **kw):
    from transformers import AutoModelForCausalLM

    source, extra = base_source(base_dir)
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **SAFE_LOADING, **extra, **kw)


def load_model_with_adapter(checkpoint: Path | None, base_dir: Path = BASE_MODEL_DIR):
    """Base model with a LoRA checkpoint merged in (or a full checkpoint, or the base alone)."""
    if checkpoint is None:
        return load_base_model(base_dir)
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base_model(base_dir), str(checkpoint))
        return model.merge_and_unload()
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(checkpoint), **SAFE_LOADING)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively (AVX512-BF16 or AMX); emulated bf16 on
    plain AVX2 is ~100x slower than fp32, so 'auto' must not pick it there."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(setting: bool | str) -> bool:
    """Resolve a params `bf16: auto|true|false` against the hardware at hand."""
    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def has_gpu() -> bool:
    return torch.cuda.is_available()
