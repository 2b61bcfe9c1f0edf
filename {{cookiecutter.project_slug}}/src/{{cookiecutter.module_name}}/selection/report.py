"""reports/report.md and reports/report.html: the decision, the evidence and what to do next.

The report is built once as a list of blocks (document.py) and rendered twice:
Markdown for the repository and a standalone HTML page (images embedded) that opens in a
browser. Figures are drawn by the select stage from the same data that `dvc plots` reads.
"""

from pathlib import Path
from typing import Any

from ..data.data_report import funnel_blocks, target_finding_blocks, trainable_summary
from ..document import Block, Bullets, Heading, Image, Para, Table, write_html, write_markdown
from ..evaluation.metric_names import (
    EXACT_MATCH,
    FORGETTING_SCORE,
    FORMAT_CORRECT,
    FORMAT_DRIFT,
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
    TASK_ACCURACY,
    TASK_SCORE,
    VAL_LOSS,
)
from ..evaluation.model_names import split_name
from ..evaluation.uncertainty import Interval
from ..params import SelectParams
from ..training.checkpoints import checkpoint_step
from .comparison import (
    Comparison,
    SuiteSize,
    difference_text,
    guardrail_margins,
    interval,
    metric_keys,
    p_text,
    with_interval,
)
from .diagnose import Finding, loss_curves
from .verdict import Verdict

HEADLINE = (
    TASK_ACCURACY,
    FORMAT_CORRECT,
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
    FORGETTING_SCORE,
)
# test-split columns: the first ones with their intervals
INTERVAL_COLUMNS = (TASK_ACCURACY, TASK_SCORE, FORMAT_CORRECT)
TEST_COLUMNS = (*INTERVAL_COLUMNS, EXACT_MATCH, FORMAT_DRIFT)
VAL_INTERVALS = (
    "val_task_accuracy",
    "val_task_score",
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
    FORGETTING_SCORE,
)
CURVE_METRICS = (TASK_ACCURACY, FORMAT_CORRECT, GENERAL_QA, FORGETTING_SCORE)
STAGE_MARKERS = {"dpo": "^", "rl": "s"}
SUITE_NAMES = {
    "val_task": "val task",
    "test_task": "test task",
    GENERAL_QA: "general QA",
    INSTRUCTION_FOLLOW: "instruction following",
}


def plot_losses(log_history: list[dict], selected_step: int, path: Path) -> Path:
    """Train and val loss against the optimizer step, the selected checkpoint marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = loss_curves(log_history)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for curve, label in ((train, "train loss"), (val, "val loss")):
        if curve:
            ax.plot(*zip(*curve, strict=True), marker="o", markersize=3, label=label)
    ax.axvline(selected_step, color="grey", linestyle="--", linewidth=1, label="selected")
    ax.set(xlabel="step", ylabel="loss (completion tokens)", title="Train and val loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_metrics(reports: list[dict], selected_step: int, path: Path) -> Path:
    """Val metrics of the base (step 0) and every checkpoint against the step: SFT as solid
    lines, each stage stacked on an SFT checkpoint (dpo, rl) dashed from where it starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((r for r in reports if r["role"] != "fewshot"), key=lambda r: r["step"])
    sft = [r for r in points if not r.get("stage")]
    stacked: dict[str, list[dict]] = {}
    for report in points:
        if report.get("stage"):
            stacked.setdefault(report["stage"], []).append(report)
    for stage, run in stacked.items():  # each dashed line branches off its SFT checkpoint
        first = run[0]
        start = first["step"] - checkpoint_step(split_name(first["model"])[1])
        stacked[stage] = [r for r in sft if r["step"] == start][:1] + run
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for index, name in enumerate(CURVE_METRICS):
        color = f"C{index}"
        ax.plot(
            [r["step"] for r in sft],
            [r["metrics"].get(name, 0.0) for r in sft],
            marker="o",
            color=color,
            label=name,
        )
        for stage, run in stacked.items():
            ax.plot(
                [r["step"] for r in run],
                [r["metrics"].get(name, 0.0) for r in run],
                marker=STAGE_MARKERS.get(stage, "s"),
                linestyle="--",
                color=color,
            )
    for stage in stacked:
        ax.plot(
            [], [], marker=STAGE_MARKERS.get(stage, "s"), linestyle="--", color="grey", label=stage
        )
    ax.axvline(selected_step, color="grey", linestyle="--", linewidth=1, label="selected")
    ax.set(xlabel="step (0 = base model)", ylabel="share", ylim=(-0.02, 1.02))
    ax.set_title("Val metrics per checkpoint")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def headline_rows(tests: dict[str, dict], settings: dict) -> list[list[Any]]:
    """Test-split rows: model name, items, its task metrics (the first with intervals)."""
    rows = []
    for name, report in tests.items():
        found = {key: interval(report, key, settings) for key in INTERVAL_COLUMNS}
        rows.append(
            [
                name,
                found[TASK_ACCURACY].n,
                *(with_interval(found[key]) for key in INTERVAL_COLUMNS),
                *(report["metrics"].get(key) for key in TEST_COLUMNS[len(INTERVAL_COLUMNS) :]),
            ]
        )
    return rows


