"""Baking the template in tests: shared by the hook, bake-option and end-to-end tests."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.generate import is_copy_only_path
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
CONTEXT: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
DEFAULT_SLUG = "support-triage-finetune"
DEFAULT_MODULE = "support_triage_finetune"
JINJA_MARKERS = ("{{", "{%", "{#")

VENV_BIN = Path(sys.executable).parent
# reports/metrics.json keys every run has, whatever the task
HEADLINE = (
    "task_accuracy",
    "format_correct",
    "general_qa",
    "instruction_follow",
    "forgetting_score",
    "selected_step",
    "val_loss",
)
# Shrink the demo so the whole pipeline runs in about a minute on two cores.
TINY_PARAMS = {
    # a random model's greedy answers flip with any rounding: parity is reported, not enforced
    "export": {"on_parity_failure": "mark"},
    "smoke": {"max_steps": 3},
    # a random model's answers rarely finish: the replay stage runs, on few tokens
    "split": {"replay_max_new_tokens": 8},
    "train": {"num_epochs": 1, "save_steps": 8, "learning_rate": 2e-3, "logging_steps": 2},
    "eval": {
        "general_qa_limit": 8,
        "instruction_limit": 6,
        "max_new_tokens_task": 16,
        "max_new_tokens_qa": 6,
        "max_new_tokens_instruction": 8,
    },
}


def bake(output_dir: Path, config_file: str, **extra_context: str) -> Path:
    """Bake the template into ``output_dir`` without prompts and return the project dir."""
    project = cookiecutter(
        str(ROOT),
        no_input=True,
        extra_context=extra_context,
        output_dir=str(output_dir),
        config_file=config_file,
    )
    return Path(project)


def git(project: Path, *args: str) -> str:
    """Run git in ``project`` and return its stripped stdout."""
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def rendered_text_files(project: Path) -> Iterator[Path]:
    """Yield the project's text files that cookiecutter rendered (skips .git, copied data)."""
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if not path.is_file() or rel.parts[0] == ".git":
            continue
        if is_copy_only_path(rel.as_posix(), {"cookiecutter": CONTEXT}):
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield path


def assert_no_curlies(project: Path) -> None:
    """Fail if any rendered text file still contains Jinja markers."""
    leftovers = [
        f"{path.relative_to(project)}: {marker}"
        for path in rendered_text_files(project)
        for marker in JINJA_MARKERS
        if marker in path.read_text(encoding="utf-8")
    ]
    assert not leftovers, f"unrendered Jinja left in: {leftovers}"


def assert_repo_initialised(project: Path) -> None:
    """Fail unless the project is a git repo with one clean commit and a DVC repo."""
    assert (project / ".git").is_dir()
    assert git(project, "rev-list", "--count", "HEAD") == "1"
    assert git(project, "status", "--porcelain") == ""
    assert (project / ".dvc").is_dir()
    assert (project / ".dvc" / "config").is_file()


def env() -> dict[str, str]:
    """Run the stages with this interpreter: the baked package is importable from src/."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": "src",
        "DVC_NO_ANALYTICS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the baked project; with `check`, fail the test showing its output."""
    result = subprocess.run(args, cwd=project, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-4000:]}"
        )
    return result


def dvc(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(project, sys.executable, "-m", "dvc", *args, check=check)


def deep_update(target: dict, updates: dict) -> None:
    for key, value in updates.items():
        if isinstance(value, dict):
            deep_update(target.setdefault(key, {}), value)
        else:
            target[key] = value


def use_tiny_model(project: Path, tiny_dir: Path, updates: dict | None = None) -> None:
    """Build the baked project's tiny random Llama into `tiny_dir`, point base.model at it and
    merge TINY_PARAMS, then `updates`, into params.yaml."""
    run(project, sys.executable, "tests/tiny_model.py", str(tiny_dir))
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    deep_update(params, {"base": {"model": str(tiny_dir)}, **TINY_PARAMS})
    deep_update(params, updates or {})
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def assert_baked_tests_pass(project: Path, *selection: str) -> None:
    """The baked project's own tests pass (and collect tests): by default its fast suite
    (`-m "not slow"`), or the given pytest selection."""
    selection = selection or ("-m", "not slow")
    result = run(
        project, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
