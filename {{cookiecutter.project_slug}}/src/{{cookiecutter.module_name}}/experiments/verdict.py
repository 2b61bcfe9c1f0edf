"""The verdict on a set of runs (`make improve`, `make sweep`): the best run that passes the
guardrails, how it beat the baseline, whether it is ahead of the others beyond the noise on
the test items, and the command that adopts it; or, when no run passes, why each fails."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation.metric_names import FORGETTING_SCORE, FORMAT_CORRECT, GENERAL_QA, VAL_LOSS
from ..selection.comparison import BINARY
from .formatting import number
from .noise import noise_report, versus_rest
from .ranking import passes, pick_winner, ranking, val_key
from .runs import BASELINE, Run, finished

OLDER = "run before select wrote it"  # why a finished run's commit has no test_items.json


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What the verdict is drawn from, beside the runs."""

    metric: str  # the ranking metric: task_accuracy or task_score
    baseline: Run | None
    test_items: Path  # select's per-item test scores (reports/test_items.json), by name
    failures: dict[str, list[str]] = field(default_factory=dict)  # name -> guardrail failures
    # name -> the selected model's per-item test scores (test_items.json's `selected`)
    tests: dict[str, dict] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # comparison.bootstrap_settings


def guardrail_evidence(run: Run, failures: list[str] | None) -> str:
    """Why a run fails the guardrails: select's own reasons (reports/diagnosis.json) when its
    commit has them, else the guardrail metrics themselves."""
    if failures:
        return "; ".join(failures)
    m = run.metrics
    return ", ".join(
        f"{key} {number(m.get(key))}"
        for key in (FORGETTING_SCORE, FORMAT_CORRECT, GENERAL_QA)
        if m.get(key) is not None
    )


def versus_baseline(winner: Run, baseline: Run | None, metric: str) -> str:
    """How the winner beat the baseline: on the val metric, on val loss in a tie, or by
    passing the guardrails the baseline fails."""
    val = val_key(metric)
    mine = f"val {metric} {number(winner.metrics.get(val))}"
    if baseline is None or not baseline.metrics:
        return mine
    if not passes(baseline):
        return f"{mine}; the baseline fails the guardrails"
    theirs = baseline.metrics.get(val)
    if theirs != winner.metrics.get(val):
        return f"{mine} vs the baseline's {number(theirs)}"
    losses = (number(winner.metrics.get(VAL_LOSS)), number(baseline.metrics.get(VAL_LOSS)))
    return f"{mine}, as the baseline; lower val loss, {losses[0]} vs {losses[1]}"


def beyond_noise(outcome: Outcome, runs: list[Run], winner: Run) -> list[str]:
    """The winner against every other finished run on their test items, Holm-adjusted (see
    experiments/noise.noise_report), and the runs left out for want of those items."""
    done = [run for run in runs if finished(run)]
    if len(done) < 2:
        return []
    reports = {run.name: outcome.tests[run.name] for run in done if run.name in outcome.tests}
    missing = ", ".join(run.name for run in done if run.name not in reports)
    items = outcome.test_items
    if winner.name not in reports:
        return [f"No {items} for {winner.name} ({OLDER}): no item-level comparison."]
    note = [f"No {items} for {missing} ({OLDER}): left out of the comparison."]
    if len(reports) < 2:
        return note
    ranked = ranking(runs, outcome.metric)
    runner_up = ranked[1].name if len(ranked) > 1 else None
    baseline = outcome.baseline.name if outcome.baseline else None
    versus = versus_rest(winner.name, reports, outcome.metric, outcome.settings)
    binary = outcome.metric in BINARY
    report = noise_report(winner.name, versus, outcome.metric, binary, runner_up, baseline)
    return [*report, "", *note] if missing else report


def verdict(outcome: Outcome, runs: list[Run]) -> list[str]:
    """Markdown lines: the best run and the command that adopts it, or why none passes."""
    metric = outcome.metric
    winner = pick_winner(runs, metric)
    if winner is None:
        lines = ["**No run passes the guardrails**, so there is nothing to adopt:"]
        for run in runs:
            if not run.failed and run.state not in ("queued", "running"):
                evidence = guardrail_evidence(run, outcome.failures.get(run.name))
                lines.append(f"- {run.name}: {evidence}")
        return lines
    m = winner.metrics
    test = f"test {metric} {number(m.get(metric), m, metric)}"
    noise = beyond_noise(outcome, runs, winner)
    noise = ["", *noise] if noise else []
    if winner.name == BASELINE:
        val = val_key(metric)
        return [
            f"**Best: the baseline** (val {metric} {number(m.get(val))}; {test}). No experiment "
            "beats it: nothing to apply.",
            *noise,
        ]
    return [
        f"**Best: {winner.name}** ({versus_baseline(winner, outcome.baseline, metric)}; {test}).",
        *noise,
        "",
        "Adopt it (its params, dvc.lock and outputs into the workspace; then commit):",
        "",
        f"    dvc exp apply {winner.name}",
    ]
