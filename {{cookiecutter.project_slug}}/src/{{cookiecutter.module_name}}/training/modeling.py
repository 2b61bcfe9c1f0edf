"""Loading the base model, tokenizer and adapters the same way in every stage.

Security defaults: `trust_remote_code=False` and safetensors only, everywhere.
"""

import functools
from pathlib import Path
from typing import Any

import torch

from ..errors import StageError
from ..io import read_json
from ..paths import BASE_MODEL_DIR

MANIFEST = "manifest.json"
SAFE_LOADING = {"trust_remote_code": False, "use_safetensors": True}
SFT_POINTER = "sft_checkpoint.json"
"""In a DPO checkpoint: the SFT checkpoint its adapter was trained on top of."""
SFT_EXPORT = "sft_adapter"
"""Where an exported DPO checkpoint (models/selected) keeps a copy of that SFT checkpoint."""


def base_source(base_dir: Path = BASE_MODEL_DIR) -> tuple[str, dict[str, Any]]:
    """Where to load the base model from: the materialised dir, or a pinned hub id."""
    manifest_path = base_dir / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.exists() else {}
    if manifest.get("kind") == "hub":
        return manifest["hub_id"], {"revision": manifest["revision"]}
    if not (base_dir / "config.json").exists():
        raise StageError(f"{base_dir} holds no model: run `dvc repro base` first")
    return str(base_dir), {}


def load_tokenizer(base_dir: Path = BASE_MODEL_DIR):
    from transformers import AutoTokenizer

    source, extra = base_source(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **extra)
    if tokenizer.chat_template is None:
        raise StageError(f"the tokenizer of {source} has no chat template; use an instruct model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(base_dir: Path = BASE_MODEL_DIR, dtype: torch.dtype = torch.float32, **kw):
    from transformers import AutoModelForCausalLM

    source, extra = base_source(base_dir)
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **SAFE_LOADING, **extra, **kw)


def sft_checkpoint_of(checkpoint: Path) -> Path | None:
    """The SFT checkpoint a DPO checkpoint is stacked on (None for any other checkpoint): the
    exported copy beside it, else the path its sft_checkpoint.json names."""
    pointer = checkpoint / SFT_POINTER
    if not pointer.exists():
        return None
    exported = checkpoint / SFT_EXPORT
    below = exported if exported.is_dir() else Path(read_json(pointer)["path"])
    if not below.is_dir():
        raise StageError(
            f"{checkpoint} was trained on top of the SFT checkpoint {below}, which is gone: "
            "run `dvc repro` so the dpo stage trains again on the current SFT checkpoints"
        )
    return below


def adapter_stack(checkpoint: Path | None) -> list[Path]:
    """The checkpoint dirs that make up a model on top of the base, bottom first: [] for the
    base, [sft] for an SFT checkpoint, [sft, dpo] for a DPO one."""
    if checkpoint is None:
        return []
    below = sft_checkpoint_of(checkpoint)
    return [*adapter_stack(below), checkpoint] if below else [checkpoint]


def load_model_with_adapter(checkpoint: Path | None, base_dir: Path = BASE_MODEL_DIR):
    """Base model with a LoRA checkpoint merged in (or a full checkpoint, or the base alone).
    A DPO checkpoint is rebuilt as base -> SFT merged in -> DPO adapter merged in."""
    if checkpoint is None:
        return load_base_model(base_dir)
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        below = sft_checkpoint_of(checkpoint)
        model = load_model_with_adapter(below, base_dir) if below else load_base_model(base_dir)
        return PeftModel.from_pretrained(model, str(checkpoint)).merge_and_unload()
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
