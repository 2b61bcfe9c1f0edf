"""Scores computed by code (no judge model): task accuracy, format, general QA, instructions,
and the forgetting score against the base model.

Every task item gets a `score` in [0, 1]: the graded scorers (chrF, ROUGE-L) give free-text
outputs partial credit and `correct` is `score >= task.min_score`; the other scorers are
all or nothing, so their score is 0 or 1."""

import math
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from ..data.schemas import json_target_status, parse_leading_json
from ..errors import StageError
from ..params import TaskParams
from .metric_names import EXACT_MATCH, FORMAT_CORRECT, FORMAT_DRIFT, TASK_ACCURACY, TASK_SCORE
from .suites import canonical_answer, failed_checks, score_general_qa

NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def score_task_item(output: str, target: str, task: TaskParams) -> dict[str, Any]:
    """Per-item task scores: `correct` (the task's scorer), `score` (its graded value, or
    0/1), `exact` (the whole target), `format_ok`, `drift`, and per-field matches for JSON
    targets."""
    if task.resolved_scorer == "json_fields":
        return score_json_fields(output, target, task)
    if task.graded:
        score = GRADED_TEXT_SCORERS[task.resolved_scorer](output, target)
        correct, format_ok = score >= task.min_score, bool(output.strip())
    else:
        correct, format_ok = TEXT_SCORERS[task.resolved_scorer](output, target, task)
        score = float(correct)
    return {
        "correct": correct,
        "score": score,
        "exact": output.strip() == target.strip(),
        "format_ok": format_ok,
        "drift": False,
    }


def leading_object(text: str) -> dict:
    """The JSON object `text` starts with, or {} when it starts with anything else."""
    try:
        value, _ = parse_leading_json(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def score_json_fields(output: str, target: str, task: TaskParams) -> dict[str, Any]:
    """JSON targets: a field matches when its parsed value is equal (so key order and spacing
    do not matter); task accuracy needs every score field to match."""
    status = json_target_status(output, task.fields)
    # a target that is no JSON object (kept by curate.format_audit: keep) has no field to
    # match: every field counts as wrong rather than the stage failing
    expected, predicted = leading_object(target), leading_object(output)
    fields = {
        name: name in predicted and name in expected and predicted[name] == expected[name]
        for name in task.score_fields
    }
    return {
        "correct": all(fields.values()),
        "score": float(all(fields.values())),
        "exact": status == "ok" and predicted == expected,
        "format_ok": status == "ok",
        "drift": status == "format_drift",
        "fields": fields,
    }


def extract_answer(text: str, pattern: str | None) -> str | None:
    """The answer in `text`: the pattern's first group (or whole match), or None."""
    if pattern is None:
        return text
    match = re.search(pattern, text)
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def parse_number(text: str | None) -> float | None:
    """The last number in `text` ("1,234.5" reads as 1234.5), or None."""
    numbers = NUMBER.findall(text or "")
    return float(numbers[-1].replace(",", "")) if numbers else None


def _exact(output: str, target: str, task: TaskParams) -> tuple[bool, bool]:
    return output.strip() == target.strip(), bool(output.strip())


def _normalised(output: str, target: str, task: TaskParams) -> tuple[bool, bool]:
    return canonical_answer(output) == canonical_answer(target), bool(output.strip())


def _regex(output: str, target: str, task: TaskParams) -> tuple[bool, bool]:
    answer = extract_answer(output, task.answer_pattern)
    # a target written as the bare answer is compared as it is
    expected = extract_answer(target, task.answer_pattern) or target
    correct = answer is not None and canonical_answer(answer) == canonical_answer(expected)
    return correct, answer is not None


def _numeric(output: str, target: str, task: TaskParams) -> tuple[bool, bool]:
    answer = parse_number(extract_answer(output, task.answer_pattern))
    expected = parse_number(extract_answer(target, task.answer_pattern) or target)
    if expected is None:
        raise StageError(f"numeric scorer: the target {target!r} holds no number")
    correct = answer is not None and math.isclose(answer, expected, abs_tol=task.tolerance)
    return correct, answer is not None


TEXT_SCORERS = {"exact": _exact, "normalised": _normalised, "regex": _regex, "numeric": _numeric}


@cache
def _chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()


@cache
def _rouge_metric():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"])


def chrf(output: str, target: str) -> float:
    """sacrebleu's sentence-level chrF (character n-gram F-score: any language, robust to
    inflection and word order), scaled to [0, 1]."""
    output, target = output.strip(), target.strip()
    if output == target:
        return 1.0  # chrF gives two empty strings 0
    return round(_chrf_metric().sentence_score(output, [target]).score / 100, 4)


def rouge_l(output: str, target: str) -> float:
    """ROUGE-L F-measure (longest common word subsequence) from rouge-score. Its tokenizer
    keeps only a-z and 0-9, so it suits English; other scripts score 0 (use chrf)."""
    output, target = output.strip(), target.strip()
    if output == target:
        return 1.0
    return round(_rouge_metric().score(target, output)["rougeL"].fmeasure, 4)


GRADED_TEXT_SCORERS = {"chrf": chrf, "rougeL": rouge_l}


def mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


# Each task metric is the mean of one per-item field (selection/comparison.py resamples them).
TASK_ITEM_FIELDS = {
    TASK_ACCURACY: "correct",
    TASK_SCORE: "score",
    EXACT_MATCH: "exact",
    FORMAT_CORRECT: "format_ok",
    FORMAT_DRIFT: "drift",
}


def task_metrics(items: list[dict], task: TaskParams) -> dict[str, float]:
    """Shares over the task items; `task_score` is the mean item score (the graded scorers'
    partial credit, else equal to task_accuracy)."""
    metrics = {
        metric: mean([item[field] for item in items]) for metric, field in TASK_ITEM_FIELDS.items()
    }
    for name in task.score_fields:
        metrics[f"field_{name}"] = mean([item["fields"][name] for item in items])
    return metrics


def score_qa_item(output: str, item: dict) -> bool:
    return score_general_qa(output, item["answers"])


def instruction_failures(output: str, item: dict) -> list[str]:
    return failed_checks(output, item["checks"])


def forgetting_score(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> float:
    """Share of the general items the base gets right that the model gets wrong (0 when the
    base gets none right). Items the base got wrong never count as regressions."""
    return mean(lost_items(base_correct, model_correct))


def lost_items(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> list[bool]:
    """For each general item the base gets right: does the model get it wrong? (The forgetting
    score is their mean.)"""
    return [not model_correct.get(item_id, False) for item_id, ok in base_correct.items() if ok]


def regressions(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> list[str]:
    return sorted(i for i, ok in base_correct.items() if ok and not model_correct.get(i, False))
