"""Task scoring, format checks and the forgetting score: pure code, no model."""

import json

import pytest

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.evaluation.scoring import (
    chrf,
    forgetting_score,
    regressions,
    rouge_l,
    score_task_item,
    task_metrics,
)
from {{ cookiecutter.module_name }}.params import TaskParams
from {{ cookiecutter.module_name }}.training.checkpoints import checkpoint_step

FIELDS = ["category", "priority", "needs_human", "reply"]
JSON_TASK = TaskParams(target_format="json", fields=FIELDS, score_fields=FIELDS[:3])
TEXT_TASK = TaskParams(target_format="text")
EXPECTED = {"category": "billing", "priority": "high", "needs_human": True, "reply": "On it."}
TARGET = json.dumps(EXPECTED)


def output(**changes) -> str:
    return json.dumps({**EXPECTED, **changes})


def test_exact_match() -> None:
    item = score_task_item(TARGET, TARGET, JSON_TASK)
    assert item == {
        "correct": True,
        "score": 1.0,
        "exact": True,
        "format_ok": True,
        "drift": False,
        "fields": {"category": True, "priority": True, "needs_human": True},
    }


def test_key_order_and_spacing_do_not_matter() -> None:
    reordered = json.dumps(dict(reversed(list(EXPECTED.items()))), indent=2)
    item = score_task_item(f"  {reordered}\n", TARGET, JSON_TASK)
    assert item["correct"] and item["format_ok"]


def test_reply_is_not_scored() -> None:
    item = score_task_item(output(reply="Something else entirely."), TARGET, JSON_TASK)
    assert item["correct"] is True
    assert "reply" not in item["fields"]


def test_wrong_field() -> None:
    item = score_task_item(output(priority="low"), TARGET, JSON_TASK)
    assert item["correct"] is False
    assert item["format_ok"] is True
    assert item["fields"] == {"category": True, "priority": False, "needs_human": True}


def test_type_matters() -> None:
    item = score_task_item(output(needs_human="true"), TARGET, JSON_TASK)
    assert item["fields"]["needs_human"] is False
    assert item["correct"] is False


@pytest.mark.parametrize("text", ["billing, high", '{"category": "billing"', "", "[1, 2]", "42"])
def test_invalid_json(text: str) -> None:
    item = score_task_item(text, TARGET, JSON_TASK)
    assert item["correct"] is False
    assert item["format_ok"] is False
    assert item["drift"] is False
    assert not any(item["fields"].values())


def test_json_then_prose_is_drift() -> None:
    item = score_task_item(TARGET + " Hope this helps! Let me know.", TARGET, JSON_TASK)
    assert item["drift"] is True
    assert item["format_ok"] is False
    # the fields are still read from the leading JSON object
    assert item["correct"] is True


def test_extra_key_is_a_format_error() -> None:
    item = score_task_item(output(confidence=0.9), TARGET, JSON_TASK)
    assert item["format_ok"] is False
    assert item["drift"] is False
    assert item["correct"] is True


def test_missing_key() -> None:
    partial = {k: v for k, v in EXPECTED.items() if k != "priority"}
    item = score_task_item(json.dumps(partial), TARGET, JSON_TASK)
    assert item["format_ok"] is False
    assert item["fields"]["priority"] is False
    assert item["correct"] is False


@pytest.mark.parametrize("target", ["Paris", "[1, 2]", '{"category": null}'])
def test_a_target_that_is_no_json_object_scores_every_field_wrong(target: str) -> None:
    # curate.format_audit: keep lets such rows reach val and test; eval must not crash
    item = score_task_item(output(category=None), target, JSON_TASK)
    assert item["correct"] is False
    assert item["fields"]["priority"] is False


def test_text_task_normalised_exact_match() -> None:
    assert score_task_item("The  Answer: Paris!", "answer paris", TEXT_TASK)["correct"] is True
    assert score_task_item("Paris, France", "Paris", TEXT_TASK)["correct"] is False
    empty = score_task_item("   ", "Paris", TEXT_TASK)
    assert empty["format_ok"] is False
    assert empty["correct"] is False
    assert empty["drift"] is False


def test_whole_object_exact_match_needs_the_free_text_field_too() -> None:
    item = score_task_item(output(reply="Sure."), TARGET, JSON_TASK)
    assert item["correct"] is True  # every score field matches
    assert item["exact"] is False  # the reply differs
    reordered = json.dumps(dict(reversed(list(EXPECTED.items()))))
    assert score_task_item(reordered, TARGET, JSON_TASK)["exact"] is True
    assert score_task_item(TARGET + " thanks!", TARGET, JSON_TASK)["exact"] is False


