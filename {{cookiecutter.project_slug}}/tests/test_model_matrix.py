"""The model matrix: a tiny random model of every family people fine-tune (tests/tiny_model.py:
SmolLM2's Llama/ChatML, Llama 3, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3, Mistral), each with the
chat template its family publishes and a tokenizer of its kind, through every stage of the
pipeline, in process: check_params, base, curate, split, smoke, train, eval, select, export.

The data holds system prompts (Gemma 2's template has no system role: they are folded into
the first user turn) and a multi-turn row (every assistant turn is trained)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.data.masking import ChatEncoder
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.models.chat_template import folds_system
from {{ cookiecutter.module_name }}.models.loading import (
    load_base_model,
    load_model_with_adapter,
    load_tokenizer,
)
from {{ cookiecutter.module_name }}.paths import (
    BASE_MODEL_DIR,
    CURATE_REPORT,
    DATA_REPORT,
    EXPORT_DIR,
    EXPORT_REPORT,
    MERGED_EXPORT,
    METRICS,
    RL_EVAL_DIR,
    RL_STATS,
    SELECTED_DIR,
    SMOKE_REPORT,
)
from {{ cookiecutter.module_name }}.stages import base as base_stage
from {{ cookiecutter.module_name }}.stages import check_params as check_params_stage
from {{ cookiecutter.module_name }}.stages import curate as curate_stage
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import eval_rl as eval_rl_stage
from {{ cookiecutter.module_name }}.stages import export as export_stage
from {{ cookiecutter.module_name }}.stages import replay as replay_stage
from {{ cookiecutter.module_name }}.stages import rl as rl_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage
from {{ cookiecutter.module_name }}.stages import split as split_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage
from tiny_model import FAMILIES, build_tiny_model

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).parents[1]
RAW_ROWS = 40
FUSED = {"phi3": {"qkv_proj", "gate_up_proj", "o_proj", "down_proj"}}
SEPARATE = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
NO_SYSTEM_ROLE = {"gemma2", "mistral"}
"""Templates that reject a system turn (Gemma 2) or keep it only while a user turn is last
(Mistral v0.3): the system prompt is folded into the first user turn."""
STAGES = {
    "check_params": check_params_stage,
    "base": base_stage,
    "curate": curate_stage,
    "replay": replay_stage,
    "split": split_stage,
    "smoke": smoke_stage,
    "train": train_stage,
    "eval": eval_stage,
    "rl": rl_stage,
    "eval_rl": eval_rl_stage,
    "select": select_stage,
    "export": export_stage,
}
MULTI_TURN = {
    "messages": [
        {"role": "system", "content": "Triage the ticket. Reply with JSON only."},
        {"role": "user", "content": "My card was charged twice for one order."},
        {"role": "assistant", "content": "Which order number was it?"},
        {"role": "user", "content": "Order 4411, yesterday."},
        {
            "role": "assistant",
            "content": '{"category": "billing", "priority": "high", "needs_human": true, '
            '"reply": "We will refund the second charge on order 4411."}',
        },
    ]
}


def matrix_params(base_dir: Path) -> dict:
    fields = ["category", "priority", "needs_human", "reply"]
    return {
        "seed": 42,
        "base": {"model": str(base_dir), "revision": None},
        "task": {"target_format": "json", "fields": fields, "score_fields": fields[:3]},
        "curate": {"max_reject_fraction": 0.5},
        # the replay stage generates with each family's template (few tiny answers finish)
        "split": {
            "val_fraction": 0.15,
            "test_fraction": 0.15,
            "replay_fraction": 0.1,
            "replay_max_new_tokens": 4,
        },
        "smoke": {"fraction": 0.1, "max_steps": 2, "min_rows": 4, "rl_steps": 2},
        "train": {
            "method": "lora",
            "lora_r": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.0,
            "target_modules": "all-linear",
            "learning_rate": 5e-3,
            "num_epochs": 1,
            "batch_size": 8,
            "grad_accum": 1,
            "max_length": 512,
            "save_steps": 2,
            "logging_steps": 1,
            "warmup_ratio": 0.0,
            "lr_scheduler": "constant",
            "bf16": False,
            "gradient_checkpointing": False,
        },
        "eval": {
            "batch_size": 8,
            "max_new_tokens_task": 8,
            "max_new_tokens_qa": 4,
            "max_new_tokens_instruction": 4,
            "general_qa_limit": 4,
            "instruction_limit": 4,
            "fewshot_k": 1,
            "bf16": False,
        },
        # GRPO samples with each family's template (its system prompt folded where it has no
        # system role), as smoke, rl and eval_rl run it
        "rl": {
            "enabled": True,
            "prompts_per_step": 2,
            "num_generations": 2,
            "max_completion_length": 4,
            "max_steps": 2,
            "save_steps": 1,
        },
        "select": {"max_forgetting": 1.0, "min_format_correct": 0.0},
        "export": {
            "formats": ["merged", "gguf"],
            "gguf_types": ["q8_0"],
            "parity_rows": 4,
            "on_parity_failure": "mark",  # a random model's greedy answers flip with rounding
        },
    }


def lay_out_project(root: Path, base_dir: Path) -> None:
    raw = (PROJECT / "data" / "raw" / "support_tickets.jsonl").read_text().splitlines()
    (root / "data" / "raw").mkdir(parents=True)
    rows = [*raw[:RAW_ROWS], json.dumps(MULTI_TURN)]
    (root / "data" / "raw" / "tickets.jsonl").write_text("\n".join(rows) + "\n")
    shutil.copytree(PROJECT / "data" / "suites", root / "data" / "suites")
    shutil.copytree(PROJECT / "data" / "replay", root / "data" / "replay")
    (root / "params.yaml").write_text(yaml.safe_dump(matrix_params(base_dir), sort_keys=False))


@pytest.fixture(scope="module", params=FAMILIES)
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Every stage's main() for one family, in order, in a fresh project; stops at the first
    stage that raises and records which."""
    from conftest import use_one_torch_thread

    use_one_torch_thread()
    family = request.param
    tmp = tmp_path_factory.mktemp(family)
    base_dir = build_tiny_model(tmp / "tiny", family=family)
    root = tmp / "project"
    root.mkdir()
    lay_out_project(root, base_dir)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(root)
    reached, error = [], None
    try:
        for name, stage in STAGES.items():
            stage.main()
            reached.append(name)
    except Exception as exc:  # reported by the test, with the stage it stopped in
        error = exc
    yield {"family": family, "reached": reached, "error": error, "root": root}
    monkeypatch.undo()


