"""The merged export: the base with the selected adapter (or adapter stack) merged in, saved
as safetensors in the dtype people serve, with the tokenizer, chat template and generation
config (its EOS) the model was trained with, and the base's SentencePiece model where it has
one."""

import shutil
from pathlib import Path

import torch

from ..paths import BASE_MODEL_DIR
from ..training.modeling import base_source, load_model_with_adapter, load_tokenizer

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
SENTENCEPIECE = "tokenizer.model"


def base_file(name: str, base_dir: Path = BASE_MODEL_DIR) -> Path | None:
    """`name` from the base (models/base, or the pinned hub revision), None if it has none."""
    source, extra = base_source(base_dir)
    if Path(source).is_dir():
        path = Path(source) / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, name, **extra))
    except EntryNotFoundError:
        return None


def copy_sentencepiece(out_dir: Path) -> None:
    """The base's SentencePiece model next to the saved tokenizer: transformers saves only
    tokenizer.json, and llama.cpp's converter reads Gemma's, Mistral's and Phi-3's vocabulary
    (scores, byte pieces) from tokenizer.model."""
    if not (out_dir / SENTENCEPIECE).exists() and (found := base_file(SENTENCEPIECE)):
        shutil.copyfile(found, out_dir / SENTENCEPIECE)


def save_merged(model, out_dir: Path, dtype: str) -> Path:
    """Save a merged model in `dtype`, with the training tokenizer. The cast is in place: save
    the float32 copy first when one is needed too."""
    model.to(DTYPES[dtype]).save_pretrained(out_dir, safe_serialization=True)
    load_tokenizer().save_pretrained(out_dir)
    copy_sentencepiece(out_dir)
    return out_dir


def write_merged(selected: Path, out_dir: Path, dtype: str) -> Path:
    """Merge in float32 (merging in bf16 would round the adapter's small update away), then
    save in `dtype`."""
    return save_merged(load_model_with_adapter(selected), out_dir, dtype)
