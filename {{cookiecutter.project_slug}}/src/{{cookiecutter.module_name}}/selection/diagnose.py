"""The four classic failures of a fine-tune, read from the evidence a run leaves behind, each
with the fix.

- overfitting: val loss rising while train loss falls, or val task accuracy peaking early;
- catastrophic forgetting: forgetting score over the alert level, or general QA down vs base;
- format drift: outputs that start in the target format and turn into prose;
- contamination: train rows that overlap held-out data, or test far above val.

A fifth check keeps the fixes honest: a fine-tune that has not learned the task (val task
accuracy no better than the base or the few-shot baseline) is underfitting, and the
advice for it ("not learning enough: increase rank") is the opposite of forgetting's
(lower the learning rate), so when both show, forgetting's fix becomes replay data only.

Every function here is pure: it takes the eval reports, the trainer's log history and the
curate/split reports as plain data and returns findings. Treating overfitting as forgetting
makes it worse, so each check looks only at the signal that defines its failure.

Noise is an extra condition, never a looser threshold. A rule that claims a share is too high
(the forgetting score: general items the base got right and the model lost; the share of
drifting outputs) fires only when the share's Wilson interval lies above its threshold: the
items show the true share beyond the alert, not just a point estimate past it (one lost item
of three, one drifting output of five, are not findings). The share's point past the threshold
with an interval above 0 would not do: a Wilson interval is above 0 as soon as one item
counts, so that rule would fire on a single item. A rule that claims a difference (a drop from
the peak, general QA down vs the base, test above val) fires when the threshold is crossed
*and* the interval of that difference excludes 0 (a paired comparison of 0/1 items also needs
McNemar's exact test to agree: comparison.Comparison). Underfitting, which claims no gain,
fires when the gain is under `min_task_gain` and the paired comparison does not put the
fine-tune detectably above the baseline. The evidence quotes the intervals. The val-loss
signal of overfitting has no per-item records to resample and keeps its threshold alone.
"""

from dataclasses import dataclass

from ..evaluation.metric_names import FORGETTING_SCORE, FORMAT_DRIFT, GENERAL_QA, TASK_ACCURACY
from ..evaluation.uncertainty import unpaired_binary_difference
from ..params import Params
from .comparison import (
    bootstrap_settings,
    compare,
    difference_text,
    interval,
    item_values,
    with_interval,
)
from .guardrails import ranking_metric

Curve = list[tuple[int, float]]

# The fix ladder (forgetting_fix; overfitting's rank cut too): halve the LoRA rank and alpha
# while the rank is above RANK_FLOOR, then add REPLAY_STEP of replay up to REPLAY_CAP, then
# halve the learning rate down to MIN_LEARNING_RATE. docs/ quote these (tests/test_fix_ladder.py).
RANK_FLOOR = 4
REPLAY_STEP = 0.1
REPLAY_CAP = 0.4
MIN_LEARNING_RATE = 1e-6


@dataclass(frozen=True)
class Finding:
    mode: str  # overfitting | forgetting | format_drift | contamination | underfitting
    evidence: str  # the numbers and steps that show it
    fix: str  # what to change and why
    try_params: dict[str, object]  # a concrete `dvc exp run -S key=value` to try

    @property
    def command(self) -> str:
        sets = " ".join(f"-S {key}={value}" for key, value in self.try_params.items())
        return f"dvc exp run {sets}" if sets else ""


def loss_curves(log_history: list[dict]) -> tuple[Curve, Curve]:
    """(train, val) loss by step from a trainer_state.json `log_history`."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    val = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    return train, val


def value_at(curve: Curve, step: int) -> float:
    """The curve's last value at or before `step` (its first value before the curve starts)."""
    before = [value for s, value in curve if s <= step]
    return before[-1] if before else curve[0][1]


def halved(value: float, floor: float) -> float:
    return max(floor, round(value / 2, 10))


def epochs_at(step: int, last_step: int, num_epochs: float) -> float:
    """How many epochs `step` of a run of `last_step` steps had trained, to the nearest half
    (at least a half)."""
    exact = num_epochs * step / max(last_step, 1)
    return max(0.5, round(exact * 2) / 2)


