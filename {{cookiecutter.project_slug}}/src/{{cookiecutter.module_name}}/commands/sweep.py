"""`make sweep`: a grid of params run as DVC experiments, printed best val metric first.

`make sweep SWEEP="-S train.lora_r=4,8 -S train.learning_rate=1e-4,2e-4"` takes DVC's own
`-S` grid syntax (Hydra's override grammar, which `dvc exp run --queue -S a=1,2` parses too:
`key=a,b`, `key=range(1,4)`, `key=choice(a,b)`). Every point of the grid is checked against
the params schema before any is queued (a typo'd key or a bad value fails naming the key).
Each point becomes one experiment, `<name>-<i>` (i: its place in the grid), queued with
`dvc exp run --queue -n <name>-<i> -S key=value ...` and run by experiments/queue.py's `run_queue`
(`dvc exp run --run-all -j N`, each worker with cores / N torch threads). Then it prints
`dvc exp show` sorted by the val ranking metric, best first, each failed point with the end
of `dvc queue logs` and the command that re-queues it, and the best run that passes the
guardrails with its `dvc exp apply` and whether it is ahead of the runner-up and the baseline
beyond the noise (experiments/verdict.py: paired test items, Holm-adjusted over every finished
run). It exits 1 when a point failed.

Running it again reuses a point's experiment (done, queued or running) made from the same
commit with the same params, so only the failed and the new points run.
"""

import argparse
import copy
import itertools
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException

from ..cli import run_stage
from ..errors import StageError
from ..experiments.formatting import log_tail
from ..experiments.queue import (
    copy_caches,
    dvc,
    exp_show,
    queue,
    run_if_waiting,
    warn_uncommitted,
)
from ..experiments.ranking import val_key
from ..experiments.runs import Run, collect_tests, finished, guardrail_failures_at
from ..experiments.verdict import Outcome, verdict
from ..params import ParamsError, flatten, load_params, parse_params
from ..paths import DIAGNOSIS, EVAL_CACHE_DIR, METRICS, PARAMS, TEST_ITEMS
from ..selection.comparison import bootstrap_settings
from ..selection.guardrails import ranking_metric


@dataclass(frozen=True)
class Point:
    """One point of the grid: its place (from 1) and its `key=value` settings."""

    index: int
    settings: tuple[str, ...]

    def set_args(self) -> list[str]:
        return [arg for setting in self.settings for arg in ("-S", setting)]

    def changes(self) -> str:
        return " ".join(self.settings)


def parse(setting: str) -> Override:
    """One `-S` setting as Hydra (and so DVC) parses it; a `params.yaml:` prefix is dropped."""
    head, _, _ = setting.partition("=")
    if ":" in head:
        path, _, setting = setting.partition(":")
        if path != PARAMS.as_posix():
            raise StageError(f"-S {path}:...: a sweep sets {PARAMS} only")
    try:
        (override,) = OverridesParser.create().parse_overrides([setting])
    except HydraException as error:
        raise StageError(f"-S {setting}: {str(error).splitlines()[0]}") from None
    return override


def axis(setting: str) -> list[str]:
    """The `key=value` settings one `-S` stands for: one, or one per value of a sweep."""
    override = parse(setting)
    if not override.is_sweep_override():
        return [override.input_line or setting]
    if not override.is_discrete_sweep() or override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        raise StageError(
            f"-S {setting}: only lists (a,b), choice(a,b) and range(start,stop) can be swept"
        )
    key = override.get_key_element()
    return [f"{key}={value}" for value in override.sweep_string_iterator()]


def grid(settings: Sequence[str]) -> list[Point]:
    """Every combination of the settings' values, in order (the last one varies fastest)."""
    if not settings:
        raise StageError('nothing to sweep: give the grid, e.g. SWEEP="-S train.lora_r=4,8"')
    axes = [axis(setting) for setting in settings]
    return [Point(i, tuple(p)) for i, p in enumerate(itertools.product(*axes), start=1)]


def with_point(raw: dict, point: Point) -> dict:
    """params.yaml's data with the point's settings applied, as `dvc exp run -S` applies them."""
    updated = copy.deepcopy(raw)
    for override in map(parse, point.settings):
        *sections, name = override.key_or_group.split(".")
        node = updated
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise StageError(f"-S {override.input_line}: {section} is not a section")
        if override.is_delete():
            node.pop(name, None)
        else:
            node[name] = override.value()
    return updated


def check(points: list[Point], raw: dict) -> None:
    """Every point validates against the params schema; the first that does not fails, naming
    the key, before anything is queued."""
    for point in points:
        try:
            parse_params(with_point(raw, point), f"{PARAMS} with {point.changes()}")
        except ParamsError as error:
            raise StageError(
                f"grid point {point.index} of {len(points)}: {error}\nnothing was queued"
            ) from None


def expected_params(base: dict[str, Any], point: Point) -> dict[str, Any]:
    """An experiment's flat params (`dvc exp show`) had it run this point: the workspace's
    params with the point's settings."""
    flat = dict(base)
    for override in map(parse, point.settings):
        key = override.key_or_group
        flat = {k: v for k, v in flat.items() if k != key and not k.startswith(f"{key}.")}
        if not override.is_delete():
            flat |= flatten({key: override.value()})
    return flat


def free_prefix(name: str, taken: set[str]) -> str:
    """`name`, else name2, name3, ...: the first prefix no experiment name starts with."""
    prefix, number = name, 1
    while any(other.startswith(f"{prefix}-") for other in taken):
        number += 1
        prefix = f"{name}{number}"
    return prefix


