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
and said of the baseline and the runner-up (experiments/compare.py, noise_report).
reports/improve.md gets the same text (git-ignored: it describes local experiment refs).

Running it again reuses an experiment of the same baseline, name and params (queued or done)
instead of running it twice.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..cli import run_stage
from ..errors import StageError
from ..experiments.compare import noise_report, versus_rest
from ..io import read_json, read_json_at
from ..params import flatten, load_params
from ..paths import DIAGNOSIS, EVAL_CACHE_DIR, REPORTS_DIR, TEST_ITEMS
from ..selection.comparison import BINARY, bootstrap_settings
from ..selection.guardrails import ranking_metric

# not a pipeline output (paths.py): a view of local experiment refs, git-ignored
IMPROVE_REPORT = REPORTS_DIR / "improve.md"
BASELINE = "baseline"
LOG_TAIL = 12  # lines of `dvc queue logs` shown for a failed experiment
OLDER = "run before select wrote it"  # why a finished run's commit has no test_items.json


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


@dataclass(frozen=True)
class Run:
    """The baseline or one experiment, as `dvc exp show --json` has it."""

    name: str
    rev: str
    state: str  # baseline | queued | running | success | failed
    params: dict[str, Any] = field(default_factory=dict)  # params.yaml, dotted keys
    metrics: dict[str, Any] = field(default_factory=dict)  # reports/metrics.json
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.state == "failed" or self.error is not None


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


def _run(name: str, rev: str, state: str, data: dict, error: dict | None) -> Run:
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = ((data.get("metrics") or {}).get("reports/metrics.json") or {}).get("data") or {}
    failed = state == "failed" or error is not None
    return Run(
        name=name,
        rev=rev,
        state="failed" if failed else state,
        params=flatten(params),
        # a failed experiment's commit still holds its baseline's metrics: never rank them
        metrics={} if failed else metrics,
        error=(error or {}).get("msg") or ("failed" if failed else None),
    )


def parse_exp_show(exp_show: list[dict]) -> tuple[Run | None, list[Run]]:
    """(the workspace as the baseline, every experiment) from DVC 3's `dvc exp show --json`:
    a list of the workspace and baseline commits, each commit with `experiments`, a list of
    {name, executor: {state}, revs: [{rev, name, data: {params, metrics}, error}]}."""
    baseline, experiments = None, []
    for entry in exp_show:
        if entry.get("rev") == "workspace":
            baseline = _run(BASELINE, "workspace", BASELINE, entry.get("data") or {}, None)
        for exp in entry.get("experiments") or []:
            revs = exp.get("revs") or [{}]
            latest = revs[0]
            state = (exp.get("executor") or {}).get("state") or "success"
            name = exp.get("name") or latest.get("name") or str(latest.get("rev", ""))[:7]
            data, error = latest.get("data") or {}, latest.get("error")
            experiments.append(_run(name, latest.get("rev", ""), state, data, error))
    return baseline, experiments


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


def val_key(metric: str) -> str:
    return f"val_{metric}"


def passes(run: Run) -> bool:
    return not run.failed and run.metrics.get("guardrails_passed") is True


def ranking(runs: list[Run], metric: str) -> list[Run]:
    """The runs that pass the guardrails, best val `metric` first (ties: lower val loss, then
    the earlier run in `runs`, so list the baseline first)."""
    ranked = [r for r in runs if passes(r) and r.metrics.get(val_key(metric)) is not None]

    def rank(run: Run) -> tuple[float, float]:
        loss = run.metrics.get("val_loss")
        return (-run.metrics[val_key(metric)], float("inf") if loss is None else loss)

    return sorted(ranked, key=rank)


def pick_winner(runs: list[Run], metric: str) -> Run | None:
    """The first of `ranking`; None when no run passes the guardrails."""
    ranked = ranking(runs, metric)
    return ranked[0] if ranked else None


def log_tail(text: str, lines: int = LOG_TAIL) -> list[str]:
    """The last non-blank lines of a log (progress-bar carriage returns collapsed)."""
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    return [line for line in kept if line.strip()][-lines:]


def number(value: Any, metrics: dict | None = None, key: str | None = None) -> str:
    """A metric to 3 decimals, with its `_lo`/`_hi` interval when metrics.json has one."""
    if value is None:
        return ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    text = f"{value:.3f}"
    if metrics and key and f"{key}_lo" in metrics and f"{key}_hi" in metrics:
        text += f" [{metrics[f'{key}_lo']:.3f}, {metrics[f'{key}_hi']:.3f}]"
    return text


