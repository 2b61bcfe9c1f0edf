"""Intervals and paired comparisons of models, from the per-item records of their reports.

A report here is an eval report (reports/eval/<model>.json) or a test report built by select
(`items["task"]` only): each metric is the mean of one per-item value. A 0/1 metric (right or
wrong, in format or not, a general item lost) gets Wilson's score interval, a graded one
(task_score) a bootstrap interval (evaluation/uncertainty.py). Two models are compared on the
items both were scored on (matched by id): 0/1 metrics with Tango's score interval of the
paired difference and McNemar's exact test, graded ones with the paired bootstrap; called
better or worse only when the interval excludes 0 (and, for 0/1 scores, McNemar's exact test
agrees at the same level: on a handful of items an asymptotic interval alone is too quick to
call a difference). `suite_sizes` says how large a difference each suite can detect, and
`guardrail_margins` which guardrail verdicts are decided within that."""

from dataclasses import dataclass
from typing import Any

from ..evaluation.metric_names import (
    EXACT_MATCH,
    FORGETTING_SCORE,
    FORMAT_CORRECT,
    FORMAT_DRIFT,
    GENERAL_QA,
    GENERAL_SUITES,
    INSTRUCTION_FOLLOW,
    TASK_ACCURACY,
    TASK_SCORE,
    interval_keys,
)
from ..evaluation.scoring import TASK_ITEM_FIELDS, lost_items
from ..evaluation.uncertainty import (
    Interval,
    binary_mean,
    bootstrap_mean,
    mcnemar_p,
    minimum_detectable_difference,
    paired_binary_difference,
    paired_difference,
)
from ..params import Params, SelectParams, TaskParams
from .guardrails import ranking_metric

