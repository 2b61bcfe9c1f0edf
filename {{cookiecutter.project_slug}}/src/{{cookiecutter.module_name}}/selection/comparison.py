"""Intervals and paired comparisons of models, from the per-item records of their reports.

A report here is an eval report (reports/eval/<model>.json) or a test report built by select
(`items["task"]` only): each metric is the mean of one per-item value, so it can be
resampled (evaluation/uncertainty.py). Two models are compared on the items both were scored
on (matched by id), and called better or worse only when the interval of the difference
excludes 0 (and, for 0/1 scores, McNemar's exact test agrees at the same level: on a handful
of items the percentile bootstrap alone is too quick to call a difference)."""

from dataclasses import dataclass
from typing import Any

from ..evaluation.scoring import TASK_ITEM_FIELDS, lost_items
from ..evaluation.uncertainty import Interval, bootstrap_mean, mcnemar_p, paired_difference
from ..params import Params, TaskParams
from .guardrails import ranking_metric

GENERAL_SUITES = ("general_qa", "instruction_follow")
# per-item values that are 0/1 (McNemar's exact test applies); task_score is graded
BINARY = {"task_accuracy", "exact_match", "format_correct", "format_drift", *GENERAL_SUITES}
# reports/metrics.json name -> (split, metric) of the selected model's intervals
HEADLINE_INTERVALS = {
    "task_accuracy": ("test", "task_accuracy"),
    "task_score": ("test", "task_score"),
    "format_correct": ("test", "format_correct"),
    "val_task_accuracy": ("val", "task_accuracy"),
    "val_task_score": ("val", "task_score"),
    "general_qa": ("val", "general_qa"),
    "instruction_follow": ("val", "instruction_follow"),
    "forgetting_score": ("val", "forgetting_score"),
}


def bootstrap_settings(params: Params) -> dict[str, Any]:
    """Keyword arguments of the uncertainty functions: the run's seed, select's settings."""
    return {
        "samples": params.select.bootstrap_samples,
        "confidence": params.select.confidence,
        "seed": params.seed,
    }


def item_values(report: dict, metric: str) -> dict[str, float]:
    """Item id -> the value `metric` is the mean of (general suites: `correct`; task metrics:
    the field scoring.TASK_ITEM_FIELDS names)."""
    if metric in GENERAL_SUITES:
        return {item["id"]: float(item["correct"]) for item in report["items"][metric]}
    field = TASK_ITEM_FIELDS[metric]
    return {item["id"]: float(item[field]) for item in report["items"]["task"]}


def general_correct(report: dict) -> dict[str, bool]:
    return {
        f"{suite}/{item['id']}": item["correct"]
        for suite in GENERAL_SUITES
        for item in report["items"].get(suite, [])
    }


def interval(report: dict, metric: str, settings: dict, base: dict | None = None) -> Interval:
    """`metric` of one model with its interval; forgetting_score needs the `base` report (its
    items are the general items the base gets right)."""
    if metric == "forgetting_score":
        assert base is not None, "forgetting_score is measured against the base report"
        lost = lost_items(general_correct(base), general_correct(report))
        return bootstrap_mean(lost, **settings)
    return bootstrap_mean(list(item_values(report, metric).values()), **settings)


@dataclass(frozen=True)
class Comparison:
    """`model` minus `against` on `metric` (higher is better), over the items both have."""

    metric: str
    model: str
    against: str
    diff: Interval
    p: float | None  # McNemar's exact p-value for 0/1 metrics, else None
    alpha: float  # 1 - confidence: the p-value a 0/1 difference must be under

    @property
    def detectable(self) -> bool:
        return self.diff.excludes_zero and (self.p is None or self.p < self.alpha)

    @property
    def better(self) -> bool:
        return self.detectable and self.diff.lo > 0

    @property
    def worse(self) -> bool:
        return self.detectable and self.diff.hi < 0

    @property
    def verdict(self) -> str:
        if not self.diff.n:
            return "no items in common"
        if not self.detectable:
            return f"no difference detectable on {self.diff.n} items"
        return "better" if self.better else "worse"


