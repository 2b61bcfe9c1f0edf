"""Scores computed by code (no judge model): task accuracy, format, general QA, instructions,
and the forgetting score against the base model."""

import math
import re
from typing import Any

from ..data.schemas import json_target_status, parse_leading_json
from ..errors import StageError
from ..params import TaskParams
from .suites import canonical_answer, failed_checks, score_general_qa

NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def score_task_item(output: str, target: str, task: TaskParams) -> dict[str, Any]:
    """Per-item task scores: `correct` (the task's scorer), `exact` (the whole target),
    `format_ok`, `drift`, and per-field matches for JSON targets."""
    if task.resolved_scorer == "json_fields":
        return score_json_fields(output, target, task)
    correct, format_ok = TEXT_SCORERS[task.resolved_scorer](output, target, task)
    return {
        "correct": correct,
        "exact": output.strip() == target.strip(),
        "format_ok": format_ok,
        "drift": False,
    }


def score_json_fields(output: str, target: str, task: TaskParams) -> dict[str, Any]:
    """JSON targets: a field matches when its parsed value is equal (so key order and spacing
    do not matter); task accuracy needs every score field to match."""
    status = json_target_status(output, task.fields)
    expected, _ = parse_leading_json(target)
    try:
        predicted, _ = parse_leading_json(output)
    except ValueError:
        predicted = None
    predicted = predicted if isinstance(predicted, dict) else {}
    fields = {
        name: name in predicted and predicted[name] == expected.get(name)
        for name in task.score_fields
    }
    return {
        "correct": all(fields.values()),
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


def mean(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def task_metrics(items: list[dict], task: TaskParams) -> dict[str, float]:
    metrics = {
        "task_accuracy": mean([item["correct"] for item in items]),
        "exact_match": mean([item["exact"] for item in items]),
        "format_correct": mean([item["format_ok"] for item in items]),
        "format_drift": mean([item["drift"] for item in items]),
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
    known = [item_id for item_id, ok in base_correct.items() if ok]
    if not known:
        return 0.0
    return round(sum(not model_correct.get(item_id, False) for item_id in known) / len(known), 4)


def regressions(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> list[str]:
    return sorted(i for i, ok in base_correct.items() if ok and not model_correct.get(i, False))