# ------------------------------------------------------------------- configurable scorers


def text_task(scorer: str, **extra) -> TaskParams:
    return TaskParams(target_format="text", scorer=scorer, **extra)


@pytest.mark.parametrize(
    ("scorer", "extra", "output", "target", "correct", "format_ok"),
    [
        ("exact", {}, "Paris", "Paris", True, True),
        ("exact", {}, "  Paris\n", "Paris", True, True),
        ("exact", {}, "paris", "Paris", False, True),
        ("exact", {}, "", "Paris", False, False),
        ("normalised", {}, "The answer: PARIS!", "paris", False, True),
        ("normalised", {}, "Paris.", "paris", True, True),
        ("normalised", {}, "1,000", "1000", True, True),
        ("regex", {"answer_pattern": r"#### (.+)"}, "so 5+5\n#### 10", "#### 10", True, True),
        ("regex", {"answer_pattern": r"#### (.+)"}, "so 5+5\n#### 10", "10", True, True),
        ("regex", {"answer_pattern": r"#### (.+)"}, "#### 11", "10", False, True),
        ("regex", {"answer_pattern": r"#### (.+)"}, "the answer is 10", "10", False, False),
        ("regex", {"answer_pattern": r"[A-D]"}, "I pick C.", "C", True, True),
        ("numeric", {}, "It costs 1,234.50 dollars", "1234.5", True, True),
        ("numeric", {}, "first 3, then 7", "7", True, True),  # the last number counts
        ("numeric", {}, "about 3.14", "3.14159", False, True),
        ("numeric", {"tolerance": 0.01}, "about 3.14", "3.14159", True, True),
        ("numeric", {}, "-4", "-4.0", True, True),
        ("numeric", {}, "no idea", "4", False, False),
        ("numeric", {"answer_pattern": r"Answer: (\S+)"}, "3 apples. Answer: 5", "5", True, True),
    ],
)
def test_text_scorers(
    scorer: str, extra: dict, output: str, target: str, correct: bool, format_ok: bool
) -> None:
    item = score_task_item(output, target, text_task(scorer, **extra))
    assert (item["correct"], item["format_ok"]) == (correct, format_ok)
    assert item["drift"] is False
    assert item["exact"] == (output.strip() == target.strip())


def test_all_or_nothing_scorers_score_zero_or_one() -> None:
    assert score_task_item(" Paris ", "paris", TEXT_TASK)["score"] == 1.0
    assert score_task_item("Lyon", "paris", TEXT_TASK)["score"] == 0.0
    assert score_task_item(output(priority="low"), TARGET, JSON_TASK)["score"] == 0.0


SUMMARY = "The printer is out of toner."
PARAPHRASE = "The printer has run out of toner."


@pytest.mark.parametrize(("metric", "paraphrase"), [(chrf, 0.7501), (rouge_l, 0.7692)])
def test_graded_scorers_give_partial_credit(metric, paraphrase: float) -> None:
    assert metric(SUMMARY, SUMMARY) == 1.0
    assert metric(f"  {SUMMARY}\n", SUMMARY) == 1.0
    assert metric("", "") == 1.0  # the libraries give two empty strings 0
    assert metric("xyz qqq", SUMMARY) == pytest.approx(0.0, abs=0.05)
    assert metric("", SUMMARY) == 0.0
    assert metric(PARAPHRASE, SUMMARY) == paraphrase
    assert metric("The printer is broken.", SUMMARY) < paraphrase


def test_chrf_works_in_any_script_rouge_l_only_in_english() -> None:
    target = "Принтер без тонера."
    assert 0.5 < chrf("Принтер остался без тонера.", target) < 1.0
    assert rouge_l("Принтер остался без тонера.", target) == 0.0


@pytest.mark.parametrize("scorer", ["chrf", "rougeL"])
def test_a_graded_score_above_min_score_counts_as_correct(scorer: str) -> None:
    lenient, strict = (TaskParams(scorer=scorer, min_score=m) for m in (0.5, 0.8))
    item = score_task_item(PARAPHRASE, SUMMARY, lenient)
    assert item["correct"] is True and 0.7 < item["score"] < 0.8
    assert item["format_ok"] is True and item["exact"] is False
    assert score_task_item(PARAPHRASE, SUMMARY, strict)["correct"] is False
    assert score_task_item(SUMMARY, SUMMARY, strict)["correct"] is True
    empty = score_task_item("  ", SUMMARY, lenient)
    assert (empty["correct"], empty["score"], empty["format_ok"]) == (False, 0.0, False)