def comparison_blocks(comparisons: list[Comparison], level: str) -> list[Block]:
    """The selected checkpoint against each baseline, paired on the same test items."""
    if not comparisons:
        return []
    rows = [
        [c.against, c.metric, with_interval(c.diff, signed=True), c.diff.n, p_text(c.p), c.verdict]
        for c in comparisons
    ]
    summary = "; ".join(
        f"vs {c.against}: **{c.verdict}** ({difference_text(c)})"
        for c in comparisons
        if c.metric == TASK_ACCURACY
    )
    return [
        Heading("Against the baselines (test, paired)"),
        Para(
            f"Task accuracy on test, {summary}. Below: the selected checkpoint minus each "
            f"baseline on the same test items, with a {level} interval (Tango's score interval "
            "and McNemar's exact p-value where items score 0 or 1, the paired bootstrap for "
            "graded scores): better or worse only when the interval excludes 0 and, for 0/1 "
            f"scores, p is under {comparisons[0].alpha:g}."
        ),
        Table(
            ["vs", "metric", f"difference [{level} interval]", "items", "McNemar p", "verdict"],
            rows,
        ),
    ]


def size_blocks(
    sizes: dict[str, SuiteSize] | None, margins: list[str], level: str, power: float
) -> list[Block]:
    """Per suite, the smallest paired difference of 0/1 shares its items can detect, and the
    guardrail verdicts decided within that (comparison.guardrail_margins)."""
    if not sizes:
        return []
    rows = [
        [SUITE_NAMES.get(suite, suite), size.n, size.discordant, f"{size.mdd:.3f}"]
        for suite, size in sizes.items()
    ]
    noise = (
        [Para("Guardrail verdicts decided within the noise:"), Bullets(margins)]
        if margins
        else [Para("No guardrail verdict is decided within the noise.")]
    )
    return [
        Heading("What these items can detect"),
        Para(
            "The smallest difference between the selected checkpoint and the base that each "
            f"suite detects with {power:.0%} power at the {level} level (McNemar's test, normal "
            "approximation, at the share of items on which the two disagree): a smaller "
            "difference, a guardrail margin or a gain, may be real but these items cannot "
            "show it. More items shrink it roughly with their square root."
        ),
        Table(["suite", "items", "differ from base", "smallest detectable difference"], rows),
        *noise,
    ]


def val_interval_rows(intervals: dict[str, Interval]) -> list[list[Any]]:
    return [[name, with_interval(intervals[name]), intervals[name].n] for name in VAL_INTERVALS]


def finding_bullets(findings: list[Finding]) -> list[str]:
    bullets = []
    for finding in findings:
        text = f"**{finding.mode.replace('_', ' ')}**: {finding.evidence}. Fix: {finding.fix}."
        if finding.command:
            text += f" Try `{finding.command}`."
        bullets.append(text)
    return bullets


def verdict_blocks(verdict: Verdict | None, scoring: dict | None) -> list[Block]:
    """The verdict where findings pull in opposite directions (selection/verdict.py), and
    curate's warning when an exact-match scorer was chosen for free-text targets."""
    blocks: list[Block] = []
    if verdict is not None:
        try_line = f" Try `{verdict.command}`." if verdict.command else ""
        blocks += [
            Heading("Verdict"),
            Para(f"**{verdict.summary[0].upper()}{verdict.summary[1:]}.**"),
            Bullets(verdict.evidence),
            Para(f"{verdict.advice[0].upper()}{verdict.advice[1:]}.{try_line}"),
        ]
    if scoring and scoring.get("warning"):
        blocks.append(Para(f"**Scoring:** {scoring['warning']}."))
    return blocks


