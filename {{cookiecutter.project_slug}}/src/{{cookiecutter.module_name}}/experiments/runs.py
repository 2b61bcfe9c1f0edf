"""The runs of a project's experiments: the workspace's run (the baseline) and each DVC
experiment, as `dvc exp show --json` has them, and what select committed for each of them."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import read_json, read_json_at
from ..params import flatten

BASELINE = "baseline"


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


def finished(run: Run) -> bool:
    return not run.failed and run.state in (BASELINE, "success")


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


def file_at(run: Run, path: Path) -> Any:
    """JSON file `path` in `run`'s commit (on disk for the baseline); None where it has none."""
    if run.name == BASELINE:
        return read_json(path) if path.exists() else None
    return read_json_at(run.rev, path)


def guardrail_failures_at(run: Run, diagnosis: Path) -> list[str] | None:
    """select's guardrail failures for `run`, from its `diagnosis` (reports/diagnosis.json)."""
    found = file_at(run, diagnosis)
    return found.get("guardrail_failures") if found is not None else None


def test_items_at(run: Run, test_items: Path) -> dict | None:
    """The selected model's per-item test scores in `run`'s `test_items` (select's
    reports/test_items.json); None where select has not written them."""
    return (file_at(run, test_items) or {}).get("selected")


def collect_tests(runs: list[Run], test_items: Path) -> dict[str, dict]:
    """test_items_at of every finished run that has them, by name."""
    found = {run.name: test_items_at(run, test_items) for run in runs if finished(run)}
    return {name: items for name, items in found.items() if items is not None}
