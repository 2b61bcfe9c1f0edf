"""The select stage's work, from eval's reports to models/selected: choose the checkpoint
(guardrails.py), score it, the base and the few-shot baseline on test, diagnose the run
(diagnose.py, verdict.py), bootstrap and pair the test scores (comparison.py), and write the
metrics, the diagnosis, the per-item test scores, the report (report.py), the export of the
checkpoint (export.py) and its model card (modelcard.py). Every path comes in `SelectFiles`."""

from dataclasses import asdict, dataclass
from pathlib import Path

from ..document import Image
from ..evaluation.backend import check_backend, generation_settings, generator_factory
from ..evaluation.cache import GenerationCache
from ..evaluation.eval_set import fewshot_requests, task_requests
from ..evaluation.metric_names import FORMAT_CORRECT, TASK_ACCURACY, interval_text
from ..evaluation.model_names import FEWSHOT, checkpoint_dir, checkpoint_manifest
from ..evaluation.model_report import score_on_test
from ..evaluation.model_run import ModelRun
from ..evaluation.reports import load_reports, with_val_losses
from ..io import read_json, read_jsonl, write_json
from ..models.loading import MANIFEST, load_tokenizer
from ..models.versions import resolved_versions
from ..params import Params
from ..training.checkpoints import log_history, manifest_checkpoints, verify_checkpoint
from .comparison import (
    Comparison,
    bootstrap_settings,
    compare,
    difference_text,
    headline_intervals,
    paired_metrics,
    suite_sizes,
    test_items,
)
from .diagnose import Finding, diagnose
from .export import export
from .guardrails import choose, guardrail_failures, ranking_metric
from .modelcard import CardFacts, model_card
from .report import build_blocks, headline, plot_losses, plot_metrics, write_report
from .verdict import Verdict, verdict, verdict_lines


@dataclass(frozen=True)
class SelectFiles:
    """What select reads (eval's reports, the checkpoints and their manifests, the splits,
    the curate and split reports), the data reports its report points to, and what it
    writes."""

    base: Path
    eval_dir: Path
    checkpoints: Path
    sft_manifest: Path
    dpo: Path
    dpo_manifest: Path
    rl: Path
    rl_manifest: Path
    rl_eval_dir: Path  # eval_rl's reports of the RL checkpoints
    rl_figure: Path  # the rl stage's rewards, KL and completion length by step
    test_split: Path
    train_split: Path
    curate_report: Path
    split_report: Path
    eval_cache: Path
    data_report: Path
    training_example: Path
    selected: Path
    metrics: Path
    diagnosis: Path
    test_items: Path
    report_md: Path
    report_html: Path
    loss_figure: Path
    metrics_figure: Path

    @property
    def stacked_dirs(self) -> dict[str, Path]:
        return {"dpo": self.dpo, "rl": self.rl}

    @property
    def stacked_manifests(self) -> dict[str, Path]:
        return {"dpo": self.dpo_manifest, "rl": self.rl_manifest}


def score_test(
    params: Params, files: SelectFiles, checkpoint: Path
) -> tuple[dict, dict, dict | None]:
    """The test reports of `checkpoint`, the base and the few-shot baseline (None when
    eval.fewshot_k is 0), generated once and cached as in eval."""
    tokenizer = load_tokenizer(files.base)
    rows = read_jsonl(files.test_split)
    max_new = params.eval.max_new_tokens_task
    requests = task_requests(tokenizer, [r["prompt"] for r in rows], max_new)
    cache = GenerationCache(files.eval_cache if params.eval.cache else None)
    generator_for = generator_factory(params.eval, tokenizer, files.base)
    settings = generation_settings(params.eval)
    test = score_on_test(
        ModelRun(checkpoint, files.base, generator_for, cache, settings), requests, rows, params
    )
    base_run = ModelRun(None, files.base, generator_for, cache, settings)
    base_test = score_on_test(base_run, requests, rows, params)
    fewshot = fewshot_requests(tokenizer, rows, read_jsonl(files.train_split), params)
    fewshot_test = score_on_test(base_run, fewshot, rows, params, FEWSHOT) if fewshot else None
    return test, base_test, fewshot_test


def diagnosis(
    passed: bool, failures: list[str], findings: list[Finding], overall: Verdict | None
) -> dict:
    """reports/diagnosis.json: the guardrails' verdict, the findings with their commands and
    the verdict on contradicting ones (what `make improve` reads)."""
    findings_out = [{**asdict(finding), "command": finding.command} for finding in findings]
    return {
        "guardrails_passed": passed,
        "guardrail_failures": failures,
        "findings": findings_out,
        "verdict": overall.as_dict() if overall else None,
    }


def card_facts(
    params: Params,
    files: SelectFiles,
    selected: dict,
    metrics: dict,
    split: dict,
    findings: list[Finding],
    failures: list[str],
) -> CardFacts:
    """What the model card states: the base (its manifest over `base.model`), the selection,
    the metrics, the training params and the splits' hashes."""
    manifest = files.base / MANIFEST
    return CardFacts(
        base={"model": params.base.model, **(read_json(manifest) if manifest.exists() else {})},
        selected=selected,
        headline=metrics,
        train_params=params.train.model_dump(),
        data_hashes=split.get("sha256", {}),
        findings=findings,
        exports=params.export.formats,
        failures=failures,
        split_report=files.split_report,
    )