def plan(
    points: list[Point], baseline: Run | None, existing: list[Run], name: str
) -> list[tuple[Point, str, bool]]:
    """(point, experiment name, reused) per point: an experiment of this commit with exactly
    the point's params that has not failed is reused; the others get `<prefix>-<i>`."""
    base = baseline.params if baseline else {}
    prefix = free_prefix(name, {run.name for run in existing})
    planned = []
    for point in points:
        want = expected_params(base, point)
        same = next((r for r in existing if not r.failed and r.params == want), None)
        if same is not None:
            planned.append((point, same.name, True))
        else:
            planned.append((point, f"{prefix}-{point.index}", False))
    return planned


def exp_show_args(metric: str, keys: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`dvc exp show` sorted by the val ranking metric, best first, with that column and the
    swept params kept whatever `extra` (make's EXP_SHOW_ARGS) drops. Queued and failed
    experiments are hidden: a failed one's commit holds its baseline's metrics."""
    column = val_key(metric)
    keep = [arg for col in (column, *keys) for arg in ("--keep", f"{re.escape(col)}$")]
    sort = ["--sort-by", f"{METRICS.as_posix()}:{column}", "--sort-order", "desc"]
    hide = ["--hide-queued", "--hide-failed"]
    return ["exp", "show", "--md", "--no-pager", *hide, *sort, *extra, *keep]


def requeue_command(name: str, point: Point) -> str:
    settings = " ".join(f"-S {shlex.quote(setting)}" for setting in point.settings)
    return (
        f"dvc queue remove {name} && dvc exp run --queue -n {name} {settings} "
        "&& dvc exp run --run-all"
    )


def failure_report(name: str, point: Point, log: list[str]) -> list[str]:
    return [
        f"**{name} failed** ({point.changes()}). The end of `dvc queue logs {name}`:",
        "",
        "```text",
        *log,
        "```",
        "",
        "Re-queue it once fixed (or `make sweep` again: only the failed points run again):",
        "",
        f"    {requeue_command(name, point)}",
        "",
    ]


def queue_and_run(planned: list[tuple[Point, str, bool]], existing: list[Run], jobs: int) -> None:
    copy_args = copy_caches(EVAL_CACHE_DIR)
    for point, name, reused in planned:
        if reused:
            print(f"sweep: point {point.index} ({point.changes()}): reusing {name}")
            continue
        queue(name, point.set_args(), copy_args)
        print(f"sweep: queued {name}: {point.changes()}")
    run_if_waiting(existing, not all(reused for _, _, reused in planned), jobs, "sweep")


def summarise(
    planned: list[tuple[Point, str, bool]], metric: str, show_args: list[str], settings: dict
) -> int:
    """Print the sorted table, each failed point with its log and re-queue command, and the
    best run to adopt; return how many points failed."""
    shown = dvc(*show_args, check=False)
    if shown.returncode:  # e.g. no run has the metric yet: the failures below still matter
        print(f"sweep: `dvc exp show` failed: {' '.join(log_tail(shown.stderr, 2))}\n")
    else:
        print(shown.stdout, end="")
        print(f"(sorted by val {metric}, best first; queued and failed experiments hidden)\n")
    baseline, experiments = exp_show()
    by_name = {run.name: run for run in experiments}
    runs = [(point, name, by_name.get(name)) for point, name, _ in planned]
    failed = [(point, name) for point, name, run in runs if run is not None and run.failed]
    for point, name in failed:
        log = log_tail(dvc("queue", "logs", name, check=False).stdout)
        print("\n".join(failure_report(name, point, log)))
    missing = [name for _, name, run in runs if run is None]
    if missing:
        print(f"sweep: not in `dvc exp show`: {', '.join(missing)}")
    found = [run for _, _, run in runs if run is not None]
    pending = [run.name for run in found if run.state in ("queued", "running")]
    if pending:
        print(f"sweep: still in the queue: {', '.join(pending)} (`dvc queue status`)")
    if baseline is not None and not baseline.metrics:
        baseline = None  # the workspace has not been run: nothing to compare with
    ranked = ([baseline] if baseline else []) + found
    outcome = Outcome(
        metric=metric,
        baseline=baseline,
        test_items=TEST_ITEMS,
        failures={
            run.name: guardrail_failures_at(run, DIAGNOSIS) or [] for run in ranked if finished(run)
        },
        tests=collect_tests(ranked, TEST_ITEMS),
        settings=settings,
    )
    print("\n".join(verdict(outcome, ranked)))
    return len(failed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` go to `dvc exp show` (make's EXP_SHOW_ARGS).",
    )
    parser.add_argument(
        "-S", "--set-param", action="append", default=[], dest="settings", metavar="KEY=VALUES"
    )
    parser.add_argument("-j", "--jobs", type=int, default=1, help="experiments at a time")
    parser.add_argument("-n", "--name", default="sweep", help="experiment name prefix")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])

    params = load_params()  # the workspace's params.yaml must be valid
    metric = ranking_metric(params.task)
    points = grid(args.settings)
    check(points, yaml.safe_load(PARAMS.read_text(encoding="utf-8")) or {})
    print(f"sweep: {len(points)} point{'s' if len(points) > 1 else ''}, each valid")
    warn_uncommitted("sweep")
    baseline, existing = exp_show()
    planned = plan(points, baseline, existing, args.name)
    queue_and_run(planned, existing, args.jobs)
    keys = sorted({parse(setting).key_or_group for point in points for setting in point.settings})
    show_args = exp_show_args(metric, keys, argv[cut + 1 :])
    failed = summarise(planned, metric, show_args, bootstrap_settings(params))
    if failed:
        raise StageError(f"{failed} of {len(points)} points failed: their logs are above")


if __name__ == "__main__":
    run_stage("sweep", main)
