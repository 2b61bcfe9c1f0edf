"""The tiny models of each family are faithful enough to prove a stage works for that family.

Each family's tiny model must load with the Auto classes (no remote code), carry its instruct
model's published chat template verbatim, tokenize a rendered conversation back to the same text
with every special token a single id, stop generating on the ids its generation_config.json
lists, and have its architecture's quirks. The facts below are the published checkpoints', written
out independently of tests/tiny_model.py so that a wrong tiny model fails here.
"""

import hashlib
import json
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
from jinja2.exceptions import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor

from tiny_model import CHAT_TEMPLATE, FAMILIES, TEMPLATES_DIR, build_tiny_model

# bos/eos/pad/unk and stop tokens as each instruct model's tokenizer_config.json and
# generation_config.json publish them; `turn` are the special tokens its chat template writes.
FACTS = {
    "smollm2": {
        "model": "LlamaForCausalLM",
        "model_type": "llama",
        "tokens": ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|endoftext|>"),
        "stop": "<|im_end|>",
        "adds_bos": False,
        "turn": ("<|im_start|>", "<|im_end|>"),
        "kind": "byte-level",
    },
    "llama3": {
        "model": "LlamaForCausalLM",
        "model_type": "llama",
        "tokens": ("<|begin_of_text|>", "<|eot_id|>", None, None),
        "stop": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
        "adds_bos": True,
        "turn": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "kind": "byte-level",
        "digits": ["123", "45"],  # Llama 3 splits digit runs in threes
    },
    "qwen2": {
        "model": "Qwen2ForCausalLM",
        "model_type": "qwen2",
        "tokens": (None, "<|im_end|>", "<|endoftext|>", None),
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "adds_bos": False,
        "turn": ("<|im_start|>", "<|im_end|>"),
        "kind": "byte-level",
        "digits": ["1", "2", "3", "4", "5"],  # Qwen splits every digit
    },
    "qwen3": {
        "model": "Qwen3ForCausalLM",
        "model_type": "qwen3",
        "tokens": (None, "<|im_end|>", "<|endoftext|>", None),
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "adds_bos": False,
        "turn": ("<|im_start|>", "<|im_end|>", "<think>", "</think>"),
        "kind": "byte-level",
        "digits": ["1", "2", "3", "4", "5"],
    },
    "gemma2": {
        "model": "Gemma2ForCausalLM",
        "model_type": "gemma2",
        "tokens": ("<bos>", "<eos>", "<pad>", "<unk>"),
        "stop": ["<eos>", "<end_of_turn>"],
        "adds_bos": True,
        "turn": ("<bos>", "<start_of_turn>", "<end_of_turn>"),
        "kind": "sentencepiece",
    },
    "gemma3": {
        "model": "Gemma3ForCausalLM",
        "model_type": "gemma3_text",
        "tokens": ("<bos>", "<eos>", "<pad>", "<unk>"),
        "stop": ["<eos>", "<end_of_turn>"],
        "adds_bos": True,
        "turn": ("<bos>", "<start_of_turn>", "<end_of_turn>"),
        "kind": "sentencepiece",
    },
    "phi3": {
        "model": "Phi3ForCausalLM",
        "model_type": "phi3",
        "tokens": ("<s>", "<|endoftext|>", "<|endoftext|>", "<unk>"),
        "stop": ["<|endoftext|>", "<|assistant|>", "<|end|>"],
        "adds_bos": False,
        "turn": ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"),
        "kind": "sentencepiece",
    },
    "mistral": {
        "model": "MistralForCausalLM",
        "model_type": "mistral",
        "tokens": ("<s>", "</s>", None, "<unk>"),
        "stop": "</s>",  # Mistral ships a single eos id, not a list
        "adds_bos": True,
        "turn": ("<s>", "[INST]", "[/INST]", "</s>"),
        "kind": "sentencepiece",
    },
}
CHAT = [
    {"role": "user", "content": 'Refund order 12345? {"priority": "high"}'},
    {"role": "assistant", "content": "Sorry! Café refund\n\nis done: 42 ☕."},
]
SYSTEM = {"role": "system", "content": "You triage tickets. Answer in JSON."}
# Phi-3's chat tokens are added with rstrip=True: they swallow the newline the template writes
PHI3_RSTRIP = re.compile(r"(<\|(?:system|user|assistant|end)\|>)\s+")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(family, model dir, tokenizer): each family built once for the module."""
    directory = build_tiny_model(tmp_path_factory.mktemp(request.param), family=request.param)
    return request.param, directory, AutoTokenizer.from_pretrained(directory)


def test_every_family_has_its_facts() -> None:
    assert set(FACTS) == set(FAMILIES)


def test_it_loads_with_the_auto_classes_as_the_family_architecture(family) -> None:
    name, directory, _ = family
    model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=False)
    assert type(model).__name__ == FACTS[name]["model"]
    assert model.config.model_type == FACTS[name]["model_type"]
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert (directory / "model.safetensors").exists()
    assert not list(directory.glob("*.bin"))


def test_the_special_tokens_are_the_published_ones(family) -> None:
    name, _, tokenizer = family
    bos, eos, pad, unk = FACTS[name]["tokens"]
    assert (tokenizer.bos_token, tokenizer.eos_token) == (bos, eos)
    assert (tokenizer.pad_token, tokenizer.unk_token) == (pad, unk)
    ids = tokenizer("refund").input_ids
    assert (ids[0] == tokenizer.bos_token_id) is FACTS[name]["adds_bos"]
    for token in FACTS[name]["turn"]:
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id], token
        assert token_id != tokenizer.unk_token_id


def test_the_chat_template_is_the_published_one(family) -> None:
    name, directory, tokenizer = family
    if name == "smollm2":  # the tiny model's own ChatML
        published = CHAT_TEMPLATE
    else:
        published = (TEMPLATES_DIR / f"{name}.jinja").read_text(encoding="utf-8")
    assert tokenizer.chat_template == published
    assert (directory / "chat_template.jinja").read_text(encoding="utf-8") == published


@pytest.mark.parametrize("with_system", [False, True], ids=["user-assistant", "system"])
def test_a_rendered_chat_round_trips_through_the_tokenizer(family, with_system: bool) -> None:
    name, _, tokenizer = family
    messages = [SYSTEM, *CHAT] if with_system else CHAT
    if name == "gemma2" and with_system:
        with pytest.raises(TemplateError, match="System role not supported"):
            tokenizer.apply_chat_template(messages, tokenize=False)
        return
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert CHAT[0]["content"] in text and CHAT[1]["content"].strip() in text
    ids = tokenizer(text, add_special_tokens=False).input_ids
    expected = PHI3_RSTRIP.sub(r"\1", text) if name == "phi3" else text
    assert tokenizer.decode(ids) == expected
    for token in FACTS[name]["turn"]:
        assert ids.count(tokenizer.convert_tokens_to_ids(token)) == text.count(token), token


def test_mistral_writes_the_system_prompt_into_the_last_user_turn_only(tmp_path: Path) -> None:
    """Mistral v0.3's template puts the system prompt before the last user message, so a
    training row that ends with the answer loses it."""
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path, family="mistral"))
    row = tokenizer.apply_chat_template([SYSTEM, *CHAT], tokenize=False)
    prompt = tokenizer.apply_chat_template([SYSTEM, CHAT[0]], tokenize=False)
    assert SYSTEM["content"] not in row
    assert f"[INST] {SYSTEM['content']}\n\n{CHAT[0]['content']}[/INST]" in prompt


class Force(LogitsProcessor):
    """Greedy decoding that emits `tokens`, one a step, then the last one for ever."""

    def __init__(self, prompt_length: int, tokens: list[int]):
        self.prompt_length, self.tokens = prompt_length, tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        step = min(input_ids.shape[1] - self.prompt_length, len(self.tokens) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.tokens[step]] = 0.0
        return forced


def generate(directory: Path, tokenizer, tokens: list[int]) -> list[int]:
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    prompt = tokenizer.apply_chat_template(
        CHAT[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    length = prompt["input_ids"].shape[1]
    with torch.no_grad():
        output = model.generate(
            **prompt,
            max_new_tokens=6,
            do_sample=False,
            logits_processor=[Force(length, tokens)],
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return output[0, length:].tolist()


def test_generation_stops_on_each_published_stop_token(family) -> None:
    name, directory, tokenizer = family
    stop = GenerationConfig.from_pretrained(directory).eos_token_id
    expected = FACTS[name]["stop"]
    assert stop == tokenizer.convert_tokens_to_ids(expected)
    word = tokenizer.encode("refund", add_special_tokens=False)[0]
    assert generate(directory, tokenizer, [word]) == [word] * 6  # runs to max_new_tokens
    for stop_id in stop if isinstance(stop, list) else [stop]:
        assert generate(directory, tokenizer, [word, word, stop_id]) == [word, word, stop_id]


def layer(directory: Path):
    model = AutoModelForCausalLM.from_pretrained(directory)
    return model.config, model.model.layers[0]


def test_the_architecture_has_the_family_quirks(family) -> None:
    name, directory, tokenizer = family
    config, block = layer(directory)
    attention = block.self_attn
    if name == "llama3":
        assert config.rope_parameters["rope_theta"] == 500000.0
        assert config.rope_parameters["rope_type"] == "llama3"
    if name == "qwen2":
        assert all(
            p.bias is not None for p in (attention.q_proj, attention.k_proj, attention.v_proj)
        )
        assert attention.o_proj.bias is None
    if name == "qwen3":
        assert attention.q_norm is not None and attention.k_norm is not None
        assert attention.q_proj.bias is None
        assert attention.q_proj.out_features == config.num_attention_heads * config.head_dim != 64
    if name == "gemma2":
        assert (config.attn_logit_softcapping, config.final_logit_softcapping) == (50.0, 30.0)
        assert config.query_pre_attn_scalar == config.head_dim
        assert config.layer_types == ["sliding_attention", "full_attention"]
        assert config.sliding_window is not None
    if name == "gemma3":
        assert attention.q_norm is not None and attention.k_norm is not None
        assert config.sliding_window is not None
    if name == "phi3":
        assert hasattr(attention, "qkv_proj") and not hasattr(attention, "q_proj")
        assert hasattr(block.mlp, "gate_up_proj")
    if name == "mistral":
        assert config.sliding_window is None
    # Qwen and Phi-3 ship more embedding rows than tokens; the others exactly as many
    padded = name in ("qwen2", "qwen3", "phi3")
    assert (config.vocab_size > len(tokenizer)) is padded
    assert config.vocab_size >= len(tokenizer) and 300 <= len(tokenizer) <= 1024


def test_the_tokenizer_is_of_the_family_kind(family) -> None:
    name, directory, tokenizer = family
    pieces = json.loads((directory / "tokenizer.json").read_text())
    if FACTS[name]["kind"] == "byte-level":
        assert not (directory / "tokenizer.model").exists()
        assert "ByteLevel" in json.dumps(pieces["pre_tokenizer"])
        if "digits" in FACTS[name]:
            split = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str("12345")
            assert [piece for piece, _ in split] == FACTS[name]["digits"]
        return
    import sentencepiece

    assert pieces["model"]["byte_fallback"] is True
    model = sentencepiece.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    vocabulary = tokenizer.get_vocab()
    assert all(vocabulary[model.id_to_piece(i)] == i for i in range(model.get_piece_size()))
    assert model.piece_to_id("<0xE2>") != model.unk_id()  # byte fallback pieces
    # tokenizer.json (transformers) and tokenizer.model (llama.cpp's converter) agree
    for text in ("Refund order 12345?", "Café ☕ is done.\n\nThanks"):
        assert tokenizer.encode(text, add_special_tokens=False) == model.encode(text)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_a_build_is_deterministic(family, tmp_path: Path) -> None:
    name, directory, _ = family
    again = build_tiny_model(tmp_path / "again", family=name)
    other = build_tiny_model(tmp_path / "other", seed=1, family=name)
    assert digest(again) == digest(directory)
    assert digest(other)["model.safetensors"] != digest(directory)["model.safetensors"]


def test_the_command_line_builds_a_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Path(__file__).with_name("tiny_model.py")
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path), "gemma3"])
    runpy.run_path(str(script), run_name="__main__")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"
    with pytest.raises(ValueError, match="unknown family"):
        build_tiny_model(tmp_path / "x", family="gpt2")
