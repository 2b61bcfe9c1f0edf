"""Stage logic without training: smoke sizing and loss checks, train resume bookkeeping,
checkpoint ordering, checkpoint selection, eval summaries, base materialisation, the CLI."""

import json
import math
import sys
import types
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.cli import run_stage
from {{ cookiecutter.module_name }}.document import Image, to_html, to_markdown
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.evaluation.model_report import summarise
from {{ cookiecutter.module_name }}.evaluation.reports import load_reports, plot_rows, report_path
from {{ cookiecutter.module_name }}.evaluation.scoring import task_metrics
from {{ cookiecutter.module_name }}.evaluation.uncertainty import Interval
from {{ cookiecutter.module_name }}.io import read_json, read_jsonl, write_json, write_jsonl
from {{ cookiecutter.module_name }}.models import hub
from {{ cookiecutter.module_name }}.models.loading import (
    BITSANDBYTES_MIN,
    QLORA_EXTRA,
    load_tokenizer,
)
from {{ cookiecutter.module_name }}.params import ParamsError, TaskParams, parse_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, EVAL_DIR, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.selection.comparison import HEADLINE_INTERVALS, compare
from {{ cookiecutter.module_name }}.selection.guardrails import (
    choose,
    guardrail_failures,
    ranking_metric,
)
from {{ cookiecutter.module_name }}.selection.report import HEADLINE, build_blocks, headline
from {{ cookiecutter.module_name }}.stages import train as train_stage
from {{ cookiecutter.module_name }}.training import guards, smoke, trainer
from {{ cookiecutter.module_name }}.training.checkpoints import checkpoint_step, complete_checkpoints

# ------------------------------------------------------------------------------- smoke


def numbered(n: int) -> list[dict]:
    return [{"id": str(i)} for i in range(n)]


@pytest.mark.parametrize(
    ("n", "fraction", "min_rows", "expected"),
    [
        (100, 0.1, 8, 10),  # the fraction
        (101, 0.1, 8, 11),  # rounded up
        (40, 0.1, 8, 8),  # the min_rows floor
        (5, 0.1, 8, 5),  # never more rows than there are
        (10, 1.0, 2, 10),
    ],
)
def test_smoke_rows(n: int, fraction: float, min_rows: int, expected: int) -> None:
    rows = numbered(n)
    chosen = smoke.smoke_rows(rows, fraction, min_rows)
    assert chosen == rows[:expected]


@pytest.mark.parametrize(
    ("n_rows", "batch_size", "grad_accum", "epochs", "expected"),
    [
        (24, 4, 1, 1, 6),
        (25, 4, 1, 1, 7),  # a last partial batch is a step
        (24, 4, 2, 1, 3),  # gradient accumulation
        (24, 4, 1, 2, 12),
        (24, 8, 1, 1.5, 5),  # 3 steps an epoch * 1.5, rounded up
    ],
)
def test_full_run_steps(
    n_rows: int, batch_size: int, grad_accum: int, epochs: float, expected: int
) -> None:
    params = parse_params(
        {"train": {"batch_size": batch_size, "grad_accum": grad_accum, "num_epochs": epochs}}
    )
    assert smoke.full_run_steps(n_rows, params) == expected


@pytest.mark.parametrize(
    ("before", "after"), [(math.nan, 1.0), (2.0, math.nan), (math.inf, 1.0), (2.0, -math.inf)]
)
def test_check_loss_not_finite(before: float, after: float) -> None:
    problem = smoke.check_loss(before, after)
    assert problem is not None
    assert "not finite" in problem
    assert "train.learning_rate" in problem


@pytest.mark.parametrize(("before", "after"), [(2.0, 2.0), (2.0, 2.5)])
def test_check_loss_not_falling(before: float, after: float) -> None:
    problem = smoke.check_loss(before, after)
    assert problem is not None
    assert "did not fall" in problem


def test_check_loss_falling_is_ok() -> None:
    assert smoke.check_loss(2.0, 1.9) is None


# ------------------------------------------------------------------------------- train