def build_blocks(
    *,
    selected: dict,
    passed: bool,
    failures: list[str],
    tests: dict[str, dict],
    reports: list[dict],
    findings: list[Finding],
    curate: dict,
    split: dict,
    figures: list[Image],
    intervals: dict[str, Interval],
    comparisons: list[Comparison],
    bootstrap: dict,
    versions: dict[str, str] | None = None,
    ranking: str = TASK_ACCURACY,
    overall: Verdict | None = None,
    scoring: dict | None = None,
    sizes: dict[str, SuiteSize] | None = None,
    rules: SelectParams | None = None,
    data_report: Path,
    training_example: Path,
) -> list[Block]:
    """The whole report: verdict, headline on test with intervals, the paired comparisons
    with the baselines, diagnosis, curves, checkpoints, data, and the software versions the
    run resolved (`versions`). `tests` maps a model name to its test report (per-item
    records); `intervals` are the selected model's (comparison.headline_intervals), by
    metrics.json name; `bootstrap` the bootstrap settings. `ranking` is the val metric the
    checkpoint was chosen by (task_score under a graded scorer); `overall` the verdict on
    contradicting findings (selection/verdict.py), `scoring` curate's scorer resolution;
    `sizes` each suite's smallest detectable difference (comparison.suite_sizes), `rules`
    the guardrails whose verdicts it may leave undecided, and `data_report` and
    `training_example` the data reports the data section points to."""
    level = f"{bootstrap['confidence']:.0%}"
    verdict = (
        f"Selected **{selected['model']}** (step {selected['step']}) by val "
        f"{ranking.replace('_', ' ')} "
        "among the checkpoints that pass the guardrails."
        if passed
        else f"**No checkpoint passed the guardrails.** Best effort: **{selected['model']}** "
        f"(step {selected['step']}), exported but marked `guardrails_passed: false`. "
        + "; ".join(failures)
        + "."
    )
    checkpoint_rows = [
        [
            r["model"] + (" ←" if r["model"] == selected["model"] else ""),
            r["step"],
            *(r["metrics"].get(k) for k in HEADLINE),
            r["metrics"].get(TASK_SCORE),
            r.get(VAL_LOSS),
        ]
        for r in reports
    ]
    return [
        Heading("Fine-tune report", 1),
        Para(verdict),
        Heading("Test split (held out, scored once)"),
        Para(
            "The base, the few-shot baseline (the base with solved train examples in the "
            "prompt) and the selected checkpoint, on the same test rows. In brackets: the "
            f"{level} interval, how far the score could move on another sample of as many "
            "items: Wilson's score interval for the shares of 0/1 items (never zero-width: 0 "
            "of 35 is [0.000, 0.099]), a bootstrap over the items for the graded task_score "
            f"({bootstrap['samples']} resamples)."
        ),
        Table(["model", "items", *TEST_COLUMNS], headline_rows(tests, bootstrap)),
        *comparison_blocks(comparisons, level),
        *verdict_blocks(overall, scoring),
        Heading("Diagnosis"),
        Bullets(finding_bullets(findings))
        if findings
        else Para(
            "No failure mode found: no overfitting, forgetting, format drift or "
            "contamination beyond the thresholds in `select` (params.yaml) and the noise."
        ),
        Para(
            f"A rule fires only beyond the noise: a share (forgetting score, drifting outputs) "
            f"when its whole {level} interval is above its threshold; a difference (drop from "
            "the peak, general QA vs the base, test vs val) when it crosses its threshold and "
            "its interval excludes 0 (underfitting: when the paired interval does not put the "
            "fine-tune above the baseline either)."
        ),
        *size_blocks(
            sizes,
            guardrail_margins(selected, base_of(reports), sizes, rules) if sizes and rules else [],
            level,
            rules.power if rules else 0.8,
        ),
        Heading("Curves"),
        *figures,
        Heading("Every model on val"),
        Para(
            f"The selected checkpoint with {level} intervals (forgetting: over the general "
            "items the base gets right):"
        ),
        Table(["metric", f"value [{level} interval]", "items"], val_interval_rows(intervals)),
        Para("Forgetting is measured against the base; the few-shot row has task metrics only."),
        Table(["model", "step", *HEADLINE, TASK_SCORE, VAL_LOSS], checkpoint_rows),
        Para(
            f"Regressions of the selected checkpoint vs base: {len(selected['regressions'])}"
            + (f" ({', '.join(selected['regressions'][:10])})" if selected["regressions"] else "")
        ),
        *data_blocks(curate, split, data_report, training_example),
        *software_blocks(versions or {}),
    ]


