"""Build tiny random models of the families people fine-tune, offline, in about a second each.

Used by the tests (and the template's end-to-end test) so the whole pipeline runs in seconds:
`python tests/tiny_model.py OUT_DIR [FAMILY]` writes a safetensors model that `base.model` accepts.

"smollm2" (the default) is a tiny Llama with a ChatML template and a byte-level BPE tokenizer.
Every other family has its own transformers architecture with its quirks, the chat template its
instruct model publishes (tests/fixtures/chat_templates/, provenance in the README there), a
tokenizer of its kind with its special tokens and bos/eos/pad semantics (byte-level BPE with the
family's pre-tokenizer, or a real SentencePiece model with byte fallback), and the stop ids its
generation_config.json ships.
"""

import io
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = ("smollm2", "llama3", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mistral")
TEMPLATES_DIR = Path(__file__).resolve().parent / "fixtures" / "chat_templates"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "billing technical account shipping product low medium high true false",
    '{"category": "billing", "priority": "high", "needs_human": true, "reply": "Sorry!"}',
    "The quick brown fox jumps over the lazy dog. What is the capital of France? Paris.",
    "0 1 2 3 4 5 6 7 8 9 + - * / = . , ; : ! ? ' \" ( ) [ ] { } # $ % & @",
    "system user assistant Hello thanks please order refund password login app error",
]
# The families' tokenizers also learn the words of their chat turns and the date line Llama 3
# writes, so a rendered conversation is a few dozen tokens rather than a few hundred bytes.
FAMILY_CORPUS = CORPUS + [
    "model tool ipython Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n",
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n",
    "Environment: ipython\nYou are a helpful assistant. Answer in one word.\n\n",
]

# Llama 3's tokenizer.json splits digits in runs of up to three; Qwen's splits single digits.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
PHI3_SPECIALS = (
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
)
MISTRAL_CONTROLS = (
    "[INST]",
    "[/INST]",
    "[TOOL_CALLS]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
)
# Llama 2's SentencePiece settings, shared by Mistral and Phi-3 (whose tokenizer is Llama 2's).
LLAMA2_SPM = {"add_dummy_prefix": True, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1}
GEMMA_SPM = {
    "add_dummy_prefix": False,
    "pad_id": 0,
    "eos_id": 1,
    "bos_id": 2,
    "unk_id": 3,
    "pad_piece": "<pad>",
    "eos_piece": "<eos>",
    "bos_piece": "<bos>",
}
# Tiny, so that a test's prompt of a few dozen tokens reaches past the window.
GEMMA_SLIDING_WINDOW = 32


@dataclass(frozen=True)
class Family:
    """What a tiny model copies from its family's published instruct checkpoint."""

    architecture: str  # the transformers config class
    config: dict  # quirks of the architecture, on top of TINY
    tokenizer_class: str  # as the published tokenizer_config.json names it
    bos: str | None
    eos: str
    pad: str | None
    unk: str | None
    stop: tuple[str, ...] | str  # generation_config.json eos_token_id (a list, or one id)
    specials: tuple[str, ...] = ()  # special tokens after the base vocabulary, in id order
    plain_added: tuple[str, ...] = ()  # added tokens that are not special (<think>, <tool_call>)
    split_regex: str | None = None  # byte-level BPE families: the pre-tokenizer's Split regex
    spm: dict = field(default_factory=dict)  # SentencePiece families: the trainer's settings
    rstrip: tuple[str, ...] = ()  # added tokens that swallow the whitespace after them (Phi-3)
    tokenizer_config: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)  # generation_config.json's other ids
    pad_vocab_to: int = 1  # embedding rows rounded up, as Qwen and Phi-3 ship them


TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
FAMILY_SPECS = {
    # meta-llama/Llama-3.2-1B-Instruct
    "llama3": Family(
        architecture="LlamaConfig",
        config={
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-5,
            "max_position_embeddings": 131072,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        },
        tokenizer_class="PreTrainedTokenizerFast",
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,
        unk=None,
        stop=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        specials=LLAMA3_SPECIALS,
        split_regex=LLAMA3_SPLIT,
        tokenizer_config={"clean_up_tokenization_spaces": True, "model_max_length": 131072},
        generation={"bos_token_id": "<|begin_of_text|>"},
    ),
    # Qwen/Qwen2.5-0.5B-Instruct
    "qwen2": Family(
        architecture="Qwen2Config",
        config={
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "max_position_embeddings": 32768,
        },
        tokenizer_class="Qwen2Tokenizer",
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        unk=None,
        stop=("<|im_end|>", "<|endoftext|>"),
        specials=QWEN_SPECIALS,
        plain_added=("<tool_call>", "</tool_call>"),
        split_regex=QWEN_SPLIT,
        tokenizer_config={"model_max_length": 131072, "errors": "replace"},
        generation={"bos_token_id": "<|endoftext|>", "pad_token_id": "<|endoftext|>"},
        pad_vocab_to=128,
    ),
    # Qwen/Qwen3-0.6B: head_dim is its own setting (heads * head_dim != hidden_size)
    "qwen3": Family(
        architecture="Qwen3Config",
        config={
            "head_dim": 32,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "max_position_embeddings": 40960,
        },
        tokenizer_class="Qwen2Tokenizer",
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        unk=None,
        stop=("<|im_end|>", "<|endoftext|>"),
        specials=QWEN_SPECIALS,
        plain_added=(
            "<tool_call>",
            "</tool_call>",
            "<tool_response>",
            "</tool_response>",
            "<think>",
            "</think>",
        ),
        split_regex=QWEN_SPLIT,
        tokenizer_config={"model_max_length": 131072, "errors": "replace"},
        generation={"bos_token_id": "<|endoftext|>", "pad_token_id": "<|endoftext|>"},
        pad_vocab_to=128,
    ),
    # google/gemma-2-2b-it: soft-capping, alternating sliding/global layers, and
    # query_pre_attn_scalar equal to head_dim as in the 2B and 9B (llama.cpp assumes it)
    "gemma2": Family(
        architecture="Gemma2Config",
        config={
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "sliding_window": GEMMA_SLIDING_WINDOW,
            "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
        },
        tokenizer_class="GemmaTokenizer",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        stop=("<eos>", "<end_of_turn>"),
        specials=("<mask>", "<start_of_turn>", "<end_of_turn>"),
        spm=GEMMA_SPM,
        tokenizer_config={"add_bos_token": True, "add_eos_token": False},
        generation={"bos_token_id": "<bos>", "pad_token_id": "<pad>"},
    ),
    # google/gemma-3-1b-it (text only): q/k norms, local and global rope bases; with two
    # layers the 5:1 sliding:global pattern leaves both layers sliding
    "gemma3": Family(
        architecture="Gemma3TextConfig",
        config={
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": GEMMA_SLIDING_WINDOW,
            "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": 32768,
            "tie_word_embeddings": True,
            "rope_parameters": {
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            },
        },
        tokenizer_class="GemmaTokenizer",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        stop=("<eos>", "<end_of_turn>"),
        specials=(
            "<mask>",
            "<start_of_turn>",
            "<end_of_turn>",
            "<start_of_image>",
            "<end_of_image>",
        ),
        spm=GEMMA_SPM,
        tokenizer_config={"add_bos_token": True, "add_eos_token": False},
        generation={"bos_token_id": "<bos>", "pad_token_id": "<pad>"},
    ),
    # microsoft/Phi-3-mini-4k-instruct: fused qkv_proj and gate_up_proj, Llama 2's
    # SentencePiece vocabulary plus added chat tokens that strip the whitespace after them
    "phi3": Family(
        architecture="Phi3Config",
        config={
            "num_key_value_heads": 4,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "sliding_window": 2047,
            "max_position_embeddings": 4096,
            "original_max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
        },
        tokenizer_class="LlamaTokenizer",
        bos="<s>",
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        unk="<unk>",
        stop=("<|endoftext|>", "<|assistant|>", "<|end|>"),
        specials=PHI3_SPECIALS,
        spm=LLAMA2_SPM,
        rstrip=tuple(token for token in PHI3_SPECIALS if token != "<|endoftext|>"),
        tokenizer_config={
            "add_bos_token": False,
            "add_eos_token": False,
            "legacy": False,
            "padding_side": "left",
            "model_max_length": 4096,
        },
        generation={"bos_token_id": "<s>", "pad_token_id": "<|endoftext|>"},
        pad_vocab_to=64,
    ),
    # mistralai/Mistral-7B-Instruct-v0.3: [INST] and the tool tokens are control pieces of the
    # SentencePiece model itself (ids 3-9); no pad token; one eos id
    "mistral": Family(
        architecture="MistralConfig",
        config={
            "sliding_window": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
        },
        tokenizer_class="LlamaTokenizer",
        bos="<s>",
        eos="</s>",
        pad=None,
        unk="<unk>",
        stop="</s>",
        spm={**LLAMA2_SPM, "control_symbols": list(MISTRAL_CONTROLS)},
        tokenizer_config={"add_bos_token": True, "add_eos_token": False, "legacy": False},
        generation={"bos_token_id": "<s>"},
    ),
}


def chat_template(family: str) -> str:
    """The family's published chat template, verbatim."""
    if family == "smollm2":
        return CHAT_TEMPLATE
    return (TEMPLATES_DIR / f"{family}.jinja").read_text(encoding="utf-8")


