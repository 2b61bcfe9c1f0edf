"""Findings whose fixes contradict each other (underfitting's larger rank and longer training
against forgetting's smaller rank, or overfitting's fewer epochs) become one verdict with the
evidence of both and one command; findings that agree get none."""

from pathlib import Path

from {{ cookiecutter.module_name }}.params import parse_params
from {{ cookiecutter.module_name }}.selection.diagnose import Finding
from {{ cookiecutter.module_name }}.selection.run import summary_lines
from {{ cookiecutter.module_name }}.selection.verdict import verdict, verdict_lines

PARAMS = parse_params({"train": {"lora_r": 8, "num_epochs": 2}})
FORGETTING = Finding(
    "forgetting",
    "forgetting score 0.40 [0.21, 0.60] (> select.forgetting_alert 0.19)",
    "the fine-tune overwrote general ability: use a smaller rank ... or replay",
    {"split.replay_fraction": 0.1},
)
UNDERFITTING = Finding(
    "underfitting",
    "val task score 0.259 is not 0.02 above the base's 0.271",
    "increase the rank and train longer",
    {"train.num_epochs": 3, "train.lora_r": 16},
)
OVERFITTING = Finding(
    "overfitting",
    "val loss rose from 1.20 (step 40) to 1.50 (step 120)",
    "train fewer epochs",
    {"train.num_epochs": 1.0, "train.lora_r": 4},
)
SELECTED = {"task_score": 0.251, "task_accuracy": 0.02}
BASE = {"task_score": 0.271, "task_accuracy": 0.02}
FEWSHOT = {"task_score": 0.302, "task_accuracy": 0.03}


def test_forgetting_and_underfitting_are_one_verdict() -> None:
    found = verdict([FORGETTING, UNDERFITTING], SELECTED, BASE, FEWSHOT, "task_score", PARAMS)
    assert found is not None
    assert "does not help" in found.summary
    assert set(found.replaces) == {"forgetting", "underfitting"}
    assert any(FORGETTING.evidence in item for item in found.evidence)
    assert any(UNDERFITTING.evidence in item for item in found.evidence)
    assert "few-shot 0.302" in found.evidence[-1] and "base 0.271" in found.evidence[-1]
    # the few-shot baseline already does better: more examples, not more or less rank
    assert found.command == "dvc exp run -S eval.fewshot_k=6"
    lines = verdict_lines(found)
    assert sum(line.startswith("  try:") for line in lines) == 1
    assert not any("train.lora_r" in line for line in lines)


def test_without_a_better_few_shot_the_next_base_size_is_tried() -> None:
    weak = {"task_score": 0.1}
    found = verdict([UNDERFITTING, FORGETTING], SELECTED, BASE, weak, "task_score", PARAMS)
    assert found.try_params == {"base.model": "HuggingFaceTB/SmolLM2-360M-Instruct"}
    off = parse_params({"eval": {"fewshot_k": 0}})
    unmeasured = verdict([UNDERFITTING, FORGETTING], SELECTED, BASE, None, "task_score", off)
    assert unmeasured.try_params == {"eval.fewshot_k": 3}


def test_overfitting_and_underfitting_take_the_shorter_run() -> None:
    found = verdict([OVERFITTING, UNDERFITTING], SELECTED, BASE, FEWSHOT, "task_score", PARAMS)
    assert "memorises" in found.summary
    assert found.try_params == OVERFITTING.try_params
    assert set(found.replaces) == {"overfitting", "underfitting"}


def test_findings_that_agree_get_no_verdict() -> None:
    for findings in ([FORGETTING], [UNDERFITTING], [FORGETTING, OVERFITTING], []):
        assert verdict(findings, SELECTED, BASE, FEWSHOT, "task_score", PARAMS) is None


def test_select_prints_the_verdict_instead_of_the_findings_it_replaces() -> None:
    found = verdict([FORGETTING, UNDERFITTING], SELECTED, BASE, FEWSHOT, "task_score", PARAMS)
    assert found is not None
    selected = {"model": "checkpoint-8", "metrics": {"task_accuracy": 0.5}}
    metrics = {"task_accuracy": 0.02, "task_accuracy_lo": 0.0, "task_accuracy_hi": 0.1}
    metrics |= {"test_items": 50, "format_correct": 1.0, "diagnosis": "forgetting, underfitting"}
    tests = ({}, {"metrics": BASE}, None)
    scoring = {"warning": "chrf on short targets"}
    for passed in (True, False):
        lines = summary_lines(
            selected,
            metrics | {"guardrails_passed": passed},
            tests,
            [],
            [FORGETTING, UNDERFITTING, OVERFITTING],
            found,
            scoring,
            Path("reports/report.md"),
        )
        assert lines[0].startswith("checkpoint-8 (val task 0.50); test task 0.02 [0.00, 0.10]")
        assert lines[0].endswith("see reports/report.md]") is not passed
        assert [line.split(":")[0] for line in lines[1:]] == [
            "overfitting",
            *(line.split(":")[0] for line in verdict_lines(found)),
            "WARNING",
        ]