def guardrail_evidence(run: Run, failures: list[str] | None) -> str:
    """Why a run fails the guardrails: select's own reasons (reports/diagnosis.json) when its
    commit has them, else the guardrail metrics themselves."""
    if failures:
        return "; ".join(failures)
    m = run.metrics
    return ", ".join(
        f"{key} {number(m.get(key))}"
        for key in ("forgetting_score", "format_correct", "general_qa")
        if m.get(key) is not None
    )


@dataclass(frozen=True)
class Summary:
    metric: str  # the ranking metric: task_accuracy or task_score
    baseline: Run | None
    runs: list[Run]  # the experiments of this `make improve`, in queue order
    changes: dict[str, str]  # experiment name -> its params
    modes: dict[str, tuple[str, ...]]  # experiment name -> the findings it tries to fix
    logs: dict[str, list[str]] = field(default_factory=dict)  # failed name -> its log tail
    failures: dict[str, list[str]] = field(default_factory=dict)  # name -> guardrail failures
    advice_only: list[dict] = field(default_factory=list)
    # name -> the selected model's per-item test scores (test_items.json's `selected`)
    tests: dict[str, dict] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # comparison.bootstrap_settings
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
    losses = (number(winner.metrics.get("val_loss")), number(baseline.metrics.get("val_loss")))
    return f"{mine}, as the baseline; lower val loss, {losses[0]} vs {losses[1]}"


def finished(run: Run) -> bool:
    return not run.failed and run.state in (BASELINE, "success")


def beyond_noise(summary: Summary, runs: list[Run], winner: Run) -> list[str]:
    """The winner against every other finished run on their test items, Holm-adjusted (see
    experiments/compare.noise_report), and the runs left out for want of those items."""
    done = [run for run in runs if finished(run)]
    if len(done) < 2:
        return []
    reports = {run.name: summary.tests[run.name] for run in done if run.name in summary.tests}
    missing = ", ".join(run.name for run in done if run.name not in reports)
    if winner.name not in reports:
        return [f"No {TEST_ITEMS} for {winner.name} ({OLDER}): no item-level comparison."]
    note = [f"No {TEST_ITEMS} for {missing} ({OLDER}): left out of the comparison."]
    if len(reports) < 2:
        return note
    ranked = ranking(runs, summary.metric)
    runner_up = ranked[1].name if len(ranked) > 1 else None
    baseline = summary.baseline.name if summary.baseline else None
    versus = versus_rest(winner.name, reports, summary.metric, summary.settings)
    binary = summary.metric in BINARY
    report = noise_report(winner.name, versus, summary.metric, binary, runner_up, baseline)
    return [*report, "", *note] if missing else report


def verdict(summary: Summary, runs: list[Run]) -> list[str]:
    metric = summary.metric
    winner = pick_winner(runs, metric)
    if winner is None:
        lines = ["**No run passes the guardrails**, so there is nothing to adopt:"]
        for run in runs:
            if not run.failed and run.state not in ("queued", "running"):
                evidence = guardrail_evidence(run, summary.failures.get(run.name))
                lines.append(f"- {run.name}: {evidence}")
        return lines
    m = winner.metrics
    test = f"test {metric} {number(m.get(metric), m, metric)}"
    noise = beyond_noise(summary, runs, winner)
    noise = ["", *noise] if noise else []
    if winner.name == BASELINE:
        val = val_key(metric)
        return [
            f"**Best: the baseline** (val {metric} {number(m.get(val))}; {test}). No experiment "
            "beats it: nothing to apply.",
            *noise,
        ]
    return [
        f"**Best: {winner.name}** ({versus_baseline(winner, summary.baseline, metric)}; {test}).",
        *noise,
        "",
        "Adopt it (its params, dvc.lock and outputs into the workspace; then commit):",
        "",
        f"    dvc exp apply {winner.name}",
    ]


# --- the thin part: DVC and git on the command line --------------------------------------


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode:
        tail = "\n".join(log_tail(result.stdout + result.stderr, 6))
        raise StageError(f"`dvc {' '.join(args)}` failed ({result.returncode}):\n{tail}")
    return result


def exp_show() -> tuple[Run | None, list[Run]]:
    return parse_exp_show(json.loads(dvc("exp", "show", "--json").stdout))


