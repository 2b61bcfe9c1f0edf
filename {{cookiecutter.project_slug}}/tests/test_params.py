"""params.yaml is validated strictly: a typo or a bad value fails at once, naming the key."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.module_name }}.params import Params, ParamsError, load_params, parse_params

SHIPPED = Path(__file__).parents[1] / "params.yaml"


def shipped() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_shipped_params_validate() -> None:
    params = load_params(SHIPPED)
    assert isinstance(params, Params)
    assert params.train.method in {"lora", "qlora", "full"}
    assert set(params.task.score_fields) <= set(params.task.fields)


def test_shipped_params_spell_out_every_key() -> None:
    """DVC tracks params by the keys in params.yaml: a knob left to its code default would be
    invisible to `dvc exp show` and to stage invalidation."""
    raw = shipped()
    for section, model in Params.model_fields.items():
        assert section in raw, f"params.yaml lacks section {section!r}"
        schema = model.annotation
        if isinstance(raw[section], dict):
            missing = set(schema.model_fields) - set(raw[section])
            assert not missing, f"params.yaml {section}: missing keys {sorted(missing)}"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    raw = shipped()
    raw["train"]["learnig_rate"] = 1e-4
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, raw))
    message = str(info.value)
    assert "train.learnig_rate" in message
    assert "unknown key" in message
    assert str(tmp_path / "params.yaml") in message


def test_unknown_section_is_named() -> None:
    with pytest.raises(ParamsError, match=r"trian: unknown key"):
        parse_params({"trian": {"lora_r": 8}})


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "lora_r", 0),
        ("train", "method", "qlora4"),
        ("train", "learning_rate", -1.0),
        ("train", "lr_scheduler", "cosin"),
        ("split", "val_fraction", 0.9),
        ("curate", "max_reject_fraction", 1.5),
        ("eval", "general_qa_limit", 0),
        ("task", "min_score", 1.5),
        ("task", "scorer", "bleu"),
    ],
)
def test_bad_value_is_named(tmp_path: Path, section: str, key: str, value: Any) -> None:
    raw = shipped()
    raw[section][key] = value
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, raw))
    message = str(info.value)
    assert f"{section}.{key}" in message
    assert repr(value) in message


def test_only_the_bad_keys_are_reported(tmp_path: Path) -> None:
    raw = shipped()
    raw["train"]["lora_r"] = 0
    raw["smoke"]["max_steps"] = 1
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, raw))
    message = str(info.value)
    assert "train.lora_r" in message
    assert "smoke.max_steps" in message
    assert "train.lora_alpha" not in message


def test_score_fields_must_be_fields() -> None:
    task = {"target_format": "json", "fields": ["category"], "score_fields": ["priority"]}
    with pytest.raises(ParamsError) as info:
        parse_params({"task": task})
    assert "task" in str(info.value)
    assert "priority" in str(info.value)


def test_json_task_needs_score_fields() -> None:
    with pytest.raises(ParamsError, match="score_fields"):
        parse_params({"task": {"target_format": "json", "fields": ["a"], "score_fields": []}})


def test_graded_scorers_are_for_text_targets() -> None:
    for scorer in ("chrf", "rougeL"):
        task = parse_params({"task": {"scorer": scorer, "min_score": 0.3}}).task
        assert task.graded and task.min_score == 0.3
        json_task = {"target_format": "json", "fields": ["a"], "score_fields": ["a"]}
        with pytest.raises(ParamsError, match=f"scorer {scorer} compares free text"):
            parse_params({"task": {**json_task, "scorer": scorer}})
    assert not parse_params({}).task.graded


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ParamsError, match="not found") as info:
        load_params(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- seed\n- train\n", "42\n", "just a string\n"])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match="must be a mapping") as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train: {lora_r: 8\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_params_are_frozen() -> None:
    params = parse_params({})
    with pytest.raises(ValueError):
        params.train.lora_r = 16  # type: ignore[misc]


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("customer-support", (8, 16, 2e-4, 2)),
        ("code-generation", (64, 128, 1e-4, 3)),
        ("general", (16, 32, 1e-4, 2)),
        ("style-format", (4, 8, 2e-3, 3)),
        ("domain-knowledge", (32, 64, 1e-4, 2)),
    ],
)
def test_a_preset_fills_the_lora_keys_left_null(preset: str, expected: tuple) -> None:
    raw = shipped()
    raw["train"] |= {"preset": preset, "lora_r": None, "lora_alpha": None}
    raw["train"] |= {"learning_rate": None, "num_epochs": None}
    train = parse_params(raw).train
    assert (train.lora_r, train.lora_alpha, train.learning_rate, train.num_epochs) == expected


def test_a_key_set_in_params_overrides_the_preset() -> None:
    raw = shipped()
    raw["train"] |= {"preset": "code-generation", "lora_r": 16, "lora_alpha": None}
    train = parse_params(raw).train
    assert train.lora_r == 16 and train.lora_alpha == 128


def test_an_unknown_preset_names_the_key_and_the_choices() -> None:
    raw = shipped()
    raw["train"]["preset"] = "chatbot"
    with pytest.raises(ParamsError, match=r"train\.preset") as error:
        parse_params(raw)
    assert "customer-support" in str(error.value)


def test_unsloth_cannot_train_all_weights() -> None:
    raw = shipped()
    raw["train"] |= {"backend": "unsloth", "method": "full"}
    with pytest.raises(ParamsError, match="unsloth"):
        parse_params(raw)


def test_padding_free_needs_rows_no_longer_than_max_length() -> None:
    raw = shipped()
    raw["train"]["padding_free"] = True
    raw["curate"]["max_tokens"] = raw["train"]["max_length"] * 2
    with pytest.raises(ParamsError, match=r"curate\.max_tokens"):
        parse_params(raw)
