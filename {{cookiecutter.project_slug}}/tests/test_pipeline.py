"""The smoke, train, eval and select stages end to end on a tiny random model, then a crash
and a resume. Runs the stages' own `main()` functions, in process, in a throwaway project."""

import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from helpers import mtimes, read_tsv
from {{ cookiecutter.module_name }} import paths
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.models.loading import load_model_with_adapter
from {{ cookiecutter.module_name }}.paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    DIAGNOSIS,
    EVAL_DIR,
    EVAL_PLOT,
    EXPORT_DIR,
    EXPORT_MD,
    EXPORT_REPORT,
    LOSS_FIGURE,
    METRICS,
    METRICS_FIGURE,
    REPORT_HTML,
    REPORT_MD,
    SELECTED_DIR,
    SMOKE_REPORT,
    TEST_ITEMS,
    TRAIN_LOG_DIR,
    TRAINING_EXAMPLE,
)
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import export as export_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage
from {{ cookiecutter.module_name }}.training import trainer
from {{ cookiecutter.module_name }}.training.checkpoints import checkpoint_step, complete_checkpoints

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).parents[1]

HEADLINE = ("task_accuracy", "format_correct", "general_qa", "instruction_follow")
METRIC_KEYS = (*HEADLINE, "forgetting_score", "selected_step")


def check_smoke() -> None:
    smoke_stage.main()
    report = read_json(SMOKE_REPORT)
    assert report["passed"] is True, report["problems"]
    assert report["loss_after"] < report["loss_before"]
    assert report["reload_matches"] is True
    assert report["rows"] == 4  # smoke.min_rows: 10 % of 24 rows is fewer
    assert report["full_run_steps"] == 6
    example = report["training_example"]  # curate's count of the row TRL's mask agrees with
    assert example["matches"] is True and 0 < example["trained"] < example["tokens"]
    page = TRAINING_EXAMPLE.read_text(encoding="utf-8")
    assert page.count('<span class="t"') == example["trained"]


def check_train() -> list[Path]:
    train_stage.main()
    checkpoints = complete_checkpoints(CHECKPOINTS_DIR)
    assert [path.name for path in checkpoints] == ["checkpoint-4", "checkpoint-6"]
    assert (CHECKPOINTS_DIR / trainer.RUN_FINGERPRINT).exists()
    for checkpoint in checkpoints:
        assert (checkpoint / "adapter_model.safetensors").exists()
    stats = read_json(paths.TRAIN_STATS)
    assert stats["global_step"] == 6
    assert stats["checkpoints"] == ["checkpoint-4", "checkpoint-6"]
    assert stats["tokens_per_second"] > 0
    rows = read_tsv(TRAIN_LOG_DIR / "plots" / "metrics" / "loss.tsv")
    assert rows, "no train loss logged"
    assert {"step", "loss"} <= set(rows[0])
    steps = [int(row["step"]) for row in rows]
    assert steps == sorted(steps)
    # no val passes while training: eval measures the val loss (check_evaluate)
    assert not (TRAIN_LOG_DIR / "plots" / "metrics" / "eval").exists()
    return checkpoints


def check_evaluate(checkpoints: list[Path]) -> None:
    eval_stage.main()
    names = ["base", *(path.name for path in checkpoints)]
    assert sorted(path.stem for path in EVAL_DIR.glob("*.json")) == sorted([*names, "fewshot"])
    val_rows = len(Path("data/splits/val.jsonl").read_text().splitlines())
    for name in names:
        report = read_json(EVAL_DIR / f"{name}.json")
        assert report["model"] == name
        assert report["step"] == checkpoint_step(name)
        assert report["split"] == "val"
        assert report["generated"] == val_rows + 8  # nothing cached on the first run
        assert {*HEADLINE, "forgetting_score", "format_drift"} <= set(report["metrics"])
        assert len(report["items"]["task"]) == val_rows
        assert len(report["items"]["general_qa"]) == 4  # eval.general_qa_limit
        assert len(report["items"]["instruction_follow"]) == 4  # eval.instruction_limit
        for item in report["items"]["task"]:
            assert {"id", "prompt_hash", "output", "correct", "exact", "fields"} <= set(item)
        for item in report["items"]["instruction_follow"]:
            assert item["correct"] == (not item["failed_checks"])
        assert isinstance(report["val_loss"], float)
    assert read_json(EVAL_DIR / "base.json")["metrics"]["forgetting_score"] == 0.0
    assert isinstance(read_json(EVAL_DIR / "base.json")["val_loss"], float)  # step 0 of the curve
    fewshot = read_json(EVAL_DIR / "fewshot.json")
    assert fewshot["role"] == "fewshot" and len(fewshot["items"]["task"]) == val_rows
    base_hashes = [i["prompt_hash"] for i in read_json(EVAL_DIR / "base.json")["items"]["task"]]
    assert all(
        mine != theirs
        for mine, theirs in zip(
            [i["prompt_hash"] for i in fewshot["items"]["task"]], base_hashes, strict=True
        )
    )  # the examples are in the prompt
    plot = read_json(EVAL_PLOT)
    assert [row["step"] for row in plot] == [0, 4, 6]
    assert all({"step", *HEADLINE, "forgetting_score"} <= set(row) for row in plot)

    # an unchanged model is not generated again: the second run is served from the cache
    first = {path.name: read_json(path) for path in EVAL_DIR.glob("*.json")}
    eval_stage.main()
    for name, report in first.items():
        again = read_json(EVAL_DIR / name)
        assert again["generated"] == 0
        assert again["items"] == report["items"] and again["metrics"] == report["metrics"]


