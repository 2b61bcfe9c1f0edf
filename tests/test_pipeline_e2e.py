"""End to end: bake the template, point it at a tiny random Llama, and run the real pipeline
with DVC: `dvc repro`, a second experiment with `dvc exp run -S`, and `dvc exp show --json`."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from bakery import HEADLINE, bake, dvc, git, run, use_tiny_model

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> Path:
    """A baked default project whose base model is a tiny random Llama, committed."""
    root = tmp_path_factory.mktemp("e2e")
    project = bake(root, cc_config)
    use_tiny_model(project, root / "tiny-llama")
    git(project, "commit", "-qam", "Use the tiny test model")
    return project


def experiment_metrics(exp_show: list) -> list[dict]:
    """Every (baseline or experiment) row of `dvc exp show --json` that has headline metrics."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            metrics = (node.get("data") or {}).get("metrics") or {}
            if "reports/metrics.json" in metrics:
                found.append(
                    {
                        "name": node.get("name") or node.get("rev"),
                        **metrics["reports/metrics.json"]["data"],
                    }
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(exp_show)
    return found


def test_repro_then_second_experiment(project: Path) -> None:
    dvc(project, "repro")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    for key in HEADLINE:
        assert key in metrics, key
    assert (project / "models/selected/adapter_model.safetensors").exists()
    assert (project / "data/quarantine.jsonl").stat().st_size > 0
    curate = json.loads((project / "reports/curate.json").read_text())
    duplicates = curate["duplicates"]["exact"] + curate["duplicates"]["near"]
    assert curate["rows_in"] == curate["kept"] + curate["quarantined"] + duplicates
    data_report = (project / "reports/data.md").read_text()
    assert "## Funnel" in data_report and "## Contamination" in data_report
    assert (project / "reports/figures/token_lengths.png").stat().st_size > 0
    plot_rows = json.loads((project / "reports/eval_by_step.json").read_text())
    assert plot_rows[0]["step"] == 0 and len(plot_rows) >= 3

    noop = dvc(project, "repro")
    assert "didn't change" in noop.stdout or "up to date" in noop.stdout, noop.stdout
    assert "Running stage" not in noop.stdout

    git(project, "add", "-A")
    git(project, "commit", "-qm", "Baseline run")
    dvc(project, "exp", "run", "-n", "high-lr", "-S", "train.learning_rate=8e-3")
    rows = experiment_metrics(json.loads(dvc(project, "exp", "show", "--json").stdout))
    names = [row["name"] for row in rows]
    assert "high-lr" in names, rows
    assert len(rows) >= 2, rows
    # after `exp run` the workspace holds the experiment's results; the commit row is baseline
    baseline = next(row for row in rows if row["name"] not in {"high-lr", "workspace"})
    high_lr = next(row for row in rows if row["name"] == "high-lr")
    assert baseline["val_loss"] != high_lr["val_loss"], rows

    # `make compare`: one HTML page with both experiments' curves
    run(project, "make", "compare", "VENV=")
    page = (project / "compare" / "index.html").read_text()
    assert "high-lr" in page and "train_val_loss" in page, page[:2000]
    assert (project / "reports/report.html").read_text().startswith("<!doctype html>")
    assert high_lr["diagnosis"] and isinstance(high_lr["diagnosis"], str)


def test_rl_experiment_runs_grpo_then_eval_rl_and_select_without_retraining(
    project: Path,
) -> None:
    dvc(project, "repro")
    git(project, "add", "-A")
    if git(project, "status", "--porcelain"):
        git(project, "commit", "-qm", "SFT baseline")
    tiny_rl = {
        "rl.enabled": "true",
        "rl.max_steps": 2,
        "rl.save_steps": 1,
        "rl.prompts_per_step": 2,
        "rl.num_generations": 2,
        "rl.max_completion_length": 8,
        "smoke.rl_steps": 2,
    }
    sets = [arg for key, value in tiny_rl.items() for arg in ("-S", f"{key}={value}")]
    done = dvc(project, "exp", "run", "-n", "grpo", *sets)
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if "Running stage" in line}
    assert {"smoke", "rl", "eval_rl", "select"} <= ran, done.stdout
    assert not ran & {"curate", "split", "train", "eval"}, done.stdout
    assert sorted(p.name for p in (project / "reports/eval_rl").glob("*.json")) == [
        "rl-checkpoint-1.json",
        "rl-checkpoint-2.json",
    ]
    stats = json.loads((project / "reports/rl/stats.json").read_text())
    assert stats["global_step"] == 2 and stats["sft_checkpoint"].startswith("checkpoint-")
    rows = experiment_metrics(json.loads(dvc(project, "exp", "show", "--json").stdout))
    assert "grpo" in [row["name"] for row in rows], rows


def test_eval_param_change_skips_training(project: Path) -> None:
    dvc(project, "repro")
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["eval"]["max_new_tokens_task"] += 1
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = dvc(project, "repro", "--dry").stdout
    finally:
        params_path.write_text(original)
    assert "Running stage 'eval'" in dry and "Running stage 'select'" in dry, dry
    for upstream in ("base", "curate", "split", "smoke", "train"):
        assert f"Running stage '{upstream}'" not in dry, dry


def output_hashes(project: Path) -> dict[str, str]:
    """sha256 of every file the pipeline wrote (data, models, reports)."""
    found = {}
    for top in ("data", "models", "reports"):
        for path in sorted((project / top).rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path.relative_to(project))] = digest
    return found


def with_typo(params: dict) -> None:
    params["train"]["learnig_rate"] = params["train"].pop("learning_rate")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (with_typo, "train.learnig_rate: unknown key"),
        (lambda params: params["train"].update(learning_rate="fast"), "train.learning_rate"),
        (lambda params: params["eval"].update(batch_size=-1), "eval.batch_size"),
    ],
    ids=["misspelt key", "wrong type", "out of range"],
)
def test_bad_param_fails_naming_the_key_and_loses_nothing(
    project: Path, edit: Callable[[dict], None], named: str
) -> None:
    """DVC deletes a stage's outs before running it: the params check stage must stop the
    pipeline first, with every existing output byte-identical (reports/smoke.json is not
    cached, so nothing could restore it)."""
    dvc(project, "repro")
    before = output_hashes(project)
    assert "reports/smoke.json" in before and "reports/metrics.json" in before
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    edit(params)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = dvc(project, "repro", check=False)
    finally:
        params_path.write_text(original)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert output_hashes(project) == before


def test_editing_one_stage_library_reruns_only_that_stage(project: Path) -> None:
    """An edit to training/advisor.py (used by smoke only) re-runs smoke; smoke's report
    changes (it holds timings) but its gate does not, so train, eval and select do not run
    again."""
    dvc(project, "repro")
    advise = next(project.glob("src/*/training/advisor.py"))
    original = advise.read_text()
    advise.write_text(original + "\n# an edit\n")
    try:
        result = dvc(project, "repro")
    finally:
        advise.write_text(original)
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'smoke':"], result.stdout
    dvc(project, "repro")  # back to the committed code: smoke again, nothing else