def test_every_stage_runs(pipeline: dict) -> None:
    if pipeline["error"] is not None:
        stopped = list(STAGES)[len(pipeline["reached"])]
        raise AssertionError(
            f"{pipeline['family']}: stopped in {stopped}: {pipeline['error']!r}"
        ) from pipeline["error"]
    assert pipeline["reached"] == list(STAGES)


def test_curate_kept_the_rows_and_trains_every_assistant_turn(pipeline: dict) -> None:
    curate = read_json(pipeline["root"] / CURATE_REPORT)
    assert curate["kept"] >= RAW_ROWS * 0.8, curate["reasons"]
    example = read_json(pipeline["root"] / SMOKE_REPORT)["training_example"]
    assert example["matches"] is True and 0 < example["trained"] < example["tokens"], example
    assert (pipeline["root"] / DATA_REPORT).exists()


def test_grpo_runs_and_its_checkpoints_are_scored_for_the_family(pipeline: dict) -> None:
    root = pipeline["root"]
    assert read_json(root / SMOKE_REPORT)["rl"]["problem"] is None
    stats = read_json(root / RL_STATS)
    assert stats["global_step"] == 2 and stats["checkpoints"] == ["checkpoint-1", "checkpoint-2"]
    scored = sorted(path.stem for path in (root / RL_EVAL_DIR).glob("*.json"))
    assert scored == ["rl-checkpoint-1", "rl-checkpoint-2"]


