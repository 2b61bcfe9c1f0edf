"""Stage `select`: pick the checkpoint with the best **val** task accuracy (never train loss)
among those that pass the guardrails, score it, the base and the few-shot baseline once on
the held-out **test** split, diagnose the run (overfitting, forgetting, format drift,
contamination), export the adapter, a merged model and a model card to models/selected, and
write the headline metrics and the report (Markdown and HTML, with figures).

A fine-tune that fails every guardrail is a result, not a crash: the best-effort checkpoint is
exported, marked `guardrails_passed: false`, and the stage exits 0.
"""

import shutil
from pathlib import Path

from ..errors import StageError
from ..evaluation.evaluator import (
    ModelRun,
    model_name,
    score_task,
)
from ..evaluation.scoring import task_metrics
from ..io import write_json
from ..params import Params, SelectParams
from ..paths import (
    REPORT_HTML,
    REPORT_MD,
    REPORTS_DIR,
)
from ..training.modeling import (
    SFT_EXPORT,
    SFT_POINTER,
    load_model_with_adapter,
    load_tokenizer,
    sft_checkpoint_of,
)
from .diagnose import Finding
from .report import to_html, to_markdown

MERGED_DIR = "merged"
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


def guardrail_failures(metrics: dict, rules: SelectParams, base: dict | None) -> list[str]:
    """Why a checkpoint's val metrics break the guardrails (empty: it passes); the general-QA
    rule compares with the `base` model's metrics."""
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
    floor = round(base["general_qa"] * rules.min_general_qa_ratio, 4) if base else 0.0
    if metrics["general_qa"] < floor:
        failures.append(
            f"general_qa {metrics['general_qa']} < {floor} (min_general_qa_ratio "
            f"{rules.min_general_qa_ratio} x the base's {base['general_qa']})"
        )
    return failures


def choose(reports: list[dict], rules: SelectParams) -> tuple[dict, bool]:
    """Best val task accuracy among checkpoints passing the guardrails (ties: better format,
    then the earlier step). Returns (report, guardrails_passed)."""
    checkpoints = [r for r in reports if r["role"] == "checkpoint"]
    if not checkpoints:
        raise StageError("no checkpoint eval reports: run the eval stage first")
    base = next((r["metrics"] for r in reports if r["role"] == "base"), None)
    passing = [r for r in checkpoints if not guardrail_failures(r["metrics"], rules, base)]

    def rank(report: dict) -> tuple:
        m = report["metrics"]
        return (m["task_accuracy"], m["format_correct"], -report["step"])

    pool = passing or checkpoints
    return max(pool, key=rank), bool(passing)


def copy_weights(checkpoint: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True)
    for name in EXPORTED_FILES:
        if (checkpoint / name).exists():
            shutil.copy2(checkpoint / name, out_dir / name)


def export(checkpoint: Path, out_dir: Path, selection: dict, merged: bool) -> None:
    """Copy the selected weights (adapter or full model) and tokenizer, not optimizer state;
    with `merged`, also save the base with the adapter merged in (safetensors) under
    merged/. A DPO checkpoint takes its SFT checkpoint along (as sft_adapter/), so the export
    loads on its own with `load_model_with_adapter`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    copy_weights(checkpoint, out_dir)
    sft = sft_checkpoint_of(checkpoint)
    if sft is not None:
        shutil.copy2(checkpoint / SFT_POINTER, out_dir / SFT_POINTER)
        copy_weights(sft, out_dir / SFT_EXPORT)
    if merged and (checkpoint / "adapter_config.json").exists():
        model = load_model_with_adapter(checkpoint)
        model.save_pretrained(out_dir / MERGED_DIR, safe_serialization=True)
        load_tokenizer().save_pretrained(out_dir / MERGED_DIR)
    write_json(out_dir / "selection.json", selection)


def score_on_test(run: ModelRun, requests: list, rows: list[dict], params: Params) -> dict:
    """Task metrics on the test rows (generations are cached as in eval)."""
    outputs = run.outputs(requests, f"{model_name(run.checkpoint)} test")
    return task_metrics(score_task(rows, requests, outputs, params.task), params.task)


def headline(
    selected: dict,
    test: dict,
    base_test: dict,
    fewshot_test: dict | None,
    passed: bool,
    findings: list[Finding],
) -> dict:
    """reports/metrics.json: test task metrics, general metrics from eval, the base and the
    few-shot baseline on test, and the diagnosis."""
    val = selected["metrics"]
    metrics = {
        "task_accuracy": test["task_accuracy"],
        "exact_match": test["exact_match"],
        "format_correct": test["format_correct"],
        "format_drift": test["format_drift"],
        "general_qa": val["general_qa"],
        "instruction_follow": val["instruction_follow"],
        "forgetting_score": val["forgetting_score"],
        "selected_step": selected["step"],
        "selected": selected["model"],
        "val_loss": selected.get("val_loss"),
        "val_task_accuracy": val["task_accuracy"],
        "guardrails_passed": passed,
        "base_task_accuracy": base_test["task_accuracy"],
        "base_format_correct": base_test["format_correct"],
    }
    if fewshot_test is not None:
        metrics["fewshot_task_accuracy"] = fewshot_test["task_accuracy"]
        metrics["fewshot_format_correct"] = fewshot_test["format_correct"]
    metrics["diagnosis"] = ", ".join(f.mode for f in findings) or "none"
    return metrics


def write_report(blocks: list) -> None:
    REPORT_MD.write_text(to_markdown(blocks, REPORTS_DIR), encoding="utf-8")
    REPORT_HTML.write_text(to_html(blocks, "Fine-tune report"), encoding="utf-8")