def base_of(reports: list[dict]) -> dict:
    return next(r for r in reports if r["role"] == "base")


def software_blocks(versions: dict[str, str]) -> list[Block]:
    """The resolved versions of the libraries that decide the results (requirements.lock pins
    the rest): what to install to reproduce this report."""
    if not versions:
        return []
    return [
        Heading("Software"),
        Table(["package", "version"], [[name, version] for name, version in versions.items()]),
        Para("Reinstall these with `make setup` (requirements.lock) to reproduce the run."),
    ]


def data_blocks(
    curate: dict, split: dict, data_report: Path, training_example: Path
) -> list[Block]:
    """The curate funnel, when the curate and split reports exist, pointing to the data
    report and the rendered training example for the details."""
    if not (curate and split):
        return []
    return [
        Heading("Data"),
        *funnel_blocks(curate, split),
        *target_finding_blocks(curate),
        *trainable_summary(curate),
        Para(
            f"Details: {data_report} (quarantine reasons, duplicates, targets, format audit, "
            f"trainable tokens per row); what the model is trained on, token by token: "
            f"{training_example}."
        ),
    ]


def headline(
    selected: dict,
    test: dict,
    base_test: dict,
    fewshot_test: dict | None,
    passed: bool,
    findings: list[Finding],
    intervals: dict[str, Interval] | None = None,
    comparisons: list[Comparison] | None = None,
    sizes: dict[str, SuiteSize] | None = None,
) -> dict:
    """reports/metrics.json: test task metrics, general metrics from eval, the base and the
    few-shot baseline on test, and the diagnosis. `task_score` is the mean item score (partial
    credit under a graded scorer, else equal to task_accuracy). `test`, `base_test` and
    `fewshot_test` are metrics; with the selected model's `intervals` (by metric name) and
    the paired `comparisons`, their flat keys too (comparison.metric_keys), and with `sizes`
    each suite's smallest detectable difference (`<suite>_mdd`)."""
    val = selected["metrics"]
    metrics = {
        TASK_ACCURACY: test[TASK_ACCURACY],
        TASK_SCORE: test[TASK_SCORE],
        EXACT_MATCH: test[EXACT_MATCH],
        FORMAT_CORRECT: test[FORMAT_CORRECT],
        FORMAT_DRIFT: test[FORMAT_DRIFT],
        GENERAL_QA: val[GENERAL_QA],
        INSTRUCTION_FOLLOW: val[INSTRUCTION_FOLLOW],
        FORGETTING_SCORE: val[FORGETTING_SCORE],
        "selected_step": selected["step"],
        "selected": selected["model"],
        VAL_LOSS: selected.get(VAL_LOSS),
        "val_task_accuracy": val[TASK_ACCURACY],
        "val_task_score": val[TASK_SCORE],
        "guardrails_passed": passed,
        "base_task_accuracy": base_test[TASK_ACCURACY],
        "base_task_score": base_test[TASK_SCORE],
        "base_format_correct": base_test[FORMAT_CORRECT],
    }
    if fewshot_test is not None:
        metrics["fewshot_task_accuracy"] = fewshot_test[TASK_ACCURACY]
        metrics["fewshot_task_score"] = fewshot_test[TASK_SCORE]
        metrics["fewshot_format_correct"] = fewshot_test[FORMAT_CORRECT]
    metrics["diagnosis"] = ", ".join(f.mode for f in findings) or "none"
    if intervals:
        metrics |= metric_keys(intervals, comparisons or [], sizes)
    return metrics


def write_report(blocks: list[Block], markdown: Path, html: Path) -> None:
    write_markdown(blocks, markdown)
    write_html(blocks, html, "Fine-tune report")
