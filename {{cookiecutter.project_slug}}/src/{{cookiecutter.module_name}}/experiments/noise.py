"""Whether the run `make improve` or `make sweep` picks is ahead of the others beyond the noise.

The winner minus every other finished run on the test items both were scored on (the records
select commits: reports/test_items.json), each with McNemar's exact p for 0/1 items or a paired
permutation p for graded ones, Holm-adjusted over all those comparisons; said of the two that
matter, the baseline and the runner-up.
"""

from dataclasses import dataclass

from ..evaluation.multiplicity import holm, p_label, paired_p
from ..selection.comparison import BINARY, item_values, p_text


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
