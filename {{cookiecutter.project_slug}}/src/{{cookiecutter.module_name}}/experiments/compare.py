"""`make compare-exps A=<exp> B=<exp>`: two experiments compared item by item.

An experiment is a DVC experiment name (`dvc exp ls`), any git revision (HEAD, a branch, a
commit) or `workspace` (the files on disk). Its commit holds, git-tracked (cache: false in
dvc.yaml), reports/test_items.json (select: the selected model's per-item test scores) and
reports/eval/<selected>.json (eval: its general-suite items). B minus A is paired on the
items both were scored on, with an interval (Tango's score interval for 0/1 scores, the
paired bootstrap for graded ones) and McNemar's exact p-value (0/1 scores), and called better
or worse only when the interval excludes 0 (and, for 0/1 scores, McNemar's p is under
1 - select.confidence); otherwise "no difference detectable".

`make improve` and `make sweep` use the same records to ask whether the run they pick is
ahead of the others beyond the noise (versus_rest): the winner minus every other finished run
on the test items, Holm-adjusted over all those comparisons.
"""

import argparse
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli import run_stage
from ..errors import StageError
from ..evaluation.multiplicity import holm, p_label, paired_p
from ..io import read_json, read_json_at
from ..params import load_params
from ..paths import EVAL_DIR, TEST_ITEMS
from ..selection.comparison import (
    BINARY,
    Comparison,
    bootstrap_settings,
    compare,
    item_values,
    p_text,
    with_interval,
)

