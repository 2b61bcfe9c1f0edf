"""The merged export: the base with the selected adapter (or adapter stack) merged in, saved
as safetensors in the dtype people serve, with the tokenizer, chat template and generation
config (its EOS) the model was trained with, and the base's SentencePiece model where it has
one."""

from pathlib import Path

import torch

from ..models.loading import (
    keep_sentencepiece,
    load_model_with_adapter,
    load_tokenizer,
    metadata_dir,
)

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def save_merged(model, out_dir: Path, dtype: str, base_dir: Path) -> Path:
    """Save a merged model in `dtype`, with the training tokenizer (the base's, in `base_dir`).
    The cast is in place: save the float32 copy first when one is needed too."""
    model.to(DTYPES[dtype]).save_pretrained(out_dir, safe_serialization=True)
    load_tokenizer(base_dir).save_pretrained(out_dir)
    keep_sentencepiece(metadata_dir(base_dir), out_dir)
    return out_dir


def write_merged(selected: Path, out_dir: Path, dtype: str, base_dir: Path) -> Path:
    """Merge in float32 (merging in bf16 would round the adapter's small update away), then
    save in `dtype`."""
    return save_merged(load_model_with_adapter(selected, base_dir), out_dir, dtype, base_dir)
