"""Shared fixtures: a tiny random model and a throwaway project laid out like the real one.

`project` chdirs into a fresh directory holding models/base (the tiny model), small
data/splits, the shipped data/suites and a params.yaml with settings small enough that the
whole pipeline trains and evaluates in seconds on a CPU.
"""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from curating import curate_files
from {{ cookiecutter.module_name }}.data.chat import prompt_token_ids
from {{ cookiecutter.module_name }}.data.splitting import split_rows
from {{ cookiecutter.module_name }}.io import write_jsonl
from {{ cookiecutter.module_name }}.models.loading import load_tokenizer
from {{ cookiecutter.module_name }}.params import CurateParams, TaskParams

PROJECT = Path(__file__).parents[1]
SHIPPED_DATA = PROJECT / "data" / "raw" / "support_tickets.jsonl"
SUITES = PROJECT / "data" / "suites"
FIELDS = ["category", "priority", "needs_human", "reply"]
SEED = 42
# Rows per split: 24 train rows at batch size 4 are 6 steps an epoch, so save_steps 4 gives
# two checkpoints (step 4 and the final step 6).
SPLIT_SIZES = {"train": 24, "val": 6, "test": 6}

TINY_PARAMS: dict[str, Any] = {
    "seed": SEED,
    "base": {"model": "models/base", "revision": None},
    "task": {"target_format": "json", "fields": FIELDS, "score_fields": FIELDS[:3]},
    "curate": {"max_reject_fraction": 0.5},
    "split": {"val_fraction": 0.15, "test_fraction": 0.15, "replay_fraction": 0.0},
    "smoke": {"fraction": 0.1, "max_steps": 3, "min_rows": 4},
    "train": {
        "method": "lora",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": "all-linear",
        "learning_rate": 5e-3,
        "num_epochs": 1,
        "batch_size": 4,
        "grad_accum": 1,
        "max_length": 256,
        "save_steps": 4,
        "logging_steps": 2,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "weight_decay": 0.0,
        "bf16": False,
        "gradient_checkpointing": False,
        "group_by_length": True,
    },
    "eval": {
        "batch_size": 8,
        "max_new_tokens_task": 8,
        "max_new_tokens_qa": 8,
        "max_new_tokens_instruction": 8,
        "general_qa_limit": 4,
        "instruction_limit": 4,
        "bf16": False,
    },
    "select": {"max_forgetting": 0.5, "min_format_correct": 0.0},
    # a random model's greedy answers flip with any rounding: parity is reported, not enforced
    "export": {"on_parity_failure": "mark"},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_model: loads the embedded real base model (SmolLM2-135M); the unmarked-slow ones "
        "run in make test in about a minute (deselect with -m 'not real_model')",
    )


def use_one_torch_thread() -> None:
    """At the tiny model's size, thread start-up and synchronisation cost far more than the
    arithmetic: one thread runs the pipeline test ~10x faster than two busy cores do."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~0.2M-parameter random Llama + ChatML tokenizer (safetensors), built once; torch
    runs on one thread for the rest of the session."""
    from tiny_model import build_tiny_model  # tests/ is on sys.path (rootdir import mode)

    use_one_torch_thread()
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def demo_splits(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> dict[str, list[dict]]:
    """A few dozen curated demo rows, split by the split stage's own function.

    Only rows whose prompt leaves room for the start of the answer within train.max_length
    are used: TRL drops a row whose completion is truncated away entirely, which would make
    the number of training steps (and so the checkpoint names) depend on the data."""
    if SHIPPED_DATA.exists():
        raw_dir = SHIPPED_DATA.parent
    else:  # the custom preset deletes the demo data: regenerate it
        raw_dir = tmp_path_factory.mktemp("raw")
        script = PROJECT / "scripts" / "make_demo_data.py"
        out = raw_dir / SHIPPED_DATA.name
        subprocess.run(
            [sys.executable, str(script), "--n", "300", "--out", str(out)],
            check=True,
            capture_output=True,
        )
    task = TaskParams.model_validate(TINY_PARAMS["task"])
    curated = curate_files([raw_dir / SHIPPED_DATA.name], task, CurateParams()).kept
    tokenizer = load_tokenizer(tiny_model_dir)
    max_prompt = TINY_PARAMS["train"]["max_length"] - 32
    fitting = [
        row for row in curated if len(prompt_token_ids(tokenizer, row["prompt"])) <= max_prompt
    ]
    parts = split_rows(fitting, SEED, 0.15, 0.15)
    for name, size in SPLIT_SIZES.items():
        assert len(parts[name]) >= size, f"only {len(parts[name])} {name} rows in the demo data"
    return {name: parts[name][:size] for name, size in SPLIT_SIZES.items()}


@pytest.fixture
def project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
    demo_splits: dict[str, list[dict]],
) -> Path:
    """A project dir (the cwd for the test) ready for the smoke/train/eval/select stages."""
    root = tmp_path / "project"
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    for name, rows in demo_splits.items():
        write_jsonl(root / "data" / "splits" / f"{name}.jsonl", rows)
    shutil.copytree(SUITES, root / "data" / "suites")
    (root / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False))
    monkeypatch.chdir(root)
    return root