WORKSPACE = "workspace"
# (item set, metric): the test task metrics from test_items.json, the general suites from eval
METRICS = (
    ("test", "task_accuracy"),
    ("test", "task_score"),
    ("test", "format_correct"),
    ("general", "general_qa"),
    ("general", "instruction_follow"),
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


def load(name: str) -> dict[str, dict]:
    """An experiment's per-item records: its selected model on test and on the general
    suites (its eval report)."""
    rev = resolve(name)
    selected = read_at(name, rev, TEST_ITEMS)["selected"]
    general = read_at(name, rev, EVAL_DIR / f"{selected['model']}.json")
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


@dataclass(frozen=True)
class Versus:
    """The winner minus one other run on a metric, paired on the test items both have; `p`
    is Holm-adjusted over all the winner's comparisons into `adjusted`."""

    other: str
    n: int  # items in common
    diff: float  # the winner's mean minus the other's, on those items
    p: float
    adjusted: float
    alpha: float  # 1 - select.confidence

    @property
    def detectable(self) -> bool:
        return self.n > 0 and self.adjusted < self.alpha

    @property
    def better(self) -> bool:
        return self.detectable and self.diff > 0

    @property
    def worse(self) -> bool:
        return self.detectable and self.diff < 0

    @property
    def verdict(self) -> str:
        if not self.n:
            return "no items in common"
        if not self.detectable:
            return "no difference detectable"
        return "better" if self.better else "worse"


def versus_rest(winner: str, reports: dict[str, dict], metric: str, settings: dict) -> list[Versus]:
    """`winner` against every other run in `reports` (run name -> its test_items.json
    `selected` entry), each paired on the items both have (McNemar's exact p for 0/1 items,
    a paired permutation p for graded ones), the p-values Holm-adjusted together."""
    mine = item_values(reports[winner], metric)
    raw = []
    for name, report in reports.items():
        if name == winner:
            continue
        theirs = item_values(report, metric)
        common = sorted(mine.keys() & theirs.keys())
        a, b = [mine[i] for i in common], [theirs[i] for i in common]
        diff = (sum(a) - sum(b)) / len(common) if common else 0.0
        p = paired_p(a, b, metric in BINARY, samples=settings["samples"], seed=settings["seed"])
        raw.append((name, len(common), diff, p))
    adjusted = holm([p for *_, p in raw])
    alpha = round(1 - settings["confidence"], 10)
    return [
        Versus(name, n, diff, p, adj, alpha)
        for (name, n, diff, p), adj in zip(raw, adjusted, strict=True)
    ]


def comparisons(m: int) -> str:
    return f"{m} comparison{'' if m == 1 else 's'}"


def noise_sentence(winner: str, focus: list[tuple[str, Versus]], m: int, test: str) -> str:
    """Whether `winner` (a name, or "the baseline") is ahead of the runs in `focus` ((label,
    comparison): the baseline, the
    runner-up) beyond the noise, e.g. "fix-a is detectably better than the baseline (McNemar
    p 0.003, Holm-adjusted 0.009, 3 comparisons) but not than the runner-up fix-b (McNemar p
    0.21, Holm-adjusted 0.41): the ranking between them is noise."; `m` comparisons were made
    in all, `test` names the p."""
    count = [comparisons(m)]

    def clause(label: str, versus: Versus) -> str:
        stats = [f"{test} p {p_text(versus.p)}", f"Holm-adjusted {p_text(versus.adjusted)}"]
        stats += count[:1]
        count.clear()  # the number of comparisons is said once, in the first clause
        return f"{label} ({', '.join(stats)})"

    better = [clause(*pair) for pair in focus if pair[1].better]
    level = [clause(*pair) for pair in focus if not pair[1].detectable]
    worse = [clause(*pair) for pair in focus if pair[1].worse]
    sentences = []
    first = winner[:1].upper() + winner[1:] if winner.startswith("the ") else winner
    if better:
        text = f"{first} is detectably better than " + " and than ".join(better)
        if level:
            text += " but not than " + " nor than ".join(level)
            text += ": the ranking between them is noise"
        sentences.append(text + ".")
    elif level:
        text = f"{first} is not detectably better than " + " nor than ".join(level)
        sentences.append(text + ": the ranking between them is noise.")
    sentences += [
        f"On test {winner} is detectably worse than {against}: its lead on val did not hold up."
        for against in worse
    ]
    return " ".join(sentences)


def noise_report(
    winner: str,
    versus: list[Versus],
    metric: str,
    binary: bool,
    runner_up: str | None = None,
    baseline: str | None = None,
) -> list[str]:
    """Markdown: every comparison of the winner as a table, then noise_sentence on the two
    that matter: against the baseline (the run the experiments started from) and against the
    runner-up (the next best val score)."""
    test = p_label(binary)
    me = "the baseline" if winner == baseline else winner
    lines = [
        f"Beyond the noise? The winner ({me}) minus each other finished run, on the test items "
        f"both were scored on ({test} p, Holm-adjusted over {comparisons(len(versus))}; "
        f"detectable under {versus[0].alpha:g}). Test played no part in the pick (val did), "
        "so this is a fair check of it; on the val items it was picked on, the winner would "
        "look better than it is.",
        "",
        f"| minus | items | test {metric} difference | p | Holm-adjusted p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    roles = {
        name: role for name, role in ((baseline, "baseline"), (runner_up, "runner-up")) if name
    }
    for found in versus:
        role = roles.get(found.other)
        name = f"{found.other} ({role})" if role and role != found.other else found.other
        lines.append(
            f"| {name} | {found.n} | {found.diff:+.3f} | {p_text(found.p)} "
            f"| {p_text(found.adjusted)} | {found.verdict} |"
        )
    by_name = {found.other: found for found in versus}
    focus = [("the baseline", by_name[baseline])] if baseline in by_name else []
    if runner_up in by_name and runner_up != baseline:
        focus.append((f"the runner-up {runner_up}", by_name[runner_up]))
    sentence = noise_sentence(me, focus, len(versus), test)
    return [*lines, "", sentence] if sentence else lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="experiment A: a `dvc exp ls` name, a git revision or workspace")
    parser.add_argument("b", help="experiment B (the difference is B minus A)")
    args = parser.parse_args(argv)
    settings = bootstrap_settings(load_params())
    a, b = load(args.a), load(args.b)
    models = (a["test"]["model"], b["test"]["model"])
    print(render((args.a, args.b), models, compare_experiments(a, b, settings), settings))
    ids = [set(item_values(x["test"], "task_accuracy")) for x in (a, b)]
    if ids[0] != ids[1]:
        print(
            f"note: the test splits differ (A {len(ids[0])} items, B {len(ids[1])}): only the "
            f"{len(ids[0] & ids[1])} in both are compared"
        )


if __name__ == "__main__":
    run_stage("compare-exps", main)