def check_select(checkpoints: list[Path]) -> None:
    select_stage.main()
    metrics = read_json(METRICS)
    assert set(METRIC_KEYS) <= set(metrics)
    assert metrics["selected_step"] in {4, 6}
    chosen = f"checkpoint-{metrics['selected_step']}"
    assert (SELECTED_DIR / "adapter_model.safetensors").exists()
    assert (SELECTED_DIR / "adapter_config.json").exists()
    selection = read_json(SELECTED_DIR / "selection.json")
    assert selection["checkpoint"] == chosen
    assert not list(SELECTED_DIR.glob("optimizer*"))
    report = REPORT_MD.read_text()
    assert f"**{chosen}** (step {metrics['selected_step']})" in report
    for name in ["base", *(path.name for path in checkpoints)]:
        assert f"| {name} | " in report or f"| {name} ← | " in report
    assert "## Diagnosis" in report and isinstance(metrics["diagnosis"], str)
    diagnosis = read_json(DIAGNOSIS)  # what `make improve` runs: the same findings
    assert diagnosis["guardrails_passed"] == metrics["guardrails_passed"]
    modes = [finding["mode"] for finding in diagnosis["findings"]]
    assert (", ".join(modes) or "none") == metrics["diagnosis"]
    for figure in (LOSS_FIGURE, METRICS_FIGURE):
        assert figure.read_bytes().startswith(b"\x89PNG")
        assert f"]({figure.relative_to(REPORT_MD.parent)})" in report
    page = REPORT_HTML.read_text()
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 2
    assert 0 <= metrics["fewshot_task_accuracy"] <= 1  # eval.fewshot_k defaults to 3
    # every headline metric with its interval; the paired differences from the baselines
    for name in (*METRIC_KEYS[:-1], "task_score", "val_task_accuracy"):
        assert metrics[f"{name}_lo"] <= metrics[name] <= metrics[f"{name}_hi"], name
    assert metrics["test_items"] == 6 and metrics["val_items"] == 6
    for baseline in ("base", "fewshot"):
        diff = f"vs_{baseline}_task_accuracy_diff"
        assert metrics[f"{diff}_lo"] <= metrics[diff] <= metrics[f"{diff}_hi"]
        assert 0 < metrics[f"vs_{baseline}_task_accuracy_p"] <= 1
    assert "## Against the baselines (test, paired)" in report
    items = read_json(TEST_ITEMS)  # git-tracked per-item test scores, for compare-exps
    assert items["selected"]["model"] == chosen and set(items) >= {"base", "fewshot"}
    assert len(items["selected"]["items"]["task"]) == metrics["test_items"]
    card = ModelCard.load(SELECTED_DIR / "README.md")  # as the Hub reads it
    front = card.data.to_dict()
    assert "base_model" not in front  # models/base is a local directory, not a Hub id
    assert front["library_name"] == "peft" and "## Limitations" in card.text
    (index,) = front["model-index"]
    test_accuracy = [
        metric
        for result in index["results"]
        if result["dataset"].get("split") == "test"
        for metric in result["metrics"]
        if metric["type"] == "accuracy"
    ]
    value = round(metrics["task_accuracy"], 4)
    assert test_accuracy == [{"type": "accuracy", "value": value, "name": "Test task accuracy"}]


