"""One bake per value of each cookiecutter choice that sets params: the baked params.yaml must
pass the baked project's own schema (src/<module>/params.py) and carry the chosen values.

One value at a time, the other answers at their defaults (not the full product): each bake is
checked against every option, so it also proves that the untouched options kept their defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bakery import (
    CONTEXT,
    DEFAULT_MODULE,
    assert_no_curlies,
    assert_repo_initialised,
    bake,
)

# The choices that end up in params.yaml; the others are tested where they take effect.
PARAMS_OPTIONS = ("method", "training_preset", "task_preset")
OTHER_OPTIONS = {
    "license": "LICENSE file: test_hooks.py::test_bake_each_license",
    "dvc_remote": ".dvc/config and the plugin extra: test_bake_dvc_remote below",
}
DEFAULTS = {option: CONTEXT[option][0] for option in PARAMS_OPTIONS}

# The train keys a preset fills where params.yaml leaves them null.
PRESET_KEYS = ("lora_r", "lora_alpha", "learning_rate", "num_epochs")
TASK_PRESETS = {
    # task_preset: (task.target_format, split.stratify_by, ships the demo data)
    "support-triage": ("json", "category", True),
    "custom": ("text", "auto", False),
}
DEMO_DATA = ("support_tickets.jsonl", "support_preferences.jsonl")

# Run in the baked project with PYTHONPATH=src, a fresh interpreter per bake (no module cache
# across bakes). argv: the package name, a scratch file, the preset's keys. Prints the validated
# params.yaml and its train section validated again with those keys null (the schema fills them).
VALIDATE = """
import importlib, json, sys
from pathlib import Path
import yaml

module, scratch = sys.argv[1], Path(sys.argv[2])
params = importlib.import_module(module + ".params")
baked = params.load_params(Path("params.yaml"))
raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
raw["train"].update(dict.fromkeys(sys.argv[3:]))
scratch.write_text(yaml.safe_dump(raw), encoding="utf-8")
filled = params.load_params(scratch).train
# the schema's defaults, given only what the bake decides: params.yaml must show exactly these
decided = {
    "base": {"model": raw["base"]["model"]},
    "task": raw["task"],
    "split": {"stratify_by": raw["split"]["stratify_by"]},
    "train": {key: raw["train"][key] for key in ("preset", "method")},
}
defaults = params.parse_params(decided)
print(json.dumps([m.model_dump(mode="json") for m in (baked, filled, defaults)]))
"""


def validated_params(
    project: Path, scratch: Path
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Validate ``project``'s params.yaml with its own schema.

    Returns the validated params, the train section the schema fills from its preset table,
    and the schema's defaults for the answers the bake decided.
    """
    result = subprocess.run(
        [sys.executable, "-c", VALIDATE, DEFAULT_MODULE, str(scratch), *PRESET_KEYS],
        cwd=project,
        env={**os.environ, "PYTHONPATH": "src"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"params.yaml fails the baked schema:\n{result.stderr}"
    baked, filled_train, defaults = json.loads(result.stdout)
    return baked, filled_train, defaults


def test_every_choice_option_is_baked_somewhere() -> None:
    choices = {key for key, value in CONTEXT.items() if isinstance(value, list)}
    choices -= {key for key in CONTEXT if key.startswith("_")}
    assert choices == set(PARAMS_OPTIONS) | set(OTHER_OPTIONS)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param(option, value, id=f"{option}={value}")
        for option in PARAMS_OPTIONS
        for value in CONTEXT[option]
    ],
)
def test_bake_option_params(tmp_path: Path, cc_config: str, option: str, value: str) -> None:
    project = bake(tmp_path / "out", cc_config, **{option: value})
    assert_no_curlies(project)
    assert_repo_initialised(project)
    params, filled_train, defaults = validated_params(project, tmp_path / "params-preset-null.yaml")
    answers = {**DEFAULTS, option: value}
    train = params["train"]

    assert train["method"] == answers["method"]

    preset = answers["training_preset"]
    assert train["preset"] == preset
    baked_values = {key: train[key] for key in PRESET_KEYS}
    # the post-gen hook wrote the preset's values (from params.py's PRESETS, their one home)
    # into params.yaml: equal to what the schema fills when they are null
    assert all(value is not None for value in baked_values.values())
    assert {key: filled_train[key] for key in PRESET_KEYS} == baked_values

    target_format, stratify_by, ships_data = TASK_PRESETS[answers["task_preset"]]
    assert params["task"]["target_format"] == target_format
    assert bool(params["task"]["score_fields"]) is (target_format == "json")
    assert params["split"]["stratify_by"] == stratify_by
    for name in DEMO_DATA:
        assert (project / "data" / "raw" / name).exists() is ships_data, name
    assert (project / "data" / "raw").is_dir()
    assert (project / "data" / "suites").is_dir()

    # one home per default: every value params.yaml ships is the schema's default (tests and
    # users run on the same values)
    differ = {
        f"{section}.{key}": (value, defaults[section][key])
        for section, values in params.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if value != defaults[section][key]
    }
    assert not differ, f"params.yaml differs from the schema defaults (shipped, default): {differ}"


@pytest.mark.parametrize(
    ("remote", "extra"),
    [("none", ""), ("local", ""), ("s3", ",s3"), ("gcs", ",gs"), ("azure", ",azure")],
)
def test_bake_dvc_remote(tmp_path: Path, cc_config: str, remote: str, extra: str) -> None:
    project = bake(tmp_path / "out", cc_config, dvc_remote=remote)
    assert_repo_initialised(project)  # the remote is in the initial commit
    config = (project / ".dvc" / "config").read_text(encoding="utf-8")
    if remote == "none":
        assert "remote" not in config, config
    else:
        assert "remote = storage" in config, config
        scheme = {"s3": "s3://", "gcs": "gs://", "azure": "azure://"}.get(remote, "")
        assert f"url = {scheme}" in config, config
    makefile = (project / "Makefile").read_text(encoding="utf-8")
    assert f"REMOTE_EXTRA := {extra}\n" in makefile
