"""Stage `select`: pick the checkpoint with the best **val** task accuracy (never train loss)
among those that pass the guardrails, score it, the base and the few-shot baseline once on
the held-out **test** split, diagnose the run (overfitting, forgetting, format drift,
contamination), export the adapter and a model card to models/selected (the export stage
makes the merged and GGUF models from it), and
write the headline metrics with bootstrap intervals and paired comparisons against the
baselines, the per-item test scores (reports/test_items.json, for comparing experiments) and
the report (Markdown and HTML, with figures).

A fine-tune that fails every guardrail is a result, not a crash: the best-effort checkpoint is
exported, marked `guardrails_passed: false`, and the stage exits 0. Findings whose fixes
contradict each other (underfitting with forgetting or overfitting) are printed as one verdict
with one command (selection/verdict.py, also in reports/diagnosis.json and the report)."""

from dataclasses import asdict

from ..cli import run_stage
from ..document import Image
from ..evaluation.cache import GenerationCache
from ..evaluation.evaluator import (
    FEWSHOT,
    ModelRun,
    check_backend,
    checkpoint_dir,
    checkpoint_manifest,
    fewshot_requests,
    generation_settings,
    generator_factory,
    load_reports,
    score_on_test,
    task_requests,
    with_val_losses,
)
from ..io import read_json, read_jsonl, write_json
from ..models.loading import load_tokenizer
from ..models.versions import resolved_versions
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_MANIFEST,
    CURATE_REPORT,
    DIAGNOSIS,
    EVAL_CACHE_DIR,
    LOSS_FIGURE,
    METRICS,
    METRICS_FIGURE,
    SELECTED_DIR,
    SPLIT_REPORT,
    TEST_ITEMS,
    TEST_SPLIT,
    TRAIN_SPLIT,
)
from ..selection.comparison import (
    bootstrap_settings,
    compare,
    difference_text,
    headline_intervals,
    paired_metrics,
    suite_sizes,
    test_items,
)
from ..selection.diagnose import diagnose
from ..selection.export import export
from ..selection.guardrails import choose, guardrail_failures, ranking_metric
from ..selection.modelcard import CardFacts, model_card
from ..selection.report import build_blocks, headline, plot_losses, plot_metrics, write_report
from ..selection.verdict import verdict, verdict_lines
from ..training.checkpoints import log_history, manifest_checkpoints, verify_checkpoint


