"""The metric names have one home, evaluation/metric_names.py: dvc.yaml's plots and the
Makefile's `make exp-show` column filter name only metrics the code writes, and every name in
the registry is written by the code (eval's summaries, reports/eval_by_step.json,
reports/metrics.json), computed here from a few scored items."""

import re
from pathlib import Path

import yaml

from {{ cookiecutter.module_name }}.evaluation import metric_names
from {{ cookiecutter.module_name }}.evaluation.metric_names import MODEL_METRICS
from {{ cookiecutter.module_name }}.evaluation.model_report import summarise
from {{ cookiecutter.module_name }}.evaluation.reports import plot_rows
from {{ cookiecutter.module_name }}.params import TaskParams
from {{ cookiecutter.module_name }}.selection.comparison import (
    SUITES,
    SuiteSize,
    compare,
    headline_intervals,
    paired_metrics,
)
from {{ cookiecutter.module_name }}.selection.report import headline

PROJECT = Path(__file__).parents[1]
TASK = TaskParams()
SETTINGS = {"samples": 200, "confidence": 0.95, "seed": 0}
# Columns of `dvc exp show` that are not metrics.json keys: DVC's own (the commit date, the
# dependencies' hashes, the params files) and the export stage's metrics (reports/export.json,
# nested by format).
NOT_METRICS = {"Created", ".*/", r".*\.yaml$", r"gguf\."}


def report(model: str, step: int, right: int, base: dict | None = None) -> dict:
    """An eval report of `model` whose first `right` of 8 items are right in every suite."""
    task = [
        {"id": f"t{i}", "correct": i < right, "score": float(i < right)}
        | {"exact": i < right, "format_ok": True, "drift": False, "fields": {}}
        for i in range(8)
    ]
    general = [{"id": f"g{i}", "correct": i < right} for i in range(8)]
    items = {"task": task, "general_qa": general, "instruction_follow": general}
    found = {"model": model, "step": step, "role": "checkpoint", "items": items, "val_loss": 1.5}
    return summarise(found, TASK, base)


def metrics_json() -> dict:
    """reports/metrics.json as select writes it, with intervals, comparisons and suite sizes."""
    base = report("base", 0, 3)
    base["role"] = "base"
    selected = report("checkpoint-4", 4, 6, base)
    fewshot = report("fewshot", 0, 4, base)
    intervals = headline_intervals(selected, base, selected, SETTINGS)
    comparisons = [
        compare(selected, other, metric, SETTINGS)
        for other in (base, fewshot)
        for metric in paired_metrics(TASK)
    ]
    sizes = {suite: SuiteSize(8, 3, 0.4) for suite in SUITES}
    return headline(
        selected,
        selected["metrics"],
        base["metrics"],
        fewshot["metrics"],
        True,
        [],
        intervals,
        comparisons,
        sizes,
    )


def makefile_variable(name: str) -> str:
    text = (PROJECT / "Makefile").read_text(encoding="utf-8")
    found = re.search(rf"^{name} := (.*)$", text, re.MULTILINE)
    assert found, f"the Makefile defines no {name}"
    return found.group(1).replace("$$", "$")


def alternatives(pattern: str) -> list[str]:
    """The top-level `|` branches of a regular expression."""
    branches, depth, start = [], 0, 0
    for i, char in enumerate(pattern):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            branches.append(pattern[start:i])
            start = i + 1
    return [*branches, pattern[start:]]


def test_every_registered_name_is_written_by_the_code() -> None:
    names = {v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str)}
    assert names == set(MODEL_METRICS)
    written = metrics_json()
    for name in MODEL_METRICS:
        assert name in written, f"reports/metrics.json has no {name}"


def test_dvc_yaml_plots_name_registered_metrics() -> None:
    plots = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    named = []
    for plot in plots:
        ((target, spec),) = plot.items()
        y = spec["y"]
        if isinstance(y, dict):  # {file: column}: the train loss TSV is the trainer's log
            named += [col for path, col in y.items() if path.endswith(".json")]
        else:
            named += y
    assert named, "dvc.yaml plots no metric"
    assert not set(named) - set(MODEL_METRICS), "dvc.yaml plots unregistered metrics"
    row = plot_rows([report("checkpoint-4", 4, 6)])[0]
    assert not set(named) - set(row), "reports/eval_by_step.json lacks a metric dvc.yaml plots"


def test_exp_show_filter_names_columns_the_code_writes() -> None:
    """Each branch of EXP_SHOW_DROP hides a column that exists (a stale name hides nothing and
    shows the column it meant to hide); the headline metrics stay shown."""
    columns = set(metrics_json())
    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    sections = {f"{section}.x" for section in params}
    drop = makefile_variable("EXP_SHOW_DROP")
    for branch in alternatives(drop):
        if branch in NOT_METRICS:
            continue
        assert any(re.match(branch, col) for col in columns | sections), (
            f"EXP_SHOW_DROP's {branch!r} matches no reports/metrics.json key or params section"
        )
    shown = [name for name in MODEL_METRICS if not re.match(drop, name)]
    assert shown == ["task_accuracy", "format_correct", "general_qa", "forgetting_score"]
