"""Stage `eval`: score the base model and every checkpoint on the val split and the general
suites, by generation (batched, greedy), with the prompts formatted exactly as in training.

Writes reports/eval/<model>.json (metrics + per-item records) and reports/eval_by_step.json
(one row per checkpoint step, step 0 = base) for `dvc plots`.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoints import checkpoint_step, complete_checkpoints
from .cli import run_stage
from .formatting import target_text, user_prompt
from .generation import generate
from .jsonio import read_json, read_jsonl, write_json
from .modeling import load_model_with_adapter, load_tokenizer, use_bf16
from .params import EvalParams, Params, TaskParams, load_params
from .paths import (
    CHECKPOINTS_DIR,
    EVAL_DIR,
    EVAL_PLOT,
    GENERAL_QA_SUITE,
    INSTRUCTION_SUITE,
    VAL_SPLIT,
)
from .scoring import (
    forgetting_score,
    mean,
    regressions,
    score_instruction_item,
    score_qa_item,
    score_task_item,
    task_metrics,
)
from .suites import load_suite

BASE = "base"
GENERAL_SUITES = ("general_qa", "instruction_follow")


@dataclass(frozen=True)
class Suites:
    general_qa: list[dict]
    instruction_follow: list[dict]


def load_general_suites(params: EvalParams) -> Suites:
    return Suites(
        general_qa=load_suite(GENERAL_QA_SUITE)[: params.general_qa_limit],
        instruction_follow=load_suite(INSTRUCTION_SUITE)[: params.instruction_limit],
    )


def prompt_hash(prompt: Any) -> str:
    return hashlib.sha256(repr(prompt).encode()).hexdigest()[:12]


def run_task(model, tokenizer, rows: list[dict], task: TaskParams, params: EvalParams) -> list:
    outputs = generate(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        params.max_new_tokens_task,
        params.batch_size,
        desc="task",
    )
    return [
        {
            "id": r["id"],
            "prompt_hash": prompt_hash(r["prompt"]),
            "output": out,
            **score_task_item(out, target_text(r), task),
        }
        for r, out in zip(rows, outputs, strict=True)
    ]


def run_general(model, tokenizer, suites: Suites, params: EvalParams) -> dict[str, list]:
    """General QA and instruction following: what the model must not forget."""
    results = {}
    for name, items, key, max_new, scorer in (
        ("general_qa", suites.general_qa, "question", params.max_new_tokens_qa, score_qa_item),
        (
            "instruction_follow",
            suites.instruction_follow,
            "prompt",
            params.max_new_tokens_instruction,
            score_instruction_item,
        ),
    ):
        prompts = [user_prompt(item[key]) for item in items]
        outputs = generate(model, tokenizer, prompts, max_new, params.batch_size, desc=name)
        results[name] = [
            {"id": item["id"], "output": out, "correct": scorer(out, item)}
            for item, out in zip(items, outputs, strict=True)
        ]
    return results


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
    metrics["general_qa"] = mean([i["correct"] for i in items["general_qa"]])
    metrics["instruction_follow"] = mean([i["correct"] for i in items["instruction_follow"]])
    base_correct = correct_by_id(base_report or report)
    metrics["forgetting_score"] = forgetting_score(base_correct, correct_by_id(report))
    report["metrics"] = metrics
    report["regressions"] = regressions(base_correct, correct_by_id(report))
    return report


def load_for_generation(checkpoint: Path | None, params: EvalParams):
    """The base (None) or a checkpoint, merged, in eval mode and the eval precision."""
    model = load_model_with_adapter(checkpoint).eval()
    return model.to(torch.bfloat16) if use_bf16(params.bf16) else model


def logged_val_losses(checkpoints: list[Path]) -> dict[int, float]:
    """Step -> val loss the trainer logged (step 0 = the base, via eval_on_start). The last
    checkpoint's trainer_state.json holds the whole log history."""
    if not checkpoints:
        return {}
    history = read_json(checkpoints[-1] / "trainer_state.json")["log_history"]
    return {e["step"]: round(e["eval_loss"], 4) for e in history if "eval_loss" in e}


def evaluate_model(
    checkpoint: Path | None, tokenizer, rows: list[dict], suites: Suites, params: Params
) -> dict:
    """Generate and score one model on the task rows and the general suites."""
    model = load_for_generation(checkpoint, params.eval)
    started = time.perf_counter()
    items = {"task": run_task(model, tokenizer, rows, params.task, params.eval)}
    items.update(run_general(model, tokenizer, suites, params.eval))
    name = checkpoint.name if checkpoint else BASE
    return {
        "model": name,
        "step": checkpoint_step(name),
        "seconds": round(time.perf_counter() - started, 1),
        "items": items,
    }


def plot_rows(reports: list[dict]) -> list[dict]:
    keys = (
        "task_accuracy",
        "format_correct",
        "general_qa",
        "instruction_follow",
        "forgetting_score",
    )
    return [
        {"step": r["step"], "val_loss": r["val_loss"], **{k: r["metrics"][k] for k in keys}}
        for r in reports
    ]


def report_path(name: str) -> Path:
    return EVAL_DIR / f"{name}.json"


def load_reports() -> list[dict]:
    """Eval reports, base first, then checkpoints by step."""
    reports = [read_json(path) for path in EVAL_DIR.glob("*.json")]
    return sorted(reports, key=lambda r: r["step"])


def main() -> None:
    params = load_params()
    tokenizer = load_tokenizer()
    rows = read_jsonl(VAL_SPLIT)
    suites = load_general_suites(params.eval)
    checkpoints = complete_checkpoints(CHECKPOINTS_DIR)
    if not checkpoints:
        raise FileNotFoundError(f"no complete checkpoints in {CHECKPOINTS_DIR}: run train first")
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    for stale in EVAL_DIR.glob("*.json"):
        stale.unlink()
    base = summarise(evaluate_model(None, tokenizer, rows, suites, params), params.task, None)
    reports = [base]
    for checkpoint in checkpoints:
        report = evaluate_model(checkpoint, tokenizer, rows, suites, params)
        reports.append(summarise(report, params.task, base))
    val_losses = logged_val_losses(checkpoints)
    for report in reports:
        report["split"] = "val"
        report["val_loss"] = val_losses.get(report["step"])
        write_json(report_path(report["model"]), report)
        m = report["metrics"]
        print(
            f"eval: {report['model']:>16}  task {m['task_accuracy']:.2f}  "
            f"format {m['format_correct']:.2f}  qa {m['general_qa']:.2f}  "
            f"if {m['instruction_follow']:.2f}  forgetting {m['forgetting_score']:.2f}  "
            f"({report['seconds']}s)"
        )
    write_json(EVAL_PLOT, plot_rows(reports))


if __name__ == "__main__":
    run_stage("eval", main)