# per-item values that are 0/1 (McNemar's exact test applies); task_score is graded
BINARY = {TASK_ACCURACY, EXACT_MATCH, FORMAT_CORRECT, FORMAT_DRIFT, *GENERAL_SUITES}
# reports/metrics.json name -> (split, metric) of the selected model's intervals
HEADLINE_INTERVALS = {
    TASK_ACCURACY: ("test", TASK_ACCURACY),
    TASK_SCORE: ("test", TASK_SCORE),
    FORMAT_CORRECT: ("test", FORMAT_CORRECT),
    "val_task_accuracy": ("val", TASK_ACCURACY),
    "val_task_score": ("val", TASK_SCORE),
    GENERAL_QA: ("val", GENERAL_QA),
    INSTRUCTION_FOLLOW: ("val", INSTRUCTION_FOLLOW),
    FORGETTING_SCORE: ("val", FORGETTING_SCORE),
}
# suite -> (split, 0/1 metric) whose items the selected model and the base are paired on
SUITES = {
    "val_task": ("val", TASK_ACCURACY),
    "test_task": ("test", TASK_ACCURACY),
    GENERAL_QA: ("val", GENERAL_QA),
    INSTRUCTION_FOLLOW: ("val", INSTRUCTION_FOLLOW),
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
        return {item["id"]: float(item["correct"]) for item in report["items"].get(metric, [])}
    field = TASK_ITEM_FIELDS[metric]
    return {item["id"]: float(item[field]) for item in report["items"]["task"]}


def general_correct(report: dict) -> dict[str, bool]:
    return {
        f"{suite}/{item['id']}": item["correct"]
        for suite in GENERAL_SUITES
        for item in report["items"].get(suite, [])
    }


def interval(report: dict, metric: str, settings: dict, base: dict | None = None) -> Interval:
    """`metric` of one model with its interval (Wilson's for 0/1 metrics, the bootstrap's for
    graded ones); forgetting_score needs the `base` report (its items are the general items
    the base gets right, each 1 when lost)."""
    confidence = settings.get("confidence", 0.95)
    if metric == FORGETTING_SCORE:
        assert base is not None, "forgetting_score is measured against the base report"
        lost = lost_items(general_correct(base), general_correct(report))
        return binary_mean([float(x) for x in lost], confidence=confidence)
    values = list(item_values(report, metric).values())
    if metric in BINARY:
        return binary_mean(values, confidence=confidence)
    return bootstrap_mean(values, **settings)


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
    """report - other on the items both were scored on: 0/1 metrics with Tango's interval
    and McNemar's exact test, graded ones with the paired bootstrap."""
    mine, theirs = item_values(report, metric), item_values(other, metric)
    common = sorted(mine.keys() & theirs.keys())
    a, b = [mine[i] for i in common], [theirs[i] for i in common]
    if metric in BINARY:
        diff = paired_binary_difference(a, b, confidence=settings.get("confidence", 0.95))
        p: float | None = float(f"{mcnemar_p(a, b):.4g}")
    else:
        diff, p = paired_difference(a, b, **settings), None
    alpha = round(1 - settings.get("confidence", 0.95), 10)
    return Comparison(metric, report["model"], other["model"], diff, p, alpha)


@dataclass(frozen=True)
class SuiteSize:
    """How large a paired difference of 0/1 shares a suite can detect: `mdd` at the run's
    confidence and `select.power`, from its `n` items and the `discordant` ones on which the
    selected model and the base disagree (uncertainty.minimum_detectable_difference)."""

    n: int
    discordant: int
    mdd: float


def suite_size(report: dict, base: dict, metric: str, rules: SelectParams) -> SuiteSize:
    mine, theirs = item_values(report, metric), item_values(base, metric)
    common = mine.keys() & theirs.keys()
    discordant = sum(mine[i] != theirs[i] for i in common)
    mdd = minimum_detectable_difference(
        len(common), discordant, confidence=rules.confidence, power=rules.power
    )
    return SuiteSize(len(common), discordant, mdd)


def suite_sizes(
    selected_val: dict, base_val: dict, selected_test: dict, base_test: dict, rules: SelectParams
) -> dict[str, SuiteSize]:
    """The smallest detectable difference of each suite (SUITES), selected model vs base."""
    pairs = {"val": (selected_val, base_val), "test": (selected_test, base_test)}
    return {
        suite: suite_size(*pairs[split], metric, rules) for suite, (split, metric) in SUITES.items()
    }


def guardrail_margins(
    selected_val: dict, base_val: dict, sizes: dict[str, SuiteSize], rules: SelectParams
) -> list[str]:
    """The guardrail verdicts (guardrails.py) of the selected checkpoint that its items cannot
    tell from the other verdict. General QA is measured against the base on the same items:
    its margin to the floor (min_general_qa_ratio x the base's) within the suite's smallest
    detectable difference. The others are a share against a fixed threshold: the share's
    Wilson interval holding the threshold."""
    metrics, settings = selected_val["metrics"], {"confidence": rules.confidence}
    notes = []
    size, base_qa = sizes.get(GENERAL_QA), base_val["metrics"][GENERAL_QA]
    floor = round(base_qa * rules.min_general_qa_ratio, 4)
    gap = metrics[GENERAL_QA] - floor
    if size is not None and size.n and floor > 0 and abs(gap) < size.mdd:
        notes.append(
            f"general QA {metrics['general_qa']:.3f} vs its guardrail {floor:.3f} "
            f"({rules.min_general_qa_ratio:g} x the base's {base_qa:.3f}; ratio "
            f"{metrics['general_qa'] / base_qa:.2f} vs {rules.min_general_qa_ratio:g}): "
            f"{'passes' if gap >= 0 else 'fails'} by {abs(gap):.3f}, within this suite's "
            f"smallest detectable difference of {size.mdd:.3f} ({size.n} items)"
        )
    shares = {
        FORMAT_CORRECT: ("min_format_correct", rules.min_format_correct, True),
        FORGETTING_SCORE: ("max_forgetting", rules.max_forgetting, False),
    }
    for metric, (name, threshold, at_least) in shares.items():
        found = interval(selected_val, metric, settings, base_val)
        if found.n and found.lo < threshold < found.hi:
            passes = found.value >= threshold if at_least else found.value <= threshold
            notes.append(
                f"{metric} {with_interval(found)} vs select.{name} {threshold:g}: "
                f"{'passes' if passes else 'fails'}, but the interval holds the threshold "
                f"({found.n} items)"
            )
    return notes


def paired_metrics(task: TaskParams) -> tuple[str, ...]:
    """The metrics the selected model is compared on: task accuracy, and the ranking metric
    where it differs (task_score under a graded scorer)."""
    return tuple(dict.fromkeys((TASK_ACCURACY, ranking_metric(task))))


def headline_intervals(
    selected_val: dict, base_val: dict, selected_test: dict, settings: dict
) -> dict[str, Interval]:
    """The selected model's headline metrics with intervals, by their metrics.json name."""
    reports = {"val": selected_val, "test": selected_test}
    return {
        name: interval(reports[split], metric, settings, base_val)
        for name, (split, metric) in HEADLINE_INTERVALS.items()
    }


def metric_keys(
    intervals: dict[str, Interval],
    comparisons: list[Comparison],
    sizes: dict[str, SuiteSize] | None = None,
) -> dict:
    """Flat reports/metrics.json keys: `<metric>_lo`/`_hi`, the item counts, per comparison
    `vs_<baseline>_<metric>_diff` with `_lo`/`_hi` (and `_p`, McNemar), and per suite its
    smallest detectable difference `<suite>_mdd`."""
    keys: dict[str, Any] = {f"{suite}_mdd": size.mdd for suite, size in (sizes or {}).items()}
    for name, found in intervals.items():
        keys |= dict(zip(interval_keys(name), (found.lo, found.hi), strict=True))
    keys["test_items"] = intervals[TASK_ACCURACY].n
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