def overfitting(
    checkpoints: list[dict], train_loss: Curve, val_loss: Curve, params: Params
) -> Finding | None:
    """Val loss rising from its minimum while train loss keeps falling, or the best val task
    accuracy (task score under a graded scorer) reached early and lost by the end (by more
    than the noise: the paired interval of the drop excludes 0)."""
    rules, train = params.select, params.train
    metric = ranking_metric(params.task)
    if not checkpoints:
        return None
    last_step = max(r["step"] for r in checkpoints)
    evidence = []
    peak_step = None
    if len(val_loss) >= 3 and train_loss:
        best_step, best = min(val_loss, key=lambda point: point[1])
        final_step, final = val_loss[-1]
        train_then, train_now = value_at(train_loss, best_step), train_loss[-1][1]
        if final > best * (1 + rules.overfit_tolerance) and train_now < train_then:
            evidence.append(
                f"val loss rose from {best:.3f} (step {best_step}) to {final:.3f} (step "
                f"{final_step}, +{final / best - 1:.0%}) while train loss fell from "
                f"{train_then:.3f} to {train_now:.3f}"
            )
            peak_step = best_step
    by_step = sorted(checkpoints, key=lambda r: r["step"])
    peak = max(by_step, key=lambda r: (r["metrics"][metric], -r["step"]))
    final_acc = by_step[-1]["metrics"][metric]
    peak_acc = peak["metrics"][metric]
    dropped = peak["step"] < last_step and peak_acc - final_acc > rules.overfit_tolerance
    drop = compare(peak, by_step[-1], metric, bootstrap_settings(params)) if dropped else None
    if drop is not None and drop.better:  # the peak is detectably better than the last
        evidence.append(
            f"val {metric.replace('_', ' ')} peaked at {peak_acc:.3f} (step {peak['step']}) "
            f"and fell to {final_acc:.3f} by step {last_step} (peak minus last: "
            f"{difference_text(drop)})"
        )
        peak_step = peak["step"] if peak_step is None else min(peak_step, peak["step"])
    if not evidence or peak_step is None or peak_step == 0:
        return None
    epochs = epochs_at(peak_step, last_step, train.num_epochs)
    try_params: dict[str, object] = {}
    if epochs < train.num_epochs:
        try_params["train.num_epochs"] = epochs
    if train.method != "full" and train.lora_r > RANK_FLOOR:
        try_params["train.lora_r"] = train.lora_r // 2
    return Finding(
        mode="overfitting",
        evidence="; ".join(evidence),
        fix=(
            "the model memorises the train rows: add more, more varied data (curate keeps "
            f"quality), train fewer epochs (the peak was at ~{epochs:g} of "
            f"{train.num_epochs:g}), or lower the LoRA rank. Reducing the learning rate is the "
            "fix for forgetting, not for this"
        ),
        try_params=try_params,
    )


def forgetting_evidence(report: dict, base: dict, params: Params) -> list[str]:
    """What in one checkpoint's metrics shows lost general ability beyond the noise (empty:
    nothing): the forgetting score's interval above the alert, general QA below its share of
    the base's with a paired interval below 0."""
    rules, metrics = params.select, report["metrics"]
    settings = bootstrap_settings(params)
    evidence = []
    if metrics[FORGETTING_SCORE] > rules.forgetting_alert:
        score = interval(report, FORGETTING_SCORE, settings, base)
        if score.lo > rules.forgetting_alert:
            evidence.append(
                f"forgetting score {with_interval(score)} (all of it above "
                f"select.forgetting_alert {rules.forgetting_alert}): of the {score.n} general "
                f"items the base got right, {len(report.get('regressions', []))} are now wrong"
            )
    qa, base_qa = metrics[GENERAL_QA], base["metrics"][GENERAL_QA]
    if base_qa > 0 and qa < base_qa * rules.min_general_qa_ratio:
        drop = compare(report, base, GENERAL_QA, settings)
        if drop.worse:
            evidence.append(
                f"general QA {qa:.3f} vs base {base_qa:.3f} ({qa / base_qa:.0%} of it; "
                f"select.min_general_qa_ratio {rules.min_general_qa_ratio}; paired "
                f"difference {difference_text(drop)})"
            )
    return evidence


