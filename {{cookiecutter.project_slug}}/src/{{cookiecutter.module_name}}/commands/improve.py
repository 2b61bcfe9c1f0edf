"""`make improve`: run the diagnosis's suggestions as DVC experiments and name the run to keep.

select writes reports/diagnosis.json: each finding with the params to try, and a verdict
where findings with opposite fixes fire together (underfitting with forgetting or
overfitting): the verdict's params replace those findings'. This queues one
experiment per distinct suggestion (`dvc exp run --queue -n fix-<mode> -S key=value ...`), runs
the queue with `dvc exp run --run-all -j N` (DVC's own blocking run of every queued
experiment; the experiments run in temporary copies, so the workspace is untouched), then reads
`dvc exp show --json` and ranks the baseline (the workspace's run) and the experiments by the
val ranking metric (task accuracy; task score under a graded scorer; ties: lower val loss, then
the baseline) among the runs that pass the guardrails. It prints a table, the winner with its
test score and the one command that adopts it (`dvc exp apply <name>`), or, when no run passes,
each run's guardrail failures. A failed experiment is listed with the tail of its log.
Then whether the winner is ahead beyond the noise: its test items paired with every other
finished run's (reports/test_items.json of each commit), Holm-adjusted over those comparisons,
and said of the baseline and the runner-up (experiments/verdict.py).
reports/improve.md gets the same text (git-ignored: it describes local experiment refs).

Running it again reuses an experiment of the same baseline, name and params (queued or done)
instead of running it twice.
"""

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..cli import run_stage
from ..errors import StageError
from ..experiments.formatting import log_tail, number
from ..experiments.queue import (
    copy_caches,
    dvc,
    exp_show,
    queue,
    run_if_waiting,
    warn_uncommitted,
)
from ..experiments.ranking import passes, val_key
from ..experiments.runs import Run, collect_tests, guardrail_failures_at
from ..experiments.verdict import Outcome, verdict
from ..io import read_json
from ..params import load_params
from ..paths import DIAGNOSIS, EVAL_CACHE_DIR, REPORTS_DIR, TEST_ITEMS
from ..selection.comparison import bootstrap_settings
from ..selection.guardrails import ranking_metric

# not a pipeline output (paths.py): a view of local experiment refs, git-ignored
IMPROVE_REPORT = REPORTS_DIR / "improve.md"


@dataclass(frozen=True)
class Suggestion:
    """One experiment to run: the params to set and the findings that asked for them."""

    name: str  # the experiment name: fix-<mode>
    modes: tuple[str, ...]
    try_params: dict[str, Any]

    def set_args(self) -> list[str]:
        return [arg for key, value in self.try_params.items() for arg in ("-S", f"{key}={value}")]

    def changes(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.try_params.items())


def experiment_name(modes: Iterable[str]) -> str:
    return "fix-" + "-".join(mode.replace("_", "-") for mode in modes)


def suggestions(diagnosis: dict) -> tuple[list[Suggestion], list[dict]]:
    """(one suggestion per distinct try_params, the findings that have none to try). Findings
    asking for the same params share one experiment, named after all of them. A verdict
    (selection/verdict.py: findings whose fixes contradict each other) stands in for the
    findings it replaces: theirs are not tried, its own try_params (if any) are, named after
    them."""
    overall = diagnosis.get("verdict") or {}
    replaced = set(overall.get("replaces") or ())
    grouped: dict[str, tuple[list[str], dict[str, Any]]] = {}
    if overall.get("try_params"):
        key = json.dumps(overall["try_params"], sort_keys=True)
        grouped[key] = (list(overall["replaces"]), overall["try_params"])
    advice_only = []
    for finding in diagnosis.get("findings", []):
        if finding["mode"] in replaced:
            continue
        if not finding.get("try_params"):
            advice_only.append(finding)
            continue
        key = json.dumps(finding["try_params"], sort_keys=True)
        grouped.setdefault(key, ([], finding["try_params"]))[0].append(finding["mode"])
    found = [
        Suggestion(experiment_name(modes), tuple(modes), try_params)
        for modes, try_params in grouped.values()
    ]
    return found, advice_only