def test_qlora_without_bitsandbytes_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` fails
    with pytest.raises(StageError, match="bitsandbytes is not installed") as info:
        trainer.check_method_supported(parse_params({"train": {"method": "qlora"}}).train)
    assert f"pip install -e '.[{QLORA_EXTRA}]'" in str(info.value)
    assert "train.method=lora" in str(info.value)


@pytest.mark.parametrize(
    ("installed", "devices"), [("0.45.5", None), ("0.46.1", {"cuda"}), ("0.50.2", {"cuda"})]
)
def test_qlora_with_a_bitsandbytes_lacking_cpu_layers_names_the_version(
    monkeypatch: pytest.MonkeyPatch, installed: str, devices: set[str] | None
) -> None:
    """Too old (0.45 has no device list and no CPU backend), or a build without the CPU."""
    fake = types.SimpleNamespace(__version__=installed)
    if devices is not None:
        fake.supported_torch_devices = devices
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    qlora = parse_params({"train": {"method": "qlora"}}).train
    with pytest.raises(StageError, match=f"bitsandbytes {installed} has no 4-bit layers") as info:
        trainer.check_method_supported(qlora)
    assert "for cpu" in str(info.value)
    assert f"pip install -U 'bitsandbytes>={BITSANDBYTES_MIN}'" in str(info.value)


def test_qlora_runs_on_the_cpu_with_a_current_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(__version__="0.50.2", supported_torch_devices={"cpu", "cuda"})
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    qlora = parse_params({"train": {"method": "qlora"}}).train
    assert trainer.check_method_supported(qlora) is None


def test_unsloth_stays_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    for method in ("lora", "qlora"):
        train = parse_params({"train": {"method": method, "backend": "unsloth"}}).train
        with pytest.raises(StageError, match="unsloth needs a CUDA GPU.*train.backend=trl"):
            trainer.check_method_supported(train)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_cpu_methods_are_supported(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    assert trainer.check_method_supported(parse_params({"train": {"method": method}}).train) is None


@pytest.fixture
def splits_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_jsonl(Path("data/splits/train.jsonl"), [{"id": "a"}, {"id": "b"}])
    write_jsonl(Path("data/splits/val.jsonl"), [{"id": "c"}])
    return tmp_path


def test_fingerprint_tracks_train_params_seed_and_data(splits_dir: Path) -> None:
    params = parse_params({})
    stamp = trainer.fingerprint(params, TRAIN_SPLIT)
    assert set(stamp) == {"params", "train_data"}  # eval, not train, reads val
    assert trainer.fingerprint(parse_params({}), TRAIN_SPLIT) == stamp
    # a train param or the seed changes the fingerprint; other sections do not
    assert (
        trainer.fingerprint(parse_params({"train": {"lora_r": 16}}), TRAIN_SPLIT)["params"]
        != stamp["params"]
    )
    assert trainer.fingerprint(parse_params({"seed": 7}), TRAIN_SPLIT)["params"] != stamp["params"]
    assert trainer.fingerprint(parse_params({"eval": {"batch_size": 2}}), TRAIN_SPLIT) == stamp
    # so does the data
    write_jsonl(Path("data/splits/train.jsonl"), [{"id": "a"}])
    changed = trainer.fingerprint(params, TRAIN_SPLIT)
    assert changed["train_data"] != stamp["train_data"]
    write_jsonl(Path("data/splits/val.jsonl"), [{"id": "d"}])
    assert (
        trainer.fingerprint(params, TRAIN_SPLIT) == changed
    )  # a checkpoint does not depend on val


def make_checkpoint(output_dir: Path, step: int, complete: bool = True) -> Path:
    path = output_dir / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if complete:
        write_json(path / "trainer_state.json", {"global_step": step})
    return path


STAMP = {"params": "p", "train_data": "t", "val_data": "v"}


def test_prepare_output_dir_fresh(tmp_path: Path) -> None:
    output_dir = tmp_path / "checkpoints"
    assert trainer.prepare_output_dir(output_dir, STAMP) is None
    assert read_json(output_dir / trainer.RUN_FINGERPRINT) == STAMP


def test_prepare_output_dir_resumes_from_last_complete(tmp_path: Path) -> None:
    output_dir = tmp_path / "checkpoints"
    trainer.prepare_output_dir(output_dir, STAMP)
    first = make_checkpoint(output_dir, 4)
    last = make_checkpoint(output_dir, 8)
    partial = make_checkpoint(output_dir, 12, complete=False)  # the crash hit mid-save
    assert trainer.prepare_output_dir(output_dir, dict(STAMP)) == last
    assert not partial.exists()
    assert first.exists() and last.exists()
    assert read_json(output_dir / trainer.RUN_FINGERPRINT) == STAMP


def test_prepare_output_dir_with_only_a_partial_checkpoint_starts_clean(tmp_path: Path) -> None:
    output_dir = tmp_path / "checkpoints"
    trainer.prepare_output_dir(output_dir, STAMP)
    partial = make_checkpoint(output_dir, 4, complete=False)
    assert trainer.prepare_output_dir(output_dir, STAMP) is None
    assert not partial.exists()
    assert read_json(output_dir / trainer.RUN_FINGERPRINT) == STAMP


@pytest.mark.parametrize("changed", ["params", "train_data", "val_data"])
def test_prepare_output_dir_wipes_on_a_new_fingerprint(tmp_path: Path, changed: str) -> None:
    output_dir = tmp_path / "checkpoints"
    trainer.prepare_output_dir(output_dir, STAMP)
    make_checkpoint(output_dir, 4)
    (output_dir / "stray.txt").write_text("left over")
    new = {**STAMP, changed: "other"}
    assert trainer.prepare_output_dir(output_dir, new) is None
    assert sorted(p.name for p in output_dir.iterdir()) == [trainer.RUN_FINGERPRINT]
    assert read_json(output_dir / trainer.RUN_FINGERPRINT) == new


def test_prepare_output_dir_without_a_stamp_wipes(tmp_path: Path) -> None:
    """Checkpoints of unknown provenance (no fingerprint.json) are never resumed from."""
    output_dir = tmp_path / "checkpoints"
    make_checkpoint(output_dir, 4)
    assert trainer.prepare_output_dir(output_dir, STAMP) is None
    assert not (output_dir / "checkpoint-4").exists()


# ------------------------------------------------------------------------- checkpoints


def test_complete_checkpoints_are_ordered_by_step(tmp_path: Path) -> None:
    for step in (10, 9, 100, 2):
        make_checkpoint(tmp_path, step)
    make_checkpoint(tmp_path, 11, complete=False)
    (tmp_path / "checkpoint-best").mkdir()
    (tmp_path / "checkpoint-best" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-3.tmp").mkdir()
    (tmp_path / "checkpoint-3.tmp" / "trainer_state.json").write_text("{}")
    found = complete_checkpoints(tmp_path)
    assert [path.name for path in found] == [
        "checkpoint-2",
        "checkpoint-9",
        "checkpoint-10",
        "checkpoint-100",
    ]
    assert complete_checkpoints(tmp_path / "missing") == []


def test_checkpoint_step() -> None:
    assert checkpoint_step("checkpoint-48") == 48
    assert checkpoint_step("models/checkpoints/checkpoint-7") == 7
    assert checkpoint_step("base") == 0


# ------------------------------------------------------------------------------ select

RULES = parse_params({"select": {"max_forgetting": 0.2, "min_format_correct": 0.5}}).select


def report(
    model: str, task: float, fmt: float = 1.0, forgetting: float = 0.0, score: float | None = None
) -> dict:
    return {
        "model": model,
        "role": "base" if model == "base" else "checkpoint",
        "step": checkpoint_step(model),
        "metrics": {
            "task_accuracy": task,
            "task_score": task if score is None else score,
            "format_correct": fmt,
            "general_qa": 0.5,
            "instruction_follow": 0.5,
            "forgetting_score": forgetting,
        },
        "regressions": [],
    }


def test_choose_best_val_task_accuracy() -> None:
    reports = [
        report("base", 0.1),
        report("checkpoint-4", 0.5),
        report("checkpoint-8", 0.7),
        report("checkpoint-12", 0.6),
    ]
    selected, passed = choose(reports, RULES)
    assert (selected["model"], passed) == ("checkpoint-8", True)


def test_choose_never_picks_the_base_or_the_fewshot_baseline() -> None:
    fewshot = {**report("fewshot", 0.95), "role": "fewshot"}
    reports = [report("base", 0.9), fewshot, report("checkpoint-4", 0.1)]
    selected, _ = choose(reports, RULES)
    assert selected["model"] == "checkpoint-4"
    with pytest.raises(StageError, match="no checkpoint"):
        choose([report("base", 0.9)], RULES)


def test_choose_skips_checkpoints_failing_a_guardrail() -> None:
    reports = [
        report("base", 0.0),
        report("checkpoint-4", 0.5),
        report("checkpoint-8", 0.9, forgetting=0.6),  # best task, but forgets
        report("checkpoint-12", 0.8, fmt=0.4),  # second best, but bad format
    ]
    selected, passed = choose(reports, RULES)
    assert (selected["model"], passed) == ("checkpoint-4", True)


def test_choose_ties_prefer_better_format_then_earlier_step() -> None:
    reports = [
        report("checkpoint-4", 0.5, fmt=0.8),
        report("checkpoint-8", 0.5, fmt=0.9),
        report("checkpoint-12", 0.5, fmt=0.9),
    ]
    assert choose(reports, RULES)[0]["model"] == "checkpoint-8"
    same = [report("checkpoint-12", 0.5), report("checkpoint-4", 0.5), report("checkpoint-8", 0.5)]
    assert choose(same, RULES)[0]["model"] == "checkpoint-4"


def test_choose_falls_back_to_best_effort_when_none_passes() -> None:
    reports = [
        report("base", 0.0),
        report("checkpoint-4", 0.3, forgetting=0.5),
        report("checkpoint-8", 0.6, fmt=0.1),
    ]
    selected, passed = choose(reports, RULES)
    assert (selected["model"], passed) == ("checkpoint-8", False)


def test_a_graded_scorer_ranks_by_val_task_score() -> None:
    """chrf/rougeL: the thresholded accuracy of free text is mostly noise; the mean score
    is not. Other scorers keep ranking by task accuracy."""
    graded, exact = TaskParams(scorer="chrf"), TaskParams(scorer="exact")
    assert (ranking_metric(graded), ranking_metric(exact)) == ("task_score", "task_accuracy")
    assert ranking_metric(TaskParams(target_format="text")) == "task_accuracy"  # normalised
    reports = [
        report("base", 0.0, score=0.2),
        report("checkpoint-4", 0.2, score=0.41),  # more outputs over min_score by luck
        report("checkpoint-8", 0.1, score=0.55),  # closer to the targets on average
        report("checkpoint-12", 0.1, score=0.7, forgetting=0.6),  # best, but forgets
    ]
    assert choose(reports, RULES, "task_score")[0]["model"] == "checkpoint-8"
    assert choose(reports, RULES)[0]["model"] == "checkpoint-4"
    ties = [
        report("checkpoint-4", 0.1, fmt=0.8, score=0.5),
        report("checkpoint-12", 0.2, fmt=0.9, score=0.5),
        report("checkpoint-8", 0.3, fmt=0.9, score=0.5),
    ]
    assert choose(ties, RULES, "task_score")[0]["model"] == "checkpoint-8"  # format, then step


BASE = report("base", 0.0)["metrics"]  # general_qa 0.5


def test_guardrail_failures_name_the_params() -> None:
    assert guardrail_failures(report("checkpoint-4", 0.5)["metrics"], RULES, BASE) == []
    bad = report("c", 0.5, fmt=0.25, forgetting=0.75)["metrics"]
    failures = guardrail_failures(bad, RULES, BASE)
    assert len(failures) == 2
    assert "max_forgetting 0.2" in failures[0] and "0.75" in failures[0]
    assert "min_format_correct 0.5" in failures[1] and "0.25" in failures[1]
    # the thresholds themselves pass
    at_limit = report("c", 0.5, fmt=0.5, forgetting=0.2)["metrics"]
    assert guardrail_failures(at_limit, RULES, BASE) == []


def test_general_qa_below_its_share_of_the_base_fails_the_guardrail() -> None:
    forgetful = {**report("checkpoint-4", 0.5)["metrics"], "general_qa": 0.3}
    (failure,) = guardrail_failures(forgetful, RULES, BASE)
    assert "general_qa 0.3 < 0.4" in failure and "min_general_qa_ratio 0.8" in failure
    reports = [report("base", 0.0), {**report("checkpoint-4", 0.9), "metrics": forgetful}]
    reports.append(report("checkpoint-8", 0.4))
    assert choose(reports, RULES)[0]["model"] == "checkpoint-8"


def scored_on_test(model: str, correct: int, partial: float, exact=0, fmt=8, drift=0) -> dict:
    """A model on 8 test rows, as select scores it: `correct` right (score 1), the others
    scored `partial`; the first `exact` exact, the first `fmt` in format, the last `drift`
    drifting."""
    items = [
        {
            "id": f"t{i}",
            "correct": i < correct,
            "score": 1.0 if i < correct else partial,
            "exact": i < exact,
            "format_ok": i < fmt,
            "drift": i >= 8 - drift,
        }
        for i in range(8)
    ]
    metrics = task_metrics(items, TaskParams())
    return {"model": model, "split": "test", "items": {"task": items}, "metrics": metrics}


TEST = scored_on_test("checkpoint-8", 6, 0.25, exact=4)
BASE_TEST = scored_on_test("base", 1, 2 / 7, fmt=4, drift=2)
BOOTSTRAP = {"samples": 2000, "confidence": 0.95, "seed": 42}
PAIRED = ("task_accuracy", "format_correct")


def test_the_test_reports_hold_the_metrics_of_their_items() -> None:
    assert TEST["metrics"] == {
        "task_accuracy": 0.75,
        "task_score": 0.8125,
        "exact_match": 0.5,
        "format_correct": 1.0,
        "format_drift": 0.0,
    }
    assert BASE_TEST["metrics"] == {
        "task_accuracy": 0.125,
        "task_score": 0.375,
        "exact_match": 0.0,
        "format_correct": 0.5,
        "format_drift": 0.25,
    }


def test_headline_has_the_test_scores_the_baselines_and_the_diagnosis() -> None:
    selected = {**report("checkpoint-8", 0.7, score=0.78), "val_loss": 0.8}
    test, base = TEST["metrics"], BASE_TEST["metrics"]
    fewshot = {**base, "task_accuracy": 0.25, "task_score": 0.5}
    metrics = headline(selected, test, base, fewshot, True, [])
    assert metrics["task_accuracy"] == 0.75 and metrics["val_task_accuracy"] == 0.7
    assert metrics["base_task_accuracy"] == 0.125 and metrics["fewshot_task_accuracy"] == 0.25
    assert (metrics["task_score"], metrics["val_task_score"]) == (0.8125, 0.78)  # test, val
    assert (metrics["base_task_score"], metrics["fewshot_task_score"]) == (0.375, 0.5)
    assert (metrics["selected_step"], metrics["diagnosis"]) == (8, "none")
    assert "fewshot_task_accuracy" not in headline(selected, test, base, None, True, [])


def test_headline_has_flat_interval_and_comparison_keys() -> None:
    selected = {**report("checkpoint-8", 0.7), "val_loss": 0.8}
    intervals = {name: Interval(0.5, 0.25, 0.75, 8) for name in HEADLINE_INTERVALS}
    intervals["val_task_accuracy"] = Interval(0.7, 0.4, 0.9, 10)
    comparison = compare(TEST, BASE_TEST, "task_accuracy", BOOTSTRAP)
    metrics = headline(
        selected, TEST["metrics"], BASE_TEST["metrics"], None, True, [], intervals, [comparison]
    )
    for name in HEADLINE_INTERVALS:
        assert (metrics[f"{name}_lo"], metrics[f"{name}_hi"]) == (
            intervals[name].lo,
            intervals[name].hi,
        )
    assert (metrics["test_items"], metrics["val_items"]) == (8, 10)
    assert metrics["vs_base_task_accuracy_diff"] == 0.625  # 6 of 8 vs 1 of 8, paired
    assert 0 < metrics["vs_base_task_accuracy_diff_lo"] < 0.625
    assert 0.625 < metrics["vs_base_task_accuracy_diff_hi"] <= 1
    assert metrics["vs_base_task_accuracy_p"] == 0.0625  # McNemar: 5 discordant, all one way
    assert all(not isinstance(value, dict | list) for value in metrics.values())  # flat


def report_text(selected: dict, passed: bool, failures: list[str], tmp_path: Path) -> str:
    reports = [report("base", 0.1), report("checkpoint-4", 0.5), report("checkpoint-8", 0.7)]
    image = tmp_path / "figures" / "plot.png"
    image.parent.mkdir()
    image.write_bytes(b"\x89PNG fake")
    curate = {"rows_in": 10, "quarantined": 1, "reasons": {"not_json": 1}}
    curate |= {"duplicates": {"exact": 1, "near": 0}, "size_advice": "8 rows: too few"}
    split = {"counts": {"train": 6, "val": 1, "test": 1}, "contamination": {"removed": 0}}
    blocks = build_blocks(
        selected=selected,
        passed=passed,
        failures=failures,
        tests={"base": BASE_TEST, "checkpoint-8": TEST},
        reports=reports,
        findings=[],
        curate=curate,
        split=split,
        figures=[Image(image, "a plot")],
        intervals={name: Interval(0.5, 0.25, 0.75, 8) for name in HEADLINE_INTERVALS},
        comparisons=[compare(TEST, BASE_TEST, metric, BOOTSTRAP) for metric in PAIRED],
        bootstrap=BOOTSTRAP,
        versions={"transformers": "5.0.0", "python": "3.11.7"},
        data_report=tmp_path / "data.md",
        training_example=tmp_path / "training_example.html",
    )
    html = to_html(blocks, "Fine-tune report")
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    assert "<table>" in html and html.count("<h2>") == 7
    return to_markdown(blocks, tmp_path)


def test_the_report_lists_every_model_the_test_split_and_the_verdict(tmp_path: Path) -> None:
    selected = {**report("checkpoint-8", 0.7), "regressions": ["general_qa/q1"]}
    text = report_text(selected, True, [], tmp_path)
    assert "Selected **checkpoint-8** (step 8) by val task accuracy" in text
    for name in ("base", "checkpoint-4", "checkpoint-8 ←"):
        assert any(line.startswith(f"| {name} | ") for line in text.splitlines())
    assert "| model | step | " + " | ".join(HEADLINE) + " | task_score | val_loss |" in text
    assert "| checkpoint-8 ← | 8 | 0.700 | 1.000 |" in text  # val metrics row
    # test split rows: items, then task_accuracy, task_score and format_correct with intervals
    (row,) = [line for line in text.splitlines() if line.startswith("| checkpoint-8 | 8 | 0.750 [")]
    assert "| 1.000 [0.676, 1.000] | 0.500 | 0.000 |" in row  # all in format: Wilson, 8 items
    (row,) = [line for line in text.splitlines() if line.startswith("| base | 8 | 0.125 [0.022, ")]
    assert row.endswith("| 0.000 | 0.250 |")
    assert "| general_qa | 0.500 [0.250, 0.750] | 8 |" in text  # the selected on val
    # paired with the base: Tango's interval excludes 0, but 5 discordant items all one
    # way are McNemar p 0.0625: not "better" on 8 items
    assert "## Against the baselines (test, paired)" in text
    assert "vs base: **no difference detectable on 8 items** (+0.625 [" in text
    assert "McNemar p = 0.0625" in text
    assert "Regressions of the selected checkpoint vs base: 1 (general_qa/q1)" in text
    assert "![a plot](figures/plot.png)" in text
    assert "No failure mode found" in text
    assert "| raw rows | 10 |" in text  # the curate funnel, as in reports/data.md
    assert "**Size advice:** 8 rows: too few." in text
    assert "## Software" in text and "| transformers | 5.0.0 |" in text


def test_the_report_says_when_no_checkpoint_passes(tmp_path: Path) -> None:
    selected = report("checkpoint-4", 0.5, forgetting=0.9)
    failures = guardrail_failures(selected["metrics"], RULES, BASE)
    text = report_text(selected, False, failures, tmp_path)
    assert "**No checkpoint passed the guardrails.**" in text
    assert "max_forgetting" in text


# ---------------------------------------------------------------------------- evaluate

TEXT_TASK = TaskParams(target_format="text")


def eval_report(model: str, qa: dict[str, bool], follow: dict[str, bool]) -> dict:
    task = [{"correct": True, "score": 1.0, "exact": True, "format_ok": True, "drift": False}]
    return {
        "model": model,
        "role": "base" if model == "base" else "checkpoint",
        "step": checkpoint_step(model),
        "val_loss": None,
        "items": {
            "task": task,
            "general_qa": [{"id": i, "correct": ok} for i, ok in qa.items()],
            "instruction_follow": [{"id": i, "correct": ok} for i, ok in follow.items()],
        },
    }


def test_summarise_measures_forgetting_against_the_base() -> None:
    base = summarise(
        eval_report("base", {"q1": True, "q2": False, "q3": True}, {"i1": True, "i2": False}),
        TEXT_TASK,
        None,
    )
    assert base["metrics"]["forgetting_score"] == 0.0
    assert base["regressions"] == []
    tuned = summarise(
        # q1 forgotten; q2 learned (base-wrong/tuned-right is no regression); i2 still wrong
        eval_report(
            "checkpoint-4", {"q1": False, "q2": True, "q3": True}, {"i1": True, "i2": False}
        ),
        TEXT_TASK,
        base,
    )
    metrics = tuned["metrics"]
    assert metrics["forgetting_score"] == round(1 / 3, 4)  # 1 of the 3 items the base knew
    assert tuned["regressions"] == ["general_qa/q1"]
    assert metrics["general_qa"] == round(2 / 3, 4)
    assert metrics["instruction_follow"] == 0.5
    assert metrics["task_accuracy"] == 1.0


def test_summarise_improvement_only_is_no_forgetting() -> None:
    base = summarise(eval_report("base", {"q1": False}, {"i1": True}), TEXT_TASK, None)
    tuned = summarise(eval_report("checkpoint-4", {"q1": True}, {"i1": True}), TEXT_TASK, base)
    assert tuned["metrics"]["forgetting_score"] == 0.0
    assert tuned["regressions"] == []


def test_plot_rows_start_at_step_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = summarise(eval_report("base", {"q1": True}, {"i1": True}), TEXT_TASK, None)
    later = {"model": "checkpoint-10", "role": "checkpoint", "step": 10}
    write_json(report_path("checkpoint-10", EVAL_DIR), base | later)
    write_json(report_path("base", EVAL_DIR), base)
    fewshot = {"model": "fewshot", "role": "fewshot", "step": 0, "val_loss": None}
    write_json(report_path("fewshot", EVAL_DIR), fewshot | {"metrics": base["metrics"]})
    tuned = summarise(eval_report("checkpoint-9", {"q1": False}, {"i1": True}), TEXT_TASK, base)
    write_json(report_path("checkpoint-9", EVAL_DIR), tuned)
    rows = plot_rows(load_reports(EVAL_DIR))
    assert [row["step"] for row in rows] == [0, 9, 10]
    assert rows[0]["forgetting_score"] == 0.0
    assert rows[1]["forgetting_score"] == 0.5  # checkpoint-9 forgot q1
    expected = {"step", "val_loss", "format_drift", "task_score", *HEADLINE}
    assert set(rows[0]) == expected  # no few-shot row
    assert [r["role"] for r in load_reports(EVAL_DIR)] == [
        "base",
        "fewshot",
        "checkpoint",
        "checkpoint",
    ]


# -------------------------------------------------------------------------------- base


def test_unknown_embedded_model_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="unknown embedded model 'embedded:foo'") as info:
        hub.materialise("embedded:foo", None, tmp_path / "base")
    for known in hub.EMBEDDED:
        assert known in str(info.value)


@pytest.mark.parametrize("model", ["no-such-model", "no/such/model"])
def test_neither_a_dir_nor_a_hub_id(tmp_path: Path, model: str) -> None:
    with pytest.raises(StageError, match="neither a directory nor a hub id"):
        hub.materialise(model, None, tmp_path / "base")


def test_local_dir_without_safetensors_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "pickled"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(StageError, match="safetensors"):
        hub.materialise(str(source), None, tmp_path / "base")


def test_local_model_is_resaved_as_safetensors(tmp_path: Path, tiny_model_dir: Path) -> None:
    out_dir = tmp_path / "models" / "base"
    out_dir.mkdir(parents=True)
    (out_dir / "stale.bin").write_bytes(b"from an earlier run")
    message = hub.materialise(str(tiny_model_dir), None, out_dir)
    assert str(tiny_model_dir) in message
    assert not (out_dir / "stale.bin").exists()
    assert list(out_dir.glob("*.safetensors"))
    assert not list(out_dir.glob("*.bin"))
    assert (out_dir / "tokenizer.json").exists()
    manifest = read_json(out_dir / "manifest.json")
    assert manifest == {"kind": "local", "source": str(tiny_model_dir.resolve())}
    assert json.loads((out_dir / "config.json").read_text())["model_type"] == "llama"
    assert load_tokenizer(out_dir).chat_template


# ------------------------------------------------------------------------ params + cli


@pytest.mark.parametrize(
    "error",
    [ParamsError("params.yaml is invalid"), StageError("loss is not finite")],
)
def test_run_stage_turns_errors_into_one_line(error: Exception) -> None:
    def main() -> None:
        raise error

    with pytest.raises(SystemExit) as info:
        run_stage("smoke", main)
    assert str(info.value.code).startswith("smoke failed: ")
    assert str(error) in str(info.value.code)


@pytest.mark.parametrize(
    "error", [KeyError("a bug"), ValueError("a library bug"), FileNotFoundError("a bug")]
)
def test_run_stage_lets_bugs_raise(error: Exception) -> None:
    """Only a StageError is shortened to one line: a ValueError from a library is a bug and
    keeps its traceback."""

    def main() -> None:
        raise error

    with pytest.raises(type(error)):
        run_stage("train", main)


def test_a_stage_with_a_bad_param_exits_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"train": {"lora_r": 0}}))
    with pytest.raises(SystemExit) as info:
        run_stage("train", train_stage.main)
    message = str(info.value.code)
    assert message.startswith("train failed: ")
    assert "train.lora_r" in message


# ------------------------------------------------------------------------ loss guard


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_always_stops(loss: float) -> None:
    assert "loss is" in guards.loss_problem(loss, [], None)
    assert "loss is" in guards.loss_problem(loss, [1.0] * 5, 4.0)


def test_a_spike_stops_only_against_a_full_window() -> None:
    history = [2.0, 1.8, 1.6, 1.5, 1.4]  # median 1.6
    assert guards.loss_problem(6.3, history, 4.0) is None  # 3.9x
    problem = guards.loss_problem(6.5, history, 4.0)
    assert "4.1x" in problem and "train.max_loss_spike 4.0" in problem
    assert guards.loss_problem(6.5, history[:4], 4.0) is None  # too little history yet
    assert guards.loss_problem(6.5, history, None) is None  # spike check off


def test_the_guard_names_the_step_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-30").mkdir()  # half written: no trainer_state.json
    guard = guards.LossGuard(tmp_path, max_spike=4.0)
    state = types.SimpleNamespace(global_step=25)
    for loss in (2.0, 1.9, 1.8, 1.7, 1.6):
        guard.on_log(None, state, None, logs={"loss": loss})
    guard.on_log(None, state, None, logs={"eval_loss": 99.0})  # not a training loss
    with pytest.raises(StageError, match="step 25: loss is nan.*checkpoint: checkpoint-20"):
        guard.on_log(None, state, None, logs={"loss": math.nan})


def test_the_spike_threshold_does_not_invalidate_checkpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trainer, "file_hash", lambda path: "same data")
    base = parse_params({})
    changed = parse_params({"train": {"max_loss_spike": 10.0}})
    lr = parse_params({"train": {"learning_rate": 1e-4}})
    assert (
        trainer.fingerprint(base, TRAIN_SPLIT)["params"]
        == trainer.fingerprint(changed, TRAIN_SPLIT)["params"]
    )
    assert (
        trainer.fingerprint(base, TRAIN_SPLIT)["params"]
        != trainer.fingerprint(lr, TRAIN_SPLIT)["params"]
    )


def test_the_guard_stops_a_real_training_run(project: Path, tmp_path: Path) -> None:
    """Raised from a callback, the guard's error ends `trainer.train()` at that step. A
    threshold below 1 makes any loss a 'spike' once five are logged: a stop at step 6."""
    out = tmp_path / "run"
    rows = read_jsonl(Path("data/splits/train.jsonl"))
    guard = guards.LossGuard(out, max_spike=0.5)
    sft_trainer = trainer.build_trainer(
        parse_params(yaml.safe_load(Path("params.yaml").read_text())),
        BASE_MODEL_DIR,
        rows,
        read_jsonl(Path("data/splits/val.jsonl")),
        out,
        callbacks=[guard],
        max_steps=10,
        logging_steps=1,
        save_steps=3,
        eval_strategy="no",
    )
    # step 6 is logged before it is saved: the last good checkpoint is step 3
    with pytest.raises(StageError, match=r"step 6: loss .* checkpoint: checkpoint-3\."):
        sft_trainer.train()
    assert len(guard.history) == 5
