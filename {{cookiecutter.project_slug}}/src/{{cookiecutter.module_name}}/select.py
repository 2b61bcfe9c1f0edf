"""Stage `select`: pick the checkpoint with the best **val** task accuracy (never train loss)
among those that pass the guardrails, score it and the base once on the held-out **test**
split, export it to models/selected, and write the headline metrics and a report.

A fine-tune that fails every guardrail is a result, not a crash: the best-effort checkpoint is
exported, marked `guardrails_passed: false`, and the stage exits 0.
"""

import shutil
from pathlib import Path

from .cli import run_stage
from .evalcache import CACHE_DIR, GenerationCache
from .evaluate import (
    ModelRun,
    check_backend,
    generation_settings,
    generator_factory,
    load_reports,
    score_task,
    task_requests,
)
from .jsonio import read_jsonl, write_json
from .modeling import load_tokenizer
from .params import Params, SelectParams, load_params
from .paths import CHECKPOINTS_DIR, METRICS, REPORT_MD, SELECTED_DIR, TEST_SPLIT
from .scoring import task_metrics

HEADLINE = (
    "task_accuracy",
    "format_correct",
    "general_qa",
    "instruction_follow",
    "forgetting_score",
)
EXPORTED_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


def guardrail_failures(metrics: dict, rules: SelectParams) -> list[str]:
    failures = []
    if metrics["forgetting_score"] > rules.max_forgetting:
        failures.append(
            f"forgetting_score {metrics['forgetting_score']} > "
            f"max_forgetting {rules.max_forgetting}"
        )
    if metrics["format_correct"] < rules.min_format_correct:
        failures.append(
            f"format_correct {metrics['format_correct']} < min_format_correct "
            f"{rules.min_format_correct}"
        )
    return failures


def choose(reports: list[dict], rules: SelectParams) -> tuple[dict, bool]:
    """Best val task accuracy among checkpoints passing the guardrails (ties: better format,
    then the earlier step). Returns (report, guardrails_passed)."""
    checkpoints = [r for r in reports if r["role"] == "checkpoint"]
    if not checkpoints:
        raise ValueError("no checkpoint eval reports: run the eval stage first")
    passing = [r for r in checkpoints if not guardrail_failures(r["metrics"], rules)]

    def rank(report: dict) -> tuple:
        m = report["metrics"]
        return (m["task_accuracy"], m["format_correct"], -report["step"])

    pool = passing or checkpoints
    return max(pool, key=rank), bool(passing)


def export(checkpoint: Path, out_dir: Path, selection: dict) -> None:
    """Copy the selected weights (adapter or full model) and tokenizer, not optimizer state."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in EXPORTED_FILES:
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, out_dir / name)
    write_json(out_dir / "selection.json", selection)


def test_metrics(run: ModelRun, requests: list, rows: list[dict], params: Params) -> dict:
    """Task metrics on the test rows (generations are cached as in eval)."""
    name = run.checkpoint.name if run.checkpoint else "base"
    outputs = run.outputs(requests, f"{name} test")
    return task_metrics(score_task(rows, requests, outputs, params.task), params.task)


def headline(selected: dict, test: dict, base_test: dict, passed: bool) -> dict:
    """reports/metrics.json: test task metrics, general metrics from eval, and the base."""
    val = selected["metrics"]
    return {
        "task_accuracy": test["task_accuracy"],
        "format_correct": test["format_correct"],
        "format_drift": test["format_drift"],
        "general_qa": val["general_qa"],
        "instruction_follow": val["instruction_follow"],
        "forgetting_score": val["forgetting_score"],
        "selected_step": selected["step"],
        "val_loss": selected.get("val_loss"),
        "val_task_accuracy": val["task_accuracy"],
        "guardrails_passed": passed,
        "base_task_accuracy": base_test["task_accuracy"],
        "base_format_correct": base_test["format_correct"],
    }


def markdown_report(reports: list[dict], metrics: dict, selected: dict, failures: list) -> str:
    def row(name: str, m: dict) -> str:
        cells = (f"{m[k]:.3f}" if k in m else "–" for k in HEADLINE)  # few-shot: task only
        return f"| {name} | " + " | ".join(cells) + " |"

    header = "| model | " + " | ".join(HEADLINE) + " |\n" + "|---" * (len(HEADLINE) + 1) + "|"
    lines = [
        "# Fine-tune report",
        "",
        f"Selected **{selected['model']}** (step {selected['step']}) by val task accuracy.",
        "Guardrails: "
        + (
            "passed."
            if metrics["guardrails_passed"]
            else "**no checkpoint passed**; best effort shown. " + "; ".join(failures)
        ),
        "",
        "## Test split (held out, scored once)",
        "",
        "| model | task_accuracy | format_correct |",
        "|---|---|---|",
        f"| base | {metrics['base_task_accuracy']:.3f} | {metrics['base_format_correct']:.3f} |",
        f"| {selected['model']} | {metrics['task_accuracy']:.3f} | "
        f"{metrics['format_correct']:.3f} |",
        "",
        "## Every model on val",
        "",
        "Forgetting is measured against the base; few-shot is the base with solved train",
        "examples in its prompt (task metrics only).",
        "",
        header,
        *[row(r["model"], r["metrics"]) for r in reports],
        "",
        f"Regressions of the selected checkpoint vs base: {len(selected['regressions'])}"
        + (f" ({', '.join(selected['regressions'][:10])})" if selected["regressions"] else ""),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    check_backend(params.eval)
    reports = load_reports()
    selected, passed = choose(reports, params.select)
    checkpoint = CHECKPOINTS_DIR / selected["model"]
    tokenizer = load_tokenizer()
    rows = read_jsonl(TEST_SPLIT)
    requests = task_requests(
        tokenizer, [r["prompt"] for r in rows], params.eval.max_new_tokens_task
    )
    cache = GenerationCache(CACHE_DIR if params.eval.cache else None)
    generator_for = generator_factory(params.eval, tokenizer)
    settings = generation_settings(params.eval)
    test = test_metrics(
        ModelRun(checkpoint, generator_for, cache, settings), requests, rows, params
    )
    base_run = ModelRun(None, generator_for, cache, settings)
    base_test = test_metrics(base_run, requests, rows, params)
    metrics = headline(selected, test, base_test, passed)
    failures = guardrail_failures(selected["metrics"], params.select)
    write_json(METRICS, metrics)
    REPORT_MD.write_text(markdown_report(reports, metrics, selected, failures))
    export(checkpoint, SELECTED_DIR, {"checkpoint": selected["model"], **metrics})
    print(
        f"select: {selected['model']} (val task {selected['metrics']['task_accuracy']:.2f}); "
        f"test task {metrics['task_accuracy']:.2f} vs base {base_test['task_accuracy']:.2f}, "
        f"format {metrics['format_correct']:.2f} vs base {base_test['format_correct']:.2f}"
        + ("" if passed else "  [guardrails failed: see reports/report.md]")
    )


if __name__ == "__main__":
    run_stage("select", main)
