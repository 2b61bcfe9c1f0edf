"""Scores computed by code (no judge model): task accuracy, format, general QA, instructions,
and the forgetting score against the base model."""

from typing import Any

from .params import TaskParams
from .schemas import json_target_status, parse_leading_json
from .suites import check_instruction, normalize_answer, score_general_qa


def score_task_item(output: str, target: str, task: TaskParams) -> dict[str, Any]:
    """Per-item task scores: `correct`, `format_ok`, `drift`, and per-field matches."""
    if task.target_format == "text":
        correct = normalize_answer(output) == normalize_answer(target)
        return {"correct": correct, "format_ok": bool(output.strip()), "drift": False}
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
        "format_ok": status == "ok",
        "drift": status == "format_drift",
        "fields": fields,
    }


def mean(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def task_metrics(items: list[dict], task: TaskParams) -> dict[str, float]:
    metrics = {
        "task_accuracy": mean([item["correct"] for item in items]),
        "format_correct": mean([item["format_ok"] for item in items]),
        "format_drift": mean([item["drift"] for item in items]),
    }
    for name in task.score_fields:
        metrics[f"field_{name}"] = mean([item["fields"][name] for item in items])
    return metrics


def score_qa_item(output: str, item: dict) -> bool:
    return score_general_qa(output, item["answers"])


def score_instruction_item(output: str, item: dict) -> bool:
    return check_instruction(output, item["checks"])


def forgetting_score(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> float:
    """Share of the general items the base gets right that the model gets wrong (0 when the
    base gets none right). Items the base got wrong never count as regressions."""
    known = [item_id for item_id, ok in base_correct.items() if ok]
    if not known:
        return 0.0
    return round(sum(not model_correct.get(item_id, False) for item_id in known) / len(known), 4)


def regressions(base_correct: dict[str, bool], model_correct: dict[str, bool]) -> list[str]:
    return sorted(i for i, ok in base_correct.items() if ok and not model_correct.get(i, False))