def main() -> None:
    params = load_params()
    check_backend(params.eval)
    reports = load_reports()
    selected, passed = choose(reports, params.select, ranking_metric(params.task))
    base_val = next(r for r in reports if r["role"] == "base")
    failures = guardrail_failures(selected["metrics"], params.select, base_val["metrics"])
    name = selected["model"]
    checkpoint = verify_checkpoint(checkpoint_manifest(name), checkpoint_dir(name))
    tokenizer = load_tokenizer()
    rows = read_jsonl(TEST_SPLIT)
    max_new = params.eval.max_new_tokens_task
    requests = task_requests(tokenizer, [r["prompt"] for r in rows], max_new)
    cache = GenerationCache(EVAL_CACHE_DIR if params.eval.cache else None)
    generator_for = generator_factory(params.eval, tokenizer)
    settings = generation_settings(params.eval)
    test = score_on_test(
        ModelRun(checkpoint, generator_for, cache, settings), requests, rows, params
    )
    base_run = ModelRun(None, generator_for, cache, settings)
    base_test = score_on_test(base_run, requests, rows, params)
    fewshot = fewshot_requests(tokenizer, rows, read_jsonl(TRAIN_SPLIT), params)
    fewshot_test = score_on_test(base_run, fewshot, rows, params, FEWSHOT) if fewshot else None
    write_json(TEST_ITEMS, test_items(test, base_test, fewshot_test))
    # absent only where splits were made by hand: the diagnosis then skips the data checks
    curate, split = (read_json(p) if p.exists() else {} for p in (CURATE_REPORT, SPLIT_REPORT))
    sft_last = manifest_checkpoints(CHECKPOINTS_MANIFEST, verify=False)[-1]
    # the SFT run's train loss, and the val loss eval measured for the base and each checkpoint
    history = with_val_losses(
        log_history([verify_checkpoint(CHECKPOINTS_MANIFEST, sft_last)]), reports
    )
    findings = diagnose(reports, selected, history, curate, split, test, params)
    overall = verdict(
        findings,
        test["metrics"],
        base_test["metrics"],
        fewshot_test["metrics"] if fewshot_test else None,
        ranking_metric(params.task),
        params,
    )
    boot = bootstrap_settings(params)
    intervals = headline_intervals(selected, base_val, test, boot)
    sizes = suite_sizes(selected, base_val, test, base_test, params.select)
    comparisons = [
        compare(test, baseline, metric, boot)
        for baseline in (base_test, fewshot_test)
        if baseline is not None
        for metric in paired_metrics(params.task)
    ]
    metrics = headline(
        selected,
        test["metrics"],
        base_test["metrics"],
        fewshot_test["metrics"] if fewshot_test else None,
        passed,
        findings,
        intervals,
        comparisons,
        sizes,
    )
    write_json(METRICS, metrics)
    findings_out = [{**asdict(finding), "command": finding.command} for finding in findings]
    write_json(
        DIAGNOSIS,
        {
            "guardrails_passed": passed,
            "guardrail_failures": failures,
            "findings": findings_out,
            "verdict": overall.as_dict() if overall else None,
        },
    )

    figures = [
        Image(plot_losses(history, selected["step"], LOSS_FIGURE), "train and val loss"),
        Image(plot_metrics(reports, selected["step"], METRICS_FIGURE), "val metrics by step"),
    ]
    tests = {"base": base_test, **({"few-shot": fewshot_test} if fewshot_test else {})}
    tests[selected["model"]] = test
    blocks = build_blocks(
        selected=selected,
        passed=passed,
        failures=failures,
        tests=tests,
        reports=reports,
        findings=findings,
        curate=curate,
        split=split,
        figures=figures,
        intervals=intervals,
        comparisons=comparisons,
        bootstrap=boot,
        versions=resolved_versions(),
        ranking=ranking_metric(params.task),
        overall=overall,
        scoring=curate.get("scoring"),
        sizes=sizes,
        rules=params.select,
    )
    write_report(blocks)
    export(
        checkpoint,
        SELECTED_DIR,
        {"checkpoint": selected["model"], **metrics},
    )
    manifest = BASE_MODEL_DIR / "manifest.json"
    card = CardFacts(
        base={"model": params.base.model, **(read_json(manifest) if manifest.exists() else {})},
        selected=selected,
        headline=metrics,
        train_params=params.train.model_dump(),
        data_hashes=split.get("sha256", {}),
        findings=findings,
        exports=params.export.formats,
        failures=failures,
    )
    model_card(card).save(SELECTED_DIR / "README.md")
    print(
        f"select: {selected['model']} (val task {selected['metrics']['task_accuracy']:.2f}); "
        f"test task {metrics['task_accuracy']:.2f} "
        f"[{metrics['task_accuracy_lo']:.2f}, {metrics['task_accuracy_hi']:.2f}] on "
        f"{metrics['test_items']} items vs base {base_test['metrics']['task_accuracy']:.2f}"
        + (f" and few-shot {fewshot_test['metrics']['task_accuracy']:.2f}" if fewshot_test else "")
        + f", format {metrics['format_correct']:.2f}; diagnosis: {metrics['diagnosis']}"
        + ("" if passed else "  [guardrails failed: see reports/report.md]")
    )
    for comparison in comparisons:
        print(
            f"select: vs {comparison.against} on {comparison.metric}: {comparison.verdict} "
            f"({difference_text(comparison)})"
        )
    replaced = overall.replaces if overall else ()
    for finding in findings:
        if finding.mode not in replaced:
            print(f"select: {finding.mode}: {finding.evidence}\n  try: {finding.command}")
    for line in verdict_lines(overall) if overall else []:
        print(f"select: {line}")
    if warning := curate.get("scoring", {}).get("warning"):
        print(f"select: WARNING: {warning}")


if __name__ == "__main__":
    run_stage("select", main)
