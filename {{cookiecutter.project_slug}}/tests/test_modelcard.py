"""The model card (models/selected/README.md): Hub metadata through huggingface_hub's ModelCard
(base model, license, data, eval results as a model-index), and a body that keeps the
selection's numbers with their intervals and its caveats. Cards are read back with
`ModelCard.load`, as the Hub and `make publish` read them."""

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard

from {{ cookiecutter.module_name }}.selection.diagnose import Finding
from {{ cookiecutter.module_name }}.selection.modelcard import CardFacts, license_fields, model_card

PROJECT = Path(__file__).parents[1]
SLUG = "{{ cookiecutter.project_slug }}"
BAKED_LICENSE = "{{ cookiecutter.license }}"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED = {  # the base stage's manifest over base.model, as select passes it
    "model": "embedded:smollm2-135m-instruct",
    "kind": "embedded",
    "name": "embedded:smollm2-135m-instruct",
    "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
HASHES = {"train": "aa11", "val": "bb22", "test": "cc33"}
HEADLINE: dict[str, Any] = {
    "task_accuracy": 0.75,
    "task_score": 0.8,
    "exact_match": 0.5,
    "format_correct": 1.0,
    "format_drift": 0.0,
    "general_qa": 0.4,
    "instruction_follow": 0.6,
    "forgetting_score": 0.1,
    "selected_step": 8,
    "selected": "checkpoint-8",
    "val_loss": None,
    "val_task_accuracy": 0.7,
    "val_task_score": 0.72,
    "guardrails_passed": True,
    "base_task_accuracy": 0.25,
    "diagnosis": "none",
    "task_accuracy_lo": 0.5,
    "task_accuracy_hi": 1.0,
    "val_task_accuracy_lo": 0.4,
    "val_task_accuracy_hi": 0.9,
    "test_items": 8,
    "vs_base_task_accuracy_diff": 0.5,
    "vs_base_task_accuracy_diff_lo": 0.125,
    "vs_base_task_accuracy_diff_hi": 0.875,
}
DATA, SUITES = f"{SLUG}-data", f"{SLUG}-general-suites"
# what the model-index must hold: (name, dataset type, split or suite, revision, metric, value)
EXPECTED_RESULTS = {
    ("Test task accuracy", DATA, "test", "cc33", "accuracy", 0.75),
    ("Test task score", DATA, "test", "cc33", "task_score", 0.8),
    ("Test exact match", DATA, "test", "cc33", "exact_match", 0.5),
    ("Test format correct", DATA, "test", "cc33", "format_correct", 1.0),
    ("Test format drift", DATA, "test", "cc33", "format_drift", 0.0),
    ("Val task accuracy", DATA, "val", "bb22", "accuracy", 0.7),
    ("Val task score", DATA, "val", "bb22", "task_score", 0.72),
    ("General QA accuracy", SUITES, "general_qa", None, "accuracy", 0.4),
    ("Instruction following", SUITES, "instruction_follow", None, "accuracy", 0.6),
    ("Forgetting vs the base", SUITES, None, None, "forgetting_score", 0.1),
}


def saved_card(tmp_path: Path, **changes: Any) -> tuple[ModelCard, str]:
    """The card select writes, loaded back from disk, and the file's text."""
    arguments = {
        "base": EMBEDDED,
        "selected": {"model": "checkpoint-8", "step": 8},
        "headline": HEADLINE,
        "train_params": {"method": "lora", "lora_r": 8},
        "data_hashes": HASHES,
        "findings": [],
        "exports": ["merged", "gguf"],
    } | changes
    path = tmp_path / "README.md"
    model_card(CardFacts(**arguments)).save(path)
    return ModelCard.load(path), path.read_text(encoding="utf-8")


def results(data: dict) -> set[tuple]:
    """(metric name, dataset type, split or config, revision, metric type, value) of every
    model-index metric."""
    (index,) = data["model-index"]
    assert index["name"] == SLUG
    found = set()
    for result in index["results"]:
        assert result["task"] == {"type": "text-generation", "name": "Text Generation"}
        dataset = result["dataset"]
        where = dataset.get("split") or dataset.get("config")
        for metric in result["metrics"]:
            assert set(metric) == {"type", "value", "name"}  # no verified/verifyToken claims
            found.add(
                (
                    metric["name"],
                    dataset["type"],
                    where,
                    dataset.get("revision"),
                    metric["type"],
                    metric["value"],
                )
            )
    return found


def test_the_card_metadata_names_the_base_license_data_and_eval_results(tmp_path: Path) -> None:
    card, text = saved_card(tmp_path)
    data = card.data.to_dict()
    assert data["base_model"] == SMOLLM2  # the embedded GGUF's Hub model, not embedded:...
    assert data["base_model_relation"] == "adapter"
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "text-generation"
    assert data["tags"] == ["fine-tuned", "dvc", "lora"]
    assert data["datasets"] == [DATA]
    assert {k: data[k] for k in data if k.startswith("license")} == license_fields(BAKED_LICENSE)
    # every measured headline metric, on its split with that split's hash; nothing else (the
    # baselines' scores, val_loss None, intervals, counts are not this model's results)
    assert results(data) == EXPECTED_RESULTS
    front = text.split("\n---\n")[0]
    assert "_lo" not in front and "_hi" not in front
    # the file round-trips: loading and saving it again changes nothing
    assert str(ModelCard(text)) == text and text.startswith("---\nbase_model: ")


def test_the_card_body_keeps_the_intervals_training_data_and_limits(tmp_path: Path) -> None:
    card, _ = saved_card(tmp_path)
    body = card.text
    assert body.startswith(f"\n# {SLUG}\n")
    assert (
        f"Fine-tune of `{SMOLLM2}` (`embedded:smollm2-135m-instruct`: its "
        "SmolLM2-135M-Instruct.Q4_1.gguf dequantised to float32): checkpoint `checkpoint-8`, "
        "selected at step 8 by held-out val task accuracy under guardrails (passed)."
    ) in body
    assert "| task_accuracy | 0.750 [0.500, 1.000] |" in body
    assert "| val_task_accuracy | 0.700 [0.400, 0.900] |" in body
    assert "| vs_base_task_accuracy_diff | 0.500 [0.125, 0.875] |" in body
    assert "| guardrails_passed | yes |" in body and "task_accuracy_lo" not in body
    assert "```yaml\ntrain:\n  method: lora\n  lora_r: 8\n```" in body
    assert "- train: `aa11`\n- val: `bb22`\n- test: `cc33`" in body
    assert "The selected checkpoint passes the guardrails" in body
    assert "The diagnosis found no overfitting" in body
    assert "`models/export/merged`" in body and "`models/export/gguf`" in body
    assert "## Limitations\n\n- Scores come from small" in body


def test_a_stacked_checkpoint_s_card_says_how_to_load_both_adapters(tmp_path: Path) -> None:
    selected = {"model": "rl-checkpoint-16", "step": 216, "stage": "rl"}
    body = saved_card(tmp_path, selected=selected)[0].text
    assert "checkpoint `rl-checkpoint-16`, selected at step 216" in body
    assert "a LoRA adapter trained by the rl stage on top of the SFT adapter in `sft_adapter/`" in (
        body
    )
    assert "load_model_with_adapter(Path('models/selected'), base_dir)" in body
    assert "PeftModel.from_pretrained" not in body


def test_the_card_says_when_the_guardrails_failed_and_what_the_diagnosis_found(
    tmp_path: Path,
) -> None:
    finding = Finding("format_drift", "20% of outputs drift", "train longer", {})
    card, _ = saved_card(
        tmp_path,
        headline=HEADLINE | {"guardrails_passed": False},
        findings=[finding],
        failures=["forgetting_score 0.4 > max_forgetting 0.2"],
    )
    assert (
        "**No checkpoint passed the guardrails**: this is the best-effort checkpoint, exported "
        "and marked `guardrails_passed: false` (forgetting_score 0.4 > max_forgetting 0.2)."
    ) in card.text
    assert "under guardrails (none passed: best effort)" in card.text
    assert "- format drift: 20% of outputs drift" in card.text
    assert "The diagnosis found no" not in card.text


@pytest.mark.parametrize(
    ("base", "method", "front", "said"),
    [
        (  # a pinned hub model
            {"model": "org/m", "kind": "hub", "hub_id": "org/m", "revision": "abc123"},
            "lora",
            {"base_model": "org/m", "base_model_relation": "adapter", "library_name": "peft"},
            "Fine-tune of `org/m` at revision `abc123`:",
        ),
        (  # a full fine-tune is a model of its own, loaded by transformers
            {"model": "org/m", "kind": "hub", "hub_id": "org/m", "revision": "abc123"},
            "full",
            {
                "base_model": "org/m",
                "base_model_relation": "finetune",
                "library_name": "transformers",
            },
            "Fine-tune of `org/m` at revision `abc123`:",
        ),
        (  # a local directory is no Hub id: no base_model (the Hub would reject it)
            {"model": "models/base", "kind": "local", "source": "/data/my-model"},
            "lora",
            {"library_name": "peft"},
            "Fine-tune of the local model `/data/my-model` (not on the Hub):",
        ),
    ],
)
def test_the_card_names_each_kind_of_base(
    tmp_path: Path, base: dict, method: str, front: dict, said: str
) -> None:
    card, _ = saved_card(tmp_path, base=base, train_params={"method": method})
    data = card.data.to_dict()
    keys = ("base_model", "base_model_relation", "library_name")
    assert {key: data[key] for key in keys if key in data} == front
    assert said in card.text


@pytest.mark.parametrize(
    ("license_name", "fields"),
    [
        ("MIT", {"license": "mit"}),
        ("Apache-2.0", {"license": "apache-2.0"}),
        ("BSD-3-Clause", {"license": "bsd-3-clause"}),
        (
            "Proprietary",
            {"license": "other", "license_name": "proprietary", "license_link": "LICENSE"},
        ),
    ],
)
def test_license_fields_are_the_hubs_ids(license_name: str, fields: dict) -> None:
    assert license_fields(license_name) == fields


def test_the_cards_license_is_the_projects_license_file(tmp_path: Path) -> None:
    """The bake wrote LICENSE (hooks/post_gen_project.py); the card must say the same."""
    text = (PROJECT / "LICENSE").read_text(encoding="utf-8")
    markers = [
        ("MIT License", "mit"),
        ("Apache License, Version 2.0", "apache-2.0"),
        ("BSD 3-Clause License", "bsd-3-clause"),
        ("proprietary and confidential", "other"),
    ]
    in_file = next(hub_id for marker, hub_id in markers if marker in text)
    card, _ = saved_card(tmp_path)
    assert card.data.license == in_file
