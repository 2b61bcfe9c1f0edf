"""What `curate` reports: counts and examples (reports/curate.json), token-length statistics,
the tokens each kept row trains on, the histogram for `dvc plots` and its image, the
data-size advice (data/sizing.py), and how the task will be scored (`scoring`: a null task.scorer
on free-text targets means chrF, read back by params.load_params for every later stage)."""

from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..params import EXACT_SCORERS, GRADED_SCORERS, TaskParams
from .chat import target_text
from .decisions import Decisions
from .masking import is_multi_turn
from .sizing import size_verdict
from .textnorm import abridge, words

EXAMPLES_PER_REASON = 3
CLUSTER_EXAMPLES = 5
LABEL_IMBALANCE = 0.8  # a score field whose most common value has this share is imbalanced
# Free text, for scoring, is targets that are mostly distinct (targets.target_summary's
# free_text) and sentence-long: distinct short answers ("Paris", "1889") stay exact matches.
MIN_FREE_TEXT_WORDS = 4  # median words per target
MIN_FREE_TEXT_CHARS = 32  # or median characters (scripts written without spaces)
IMBALANCE_ADVICE = (
    "diversity across task variants and edge cases matters as much as volume: add "
    "examples of the rarer values, or a model that always answers the common one scores well"
)


def token_histogram(lengths: list[int], max_tokens: int | None, bins: int = 16) -> list[dict]:
    """Rows per token-length bin, for `dvc plots`; bins are max_tokens/bins wide."""
    if not lengths:
        return []
    width = max(1, -(-(max_tokens or max(lengths)) // bins))
    counts = Counter(length // width for length in lengths)
    return [
        {
            "tokens": f"{b * width:>5}-{(b + 1) * width - 1}",
            "rows": counts.get(b, 0),
            "over_max": bool(max_tokens is not None and b * width >= max_tokens),
        }
        for b in range(max(counts) + 1)
    ]


def token_stats(lengths: list[int], max_tokens: int | None) -> dict[str, Any]:
    if not lengths:
        return {"rows": 0}
    values = np.asarray(lengths)
    over = int((values > max_tokens).sum()) if max_tokens else 0
    return {
        "rows": len(lengths),
        "max_tokens": max_tokens,
        "mean": round(float(values.mean()), 1),
        "p50": int(np.percentile(values, 50)),
        "p95": int(np.percentile(values, 95)),
        "max": int(values.max()),
        "over_max": over,
        "over_max_share": round(over / len(lengths), 4),
    }


def trainable_stats(
    trained: array,
    lengths: array,
    multi_turn: int,
    max_length: int | None,
    fewest: str | None,
    turns: str | None = None,
) -> dict[str, Any]:
    """What the kept SFT rows train on (`trained`: assistant tokens per row after the cut to
    max_length; `lengths`: the rows' whole lengths, in the same order; `turns`:
    train.assistant_turns, None when not known)."""
    if not trained:
        return {"rows": 0}
    values, totals = np.asarray(trained), np.asarray(lengths)
    sequence = np.minimum(totals, max_length) if max_length else totals
    rows = len(values)
    return {
        "rows": rows,
        "max_length": max_length,
        "min": int(values.min()),
        "p5": int(np.percentile(values, 5)),
        "p50": int(np.percentile(values, 50)),
        "p95": int(np.percentile(values, 95)),
        "max": int(values.max()),
        "mean": round(float(values.mean()), 1),
        "fewest": fewest,  # the first row with the fewest trainable tokens
        "trained_tokens": int(values.sum()),
        "sequence_tokens": int(sequence.sum()),
        "trained_share": round(float(values.sum() / max(sequence.sum(), 1)), 4),
        # rows with an earlier assistant turn: trained too with assistant_turns all
        "multi_turn": multi_turn,
        "assistant_turns": turns,
        "multi_turn_share": round(multi_turn / rows, 4),
        # longer than max_length: TRL cuts the end of the answer (curate.max_tokens > max_length)
        "truncated": int((totals > max_length).sum()) if max_length else 0,
    }


def plot_token_lengths(lengths: list[int], max_tokens: int | None, path: Path) -> None:
    """A histogram of row lengths with the max_length line: what truncation would cut."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    ax.hist(lengths, bins=40, color="#4C72B0")
    if max_tokens:
        ax.axvline(max_tokens, color="#C44E52", linestyle="--", label=f"max_tokens {max_tokens}")
        ax.legend()
    ax.set_xlabel("tokens per row (chat template applied)")
    ax.set_ylabel("rows")
    ax.set_title("Token lengths of valid rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def label_imbalance(labels: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Score fields whose most common value holds LABEL_IMBALANCE of the rows or more:
    reported with IMBALANCE_ADVICE, never quarantined (the labels may be the truth)."""
    found = []
    for name, counts in labels.items():
        total = sum(counts.values())
        if total and counts:
            value, n = max(counts.items(), key=lambda item: item[1])
            if n / total >= LABEL_IMBALANCE:
                found.append({"field": name, "value": value, "share": round(n / total, 4)})
    return found


def target_report(targets: dict[str, Any]) -> dict[str, Any]:
    """Decisions.targets for reports/curate.json, with the label imbalance of score fields."""
    if not targets:
        return {}
    report = dict(targets)
    if "labels" in targets:
        imbalanced = label_imbalance(targets["labels"])
        report["label_imbalance"] = imbalanced
        if imbalanced:
            report["label_advice"] = IMBALANCE_ADVICE
    return report


def plot_targets(top: list[dict[str, Any]], path: Path) -> None:
    """The most frequent normalised targets as horizontal bars (share of rows): a placeholder
    or one answer for most rows stands out at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(reversed(top))
    labels = [abridge(row["target"] or "(empty)", 30, 15) for row in rows]
    colours = ["#C44E52" if row["placeholder"] else "#4C72B0" for row in rows]
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(len(rows), 3) + 1), dpi=110)
    ax.barh(range(len(rows)), [row["share"] for row in rows], color=colours)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlim(0, max([row["share"] for row in rows] + [0.05]) * 1.1)
    ax.set_xlabel("share of rows (placeholders in red)")
    ax.set_title("Most frequent targets (normalised)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def scoring_report(
    task: TaskParams, targets: dict[str, Any], target_words: list[int], target_chars: list[int]
) -> dict[str, Any]:
    """How the task will be scored, given the kept targets' distribution (`targets`:
    targets.target_summary) and lengths: a null scorer on free-text targets resolves to
    chrF; an exact-match scorer chosen for them gets a warning."""
    median_words = int(np.median(target_words)) if target_words else 0
    median_chars = int(np.median(target_chars)) if target_chars else 0
    sentences = median_words >= MIN_FREE_TEXT_WORDS or median_chars >= MIN_FREE_TEXT_CHARS
    free_text = bool(task.target_format == "text" and targets.get("free_text") and sentences)
    scorer = task.for_targets(free_text).resolved_scorer
    described = (
        f"{targets.get('distinct', 0)} distinct targets of {targets.get('rows', 0)}, median "
        f"{median_words} words"
    )
    chosen_by = "free-text targets" if free_text else "default"
    if task.scorer is not None:
        chosen_by = "task.scorer"
    warning = None
    if free_text and task.scorer in EXACT_SCORERS:
        warning = (
            f"task.scorer {task.scorer} on free-text targets ({described}): exact match on "
            "free text scores ~0 whatever the model learns, so every checkpoint ties and "
            "select cannot tell them apart; use task.scorer=chrf (or rougeL) unless the "
            "answers must be reproduced word for word"
        )
    return {
        "free_text": free_text,
        "median_target_words": median_words,
        "median_target_chars": median_chars,
        "scorer": scorer,
        "chosen_by": chosen_by,
        "min_score": task.min_score if scorer in GRADED_SCORERS else None,
        "described": described,
        "warning": warning,
    }


def summary_lines(report: dict[str, Any], dominant_target: str) -> list[str]:
    """What curate prints: the counts, the data-size advice, the trained tokens per row, each
    target finding (acted on as curate.dominant_target says) and the scorer."""
    dups = report["duplicates"]
    lines = [
        f"{report['rows_in']} rows in -> {report['kept']} kept, "
        f"{report['quarantined']} quarantined {report['reasons']}, "
        f"{dups['exact']} exact + {dups['near']} near duplicates removed",
        report["size_advice"],
    ]
    trainable = report["trainable"]
    if trainable["rows"]:
        lines.append(
            f"trained tokens per row (assistant turns, after max_length "
            f"{trainable['max_length']}): min {trainable['min']}, median {trainable['p50']}, "
            f"p95 {trainable['p95']}; {trainable['trained_share']:.0%} of all tokens; "
            f"{trainable['multi_turn']} multi-turn rows (train.assistant_turns: "
            f"{trainable['assistant_turns']})"
        )
    for finding in report["targets"].get("findings", []):
        lines.append(
            f"{finding['reason']}: {finding['target']!r} answers {finding['share']:.0%} "
            f"of the rows ({finding['count']}, e.g. {finding['example']}); "
            f"curate.dominant_target={dominant_target}"
        )
    return lines + scoring_lines(report["scoring"])


def scoring_lines(scoring: dict[str, Any]) -> list[str]:
    """What curate prints about the scorer: the resolution when it chose chrF, the warning
    when an exact-match scorer was chosen for free text (nothing otherwise)."""
    if scoring.get("warning"):
        return [f"WARNING: {scoring['warning']}"]
    if scoring.get("chosen_by") != "free-text targets":
        return []
    return [
        f"the targets are free text ({scoring['described']}): task.scorer null scores them "
        f"with {scoring['scorer']} (task_accuracy: the share scoring task.min_score "
        f"{scoring['min_score']} or more; select ranks by task_score, the mean). Set "
        "task.scorer=normalised to score exact matches instead"
    ]


class ReportBuilder:
    """Counts and examples collected while pass 2 streams the records out: `add` is called
    once per row, in row order, so the n-th call is row index n of the decisions."""

    def __init__(self, decisions: Decisions, reason_details: dict[str, str]) -> None:
        self.decisions = decisions
        self.reason_details = reason_details
        self.position = -1
        # rows that near duplicates point at: the only kept rows whose text a cluster shows
        self.near_kept = {
            first for kind, first, _ in decisions.duplicate_of.values() if kind == "near"
        }
        self.counts: Counter = Counter()
        self.reasons: Counter = Counter()
        self.examples: dict[str, list[dict]] = {}
        self.clusters: dict[str, dict] = {}
        self.snippets: dict[str, str] = {}
        self.conflicts = 0
        self.conflict_examples: list[dict] = []
        self.trained, self.lengths = array("q"), array("q")  # per kept SFT row with counts
        self.multi_turn = 0
        self.target_words, self.target_chars = array("q"), array("q")  # per kept SFT row
        self.fewest: tuple[int, str] | None = None  # (trainable tokens, source)

    def add(self, kind: str, record: dict) -> None:
        self.position += 1
        self.counts[kind] += 1
        if kind == "quarantined":
            self.reasons[record["reason"]] += 1
            shown = self.examples.setdefault(record["reason"], [])
            if len(shown) < EXAMPLES_PER_REASON:
                shown.append(
                    {k: record[k] for k in ("file", "line")} | {"raw": abridge(record["raw"])}
                )
        elif kind in ("kept", "preference"):
            if self.position in self.near_kept:
                self.snippets[record["source"]] = snippet(record)
            if kind == "kept":
                self._add_trainable(record)
                target = target_text(record)
                self.target_words.append(len(words(target)))
                self.target_chars.append(len(target.strip()))
        elif kind == "duplicate" and record["kind"] == "near":
            first = record["duplicate_of"]
            if not record["same_target"]:
                self.conflicts += 1
                if len(self.conflict_examples) < CLUSTER_EXAMPLES:
                    self.conflict_examples.append(
                        {k: record[k] for k in ("source", "duplicate_of", "similarity")}
                    )
            if first in self.clusters or len(self.clusters) < CLUSTER_EXAMPLES:
                cluster = self.clusters.setdefault(
                    first, {"kept": first, "text": self.snippets.get(first, ""), "removed": []}
                )
                if len(cluster["removed"]) < 3:
                    cluster["removed"].append(
                        {k: record[k] for k in ("source", "similarity", "same_target")}
                    )

    def _add_trainable(self, record: dict) -> None:
        trained = record.get("trainable_tokens")
        if trained is None:  # counted without a tokenizer
            return
        self.trained.append(trained)
        self.lengths.append(record["tokens"])
        self.multi_turn += is_multi_turn(record["prompt"])
        if self.fewest is None or trained < self.fewest[0]:
            self.fewest = (trained, record["source"])

    def report(
        self,
        max_tokens: int | None,
        max_reject_fraction: float,
        max_length: int | None = None,
        task: TaskParams | None = None,
    ) -> dict[str, Any]:
        """reports/curate.json; `max_length` (train.max_length) is what TRL cuts rows to,
        `task` the task section the `scoring` entry is resolved for (None: the defaults)."""
        d = self.decisions
        dup_kinds = Counter(kind for kind, _, _ in d.duplicate_of.values())
        kept = self.counts["kept"] + self.counts["preference"]
        quarantined = self.counts["quarantined"]
        lengths = list(d.tokens.values())
        return {
            "rows_in": d.rows_in,
            "kept": kept,
            "kept_sft": self.counts["kept"],
            "kept_preference": self.counts["preference"],
            "quarantined": quarantined,
            "duplicates": {"exact": dup_kinds["exact"], "near": dup_kinds["near"]},
            "reasons": dict(sorted(self.reasons.items())),
            "reason_details": {
                code: self.reason_details.get(code, "") for code in sorted(self.reasons)
            },
            "reject_fraction": round(quarantined / max(d.rows_in, 1), 4),
            "max_reject_fraction": max_reject_fraction,
            "formats": dict(sorted(d.formats.items())),
            "format_audit": dict(sorted(d.format_flags.items())),
            "format_audit_share": round(sum(d.format_flags.values()) / max(d.rows_in, 1), 4),
            # groups of the kept rows (target checks quarantine rows after clustering)
            "groups": len({g for i, g in d.group_of.items() if i not in d.reasons}),
            "targets": target_report(d.targets),
            "scoring": scoring_report(
                task or TaskParams(), d.targets, list(self.target_words), list(self.target_chars)
            ),
            "tokens": token_stats(lengths, max_tokens),
            "trainable": trainable_stats(
                self.trained,
                self.lengths,
                self.multi_turn,
                max_length,
                self.fewest[1] if self.fewest else None,
                d.chat.get("assistant_turns"),
            ),
            # how rows are rendered: the assistant turns trained, a system prompt folded into
            # the first user turn where the base's template has no system role
            "chat": d.chat,
            "size_advice": size_verdict(self.counts["kept"])[1],
            "examples": self.examples,
            "near_duplicate_examples": list(self.clusters.values()),
            # near copies whose answer differs from the kept row's: label noise to review
            "near_duplicate_conflicts": self.conflicts,
            "near_duplicate_conflict_examples": self.conflict_examples,
        }


def snippet(record: dict, limit: int = 160) -> str:
    turns = record["prompt"] + record.get("completion", record.get("chosen", []))
    text = " | ".join(m["content"] for m in turns if m["role"] != "system")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