def build_tokenizer(vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def byte_level_tokenizer(spec: Family, vocab_size: int = 640):
    """A byte-level BPE trained with the family's pre-tokenizer (Split regex, then ByteLevel);
    the special tokens follow the learned vocabulary, as in the published tokenizer.json."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    if spec.tokenizer_class == "Qwen2Tokenizer":
        backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(spec.split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(FAMILY_CORPUS * 20, trainer=trainer)
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in spec.specials]
    )
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.plain_added])
    if spec.bos is not None:  # Llama 3 starts every encoding with <|begin_of_text|>
        bos = (spec.bos, backend.token_to_id(spec.bos))
        backend.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{spec.bos} $A",
                    pair=f"{spec.bos} $A {spec.bos}:1 $B:1",
                    special_tokens=[bos],
                ),
            ]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        unk_token=spec.unk,
        **spec.tokenizer_config,
    )
    # Reload through the published class, as loading the real repository does (Qwen2Tokenizer
    # rebuilds its pipeline from the vocabulary and merges)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        _write_tokenizer_config(Path(tmp), spec)
        return AutoTokenizer.from_pretrained(tmp, trust_remote_code=False)


def sentencepiece_tokenizer(spec: Family, vocab_size: int = 512):
    """A real SentencePiece BPE model with byte fallback, trained in memory and loaded by the
    family's transformers class, as from a repository that ships only tokenizer.model."""
    import sentencepiece as spm
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    model = io.BytesIO()
    options = dict(spec.spm)
    # Gemma's chat tokens are user-defined pieces of the model and Mistral's control pieces;
    # Phi-3's are added after the model's vocabulary
    if spec.tokenizer_class == "GemmaTokenizer":
        options["user_defined_symbols"] = list(spec.specials)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(FAMILY_CORPUS * 20),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.model").write_bytes(model.getvalue())
        settings = {
            "tokenizer_class": spec.tokenizer_class,
            "bos_token": spec.bos,
            "unk_token": spec.unk,
            **spec.tokenizer_config,
        }
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(settings))
        tokenizer = AutoTokenizer.from_pretrained(tmp, trust_remote_code=False)
    added = [
        AddedToken(t, special=True, normalized=False, rstrip=t in spec.rstrip)
        for t in spec.specials + tuple(spec.spm.get("control_symbols", ()))
    ]
    tokenizer.add_special_tokens({"additional_special_tokens": added})
    tokenizer.add_special_tokens({"eos_token": spec.eos})
    if spec.pad is not None:
        tokenizer.add_special_tokens({"pad_token": spec.pad})
    return tokenizer, model.getvalue()


def _write_tokenizer_config(directory: Path, spec: Family) -> None:
    """Name the published class, keep the family's settings (llama.cpp's converter reads
    add_bos_token there) and drop what loading wrote back (`is_local`, a temporary vocab_file)."""
    path = directory / "tokenizer_config.json"
    settings = json.loads(path.read_text())
    for key in ("is_local", "local_files_only", "vocab_file"):
        settings.pop(key, None)
    settings.update(spec.tokenizer_config, tokenizer_class=spec.tokenizer_class)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def build_family_model(out_dir: Path, seed: int, family: str) -> Path:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = FAMILY_SPECS[family]
    torch.manual_seed(seed)
    sentencepiece_model = None
    if spec.split_regex is not None:
        tokenizer = byte_level_tokenizer(spec)
    else:
        tokenizer, sentencepiece_model = sentencepiece_tokenizer(spec)
    tokenizer.chat_template = chat_template(family)

    def ids(tokens):
        return tokenizer.convert_tokens_to_ids(tokens) if tokens is not None else None

    vocab_size = -(-len(tokenizer) // spec.pad_vocab_to) * spec.pad_vocab_to
    config = getattr(transformers, spec.architecture)(
        **{**TINY, **spec.config},
        vocab_size=vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = AutoModelForCausalLM.from_config(config)
    stop = ids(spec.stop) if isinstance(spec.stop, str) else ids(list(spec.stop))
    model.generation_config = GenerationConfig(
        eos_token_id=stop, **{key: ids(token) for key, token in spec.generation.items()}
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if sentencepiece_model is not None:  # the published repositories ship both files
        (out_dir / "tokenizer.model").write_bytes(sentencepiece_model)
    _write_tokenizer_config(out_dir, spec)
    return out_dir


def build_tiny_model(out_dir: Path, seed: int = 0, family: str = "smollm2") -> Path:
    """Write a ~0.1M-parameter model of `family` and its tokenizer to `out_dir` (safetensors)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if family != "smollm2":
        return build_family_model(out_dir, seed, family)
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    print(
        build_tiny_model(Path(sys.argv[1]), family=sys.argv[2] if len(sys.argv) > 2 else "smollm2")
    )
