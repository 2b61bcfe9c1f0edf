"""GGUF export of a merged model, for llama.cpp and Ollama: any architecture llama.cpp's own
converter supports (llama_cpp.py runs it), checked against the chat template's end of turn.

f16 and q8_0 are written by the converter itself. q4_0 is what llama.cpp's compiled
llama-quantize makes from such a file; here the gguf package re-quantises the converter's
f16 file instead (every metadata key copied, the 2-D weights to Q4_0, the token embeddings
and output to Q8_0 where llama-quantize uses Q6_K, which gguf cannot write), which works for
every architecture because it only reads what the converter wrote."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from ..errors import StageError
from . import llama_cpp

Q = gguf.GGMLQuantizationType
GGUF_TYPES = ("f16", "q8_0", "q4_0")
"""export.gguf_types: f16/q8_0 from the converter, q4_0 re-quantised from its f16."""
REQUANTISED = {"q4_0": (gguf.LlamaFileType.MOSTLY_Q4_0, Q.Q4_0, Q.Q8_0)}
"""type -> (file type, 2-D weights, token embeddings and output)."""
KEEP_PRECISION = ("_norm", "ffn_gate_inp", "pos_embd", "token_types", "ssm_", "conv1d")
"""Tensors llama-quantize leaves unquantised (norms, MoE routers, positions, SSM state)."""
EMBEDDINGS = ("token_embd.weight", "output.weight")
# The token texts llama.cpp always treats as end of generation (llama-vocab.cpp, the EOG
# list), besides the eos/eot/eom ids in the metadata.
LLAMA_CPP_EOG_TEXTS = frozenset(
    {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
    }
)  # fmt: skip
ANSWER_PROBE = "Answer-probe 7"


@dataclass(frozen=True)
class ChatMetadata:
    """What a runtime needs to chat with the model as it was trained and evaluated."""

    chat_template: str
    eos_id: int
    eos_token: str
    """The tokenizer's EOS (Gemma's <eos>: not always the token an answer ends with)."""
    end_id: int
    end_token: str
    """The token the chat template ends an answer with (<|im_end|>, <|eot_id|>, <end_of_turn>,
    <|end|>, </s>): one of the generation config's eos ids, so generation stops there."""
    stop: tuple[str, ...]
    """Every token generation stops on: the answer's end first, then generation_config's."""
    bos_id: int | None
    bos_token: str | None
    add_bos: bool
    add_eos: bool


@dataclass(frozen=True)
class GgufExport:
    """What the GGUF files were written with, for reports/export.json."""

    converter: str
    architecture: str
    tokenizer: str
    pre_tokenizer: str | None
    notes: tuple[str, ...]
    stop_tokens: tuple[str, ...]
    files: dict[str, Path] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "converter": self.converter,
            "architecture": self.architecture,
            "tokenizer": self.tokenizer,
            "pre_tokenizer": self.pre_tokenizer,
            "notes": list(self.notes),
            "stop_tokens": list(self.stop_tokens),
            "files": {quant: path.name for quant, path in self.files.items()},
        }


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)


def generation_eos_ids(model_dir: Path) -> list[int]:
    """The eos_token_id(s) generation stops on: generation_config.json's, else config.json's."""
    for name in ("generation_config.json", "config.json"):
        path = model_dir / name
        if path.exists() and (eos := json.loads(path.read_text()).get("eos_token_id")) is not None:
            return eos if isinstance(eos, list) else [eos]
    return []


def answer_end(tokenizer) -> str:
    """What the chat template writes right after an assistant answer."""
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ANSWER_PROBE}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    return rendered.split(ANSWER_PROBE, 1)[-1]