def test_task_score_is_the_mean_graded_score() -> None:
    task = TaskParams(scorer="chrf", min_score=0.8)
    outputs = [SUMMARY, PARAPHRASE, "Nothing to report."]
    items = [score_task_item(out, SUMMARY, task) for out in outputs]
    metrics = task_metrics(items, task)
    assert metrics["task_accuracy"] == 0.3333  # only the identical output reaches 0.8
    assert metrics["task_score"] == round(sum(item["score"] for item in items) / 3, 4)
    assert 0.5 < metrics["task_score"] < 0.7


def test_numeric_scorer_needs_a_number_in_the_target() -> None:
    with pytest.raises(StageError, match="holds no number"):
        score_task_item("4", "four", text_task("numeric"))


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"target_format": "text", "scorer": "regex"}, "needs answer_pattern"),
        ({"target_format": "text", "scorer": "exact", "answer_pattern": "(["}, "not a valid"),
        ({"target_format": "text", "scorer": "json_fields"}, "needs target_format json"),
        ({"target_format": "json", "fields": ["a"]}, "at least one entry in score_fields"),
        ({"target_format": "json", "fields": ["a"], "scorer": "chrf"}, "target_format text"),
        ({"target_format": "json", "fields": ["a"], "scorer": "rougeL"}, "target_format text"),
        ({"target_format": "text", "scorer": "chrf", "min_score": 1.5}, "less than or equal"),
        ({"target_format": "text", "scorer": "rougeL", "min_score": -0.1}, "greater than"),
    ],
)
def test_scorer_settings_are_checked(task: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskParams(**task)


def test_a_json_task_may_use_a_text_scorer() -> None:
    task = TaskParams(target_format="json", fields=["a"], scorer="exact")
    assert task.resolved_scorer == "exact"
    assert TaskParams(target_format="json", fields=["a"], score_fields=["a"]).resolved_scorer == (
        "json_fields"
    )


def test_task_metrics() -> None:
    items = [
        score_task_item(TARGET, TARGET, JSON_TASK),
        score_task_item(output(priority="low"), TARGET, JSON_TASK),
        score_task_item(TARGET + " thanks!", TARGET, JSON_TASK),
        score_task_item("nope", TARGET, JSON_TASK),
    ]
    assert task_metrics(items, JSON_TASK) == {
        "task_accuracy": 0.5,
        "task_score": 0.5,  # all or nothing: the same as task_accuracy
        "exact_match": 0.25,
        "format_correct": 0.5,
        "format_drift": 0.25,
        "field_category": 0.75,
        "field_priority": 0.5,
        "field_needs_human": 0.75,
    }


def test_task_metrics_rounding_and_empty() -> None:
    items = [score_task_item(TARGET, TARGET, JSON_TASK)] + [
        score_task_item("x", TARGET, JSON_TASK) for _ in range(2)
    ]
    assert task_metrics(items, JSON_TASK)["task_accuracy"] == 0.3333
    assert task_metrics([], JSON_TASK)["task_accuracy"] == 0.0
    assert set(task_metrics([], TEXT_TASK)) == {
        "task_accuracy",
        "task_score",
        "exact_match",
        "format_correct",
        "format_drift",
    }


def test_forgetting_base_wrong_model_right_is_not_a_regression() -> None:
    base = {"a": False, "b": True}
    model = {"a": True, "b": True}
    assert forgetting_score(base, model) == 0.0
    assert regressions(base, model) == []


def test_forgetting_base_right_model_wrong_is_a_regression() -> None:
    base = {"a": True, "b": True, "c": True, "d": False}
    model = {"a": False, "b": True, "c": True, "d": False}
    assert forgetting_score(base, model) == pytest.approx(1 / 3, abs=1e-4)
    assert regressions(base, model) == ["a"]


def test_forgetting_with_no_base_right_items_is_zero() -> None:
    assert forgetting_score({"a": False, "b": False}, {"a": False, "b": False}) == 0.0
    assert forgetting_score({}, {"a": True}) == 0.0


def test_forgetting_item_missing_from_model_counts_as_wrong() -> None:
    assert forgetting_score({"a": True, "b": True}, {"a": True}) == 0.5


def test_total_forgetting() -> None:
    assert forgetting_score({"a": True, "b": True}, {"a": False, "b": False}) == 1.0


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("checkpoint-48", 48),
        ("checkpoint-0", 0),
        ("models/checkpoints/checkpoint-1200", 1200),
        ("base", 0),
        ("checkpoint-16-tmp", 0),
        ("checkpoint-", 0),
    ],
)
def test_checkpoint_step(name: str, step: int) -> None:
    assert checkpoint_step(name) == step