def underfitting(selected: dict, baselines: list[dict], params: Params) -> Finding | None:
    """The selected checkpoint is no better at the task than the base or the few-shot
    baseline (by task score under a graded scorer): less than `min_task_gain` above the
    better one, and the paired interval does not put it above it at all. The fine-tune has
    not learned the task (yet)."""
    train = params.train
    metric = ranking_metric(params.task)
    accuracy = selected["metrics"][metric]
    best = max(baselines, key=lambda r: r["metrics"][metric])
    reference = best["metrics"][metric]
    if accuracy - reference >= params.select.min_task_gain:
        return None
    gain = compare(selected, best, metric, bootstrap_settings(params))
    if gain.better:  # detectably above the baseline: it learns, by less than the gain
        return None
    try_params: dict[str, object] = {"train.num_epochs": train.num_epochs + 1}
    if train.method != "full":
        try_params["train.lora_r"] = train.lora_r * 2
    return Finding(
        mode="underfitting",
        evidence=(
            f"val {metric.replace('_', ' ')} {accuracy:.3f} is not "
            f"{params.select.min_task_gain} above the {best['model']}'s {reference:.3f}, "
            f"nor detectably above it (paired difference {difference_text(gain)})"
        ),
        fix=(
            "the model is not learning the task enough: increase the rank and train longer, "
            "check the targets are learnable, and do not lower the learning rate "
            "further"
        ),
        try_params=try_params,
    )


def forgetting(
    selected: dict, last: dict, base: dict, params: Params, learning: bool = True
) -> Finding | None:
    """The selected checkpoint lost general ability the base had, or the run did by its last
    checkpoint (the guardrails may have kept the selection on an earlier one)."""
    if FORGETTING_SCORE not in selected["metrics"]:
        return None
    evidence = forgetting_evidence(selected, base, params)
    if not evidence and last["model"] != selected["model"]:
        evidence = [f"{last['model']}: {item}" for item in forgetting_evidence(last, base, params)]
        if evidence:
            evidence.append(f"the selected {selected['model']} is before that")
    if not evidence:
        return None
    return Finding(
        mode="forgetting",
        evidence="; ".join(evidence),
        fix=(
            "the fine-tune overwrote general ability: use a smaller rank, lower the learning "
            "rate or train fewer epochs, or mix general replay data into train "
            "(split.replay_fraction)"
        ),
        try_params=forgetting_fix(params, learning),
    )