def test_select_and_export_for_the_family(pipeline: dict) -> None:
    root = pipeline["root"]
    metrics = read_json(root / METRICS)
    assert 0 <= metrics["task_accuracy"] <= 1
    assert (root / SELECTED_DIR / "adapter_model.safetensors").exists()
    report = read_json(root / EXPORT_REPORT)
    assert set(report["exports"]) >= {"adapter", "merged_f16", "gguf_q8_0"}
    for name, row in report["exports"].items():
        assert row["same_prompts"] is True, name
    gguf = root / EXPORT_DIR / "gguf"
    assert (gguf / "model-q8_0.gguf").read_bytes()[:4] == b"GGUF"
    assert "FROM ./model-q8_0.gguf" in (gguf / "Modelfile").read_text()


def test_every_assistant_turn_is_trained_and_system_prompts_reach_the_model(
    pipeline: dict,
) -> None:
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    assert folds_system(tokenizer) is (pipeline["family"] in NO_SYSTEM_ROLE)
    chat = MULTI_TURN["messages"]
    (encoded,) = ChatEncoder(tokenizer, "all")([chat])
    trained = [tokenizer.decode(encoded.ids[start:end]) for start, end in encoded.spans]
    assert len(trained) == 2
    for text, turn in zip(trained, (chat[2], chat[4]), strict=True):
        assert turn["content"] in text
        assert not any(other["content"] in text for other in chat[:2] + chat[3:4])
    prompt = tokenizer.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)
    assert chat[0]["content"] in prompt  # the system prompt, folded where the template has none


def test_lora_reaches_every_linear_and_the_merge_keeps_the_logits(pipeline: dict) -> None:
    """all-linear adapts the fused projections too (Phi-3); merging keeps what the base has
    beyond its weights (Qwen's q/k/v biases, Gemma's soft-capping): the merged model, and the
    exported one, give the adapter's logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    family = pipeline["family"]
    config = read_json(SELECTED_DIR / "adapter_config.json")
    adapted = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert adapted == FUSED.get(family, SEPARATE)
    ids = torch.tensor([load_tokenizer(BASE_MODEL_DIR)("billing refund order 4411")["input_ids"]])
    with torch.no_grad():
        base = load_base_model(BASE_MODEL_DIR)
        base_logits = base(ids).logits
        adapter = PeftModel.from_pretrained(base, str(SELECTED_DIR)).eval()
        adapter_logits = adapter(ids).logits
        merged = load_model_with_adapter(SELECTED_DIR, BASE_MODEL_DIR)
        exported = AutoModelForCausalLM.from_pretrained(MERGED_EXPORT, dtype=torch.float32)
        merged_logits, exported_logits = merged(ids).logits, exported(ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4), "the adapter is a no-op"
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)
    scale = adapter_logits.abs().max().item()
    torch.testing.assert_close(exported_logits, adapter_logits, atol=2e-3 * scale, rtol=0)
    if family.startswith("qwen2"):
        assert merged.model.layers[0].self_attn.q_proj.bias is not None
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        assert getattr(merged.config, key, None) == getattr(base.config, key, None)


INSTRUCTION_TEMPLATE = (PROJECT / "tests/fixtures/test_templates/instruction.jinja").read_text()
"""A chat format no Ollama Go template here reproduces: GGUF export cannot ship it as trained."""


def test_a_base_the_exports_cannot_serve_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from {{ cookiecutter.module_name }}.errors import StageError
    from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, CURATED

    base_dir = build_tiny_model(tmp_path / "tiny")
    (base_dir / "chat_template.jinja").write_text(INSTRUCTION_TEMPLATE)
    root = tmp_path / "project"
    root.mkdir()
    lay_out_project(root, base_dir)
    monkeypatch.chdir(root)
    check_params_stage.main()
    with pytest.raises(StageError, match=r"found before training.*Ollama.*export\.formats"):
        base_stage.main()
    assert not CURATED.exists()
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["export"]["formats"] = ["merged"]  # the fix the message names
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    base_stage.main()
    assert (BASE_MODEL_DIR / "config.json").exists()
