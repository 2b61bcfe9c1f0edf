"""The diagnosis: synthetic runs that show one failure each, and a healthy one that shows none.
Each failure must be named, with its evidence and a fix, and no other failure with it; a
difference inside the noise (its interval holds 0) fires no rule, nor does a share (forgetting
score, drifting outputs) whose interval reaches below its threshold."""

import random

import pytest

from {{ cookiecutter.module_name }}.params import Params
from {{ cookiecutter.module_name }}.selection.diagnose import (
    contamination,
    diagnose,
    epochs_at,
    forgetting_evidence,
    format_drift,
    loss_curves,
    overfitting,
    underfitting,
)

# the customer-support preset (lr 2e-4, 2 epochs, rank 8, alpha 16) and select's defaults
PARAMS = Params(train={"preset": "customer-support"}, split={"replay_fraction": 0.0})
STEPS = [20, 40, 60, 80, 100]
BASE_QA = 0.6
TASK_ITEMS = 100  # val task rows: enough that the thresholds below are outside the noise
QA_ITEMS = 100


def task_items(accuracy: float, n: int, drift: float = 0.0, score: float | None = None, seed=0):
    """n val task records: the first accuracy * n correct (so a better model is right on a
    superset of a worse one's items), the first drift * n drifting; under a graded scorer
    each score is `score` +- 0.15, the signs shuffled per model (the mean stays `score`)."""
    signs = [0.15, -0.15] * (n // 2)
    random.Random(seed).shuffle(signs)
    return [
        {
            "id": f"t{i}",
            "correct": i < round(accuracy * n),
            "score": float(i < round(accuracy * n)) if score is None else score + signs[i],
            "exact": False,
            "format_ok": True,
            "drift": i < round(drift * n),
        }
        for i in range(n)
    ]


def general_items(qa: float, forgetting: float, n: int = QA_ITEMS) -> dict[str, list[dict]]:
    """General-suite records: the base gets the first BASE_QA * n QA items right; this model
    loses forgetting * that many of them and is right on later items up to qa * n. The
    instruction items are all wrong (for every model), so forgetting is over QA alone."""
    known = round(BASE_QA * n)
    lost = round(forgetting * known)
    kept = list(range(lost, known))
    right = set(kept[: round(qa * n)]) | set(range(known, known + round(qa * n) - len(kept)))
    qa_items = [{"id": f"qa-{i}", "correct": i in right} for i in range(n)]
    instructions = [{"id": f"if-{i}", "correct": False} for i in range(10)]
    return {"general_qa": qa_items, "instruction_follow": instructions}


def report(step: int, task: float, n: int = TASK_ITEMS, **metrics: float) -> dict:
    values = {
        "task_accuracy": task,
        "format_correct": 1.0,
        "format_drift": 0.0,
        "general_qa": BASE_QA,
        "instruction_follow": 0.0,
        "forgetting_score": 0.05 if step else 0.0,  # the base forgets nothing of itself
        **metrics,
    }
    items = general_items(values["general_qa"], values["forgetting_score"])
    lost = [i["id"] for i in items["general_qa"][: round(BASE_QA * QA_ITEMS)] if not i["correct"]]
    score = values.get("task_score")
    items["task"] = task_items(task, n, values["format_drift"], score, seed=step)
    return {
        "model": f"checkpoint-{step}" if step else "base",
        "role": "checkpoint" if step else "base",
        "step": step,
        "metrics": values,
        "items": items,
        "regressions": [f"general_qa/{item}" for item in lost],
    }


def on_test(accuracy: float, n: int = TASK_ITEMS) -> dict:
    """The selected checkpoint on test, as select builds it."""
    items = [{**item, "id": f"test-{item['id']}"} for item in task_items(accuracy, n)]
    return {"model": "selected", "items": {"task": items}, "metrics": {"task_accuracy": accuracy}}


def history(train: list[float], val: list[float]) -> list[dict]:
    """A trainer log history: train loss every 10 steps, val loss at 0 and each checkpoint."""
    steps = range(10, 10 * len(train) + 1, 10)
    logged = [{"step": step, "loss": loss} for step, loss in zip(steps, train, strict=True)]
    evals = [{"step": s, "eval_loss": v} for s, v in zip([0, *STEPS], val, strict=True)]
    return sorted(logged + evals, key=lambda entry: entry["step"])


FALLING_TRAIN = [1.6 - 0.1 * i for i in range(10)]
FALLING_VAL = [1.5, 1.0, 0.9, 0.85, 0.82, 0.8]
RISING_TASK = [0.2, 0.3, 0.4, 0.45, 0.5]


def run(
    tasks: list[float] = RISING_TASK,
    val_loss: list[float] = FALLING_VAL,
    last: dict | None = None,
    split: dict | None = None,
    test_task: float | None = None,
    selected_step: int | None = None,
    fewshot_task: float = 0.0,
    params: Params = PARAMS,
) -> list:
    checkpoints = [report(step, task) for step, task in zip(STEPS, tasks, strict=True)]
    if last:
        checkpoints[-1] = report(STEPS[-1], tasks[-1], **last)
    fewshot = {**report(0, fewshot_task), "model": "fewshot", "role": "fewshot"}
    reports = [report(0, 0.0), fewshot, *checkpoints]
    selected = max(checkpoints, key=lambda r: r["metrics"]["task_accuracy"])
    if selected_step is not None:  # as when the guardrails skipped the later checkpoints
        selected = next(r for r in checkpoints if r["step"] == selected_step)
    test = on_test(selected["metrics"]["task_accuracy"] if test_task is None else test_task)
    return diagnose(
        reports,
        selected,
        history(FALLING_TRAIN, val_loss),
        {"format_audit": {"format_drift": 4}},
        split or {"contamination": {"action": "remove", "overlaps": [{}], "removed": 1}},
        test,
        params,
    )


def modes(findings: list) -> list[str]:
    return [finding.mode for finding in findings]


def test_a_healthy_run_has_no_finding() -> None:
    assert run() == []


def test_val_loss_rising_while_train_falls_is_overfitting() -> None:
    (finding,) = run(val_loss=[1.5, 1.0, 0.8, 0.9, 1.0, 1.1])
    assert finding.mode == "overfitting"
    assert "0.800 (step 40)" in finding.evidence and "1.100 (step 100, +38%)" in finding.evidence
    assert finding.try_params == {"train.num_epochs": 1.0, "train.lora_r": 4}
    assert "learning rate is the fix for forgetting" in finding.fix


def test_val_accuracy_peaking_early_is_overfitting() -> None:
    (finding,) = run(tasks=[0.3, 0.5, 0.6, 0.45, 0.4])
    assert finding.mode == "overfitting"
    assert "peaked at 0.600 (step 60)" in finding.evidence
    assert finding.try_params["train.num_epochs"] == 1.0  # step 60 of 100 in 2 epochs


def test_a_small_dip_is_not_overfitting() -> None:
    assert run(tasks=[0.3, 0.4, 0.5, 0.52, 0.5], val_loss=[1.5, 1.0, 0.9, 0.8, 0.8, 0.82]) == []


def test_forgetting_names_the_score_and_the_general_qa_drop() -> None:
    (finding,) = run(last={"forgetting_score": 0.35, "general_qa": 0.4})
    assert finding.mode == "forgetting"
    assert "forgetting score 0.350" in finding.evidence
    assert "general QA 0.400 vs base 0.600" in finding.evidence
    # one lever: the rank (and alpha) halved, as measured to help on the demo
    assert finding.try_params == {"train.lora_r": 4, "train.lora_alpha": 8}
    assert finding.command == "dvc exp run -S train.lora_r=4 -S train.lora_alpha=8"


def test_forgetting_at_rank_4_asks_for_replay_then_a_lower_learning_rate() -> None:
    no_replay = {"replay_fraction": 0.0}
    rank_4 = Params(train={"preset": "style-format"}, split=no_replay)  # rank 4, alpha 8, lr 2e-3
    (finding,) = run(last={"forgetting_score": 0.35}, params=rank_4)
    assert finding.try_params == {"split.replay_fraction": 0.1}
    most_replay = Params(train={"preset": "style-format"}, split={"replay_fraction": 0.4})
    (finding,) = run(last={"forgetting_score": 0.35}, params=most_replay)
    assert finding.try_params == {"train.learning_rate": 1e-3}


def test_forgetting_by_the_last_checkpoint_is_reported_when_an_earlier_one_was_selected() -> None:
    (finding,) = run(last={"forgetting_score": 0.4}, selected_step=60)
    assert finding.mode == "forgetting"
    assert finding.evidence.startswith("checkpoint-100: forgetting score 0.400")
    assert finding.evidence.endswith("the selected checkpoint-60 is before that")


def test_general_qa_down_alone_is_forgetting() -> None:
    assert modes(run(last={"general_qa": 0.3})) == ["forgetting"]


def test_format_drift_points_at_the_curate_audit() -> None:
    (finding,) = run(last={"format_drift": 0.2})
    assert finding.mode == "format_drift"
    assert "20.0% of val outputs" in finding.evidence
    assert "curate found 4 drifting training targets" in finding.evidence


def test_overlaps_kept_in_train_are_contamination() -> None:
    split = {"contamination": {"action": "warn", "overlaps": [{}, {}], "removed": 0}}
    (finding,) = run(split=split)
    assert finding.mode == "contamination"
    assert "2 train rows" in finding.evidence
    assert finding.try_params == {"split.contamination": "remove"}


def test_test_far_above_val_is_contamination() -> None:
    (finding,) = run(test_task=0.8)
    assert finding.mode == "contamination"
    assert "test task accuracy 0.800 is far above val 0.500" in finding.evidence
    assert finding.try_params == {"split.min_overlap": 0.5}  # looser copies count as overlap


def test_overlaps_that_split_removed_are_not_contamination() -> None:
    split = {"contamination": {"action": "remove", "overlaps": [{}, {}, {}], "removed": 3}}
    assert run(split=split) == []


def test_two_failures_at_once_are_both_reported_in_seed_order() -> None:
    findings = run(val_loss=[1.5, 1.0, 0.8, 0.9, 1.0, 1.1], last={"format_drift": 0.3})
    assert modes(findings) == ["overfitting", "format_drift"]


def test_no_gain_over_the_base_is_underfitting() -> None:
    (finding,) = run(tasks=[0.0, 0.0, 0.02, 0.02, 0.03])
    assert finding.mode == "underfitting"
    assert "0.030 is not 0.05 above the base's 0.000" in finding.evidence
    assert finding.try_params == {"train.num_epochs": 3, "train.lora_r": 16}


def test_a_fewshot_baseline_as_good_as_the_fine_tune_is_underfitting() -> None:
    (finding,) = run(fewshot_task=0.48)
    assert finding.mode == "underfitting" and "fewshot's 0.480" in finding.evidence


def test_forgetting_while_underfitting_asks_for_replay_not_a_lower_learning_rate() -> None:
    findings = run(tasks=[0.0, 0.0, 0.0, 0.01, 0.02], last={"forgetting_score": 0.3})
    assert modes(findings) == ["forgetting", "underfitting"]
    assert findings[0].try_params == {"split.replay_fraction": 0.1}


def test_a_graded_scorer_diagnoses_by_task_score() -> None:
    """chrf/rougeL: a thresholded accuracy stuck at 0 while the mean score rises is learning,
    not underfitting; a score that peaks early and falls is overfitting."""
    params = Params(task={"scorer": "chrf"})
    base = report(0, 0.0, task_score=0.2)
    fewshot = {**report(0, 0.0, task_score=0.3), "model": "fewshot", "role": "fewshot"}
    split = {"contamination": {"action": "remove", "overlaps": [], "removed": 0}}

    def findings(scores: list[float]) -> list:
        checkpoints = [report(s, 0.0, task_score=v) for s, v in zip(STEPS, scores, strict=True)]
        selected = max(checkpoints, key=lambda r: r["metrics"]["task_score"])
        logs = history(FALLING_TRAIN, FALLING_VAL)
        test = on_test(0.0)
        return diagnose([base, fewshot, *checkpoints], selected, logs, {}, split, test, params)

    assert findings([0.3, 0.4, 0.5, 0.55, 0.6]) == []
    assert modes(run(tasks=[0.0] * 5)) == ["underfitting"]  # by task accuracy, as before
    (finding,) = findings([0.3, 0.6, 0.7, 0.5, 0.45])
    assert finding.mode == "overfitting"
    assert "val task score peaked at 0.700 (step 60)" in finding.evidence
    (finding,) = findings([0.3, 0.31, 0.32, 0.32, 0.33])
    assert finding.mode == "underfitting"
    assert "val task score 0.330 is not 0.05 above the fewshot's 0.300" in finding.evidence


def test_the_evidence_quotes_the_intervals() -> None:
    (forgetting,) = run(last={"forgetting_score": 0.35, "general_qa": 0.4})
    assert "forgetting score 0.350 [0.2" in forgetting.evidence
    assert "of the 60 general items the base got right, 21 are now wrong" in forgetting.evidence
    assert "paired difference -0.200 [-0.2" in forgetting.evidence
    assert "on 100 items, McNemar p < 0.001" in forgetting.evidence
    (drift,) = run(last={"format_drift": 0.2})
    assert "(interval 1" in drift.evidence and "on 100 items" in drift.evidence
    (leak,) = run(test_task=0.8)
    assert "gap +0.300 [+0." in leak.evidence
    (underfit,) = run(fewshot_task=0.48)
    assert "nor detectably above it (paired difference +0.020 [" in underfit.evidence


# The same failures on a handful of items: over the thresholds, but inside the noise.
SMALL = 5


def test_a_drop_from_the_peak_inside_the_noise_is_not_overfitting() -> None:
    tasks = [0.2, 0.6, 0.4, 0.4, 0.4]
    checkpoints = [report(s, t, n=SMALL) for s, t in zip(STEPS, tasks, strict=True)]
    logs = history(FALLING_TRAIN, FALLING_VAL)
    assert overfitting(checkpoints, *loss_curves(logs), PARAMS) is None  # 3 of 5, then 2 of 5
    many = [report(s, t) for s, t in zip(STEPS, tasks, strict=True)]
    assert overfitting(many, *loss_curves(logs), PARAMS) is not None  # 60 of 100, then 40


def test_forgetting_inside_the_noise_is_not_forgetting() -> None:
    """The base knows 3 general items; the fine-tune loses 1: a forgetting score of 0.33 and
    general QA down by a third, but one item."""
    base = report(0, 0.0)
    base["items"] = general_items(BASE_QA, 0.0, n=SMALL)
    forgetful = report(20, 0.5, forgetting_score=0.33, general_qa=0.4)
    forgetful["items"] = general_items(0.4, 0.33, n=SMALL)
    assert forgetting_evidence(forgetful, base, PARAMS) == []
    forgetful = report(20, 0.5, forgetting_score=0.33, general_qa=0.4)  # of 100 QA items
    assert len(forgetting_evidence(forgetful, report(0, 0.0), PARAMS)) == 2


def test_a_forgetting_score_past_the_alert_but_not_beyond_the_noise_is_not_forgetting() -> None:
    """15 of the base's 60 right items lost (0.25 > the 0.19 alert): its Wilson interval
    [0.158, 0.373] reaches below the alert; 21 of 60 ([0.242, 0.476]) does not."""
    assert forgetting_evidence(report(20, 0.5, forgetting_score=0.25), report(0, 0.0), PARAMS) == []
    (evidence,) = forgetting_evidence(
        report(20, 0.5, forgetting_score=0.35), report(0, 0.0), PARAMS
    )
    assert evidence.startswith("forgetting score 0.350 [0.242, 0.476] (all of it above")


def test_drift_past_the_threshold_but_not_beyond_the_noise_is_not_format_drift() -> None:
    # 8 of 100 drifting (> 0.05), Wilson interval [0.041, 0.150]: could be under 5 %
    assert format_drift(report(20, 0.5, format_drift=0.08), {}, PARAMS) is None
    assert format_drift(report(20, 0.5, format_drift=0.12), {}, PARAMS) is not None


def test_drift_by_the_last_checkpoint_is_reported_when_an_earlier_one_was_selected() -> None:
    # as when min_format_correct kept the selection before the drifting checkpoints
    keep = Params(train={"preset": "customer-support"}, curate={"format_audit": "keep"})
    (finding,) = run(last={"format_drift": 0.3}, selected_step=60, params=keep)
    assert finding.mode == "format_drift"
    assert "30.0% of val outputs at checkpoint-100 (the selected checkpoint-60" in finding.evidence
    assert finding.try_params == {"curate.format_audit": "quarantine"}


def test_one_train_row_overlapping_two_items_and_removed_is_not_contamination() -> None:
    both = [{"train": "raw.jsonl:1", "with": "qa-1"}, {"train": "raw.jsonl:1", "with": "qa-2"}]
    split = {"contamination": {"action": "remove", "overlaps": both, "train_rows": 1, "removed": 1}}
    assert run(split=split) == []
    split["contamination"] |= {"action": "warn", "removed": 0}
    assert modes(run(split=split)) == ["contamination"]


def test_one_stray_drifting_output_is_not_format_drift() -> None:
    drifting = report(20, 0.5, n=SMALL, format_drift=0.2)  # 1 of 5
    assert format_drift(drifting, {}, PARAMS) is None
    assert format_drift(report(20, 0.5, format_drift=0.2), {}, PARAMS) is not None  # 20 of 100


def test_test_above_val_inside_the_noise_is_not_contamination() -> None:
    split = {"contamination": {"action": "remove", "overlaps": [], "removed": 0}}
    val = report(20, 0.4, n=SMALL)
    assert contamination(val, on_test(0.8, n=SMALL), split, PARAMS) is None  # 2 vs 4 of 5
    assert contamination(report(20, 0.4), on_test(0.8), split, PARAMS) is not None


def test_a_gain_detectably_above_the_baseline_is_learning_not_underfitting() -> None:
    """Under min_task_gain (0.05) but the paired interval is above 0: the fine-tune learns the
    task, slowly; underfitting needs the interval to hold 0 (or lie below it)."""
    baselines = [report(0, 0.0, n=1000)]
    assert underfitting(report(20, 0.04, n=1000), baselines, PARAMS) is None  # 40 of 1000
    assert underfitting(report(20, 0.02), [report(0, 0.0)], PARAMS) is not None  # 2 of 100
    worse = underfitting(report(20, 0.1), [report(0, 0.3)], PARAMS)  # below the baseline
    assert worse is not None and "paired difference -0.200" in worse.evidence


def test_loss_curves_split_train_from_val() -> None:
    train, val = loss_curves(history(FALLING_TRAIN, FALLING_VAL))
    assert [step for step, _ in val] == [0, *STEPS]
    assert len(train) == len(FALLING_TRAIN) and train[0] == (10, 1.6)


@pytest.mark.parametrize(
    ("step", "last", "epochs", "expected"),
    [(46, 92, 2, 1.0), (80, 92, 2, 1.5), (70, 100, 2, 1.5), (5, 100, 3, 0.5)],
)
def test_epochs_at_rounds_to_the_nearest_half(
    step: int, last: int, epochs: float, expected: float
) -> None:
    assert epochs_at(step, last, epochs) == expected
