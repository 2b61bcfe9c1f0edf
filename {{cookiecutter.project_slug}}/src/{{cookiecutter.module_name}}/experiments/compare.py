"""Two experiments compared item by item (`make compare-exps A=<exp> B=<exp>`).

An experiment is a DVC experiment name (`dvc exp ls`), any git revision (HEAD, a branch, a
commit) or `workspace` (the files on disk). Its commit holds, git-tracked (cache: false in
dvc.yaml), reports/test_items.json (select: the selected model's per-item test scores) and
reports/eval/<selected>.json (eval: its general-suite items). B minus A is paired on the
items both were scored on, with an interval (Tango's score interval for 0/1 scores, the
paired bootstrap for graded ones) and McNemar's exact p-value (0/1 scores), and called better
or worse only when the interval excludes 0 (and, for 0/1 scores, McNemar's p is under
1 - select.confidence); otherwise "no difference detectable".
experiments/noise.py asks of the same records whether the run `make improve` or `make sweep`
picks is ahead of the others beyond the noise.
"""

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..evaluation.metric_names import (
    FORMAT_CORRECT,
    GENERAL_QA,
    INSTRUCTION_FOLLOW,
    TASK_ACCURACY,
    TASK_SCORE,
)
from ..evaluation.model_names import split_name
from ..io import read_json, read_json_at
from ..selection.comparison import (
    Comparison,
    compare,
    item_values,
    p_text,
    with_interval,
)

WORKSPACE = "workspace"
# (item set, metric): the test task metrics from test_items.json, the general suites from eval
METRICS = (
    ("test", TASK_ACCURACY),
    ("test", TASK_SCORE),
    ("test", FORMAT_CORRECT),
    ("general", GENERAL_QA),
    ("general", INSTRUCTION_FOLLOW),
)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def resolve(name: str) -> str:
    """The commit of experiment `name` (refs/exps/<..>/<..>/<name>), else of git revision
    `name`; `workspace` stays itself."""
    if name == WORKSPACE:
        return name
    refs = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").stdout.split("\n")
    matches = sorted(
        {
            sha
            for ref, _, sha in (line.partition(" ") for line in refs if line)
            if ref.rsplit("/", 1)[-1] == name and not ref.startswith("refs/exps/exec/")
        }
    )
    if len(matches) > 1:
        raise StageError(
            f"{name!r} names {len(matches)} experiments (made from different commits): pass "
            f"the one you mean by its commit ({', '.join(sha[:7] for sha in matches)})"
        )
    if matches:
        return matches[0]
    found = git("rev-parse", "--verify", "--quiet", name + "^{commit}")
    if found.returncode:
        raise StageError(
            f"{name!r} is neither a DVC experiment (`dvc exp ls`) nor a git revision; "
            f"`{WORKSPACE}` is the files on disk"
        )
    return found.stdout.strip()


def read_at(name: str, rev: str, path: Path) -> Any:
    """JSON file `path` as committed in `rev` (on disk for the workspace)."""
    if rev == WORKSPACE:
        if not path.exists():
            raise StageError(f"{WORKSPACE}: no {path}: run the pipeline (`make repro`) first")
        return read_json(path)
    found = read_json_at(rev, path)
    if found is None:
        raise StageError(
            f"{name} ({rev[:7]}): its commit has no {path}; select writes it (cache: false, so "
            "experiments commit it): run that experiment again with this pipeline version"
        )
    return found


def load(name: str, test_items: Path, eval_dirs: Mapping[str | None, Path]) -> dict[str, dict]:
    """An experiment's per-item records: its selected model on test (select's `test_items`)
    and on the general suites (its eval report, in the folder `eval_dirs` names for the stage
    that trained it: None for SFT, eval's; "rl" for eval_rl's)."""
    rev = resolve(name)
    selected = read_at(name, rev, test_items)["selected"]
    stage, _ = split_name(selected["model"])
    eval_dir = eval_dirs.get(stage, eval_dirs[None])
    general = read_at(name, rev, eval_dir / f"{selected['model']}.json")
    return {"test": selected, "general": general}


def common_means(a: dict, b: dict, metric: str) -> tuple[float, float]:
    """The two means over the items both reports have (what the comparison pairs)."""
    first, second = item_values(a, metric), item_values(b, metric)
    common = first.keys() & second.keys()
    if not common:
        return 0.0, 0.0
    return tuple(sum(v[i] for i in common) / len(common) for v in (first, second))


Row = tuple[str, float, float, Comparison]


def compare_experiments(a: dict, b: dict, settings: dict) -> list[Row]:
    """(item set, A's mean, B's mean, B minus A) per metric."""
    rows = []
    for items, metric in METRICS:
        mean_a, mean_b = common_means(a[items], b[items], metric)
        rows.append((items, mean_a, mean_b, compare(b[items], a[items], metric, settings)))
    return rows


def render(names: tuple[str, str], models: tuple[str, str], rows: list[Row], settings: dict) -> str:
    level = f"{settings['confidence']:.0%}"
    lines = [
        f"B = {names[1]} ({models[1]}) minus A = {names[0]} ({models[0]}), paired on the items "
        f"both were scored on; {level} intervals: Tango's score interval and McNemar's exact p "
        f"for 0/1 items, the paired bootstrap ({settings['samples']} resamples, seed "
        f"{settings['seed']}) for graded ones",
        "",
        f"{'metric':<19} {'set':<7} {'items':>5} {'A':>6} {'B':>6}  "
        f"{'B - A [' + level + ' interval]':<26} {'p':>7}  verdict",
    ]
    for items, mean_a, mean_b, comparison in rows:
        p = p_text(comparison.p)
        lines.append(
            f"{comparison.metric:<19} {items:<7} {comparison.diff.n:>5} {mean_a:>6.3f} "
            f"{mean_b:>6.3f}  "
            f"{with_interval(comparison.diff, signed=True):<26} {p:>7}  {comparison.verdict}"
        )
    return "\n".join(lines)