def and_list(words: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    *rest, last = words
    return f"{', '.join(rest)} and {last}" if rest else last


def verdict_note(diagnosis: dict) -> str | None:
    """What the diagnosis's verdict does to the suggestions: the findings it replaces and the
    one run it tries instead, or that it leaves nothing to try, and why; None without one."""
    overall = diagnosis.get("verdict")
    if not overall:
        return None
    head = f"The diagnosis's verdict replaces {and_list(overall['replaces'])}"
    if overall.get("command"):
        return f"{head}: trying `{overall['command']}` instead ({overall['summary']})."
    return f"{head}: nothing to try, {overall['summary']}. Instead: {overall['advice']}."


def same_params(run: Run, try_params: dict[str, Any]) -> bool:
    return all(run.params.get(key) == value for key, value in try_params.items())


def plan(found: list[Suggestion], existing: list[Run]) -> list[tuple[Suggestion, bool]]:
    """(suggestion, reuse) per suggestion: reuse an experiment of this baseline with its name
    and params that has not failed; otherwise queue it under the first free name (fix-x,
    fix-x-2, ...)."""
    by_name = {run.name: run for run in existing}
    taken = set(by_name)
    planned = []
    for suggestion in found:
        same = by_name.get(suggestion.name)
        if same and not same.failed and same_params(same, suggestion.try_params):
            planned.append((suggestion, True))
            continue
        name, number = suggestion.name, 1
        while name in taken:
            number += 1
            name = f"{suggestion.name}-{number}"
        taken.add(name)
        planned.append((Suggestion(name, suggestion.modes, suggestion.try_params), False))
    return planned


@dataclass(frozen=True, kw_only=True)
class Summary(Outcome):
    """The verdict's inputs and what the table shows besides."""

    runs: list[Run]  # the experiments of this `make improve`, in queue order
    changes: dict[str, str]  # experiment name -> its params
    modes: dict[str, tuple[str, ...]]  # experiment name -> the findings it tries to fix
    logs: dict[str, list[str]] = field(default_factory=dict)  # failed name -> its log tail
    advice_only: list[dict] = field(default_factory=list)
    note: str | None = None  # verdict_note: the diagnosis's verdict and what it replaced


def status(run: Run) -> str:
    if run.failed:
        return "run failed"
    if run.state in ("queued", "running"):
        return run.state
    return "pass" if passes(run) else "fail"


def render(summary: Summary) -> str:
    """The Markdown summary: table, failed experiments, then the verdict and the command."""
    metric, val = summary.metric, val_key(summary.metric)
    runs = ([summary.baseline] if summary.baseline else []) + summary.runs
    lines = [
        "# make improve",
        "",
        f"The workspace's run (baseline) and its diagnosis's suggestions, ranked by val {metric} "
        "among the runs that pass the guardrails (ties: lower val loss, then the baseline).",
        "",
        f"| run | fixes | changes | val {metric} | val loss | guardrails | test {metric} "
        "| diagnosis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        m = run.metrics
        lines.append(
            f"| {run.name} | {', '.join(summary.modes.get(run.name, ()))} "
            f"| {summary.changes.get(run.name, '')} | {number(m.get(val))} "
            f"| {number(m.get('val_loss'))} | {status(run)} | {number(m.get(metric), m, metric)} "
            f"| {m.get('diagnosis', '')} |"
        )
    if summary.note:
        lines += ["", summary.note]
    for finding in summary.advice_only:
        lines += ["", f"{finding['mode']}: no params to try; {finding['fix']}."]
    for run in runs:
        if run.failed:
            lines += ["", f"**{run.name} failed.** The end of `dvc queue logs {run.name}`:", ""]
            lines += ["```text", *(summary.logs.get(run.name) or [run.error or "failed"]), "```"]
    pending = [run.name for run in summary.runs if run.state in ("queued", "running")]
    if pending:
        lines += ["", f"Still in the queue: {', '.join(pending)} (`dvc queue status`)."]
    return "\n".join([*lines, "", *verdict(summary, runs)]) + "\n"


def queue_and_run(planned: list[tuple[Suggestion, bool]], existing: list[Run], jobs: int) -> None:
    """Queue each planned experiment not reused, then run the queue unless nothing waits."""
    copy = copy_caches(EVAL_CACHE_DIR)
    for suggestion, reuse in planned:
        if reuse:
            print(f"improve: {suggestion.name}: already queued or run with {suggestion.changes()}")
            continue
        queue(suggestion.name, suggestion.set_args(), copy)
        modes = ", ".join(suggestion.modes)
        print(f"improve: queued {suggestion.name} ({modes}): {suggestion.changes()}")
    names = {suggestion.name for suggestion, _ in planned}
    others = [r.name for r in existing if r.state == "queued" and r.name not in names]
    if others:
        print(f"improve: the queue also holds {', '.join(others)}: they run too")
    run_if_waiting(existing, not all(reuse for _, reuse in planned), jobs, "improve")


def collect(
    planned: list[tuple[Suggestion, bool]],
    metric: str,
    advice_only: list,
    settings: dict,
    note: str | None = None,
) -> Summary:
    """The summary of the baseline and the planned experiments, as DVC has them now."""
    baseline, experiments = exp_show()
    by_name = {run.name: run for run in experiments}
    names = [suggestion.name for suggestion, _ in planned]
    missing = [name for name in names if name not in by_name]
    if missing:
        print(f"improve: not in `dvc exp show`: {', '.join(missing)}")
    runs = [by_name[name] for name in names if name in by_name]
    return Summary(
        metric=metric,
        baseline=baseline,
        test_items=TEST_ITEMS,
        runs=runs,
        changes={s.name: s.changes() for s, _ in planned},
        modes={s.name: s.modes for s, _ in planned},
        logs={
            run.name: log_tail(dvc("queue", "logs", run.name, check=False).stdout)
            for run in runs
            if run.failed
        },
        failures={
            run.name: guardrail_failures_at(run, DIAGNOSIS) or []
            for run in [baseline, *runs]
            if run is not None and not run.failed
        },
        advice_only=advice_only,
        tests=collect_tests([run for run in [baseline, *runs] if run is not None], TEST_ITEMS),
        settings=settings,
        note=note,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=1, help="experiments at a time")
    args = parser.parse_args(argv)
    if not DIAGNOSIS.exists():
        raise StageError(f"no {DIAGNOSIS}: run the pipeline first (`make repro`)")
    diagnosis = read_json(DIAGNOSIS)
    found, advice_only = suggestions(diagnosis)
    note = verdict_note(diagnosis)
    if not found:
        lines = [f"The diagnosis ({DIAGNOSIS}) suggests no experiment: nothing to run."]
        lines += [note] if note else []
        lines += [f"- {f['mode']}: no params to try; {f['fix']}." for f in advice_only]
        IMPROVE_REPORT.write_text("# make improve\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(f"improve: {line}" for line in lines))
        return
    params = load_params()
    metric = ranking_metric(params.task)
    if note:
        print(f"improve: {note}")
    for finding in advice_only:
        print(f"improve: {finding['mode']}: no params to try; {finding['fix']}")
    warn_uncommitted("improve")
    _, existing = exp_show()
    planned = plan(found, existing)
    queue_and_run(planned, existing, args.jobs)
    text = render(collect(planned, metric, advice_only, bootstrap_settings(params), note))
    IMPROVE_REPORT.write_text(text, encoding="utf-8")
    print(text, end="")
    print(f"improve: written to {IMPROVE_REPORT}")


if __name__ == "__main__":
    run_stage("improve", main)