def chat_metadata(model_dir: Path, tokenizer=None) -> ChatMetadata:
    """The chat template, end-of-answer token and stop tokens, checked against each other: the
    token the chat template ends an answer with (the one the model learned to stop on) must
    be one the generation config stops on; every one of those is a stop."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_dir)
    template = tokenizer.chat_template
    if not isinstance(template, str):
        raise StageError(f"{model_dir}: the tokenizer has no (single) chat template to export")
    eos_id, eos = tokenizer.eos_token_id, tokenizer.eos_token
    if eos_id is None:
        raise StageError(f"{model_dir}: the tokenizer has no eos_token")
    configured = generation_eos_ids(model_dir) or [eos_id]
    stops = dict(zip(tokenizer.convert_ids_to_tokens(configured), configured, strict=True))
    ending = answer_end(tokenizer)
    end = next((token for token in stops if token and ending.startswith(token)), None)
    if end is None:
        raise StageError(
            f"{model_dir}: the chat template ends an answer with {ending[:24]!r}, which is none "
            f"of the tokens generation stops on ({', '.join(stops)}: generation_config.json "
            "eos_token_id, else the tokenizer's EOS): add the id of the token the template ends "
            "answers with to generation_config.json's eos_token_id, or llama.cpp and Ollama "
            "would not stop where the model learned to"
        )
    with_special = tokenizer("a")["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    return ChatMetadata(
        chat_template=template,
        eos_id=eos_id,
        eos_token=eos,
        end_id=stops[end],
        end_token=end,
        stop=tuple(dict.fromkeys([end, *stops])),
        bos_id=tokenizer.bos_token_id,
        bos_token=tokenizer.bos_token,
        add_bos=with_special[:1] != bare[:1] and with_special[0] == tokenizer.bos_token_id,
        add_eos=with_special[-1:] != bare[-1:] and with_special[-1] == eos_id,
    )


def field_value(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    found = reader.fields.get(key)
    return default if found is None else found.contents()


def llama_cpp_stop_ids(reader: gguf.GGUFReader) -> set[int]:
    """The token ids llama.cpp ends generation on for this file: its eos/eot/eom ids and the
    tokens its vocabulary loader recognises by text."""
    ids = {field_value(reader, f"tokenizer.ggml.{kind}_token_id") for kind in ("eos", "eot", "eom")}
    tokens = field_value(reader, "tokenizer.ggml.tokens", [])
    ids |= {i for i, token in enumerate(tokens) if token in LLAMA_CPP_EOG_TEXTS}
    return ids - {None}


def check_gguf(path: Path, meta: ChatMetadata) -> gguf.GGUFReader:
    """A StageError unless llama.cpp reading `path` stops on the answer's end token and adds
    the BOS exactly when the tokenizer does."""
    reader = gguf.GGUFReader(path)
    tokens = field_value(reader, "tokenizer.ggml.tokens", [])
    if meta.end_id >= len(tokens) or tokens[meta.end_id] != meta.end_token:
        raise StageError(f"{path}: token {meta.end_id} is not {meta.end_token!r} in the GGUF")
    if meta.end_id not in llama_cpp_stop_ids(reader):
        raise StageError(
            f"{path}: llama.cpp would not stop generating on {meta.end_token!r}, the token the "
            "chat template ends answers with"
        )
    if bool(field_value(reader, "tokenizer.ggml.add_bos_token", False)) != meta.add_bos:
        raise StageError(f"{path}: add_bos_token differs from the tokenizer ({meta.add_bos})")
    return reader


KEPT_FROM_GGUF = frozenset(
    {"model_type", "architectures", "vocab_size", "dtype", "torch_dtype", "transformers_version"}
    | {"bos_token_id", "eos_token_id", "pad_token_id", "_name_or_path"}
)


def transformers_config(path: Path, reference=None):
    """The config transformers' GGUF loader reads for the file `path`, with every setting of
    `reference` (the model's own config) it has too, but the file's vocabulary and class (the
    loader maps tensors by it: Mistral's GGUF is a llama); without one, with the attention
    head size the file records (the loader reads no key_length for qwen3, and would keep
    Qwen3Config's default head_dim)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    if reference is not None:
        own = config.to_dict()
        config.update(
            {k: v for k, v in reference.to_dict().items() if k in own and k not in KEPT_FROM_GGUF}
        )
        return config
    reader = gguf.GGUFReader(path)
    arch = field_value(reader, gguf.Keys.General.ARCHITECTURE)
    key_length = field_value(reader, f"{arch}.attention.key_length")
    if key_length and getattr(config, "head_dim", key_length) != key_length:
        config.head_dim = int(key_length)
    return config


TRANSFORMERS_OWN_TOKENIZERS = {("phi3", "llama")}
"""(architecture, tokenizer model) whose GGUF tokenizer transformers rebuilds its own way: a
prefix space from a normalizer, no white space stripped after the chat tokens, where llama.cpp
(given converter_options) tokenizes as the Hugging Face tokenizer."""


def transformers_reads_tokenizer(reader: gguf.GGUFReader) -> bool:
    """Whether transformers' GGUF tokenizer for this file tokenizes as llama.cpp does."""
    arch = field_value(reader, gguf.Keys.General.ARCHITECTURE)
    return (arch, field_value(reader, "tokenizer.ggml.model")) not in TRANSFORMERS_OWN_TOKENIZERS


def tensor_type(name: str, shape: tuple[int, ...], source: Q, quant: str) -> Q:
    """The type of one tensor in the re-quantised file, as llama-quantize chooses for Q4_0:
    float 2-D weights quantised (embeddings and output at the higher type), the rest kept,
    and any tensor whose rows do not split into whole blocks kept as it was."""
    _, weights, embeddings = REQUANTISED[quant]
    if (
        source not in (Q.F32, Q.F16, Q.BF16)
        or len(shape) < 2
        or not name.endswith(".weight")
        or any(part in name for part in KEEP_PRECISION)
    ):
        return source
    qtype = embeddings if name in EMBEDDINGS else weights
    return qtype if shape[0] % gguf.GGML_QUANT_SIZES[qtype][0] == 0 else source


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, file_type: int) -> None:
    for item in reader.fields.values():
        if item.name.startswith("GGUF.") or item.name == gguf.Keys.General.ARCHITECTURE:
            continue  # written by GGUFWriter itself
        if item.name == gguf.Keys.General.ALIGNMENT:
            writer.add_custom_alignment(int(item.contents()))
        elif item.name == gguf.Keys.General.FILE_TYPE:
            writer.add_file_type(file_type)
        else:
            kind = item.types[0]
            sub = item.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(item.name, item.contents(), kind, sub_type=sub)


def quantized(tensor, qtype: Q, rows: int = 4096) -> np.ndarray:
    """`tensor` (float, memory-mapped) as `qtype`, a block of rows at a time, so memory holds
    the quantised tensor and one block in float32, not the whole tensor in float32."""
    data = tensor.data.reshape(-1, tensor.data.shape[-1])
    out = np.empty(gguf.quant_shape_to_byte_shape(data.shape, qtype), dtype=np.uint8)
    for start in range(0, len(data), rows):
        values = gguf.quants.dequantize(data[start : start + rows], tensor.tensor_type)
        out[start : start + rows] = gguf.quants.quantize(values, qtype)
    return out.reshape(gguf.quant_shape_to_byte_shape(tensor.data.shape, qtype))


def requantize(source: Path, out_path: Path, quant: str) -> Path:
    """Write `source` (a float GGUF) as `quant`, one tensor at a time: memory stays near the
    largest tensor."""
    file_type = REQUANTISED[quant][0]
    reader = gguf.GGUFReader(source)
    arch = field_value(reader, gguf.Keys.General.ARCHITECTURE)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=arch, endianess=reader.endianess)
    try:
        copy_metadata(reader, writer, file_type)
        plan = []
        for tensor in reader.tensors:
            shape = tuple(int(n) for n in tensor.shape)  # GGML order: row length first
            qtype = tensor_type(tensor.name, shape, tensor.tensor_type, quant)
            plan.append((tensor, qtype))
            if qtype == tensor.tensor_type:
                stored, dtype = tensor.data.shape, tensor.data.dtype
            else:
                stored = gguf.quant_shape_to_byte_shape(shape[::-1], qtype)
                dtype = np.dtype(np.uint8)
            nbytes = int(np.prod(stored)) * dtype.itemsize
            writer.add_tensor_info(tensor.name, stored, dtype, nbytes, raw_dtype=qtype)
        writer.write_header_to_file(path=partial)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor, qtype in plan:
            same = qtype == tensor.tensor_type
            writer.write_tensor_data(tensor.data if same else quantized(tensor, qtype))
        writer.close()
        partial.replace(out_path)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return out_path


def write_ggufs(model_dir: Path, paths: dict[str, Path], name: str | None = None) -> GgufExport:
    """Convert the merged model in `model_dir` into each GGUF type of `paths` (type -> file),
    every file checked against the chat template's end of turn and the tokenizer's BOS."""
    if unknown := [quant for quant in paths if quant not in GGUF_TYPES]:
        raise StageError(f"GGUF type {unknown[0]!r} is not one of {', '.join(GGUF_TYPES)}")
    tokenizer = load_tokenizer(model_dir)
    meta = chat_metadata(model_dir, tokenizer)
    options, extra = converter_options(model_dir, tokenizer, meta, name)
    notes: list[str] = []
    for quant in [quant for quant in paths if quant not in REQUANTISED]:
        notes += llama_cpp.convert(model_dir, paths[quant], quant, options, extra).notes
    if requantised := [quant for quant in paths if quant in REQUANTISED]:
        first = paths[requantised[0]]
        source = paths.get("f16") or first.with_name(first.stem + ".f16-source.gguf")
        try:
            if "f16" not in paths:
                notes += llama_cpp.convert(model_dir, source, "f16", options, extra).notes
            for quant in requantised:
                requantize(source, paths[quant], quant)
        finally:
            if "f16" not in paths:
                source.unlink(missing_ok=True)
    reader = [check_gguf(path, meta) for path in paths.values()][0]
    return GgufExport(
        converter=llama_cpp.converter_label(),
        architecture=field_value(reader, gguf.Keys.General.ARCHITECTURE),
        tokenizer=field_value(reader, "tokenizer.ggml.model"),
        pre_tokenizer=field_value(reader, "tokenizer.ggml.pre"),
        notes=tuple(dict.fromkeys(notes)),
        stop_tokens=meta.stop,
        files=dict(paths),
    )


def space_after_special(tokenizer, meta: ChatMetadata) -> bool:
    """Whether the tokenizer writes text that follows a special token with a leading "▁" (a
    SentencePiece tokenizer with `legacy: true`), as llama.cpp does when add_space_prefix is
    set; `legacy: false` (Gemma, Mistral v0.3, Phi-3) writes it only at the start of a text."""
    ids = tokenizer.encode(meta.end_token + "a", add_special_tokens=False)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return len(pieces) > 1 and pieces[1].startswith("\u2581")


def rstrip_specials(model_dir: Path) -> bool:
    """Whether tokenizer.json's special tokens swallow the white space after them (Phi-3's
    chat tokens); llama.cpp does that only for a model whose general.name says phi3."""
    path = model_dir / "tokenizer.json"
    added = json.loads(path.read_text()).get("added_tokens", []) if path.exists() else []
    return any(token.get("special") and token.get("rstrip") for token in added)


def converter_options(model_dir: Path, tokenizer, meta: ChatMetadata, name: str | None):
    """(convert_runner options, converter arguments) that make llama.cpp read the file as the
    HF tokenizer (`model_dir`'s) and chat template work: the end of turn, the BOS, the
    SentencePiece space prefix, and a general.name naming phi3 where the chat tokens strip
    white space."""
    options = {
        "eot-id": meta.end_id,
        "add-bos": meta.add_bos,
        "add-space-prefix": space_after_special(tokenizer, meta),
    }
    if rstrip_specials(model_dir) and not re.search("phi-?3", (name or model_dir.name).lower()):
        name = f"{name or model_dir.name} phi3"  # llama.cpp's llama-vocab.cpp keys on the name
    return options, [] if name is None else ["--model-name", name]


def write_gguf(
    model_dir: Path, out_path: Path, quant: str = "f16", name: str | None = None
) -> Path:
    """Convert the merged model in `model_dir` into the GGUF file `out_path` (`quant`: one of
    GGUF_TYPES)."""
    write_ggufs(model_dir, {quant: out_path}, name)
    return out_path