def forgetting_fix(params: Params, learning: bool) -> dict[str, object]:
    """One lever at a time, the one measured to help first (docs/decisions.md, "The 0.19
    forgetting alert and the forgetting fix"). On the demo, halving rank and alpha (8/16 -> 4/8)
    kept the task gain and brought general QA back within its guardrail; a halved learning rate
    (rank 8), half an epoch fewer (rank 4) and rank 2 each lost the task gain, and the three
    levers at once stopped it. So the rank comes down to RANK_FLOOR; at and below it (and for a
    run that is not learning the task, or a full fine-tune) the lever is general replay data
    (mixture training), which leaves the task's own training untouched; past REPLAY_CAP, the
    learning rate."""
    train, split = params.train, params.split
    if learning and train.method != "full" and train.lora_r > RANK_FLOOR:
        return {
            "train.lora_r": train.lora_r // 2,
            "train.lora_alpha": max(1, train.lora_alpha // 2),
        }
    if split.replay_fraction < REPLAY_CAP:
        replay = min(REPLAY_CAP, split.replay_fraction + REPLAY_STEP)
        return {"split.replay_fraction": round(replay, 2)}
    return {"train.learning_rate": halved(train.learning_rate, MIN_LEARNING_RATE)}


def drift_share(report: dict, params: Params):
    """The share of `report`'s val outputs that drift, with its interval, when the whole
    interval is over the threshold (not one stray output); else None."""
    threshold = params.select.max_format_drift
    if report["metrics"].get(FORMAT_DRIFT, 0.0) <= threshold:
        return None
    share = interval(report, FORMAT_DRIFT, bootstrap_settings(params))
    return share if share.lo > threshold else None


def format_drift(
    selected: dict, curate_report: dict, params: Params, last: dict | None = None
) -> Finding | None:
    """Outputs that begin in the target format and then abandon it: an interval above the
    threshold, at the selected checkpoint or, when the guardrails kept the
    selection on an earlier one (min_format_correct), at the run's last checkpoint."""
    report = selected
    share = drift_share(selected, params)
    if share is None and last is not None and last["model"] != selected["model"]:
        report, share = last, drift_share(last, params)
    if share is None:
        return None
    audit = curate_report.get("format_audit", {})
    in_data = audit.get("format_drift", 0)
    where = (
        f"curate found {in_data} drifting training targets (reports/data.md, format audit)"
        if in_data
        else "curate found no drifting targets, so check targets that are valid but long"
    )
    which = (
        ""
        if report is selected
        else f" at {report['model']} (the selected {selected['model']} is before that)"
    )
    try_params: dict[str, object] = {}
    if params.curate.format_audit != "quarantine":
        try_params["curate.format_audit"] = "quarantine"
    return Finding(
        mode="format_drift",
        evidence=(
            f"{share.value:.1%} of val outputs{which} start as well-formed output and turn "
            f"into prose (interval {share.lo:.1%} to {share.hi:.1%} on {share.n} items, all "
            f"of it above select.max_format_drift {params.select.max_format_drift}); {where}"
        ),
        fix=(
            "audit the training targets for format consistency all the way through, not just "
            "at the start, and fix or drop the drifting rows (curate.format_audit: quarantine "
            "drops them)"
        ),
        try_params=try_params,
    )


def contamination(
    selected_val: dict, test_report: dict | None, split_report: dict, params: Params
) -> Finding | None:
    """Train rows overlapping held-out data that stayed in train, or test scores far above
    val (held-out rows the model has effectively seen): by more than the gap, and with an
    interval of test minus val (different items: Newcombe's unpaired interval) above 0."""
    evidence = []
    overlaps = split_report.get("contamination", {})
    # train_rows: distinct train rows (one row can overlap several held-out items)
    flagged = overlaps.get("train_rows", len(overlaps.get("overlaps", [])))
    kept = flagged - overlaps.get("removed", 0)
    if kept > 0:
        evidence.append(
            f"split found {kept} train rows overlapping val/test/eval suites and kept them "
            f"(split.contamination {overlaps.get('action')})"
        )
    if test_report is not None:
        val = selected_val["metrics"][TASK_ACCURACY]
        test = test_report["metrics"][TASK_ACCURACY]
        gap = None
        if test - val > params.select.contamination_gap:
            gap = unpaired_binary_difference(
                list(item_values(test_report, TASK_ACCURACY).values()),
                list(item_values(selected_val, TASK_ACCURACY).values()),
                confidence=params.select.confidence,
            )
        if gap is not None and gap.lo > 0:
            evidence.append(
                f"test task accuracy {test:.3f} is far above val {val:.3f} (gap "
                f"{with_interval(gap, signed=True)} > select.contamination_gap "
                f"{params.select.contamination_gap})"
            )
    if not evidence:
        return None
    if kept > 0:
        try_params: dict[str, object] = {"split.contamination": "remove"}
    else:  # nothing was left in train at this threshold: look for looser copies
        try_params = {"split.min_overlap": round(max(0.3, params.split.min_overlap - 0.2), 2)}
    return Finding(
        mode="contamination",
        evidence="; ".join(evidence),
        fix=(
            "held-out scores are inflated: deduplicate across splits (split.contamination: "
            "remove, a lower split.min_overlap catches looser copies) and re-run"
        ),
        try_params=try_params,
    )


def diagnose(
    reports: list[dict],
    selected: dict,
    log_history: list[dict],
    curate_report: dict,
    split_report: dict,
    test_report: dict | None,
    params: Params,
) -> list[Finding]:
    """Every failure the evidence shows, in the order overfitting, forgetting, format drift,
    contamination, underfitting. The reports carry per-item records (`test_report`: the
    selected checkpoint on test, as select builds it)."""
    # the loss curves are the SFT run's: DPO and RL checkpoints do not belong on them
    checkpoints = [r for r in reports if r["role"] == "checkpoint" and not r.get("stage")]
    base = next(r for r in reports if r["role"] == "base")
    train_loss, val_loss = loss_curves(log_history)
    baselines = [r for r in reports if r["role"] in ("base", "fewshot")]
    not_learning = underfitting(selected, baselines, params)
    last = max(checkpoints, key=lambda r: r["step"]) if checkpoints else selected
    found = [
        overfitting(checkpoints, train_loss, val_loss, params),
        forgetting(selected, last, base, params, learning=not_learning is None),
        format_drift(selected, curate_report, params, last),
        contamination(selected, test_report, split_report, params),
        not_learning,
    ]
    return [finding for finding in found if finding is not None]