def check_export(chosen: str) -> None:
    """models/export holds the merged model (f16) and the GGUF with its Modelfile, and every
    export was generated with the training prompts and given a verdict."""
    export_stage.main()
    report = read_json(EXPORT_REPORT)
    assert set(report["exports"]) == {"adapter", "merged_f16", "gguf_q8_0"}
    assert report["rows"] == 6  # export.parity_rows (64) caps at the test split
    for name, row in report["exports"].items():
        assert row["same_prompts"] is True, name
        assert 0 <= row["stop_rate"] <= 1 and 0 <= row["agreement"] <= 1
    assert report["exports"]["adapter"]["agreement"] == 1.0
    for name in ("merged_f16", "gguf_q8_0"):
        row = report["exports"][name]
        assert row["passed"] is (name not in report["failures"]) and row["size_mb"] > 0
    assert report["parity_passed"] is not bool(report["failures"])
    gguf = EXPORT_DIR / "gguf"
    assert (gguf / "model-q8_0.gguf").read_bytes()[:4] == b"GGUF"
    modelfile = (gguf / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "| gguf_q8_0 |" in EXPORT_MD.read_text()
    check_merged_equals_adapter(EXPORT_DIR / "merged", CHECKPOINTS_DIR / chosen)


def check_merged_equals_adapter(merged: Path, checkpoint: Path) -> None:
    """The exported merged model is base + adapter merged in float32, then rounded to f16
    (export.dtype), weight for weight; and the adapter did change the base."""
    import torch
    from safetensors.torch import load_file

    exported = load_file(merged / "model.safetensors")
    expected = load_model_with_adapter(checkpoint, BASE_MODEL_DIR).state_dict()
    base = load_model_with_adapter(None, BASE_MODEL_DIR).state_dict()
    changed = 0
    for name, tensor in exported.items():
        assert tensor.dtype == torch.float16, name
        assert torch.equal(tensor, expected[name].to(torch.float16)), name
        changed += not torch.equal(tensor, base[name].to(torch.float16))
    assert changed > 0, "the merged model equals the base"
    assert (merged / "tokenizer.json").exists() and (merged / "chat_template.jinja").exists()


def test_pipeline_then_crash_and_resume(project: Path) -> None:
    check_smoke()
    checkpoints = check_train()
    check_evaluate(checkpoints)
    check_select(checkpoints)
    check_export(read_json(SELECTED_DIR / "selection.json")["checkpoint"])

    # A crash after checkpoint-4: the last checkpoint and the run's stats never got written.
    first, last = checkpoints
    kept = mtimes(first)
    stamp = (CHECKPOINTS_DIR / trainer.RUN_FINGERPRINT).stat().st_mtime_ns
    shutil.rmtree(last)
    paths.TRAIN_STATS.unlink()

    train_stage.main()

    assert mtimes(first) == kept, "checkpoint-4 was rewritten instead of resumed from"
    assert (CHECKPOINTS_DIR / trainer.RUN_FINGERPRINT).stat().st_mtime_ns == stamp
    assert [path.name for path in complete_checkpoints(CHECKPOINTS_DIR)] == [
        "checkpoint-4",
        "checkpoint-6",
    ]
    state = read_json(last / "trainer_state.json")
    assert state["global_step"] == 6
    for path in loss_plot_sources():
        rows = read_json(Path(path)) if path.endswith(".json") else read_tsv(Path(path))
        steps = [int(row["step"]) for row in rows]
        assert steps == sorted(set(steps)), f"{path}: steps {steps} after the resume"
    stats = read_json(paths.TRAIN_STATS)
    assert stats["global_step"] == 6
    assert stats["tokens_per_second"] is None  # only set for a run that started clean


def loss_plot_sources() -> dict[str, str]:
    """tsv path -> column of the `train_val_loss` plot in dvc.yaml."""
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    (plot,) = [p["train_val_loss"] for p in dvc_yaml["plots"] if "train_val_loss" in p]
    return plot["y"]


def test_loss_plot_draws_curves(project: Path) -> None:
    """Every series of the train/val loss plot is a curve: a row per logged step (train) or
    per model (val: the base at step 0, then each checkpoint, measured by eval)."""
    train_stage.main()
    eval_stage.main()
    sources = loss_plot_sources()
    assert len(sources) == 2
    for path, column in sources.items():
        rows = read_json(Path(path)) if path.endswith(".json") else read_tsv(Path(path))
        steps = [int(row["step"]) for row in rows]
        assert len(rows) >= 3, f"{path}: {len(rows)} point(s), not a curve"
        assert steps == sorted(set(steps)), f"{path}: steps {steps}"
        assert all(float(row[column]) > 0 for row in rows)