def summary_lines(
    selected: dict,
    metrics: dict,
    tests: tuple[dict, dict, dict | None],
    comparisons: list[Comparison],
    findings: list[Finding],
    overall: Verdict | None,
    scoring: dict,
    report: Path,
) -> list[str]:
    """What the stage prints: the headline (pointing to `report` when the guardrails failed),
    the paired comparisons, each finding the verdict does not replace with its fix, the
    verdict, and the scorer's warning."""
    _, base_test, fewshot_test = tests
    few_shot = fewshot_test["metrics"][TASK_ACCURACY] if fewshot_test else None
    lines = [
        f"{selected['model']} (val task {selected['metrics'][TASK_ACCURACY]:.2f}); "
        f"test task {metrics[TASK_ACCURACY]:.2f}{interval_text(metrics, TASK_ACCURACY, 2)} on "
        f"{metrics['test_items']} items vs base {base_test['metrics'][TASK_ACCURACY]:.2f}"
        + (f" and few-shot {few_shot:.2f}" if few_shot is not None else "")
        + f", format {metrics[FORMAT_CORRECT]:.2f}; diagnosis: {metrics['diagnosis']}"
        + ("" if metrics["guardrails_passed"] else f"  [guardrails failed: see {report}]")
    ]
    lines += [
        f"vs {comparison.against} on {comparison.metric}: {comparison.verdict} "
        f"({difference_text(comparison)})"
        for comparison in comparisons
    ]
    replaced = overall.replaces if overall else ()
    lines += [
        f"{finding.mode}: {finding.evidence}\n  try: {finding.command}"
        for finding in findings
        if finding.mode not in replaced
    ]
    lines += verdict_lines(overall) if overall else []
    if warning := scoring.get("warning"):
        lines.append(f"WARNING: {warning}")
    return lines


def select(params: Params, files: SelectFiles) -> list[str]:
    """Choose the checkpoint, score and diagnose it, and write every file select writes;
    the summary lines to print."""
    check_backend(params.eval)
    reports = load_reports(files.eval_dir, files.rl_eval_dir)
    ranking = ranking_metric(params.task)
    selected, passed = choose(reports, params.select, ranking)
    base_val = next(r for r in reports if r["role"] == "base")
    failures = guardrail_failures(selected["metrics"], params.select, base_val["metrics"])
    name = selected["model"]
    checkpoint = verify_checkpoint(
        checkpoint_manifest(name, files.sft_manifest, files.stacked_manifests),
        checkpoint_dir(name, files.checkpoints, files.stacked_dirs),
    )
    test, base_test, fewshot_test = score_test(params, files, checkpoint)
    write_json(files.test_items, test_items(test, base_test, fewshot_test))
    # absent only where splits were made by hand: the diagnosis then skips the data checks
    curate, split = (
        read_json(p) if p.exists() else {} for p in (files.curate_report, files.split_report)
    )
    sft_last = manifest_checkpoints(files.sft_manifest, verify=False)[-1]
    # the SFT run's train loss, and the val loss eval measured for the base and each checkpoint
    history = with_val_losses(
        log_history([verify_checkpoint(files.sft_manifest, sft_last)]), reports
    )
    findings = diagnose(reports, selected, history, curate, split, test, params)
    fewshot_metrics = fewshot_test["metrics"] if fewshot_test else None
    overall = verdict(
        findings, test["metrics"], base_test["metrics"], fewshot_metrics, ranking, params
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
        fewshot_metrics,
        passed,
        findings,
        intervals,
        comparisons,
        sizes,
    )
    write_json(files.metrics, metrics)
    write_json(files.diagnosis, diagnosis(passed, failures, findings, overall))

    figures = [
        Image(plot_losses(history, selected["step"], files.loss_figure), "train and val loss"),
        Image(plot_metrics(reports, selected["step"], files.metrics_figure), "val metrics by step"),
    ]
    if any(r.get("stage") == "rl" for r in reports) and files.rl_figure.exists():
        figures.append(Image(files.rl_figure, "GRPO rewards, KL and completion length by step"))
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
        ranking=ranking,
        overall=overall,
        scoring=curate.get("scoring"),
        sizes=sizes,
        rules=params.select,
        data_report=files.data_report,
        training_example=files.training_example,
    )
    write_report(blocks, files.report_md, files.report_html)
    export(checkpoint, files.selected, {"checkpoint": selected["model"], **metrics})
    card = card_facts(params, files, selected, metrics, split, findings, failures)
    model_card(card).save(files.selected / "README.md")
    tested = (test, base_test, fewshot_test)
    scoring = curate.get("scoring", {})
    return summary_lines(
        selected, metrics, tested, comparisons, findings, overall, scoring, files.report_md
    )
