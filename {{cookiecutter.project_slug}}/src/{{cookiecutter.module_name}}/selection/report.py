"""reports/report.md and reports/report.html: the decision, the evidence and what to do next.

The report is built once as a list of blocks (headings, paragraphs, tables, bullet lists,
images) and rendered twice: Markdown for the repository and a standalone HTML page (images
embedded) that opens in a browser. Figures are drawn by the select stage from the same data
that `dvc plots` reads.
"""

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.data_report import funnel
from ..paths import REPORT_HTML, REPORT_MD, REPORTS_DIR
from .diagnose import Finding, loss_curves

HEADLINE = (
    "task_accuracy",
    "format_correct",
    "general_qa",
    "instruction_follow",
    "forgetting_score",
)
CURVE_METRICS = ("task_accuracy", "format_correct", "general_qa", "forgetting_score")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


Block = Heading | Para | Table | Bullets | Image


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def to_markdown(blocks: list[Block], base_dir: Path) -> str:
    """Markdown; image paths relative to `base_dir` (where the .md file lives)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Table):
            rows = [block.header, *[[cell(v) for v in row] for row in block.rows]]
            lines = ["| " + " | ".join(map(str, row)) + " |" for row in rows]
            lines.insert(1, "|" + "---|" * len(block.header))
            out.append("\n".join(lines))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.path.relative_to(base_dir)})")
        out.append("")
    return "\n".join(out)


def inline_markdown(text: str) -> str:
    """The little inline Markdown the report uses (**bold**, `code`), as escaped HTML."""
    parts = html.escape(text).split("`")
    for i in range(1, len(parts), 2):
        parts[i] = f"<code>{parts[i]}</code>"
    joined = "".join(parts)
    bold = joined.split("**")
    for i in range(1, len(bold), 2):
        bold[i] = f"<strong>{bold[i]}</strong>"
    return "".join(bold)


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
th { background: #f6f8fa; } code { background: #f6f8fa; padding: 0 .2rem; }
img { max-width: 100%; border: 1px solid #d0d7de; } h1 { border-bottom: 1px solid #d0d7de; }
"""


def to_html(blocks: list[Block], title: str) -> str:
    """A standalone page: styles inline, images embedded as data URIs."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline_markdown(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{inline_markdown(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{inline_markdown(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{inline_markdown(cell(v))}</td>" for v in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{inline_markdown(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            alt = html.escape(block.alt)
            body.append(f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>')
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


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
    """Val metrics of the base (step 0) and every checkpoint against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((r for r in reports if r["role"] != "fewshot"), key=lambda r: r["step"])
    steps = [r["step"] for r in points]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for name in CURVE_METRICS:
        ax.plot(steps, [r["metrics"].get(name, 0.0) for r in points], marker="o", label=name)
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


def headline_rows(tests: dict[str, dict]) -> list[list[Any]]:
    """Test-split rows: model name -> its task metrics."""
    keys = ("task_accuracy", "exact_match", "format_correct", "format_drift")
    return [[name, *(metrics.get(key) for key in keys)] for name, metrics in tests.items()]


def finding_bullets(findings: list[Finding]) -> list[str]:
    bullets = []
    for finding in findings:
        text = f"**{finding.mode.replace('_', ' ')}**: {finding.evidence}. Fix: {finding.fix}."
        if finding.command:
            text += f" Try `{finding.command}`."
        bullets.append(text)
    return bullets


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
) -> list[Block]:
    """The whole report: verdict, headline on test, diagnosis, curves, checkpoints, data."""
    verdict = (
        f"Selected **{selected['model']}** (step {selected['step']}) by val task accuracy "
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
            r.get("val_loss"),
        ]
        for r in reports
    ]
    return [
        Heading("Fine-tune report", 1),
        Para(verdict),
        Heading("Test split (held out, scored once)"),
        Para(
            "The base, the few-shot baseline (the base with solved train examples in the "
            "prompt) and the selected checkpoint, on the same test rows."
        ),
        Table(
            ["model", "task_accuracy", "exact_match", "format_correct", "format_drift"],
            headline_rows(tests),
        ),
        Heading("Diagnosis"),
        Bullets(finding_bullets(findings))
        if findings
        else Para(
            "No failure mode found: no overfitting, forgetting, format drift or "
            "contamination beyond the thresholds in `select` (params.yaml)."
        ),
        Heading("Curves"),
        *figures,
        Heading("Every model on val"),
        Para("Forgetting is measured against the base; the few-shot row has task metrics only."),
        Table(["model", "step", *HEADLINE, "val_loss"], checkpoint_rows),
        Para(
            f"Regressions of the selected checkpoint vs base: {len(selected['regressions'])}"
            + (f" ({', '.join(selected['regressions'][:10])})" if selected["regressions"] else "")
        ),
        *data_blocks(curate, split),
    ]


def data_blocks(curate: dict, split: dict) -> list[Block]:
    """The curate funnel, when the curate and split reports exist."""
    if not (curate and split):
        return []
    return [
        Heading("Data"),
        Table(["step", "rows", "change"], [list(step) for step in funnel(curate, split)]),
        Para("Details: reports/data.md (quarantine reasons, duplicates, format audit)."),
    ]


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
