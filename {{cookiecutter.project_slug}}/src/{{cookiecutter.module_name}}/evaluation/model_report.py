"""One model's report: its outputs scored item by item (the task rows, the general suites) and
summarised into metrics, with forgetting measured against the base's report."""

from ..data.chat import target_text
from ..io import content_hash
from ..params import Params, TaskParams
from .eval_set import EvalSet
from .generation import Request
from .metric_names import FORGETTING_SCORE, GENERAL_QA, GENERAL_SUITES, INSTRUCTION_FOLLOW, VAL_LOSS
from .model_names import FEWSHOT, model_name, model_step, stacked_stage
from .model_run import ModelRun
from .scoring import (
    forgetting_score,
    instruction_failures,
    mean,
    regressions,
    score_qa_item,
    score_task_item,
    task_metrics,
)


def prompt_hash(request: Request) -> str:
    return content_hash(list(request.prompt_ids))[:12]


def score_task(
    rows: list[dict], requests: list[Request], outputs: list[str], task: TaskParams
) -> list[dict]:
    return [
        {
            "id": row["id"],
            "prompt_hash": prompt_hash(request),
            "output": output,
            **score_task_item(output, target_text(row), task),
        }
        for row, request, output in zip(rows, requests, outputs, strict=True)
    ]


def score_general(eval_set: EvalSet, outputs: list[str]) -> dict[str, list[dict]]:
    scored: dict[str, list[dict]] = {suite: [] for suite in GENERAL_SUITES}
    for (suite, item), request, output in zip(
        eval_set.general_items, eval_set.general, outputs, strict=True
    ):
        record = {"id": item["id"], "prompt_hash": prompt_hash(request), "output": output}
        if suite == GENERAL_QA:
            record["correct"] = score_qa_item(output, item)
        else:
            record["failed_checks"] = instruction_failures(output, item)
            record["correct"] = not record["failed_checks"]
        scored[suite].append(record)
    return scored


def correct_by_id(report: dict) -> dict[str, bool]:
    return {
        f"{suite}/{item['id']}": item["correct"]
        for suite in GENERAL_SUITES
        for item in report["items"][suite]
    }


def summarise(report: dict, task: TaskParams, base_report: dict | None) -> dict:
    """Attach metrics to a report; forgetting is measured against `base_report`."""
    items = report["items"]
    metrics = task_metrics(items["task"], task)
    if GENERAL_QA in items:
        metrics[GENERAL_QA] = mean([i["correct"] for i in items[GENERAL_QA]])
        metrics[INSTRUCTION_FOLLOW] = mean([i["correct"] for i in items[INSTRUCTION_FOLLOW]])
        base_correct = correct_by_id(base_report or report)
        metrics[FORGETTING_SCORE] = forgetting_score(base_correct, correct_by_id(report))
        report["regressions"] = regressions(base_correct, correct_by_id(report))
    report["metrics"] = metrics
    return report


def evaluate_model(run: ModelRun, eval_set: EvalSet, task: TaskParams) -> dict:
    """Generate (or fetch) and score one model on the task rows and the general suites."""
    name = model_name(run.checkpoint)
    task_outputs = run.outputs(eval_set.task, f"{name} task")
    general_outputs = run.outputs(eval_set.general, f"{name} general")
    items = {"task": score_task(eval_set.rows, eval_set.task, task_outputs, task)}
    items.update(score_general(eval_set, general_outputs))
    report = {"model": name, "role": "checkpoint" if run.checkpoint else "base"}
    report["step"] = model_step(run.checkpoint)
    stage = stacked_stage(run.checkpoint) if run.checkpoint else None
    if stage:
        report["stage"] = stage
    report["items"] = items
    # DPO and RL train on another objective (preferences, rewards): their checkpoints' val
    # loss would not continue SFT's curve, so none is taken
    report[VAL_LOSS] = None if stage else run.val_loss(eval_set.val)
    return run.stamp(report)


def evaluate_fewshot(run: ModelRun, eval_set: EvalSet, requests: list[Request], task) -> dict:
    """The base model with solved train examples in its prompt: what fine-tuning must beat
    to be worth it."""
    outputs = run.outputs(requests, "few-shot task")
    report = {"model": FEWSHOT, "role": "fewshot", "step": 0}
    report["items"] = {"task": score_task(eval_set.rows, requests, outputs, task)}
    return run.stamp(report)


def score_on_test(
    run: ModelRun, requests: list, rows: list[dict], params: Params, name: str | None = None
) -> dict:
    """A test report, shaped as the eval reports but with task items only: `name` (default:
    the model's), per-item records and metrics. Generations are cached as in eval."""
    name = name or model_name(run.checkpoint)
    items = score_task(rows, requests, run.outputs(requests, f"{name} test"), params.task)
    metrics = task_metrics(items, params.task)
    return {"model": name, "split": "test", "items": {"task": items}, "metrics": metrics}