def worker_threads(jobs: int, cores: int) -> int:
    """Torch threads per queue worker: the cores shared out, so jobs x threads <= cores."""
    return max(1, cores // max(1, jobs))


def run_queue(jobs: int, label: str = "improve") -> None:
    """`dvc exp run --run-all -j N`: starts N queue workers and blocks until every queued
    experiment has finished, following their logs; only the progress lines are printed. The
    workers inherit OMP_NUM_THREADS (unless set): cores / N torch threads each."""
    from .advise import cpu_cores  # imports torch: only when a queue runs

    env = {"OMP_NUM_THREADS": str(worker_threads(jobs, cpu_cores())), **os.environ}
    threads = env["OMP_NUM_THREADS"]
    print(
        f"{label}: running the queue, {jobs} at a time, {threads} torch thread"
        f"{'' if threads == '1' else 's'} each (`dvc queue status` shows it too)"
    )
    start = time.monotonic()
    command = [sys.executable, "-m", "dvc", "exp", "run", "--run-all", "-j", str(jobs)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    ) as process:
        assert process.stdout is not None
        current = "?"
        try:
            for line in process.stdout:
                if match := re.match(r"Reproducing experiment '(.+)'", line):
                    current = match.group(1)
                elif match := re.match(r"Running stage '(.+)'", line):
                    minutes, seconds = divmod(int(time.monotonic() - start), 60)
                    print(f"{label}: [{minutes:02d}:{seconds:02d}] {current}: {match.group(1)}")
        except KeyboardInterrupt:
            raise StageError(
                "stopped waiting; the experiments keep running in the background (`dvc queue "
                f"status`, `dvc queue kill <name>` stops one): `make {label}` again summarises "
                "them once they are done"
            ) from None
    if process.returncode:
        print(f"{label}: `dvc exp run --run-all` exited with {process.returncode}")


def guardrail_failures_at(run: Run) -> list[str] | None:
    """select's guardrail failures for `run`, from reports/diagnosis.json in its commit."""
    if run.name == BASELINE:
        return read_json(DIAGNOSIS).get("guardrail_failures") if DIAGNOSIS.exists() else None
    diagnosis = read_json_at(run.rev, DIAGNOSIS)
    return diagnosis.get("guardrail_failures") if diagnosis is not None else None


def test_items_at(run: Run) -> dict | None:
    """The selected model's per-item test scores in `run`'s commit (on disk for the
    baseline); None where select has not written them."""
    if run.name == BASELINE:
        found = read_json(TEST_ITEMS) if TEST_ITEMS.exists() else None
    else:
        found = read_json_at(run.rev, TEST_ITEMS)
    return (found or {}).get("selected")


def collect_tests(runs: list[Run]) -> dict[str, dict]:
    """test_items_at of every finished run that has them, by name."""
    found = {run.name: test_items_at(run) for run in runs if finished(run)}
    return {name: items for name, items in found.items() if items is not None}


def copy_caches() -> list[str]:
    """`-C <dir>` for the eval cache (generations and val losses): untracked, so copied in,
    each experiment reuses the baseline's base-model work."""
    return ["-C", EVAL_CACHE_DIR.as_posix()] if EVAL_CACHE_DIR.is_dir() else []


def warn_uncommitted(label: str) -> None:
    if subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout:
        print(
            f"{label}: warning: uncommitted changes: the experiments include them, and "
            "`dvc exp apply` leaves files they deleted; commit the baseline run first"
        )


def queue_and_run(planned: list[tuple[Suggestion, bool]], existing: list[Run], jobs: int) -> None:
    """Queue each planned experiment not reused, then run the queue unless nothing waits."""
    copy = copy_caches()
    for suggestion, reuse in planned:
        if reuse:
            print(f"improve: {suggestion.name}: already queued or run with {suggestion.changes()}")
            continue
        dvc("exp", "run", "--queue", "-n", suggestion.name, *suggestion.set_args(), *copy)
        modes = ", ".join(suggestion.modes)
        print(f"improve: queued {suggestion.name} ({modes}): {suggestion.changes()}")
    names = {suggestion.name for suggestion, _ in planned}
    others = [r.name for r in existing if r.state == "queued" and r.name not in names]
    if others:
        print(f"improve: the queue also holds {', '.join(others)}: they run too")
    waiting = [r for r in existing if r.state in ("queued", "running")]
    if waiting or not all(reuse for _, reuse in planned):
        run_queue(jobs)


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
        runs=runs,
        changes={s.name: s.changes() for s, _ in planned},
        modes={s.name: s.modes for s, _ in planned},
        logs={
            run.name: log_tail(dvc("queue", "logs", run.name, check=False).stdout)
            for run in runs
            if run.failed
        },
        failures={
            run.name: guardrail_failures_at(run) or []
            for run in [baseline, *runs]
            if run is not None and not run.failed
        },
        advice_only=advice_only,
        tests=collect_tests([run for run in [baseline, *runs] if run is not None]),
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
