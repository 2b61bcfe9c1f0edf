"""Loading the base model, tokenizer and adapters the same way in every stage.

Security defaults: `trust_remote_code=False` and safetensors only, everywhere.
"""

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import StageError
from ..io import read_json
from .chat_template import fold_system_if_needed

MANIFEST = "manifest.json"
SAFE_LOADING = {"trust_remote_code": False, "use_safetensors": True}
SFT_POINTER = "sft_checkpoint.json"
"""In a DPO checkpoint: the SFT checkpoint its adapter was trained on top of."""
SFT_EXPORT = "sft_adapter"
"""Where an exported DPO checkpoint (models/selected) keeps a copy of that SFT checkpoint."""
# On CPUs with AVX512-BF16, importing bitsandbytes (peft does, whenever it is installed) logs
# a warning asking for `pip install kernels`, a package that downloads compiled code from the
# Hugging Face Hub at run time; without it bitsandbytes uses its own CPU kernel. Not advice
# to pass on: silence that one logger.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

QLORA_EXTRA = "qlora"
"""The pyproject extra that installs bitsandbytes (train.method: qlora)."""
BITSANDBYTES_MIN = "0.46.1"
"""The first bitsandbytes with 4-bit layers on the CPU, and transformers 5's own minimum.
Measured: the tiny model's QLoRA (nf4, double quantisation, fp32 or bf16 compute) trains on
the CPU with 0.46.1, 0.47.0, 0.48.2, 0.49.2 and 0.50.2; under bf16 autocast one 4-bit layer's
forward + backward took ~2x as long on 0.46.1 as on 0.49.2."""


def base_source(base_dir: Path) -> tuple[str, dict[str, Any]]:
    """Where to load the base model from: the materialised dir, or a pinned hub id."""
    manifest_path = base_dir / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.exists() else {}
    if manifest.get("kind") == "hub":
        return manifest["hub_id"], {"revision": manifest["revision"]}
    if not (base_dir / "config.json").exists():
        raise StageError(f"{base_dir} holds no model: run `dvc repro base` first")
    return str(base_dir), {}


METADATA_FILES = ["*.json", "*.jinja", "tokenizer.model", "*.tiktoken", "*.txt"]
"""What describes a model without its weights: config, tokenizer, chat template."""
SENTENCEPIECE = "tokenizer.model"


def metadata_dir(base_dir: Path) -> Path:
    """A local directory with the base's config and tokenizer files: models/base, or for a
    hub base those files of its pinned revision (downloaded into, or with HF_HUB_OFFLINE=1
    read from, the Hugging Face cache; the weights are fetched later, by the first loader)."""
    source, extra = base_source(base_dir)
    if source == str(base_dir):
        return base_dir
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, allow_patterns=METADATA_FILES, **extra))


def keep_sentencepiece(source: Path, out_dir: Path) -> None:
    """`source`'s SentencePiece tokenizer.model next to a tokenizer saved into `out_dir`:
    transformers 5 saves only tokenizer.json, and llama.cpp's converter reads Gemma's,
    Mistral's and Phi-3's vocabulary (scores, byte pieces) from tokenizer.model."""
    if (source / SENTENCEPIECE).is_file() and not (out_dir / SENTENCEPIECE).exists():
        shutil.copyfile(source / SENTENCEPIECE, out_dir / SENTENCEPIECE)


def load_tokenizer(base_dir: Path):
    """The base's tokenizer, the one every stage renders chats with. A chat template without a
    system role gets chat_template.SYSTEM_FOLDING in front, so a system prompt is folded into the
    first user turn the same way in curate, training, eval and the exports (merged.py saves
    this tokenizer)."""
    from transformers import AutoTokenizer

    source, extra = base_source(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **extra)
    if tokenizer.chat_template is None:
        raise StageError(f"the tokenizer of {source} has no chat template; use an instruct model")
    fold_system_if_needed(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(base_dir: Path, dtype: torch.dtype = torch.float32, **kw):
    """The base model; `quantization_config=quantization_config(...)` loads it in 4 bits."""
    from transformers import AutoModelForCausalLM

    source, extra = base_source(base_dir)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **SAFE_LOADING, **extra, **kw)
    if kw.get("quantization_config") is not None:
        keep_4bit_layers_differentiable(model)
    return model


def keep_4bit_layers_differentiable(model) -> None:
    """On CPUs with AVX512-BF16, bitsandbytes (0.49+) repacks a 4-bit layer for a fused
    inference kernel at its first forward in eval mode without gradients (an eval before or
    during training) and keeps using that kernel when training resumes; the kernel has no
    backward, so the gradient through every quantised layer is silently dropped (measured:
    the first layer's adapters got none, 76 % of the whole gradient was lost). Keep the
    layers on the dequantise-and-matmul path, which has one."""
    import bitsandbytes

    for module in model.modules():
        if isinstance(module, bitsandbytes.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def bitsandbytes_problem(device: str) -> str | None:
    """Why the installed bitsandbytes cannot run 4-bit layers on `device` (cpu, cuda), or None."""
    try:
        import bitsandbytes
    except ImportError:
        return f"bitsandbytes is not installed: pip install -e '.[{QLORA_EXTRA}]'"
    from packaging.version import Version

    version = getattr(bitsandbytes, "__version__", "0")
    devices = getattr(bitsandbytes, "supported_torch_devices", set())
    if Version(version) < Version(BITSANDBYTES_MIN) or device not in devices:
        return (
            f"bitsandbytes {version} has no 4-bit layers for {device}: "
            f"pip install -U 'bitsandbytes>={BITSANDBYTES_MIN}'"
        )
    return None


def quantization_config(bf16: bool):
    """The QLoRA paper's base (Dettmers et al. 2023): nf4 weights with double quantisation,
    computing in bf16 where the hardware runs it natively (`use_bf16`), else in float32
    (emulated bf16 on an AVX2-only CPU is ~100x slower)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )


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


def load_for_inference(checkpoint: Path | None, base_dir: Path, bf16: str | bool):
    """The base (None) or a checkpoint, merged (load_model_with_adapter), in eval mode, cast
    to bf16 where `bf16` (a params bf16 setting: auto, true, false) resolves to it."""
    model = load_model_with_adapter(checkpoint, base_dir).eval()
    return model.to(torch.bfloat16) if use_bf16(bf16) else model


def load_model_with_adapter(checkpoint: Path | None, base_dir: Path, quantization: Any = None):
    """Base model with a LoRA checkpoint merged in (or a full checkpoint, or the base alone).
    A DPO checkpoint is rebuilt as base -> SFT merged in -> DPO adapter merged in.

    With `quantization` (a `quantization_config`) the base is loaded in 4 bits and one
    adapter is applied unmerged: the model a QLoRA run trained (merging into a 4-bit base
    would quantise the sum again). Without it, a QLoRA adapter is merged into the float base,
    as eval and export use it."""
    if checkpoint is None:
        return load_base_model(base_dir, quantization_config=quantization)
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        below = sft_checkpoint_of(checkpoint)
        if quantization is not None:
            if below:
                raise ValueError(f"{checkpoint} is a stack of adapters: load it unquantised")
            base = load_base_model(base_dir, quantization_config=quantization)
            return PeftModel.from_pretrained(base, str(checkpoint))
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
