"""Whether a base model's exports can be written, asked before any training.

Reads the model directory's config, tokenizer files and chat template only (no weights): the
chat template's end of turn against the generation config's stop ids, the Ollama Go template
with render parity, and llama.cpp's converter run with --vocab-only (its architecture
registry, its tokenizer readers and pre-tokenizer names, the stop tokens llama.cpp would see),
a few seconds in all."""

import tempfile
from pathlib import Path

from ..errors import StageError
from ..models.chat_template import fold_system_if_needed
from . import llama_cpp
from .gguf import GGUF_TYPES, chat_metadata, check_gguf, converter_options, load_tokenizer
from .ollama import ollama_chat

FIX = "or set export.formats: [merged]"


def gguf_problems(model_dir: Path, tokenizer) -> list[str]:
    try:
        meta = chat_metadata(model_dir, tokenizer)
    except StageError as error:
        return [f"{error} ({FIX})"]
    problems = []
    try:
        ollama_chat(tokenizer, meta)
    except StageError as error:
        problems.append(str(error))
    with tempfile.TemporaryDirectory() as scratch:
        vocabulary = Path(scratch) / "vocab.gguf"
        try:
            options, extra = converter_options(model_dir, tokenizer, meta, None)
            llama_cpp.convert(model_dir, vocabulary, "f16", options, [*extra, "--vocab-only"])
            check_gguf(vocabulary, meta)
        except StageError as error:
            problems.append(str(error) if FIX in str(error) else f"{error} ({FIX})")
    return problems


def export_problems(model_dir: Path, formats, gguf_types) -> list[str]:
    """Every reason the exports `formats` (and GGUF `gguf_types`) cannot be written for the
    model in `model_dir` (config.json and tokenizer files; weights not needed), each naming
    its fix; empty when they can."""
    if "gguf" not in formats:
        return []
    if unknown := [quant for quant in gguf_types if quant not in GGUF_TYPES]:
        return [f"GGUF types {unknown} are not among {', '.join(GGUF_TYPES)}: fix gguf_types"]
    if not (model_dir / "config.json").exists():
        return [f"{model_dir} has no config.json: not a Hugging Face model directory"]
    tokenizer = load_tokenizer(model_dir)
    fold_system_if_needed(tokenizer)  # as models.loading.load_tokenizer, whose copy is exported
    return gguf_problems(model_dir, tokenizer)