def compare(report: dict, other: dict, metric: str, settings: dict) -> Comparison:
    """Paired bootstrap of report - other on the items both were scored on (and McNemar's
    exact test where the items are 0/1)."""
    mine, theirs = item_values(report, metric), item_values(other, metric)
    common = sorted(mine.keys() & theirs.keys())
    a, b = [mine[i] for i in common], [theirs[i] for i in common]
    diff = paired_difference(a, b, **settings)
    p = float(f"{mcnemar_p(a, b):.4g}") if metric in BINARY else None
    alpha = round(1 - settings.get("confidence", 0.95), 10)
    return Comparison(metric, report["model"], other["model"], diff, p, alpha)


def paired_metrics(task: TaskParams) -> tuple[str, ...]:
    """The metrics the selected model is compared on: task accuracy, and the ranking metric
    where it differs (task_score under a graded scorer)."""
    return tuple(dict.fromkeys(("task_accuracy", ranking_metric(task))))


def headline_intervals(
    selected_val: dict, base_val: dict, selected_test: dict, settings: dict
) -> dict[str, Interval]:
    """The selected model's headline metrics with intervals, by their metrics.json name."""
    reports = {"val": selected_val, "test": selected_test}
    return {
        name: interval(reports[split], metric, settings, base_val)
        for name, (split, metric) in HEADLINE_INTERVALS.items()
    }


def metric_keys(intervals: dict[str, Interval], comparisons: list[Comparison]) -> dict:
    """Flat reports/metrics.json keys: `<metric>_lo`/`_hi`, the item counts, and per
    comparison `vs_<baseline>_<metric>_diff` with `_lo`/`_hi` (and `_p`, McNemar)."""
    keys: dict[str, Any] = {}
    for name, found in intervals.items():
        keys |= {f"{name}_lo": found.lo, f"{name}_hi": found.hi}
    keys["test_items"] = intervals["task_accuracy"].n
    keys["val_items"] = intervals["val_task_accuracy"].n
    for comparison in comparisons:
        prefix = f"vs_{comparison.against}_{comparison.metric}_diff"
        diff = comparison.diff
        keys |= {prefix: diff.value, f"{prefix}_lo": diff.lo, f"{prefix}_hi": diff.hi}
        if comparison.p is not None:
            keys[f"vs_{comparison.against}_{comparison.metric}_p"] = comparison.p
    return keys


def with_interval(found: Interval, signed: bool = False) -> str:
    """'0.750 [0.500, 0.938]' (signed: '+0.250 [+0.062, +0.438]')."""
    spec = "+.3f" if signed else ".3f"
    if not found.n:
        return f"{found.value:{spec}} (no items)"
    return f"{found.value:{spec}} [{found.lo:{spec}}, {found.hi:{spec}}]"


def p_text(p: float | None) -> str:
    """McNemar's p for people: '0.0625', '< 0.001'; '-' where it does not apply."""
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def difference_text(comparison: Comparison) -> str:
    """'+0.250 [+0.062, +0.438] on 16 items' (McNemar's p where it applies)."""
    text = f"{with_interval(comparison.diff, signed=True)} on {comparison.diff.n} items"
    if comparison.p is None:
        return text
    shown = p_text(comparison.p)
    return f"{text}, McNemar p {shown if shown.startswith('<') else '= ' + shown}"


def test_items(selected: dict, base: dict, fewshot: dict | None) -> dict:
    """reports/test_items.json: the per-item test scores of the selected model and the
    baselines, as report-shaped entries by role. It is git-tracked (cache: false), so every
    DVC experiment commit holds one and two experiments can be paired item by item."""
    fields = ("id", *TASK_ITEM_FIELDS.values())

    def slim(report: dict) -> dict:
        items = [{key: item[key] for key in fields} for item in report["items"]["task"]]
        return {"model": report["model"], "items": {"task": items}}

    roles = {"selected": selected, "base": base, "fewshot": fewshot}
    return {"split": "test", **{role: slim(r) for role, r in roles.items() if r is not None}}
