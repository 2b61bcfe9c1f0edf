"""Exporting the selected checkpoint to models/selected: its weights and tokenizer (never
optimizer state) and the SFT adapter below a DPO one. The merged and GGUF exports are the
export stage's (export/)."""

import shutil
from pathlib import Path

from ..io import write_json
from ..models.loading import SFT_EXPORT, SFT_POINTER, sft_checkpoint_of

EXPORTED_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


def copy_weights(checkpoint: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True)
    for name in EXPORTED_FILES:
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, out_dir / name)


def export(checkpoint: Path, out_dir: Path, selection: dict) -> None:
    """Copy the selected weights (adapter or full model) and tokenizer, not optimizer state.
    A DPO checkpoint takes its SFT checkpoint along (as sft_adapter/), so the export loads on
    its own with `load_model_with_adapter`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    copy_weights(checkpoint, out_dir)
    sft = sft_checkpoint_of(checkpoint)
    if sft is not None:
        shutil.copy2(checkpoint / SFT_POINTER, out_dir / SFT_POINTER)
        copy_weights(sft, out_dir / SFT_EXPORT)
    write_json(out_dir / "selection.json", selection)
