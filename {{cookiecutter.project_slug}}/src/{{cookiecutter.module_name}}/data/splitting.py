"""Splitting rows into train/val/test (stage `split`; the rules are described in
stages/split.py): hash-based assignment by group, stratification, the contamination check
against val/test and the eval suites, and the replay mix.
"""

import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..io import read_jsonl
from ..params import SplitParams
from .chat import to_prompt_completion
from .contamination import OverlapIndex
from .formats import to_messages
from .textnorm import exact_key, prompt_text

SPLITS = ("train", "val", "test")
MIN_STRATUM_GROUPS = 10
AUTO_STRATIFY = "auto"
MAX_AUTO_STRATA = 20  # more distinct values than this is free text, not a label
MAX_LISTED_OVERLAPS = 50


def unit_interval(key: str, seed: int) -> float:
    """Map (seed, key) to a uniform number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    u = unit_interval(key, seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def group_key(row: dict[str, Any]) -> str:
    """The near-duplicate group a row belongs to (its own id when it has none)."""
    return row.get("group", row["id"])


def input_text(row: dict[str, Any]) -> str:
    """What the model is given for a row: its non-system prompt turns."""
    return prompt_text(row["prompt"] + row["completion"])


def stratum(row: dict[str, Any], field: str | None) -> str:
    """The row's value of `field`: a metadata key of the raw row, else a key of a JSON target."""
    if field is None:
        return "all"
    if field in row.get("meta", {}):
        return str(row["meta"][field])
    try:
        target = json.loads(row["completion"][-1]["content"])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        return "(missing)"
    return str(target[field]) if isinstance(target, dict) and field in target else "(missing)"


def auto_stratify_field(rows: list[dict], score_fields: list[str]) -> str | None:
    """The score field whose most common value has the largest share: the most imbalanced
    label, whose rare values a plain hash split most easily leaves out of val or test (curate
    reports the same imbalance). None without a label field of 2..MAX_AUTO_STRATA values."""
    best, best_share = None, 0.0
    for field in score_fields:
        counts = Counter(stratum(row, field) for row in rows)
        if not 2 <= len(counts) <= MAX_AUTO_STRATA:
            continue
        share = max(counts.values()) / len(rows)
        if share > best_share:
            best, best_share = field, share
    return best


def split_rows(
    rows: list[dict],
    seed: int,
    val_fraction: float,
    test_fraction: float,
    stratify_by: str | None = None,
) -> dict[str, list[dict]]:
    """Rows in, rows per split out (input order kept within each split)."""
    groups: dict[str, str] = {}  # group -> stratum of its first row
    for row in rows:
        groups.setdefault(group_key(row), stratum(row, stratify_by))
    split_of = {group: assign_split(group, seed, val_fraction, test_fraction) for group in groups}
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, name in groups.items():
        by_stratum[name].append(group)
    for members in by_stratum.values():
        if len(members) < MIN_STRATUM_GROUPS:
            continue
        spare = sorted(
            (g for g in members if split_of[g] == "train"), key=lambda g: unit_interval(g, seed)
        )
        for name in ("test", "val"):
            if spare and not any(split_of[g] == name for g in members):
                split_of[spare.pop(0)] = name
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for row in rows:
        splits[split_of[group_key(row)]].append(row)
    return splits


def largest_groups(rows: list[dict], k: int = 5) -> list[dict[str, Any]]:
    """The k largest near-duplicate groups: id, rows, share of all rows and an example input."""
    sizes = Counter(group_key(row) for row in rows)
    first = {}
    for row in rows:
        first.setdefault(group_key(row), row)
    return [
        {
            "group": group,
            "rows": n,
            "share": round(n / len(rows), 4),
            "example": " ".join(input_text(first[group]).split())[:160],
        }
        for group, n in sizes.most_common(k)
    ]


def allowed_deviation(fraction: float, n_rows: int, tolerance: float) -> float:
    """How far a realised fraction may fall from the asked one: `tolerance`, or three standard
    deviations of hash assignment on `n_rows` rows where that is larger (small data)."""
    return max(tolerance, 3 * math.sqrt(fraction * (1 - fraction) / max(n_rows, 1)))


def check_fractions(splits: dict[str, list[dict]], rows: list[dict], cfg: SplitParams) -> None:
    """Fail, naming the largest near-duplicate group, when the realised val or test fraction
    of the task rows is off the asked one by more than `allowed_deviation`: a silent 98/1/1
    split would select and score on a handful of rows."""
    n = len(rows)
    asked = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    realised = {name: len(splits[name]) / n for name in asked}
    off = [
        f"{name} {realised[name]:.1%} (asked {fraction:.0%})"
        for name, fraction in asked.items()
        if abs(realised[name] - fraction) > allowed_deviation(fraction, n, cfg.fraction_tolerance)
    ]
    if not off:
        return
    top = largest_groups(rows, 1)[0]
    raise StageError(
        f"the split is off the asked fractions: {', '.join(off)}. The largest near-duplicate group "
        f"({top['group']}) holds {top['rows']} of {n} rows ({top['share']:.0%}) and must stay in "
        f"one split; e.g. {top['example']!r}. Look at it in data/curated/train_pool.jsonl: "
        "templated prompts with one shared answer chain into one group. Fix the data, lower "
        "curate.group_threshold (stricter grouping), or raise split.fraction_tolerance."
    )


def eval_items(
    val: list[dict], test: list[dict], suites: tuple[Path, Path]
) -> list[tuple[str, str]]:
    """(label, text) of everything the model is evaluated on: the inputs of val and test rows
    and the questions/prompts of the eval `suites` (general QA, instruction following)."""
    items = [
        (f"{name}:{row['source']}", input_text(row))
        for name, rows in (("val", val), ("test", test))
        for row in rows
    ]
    for path, key in zip(suites, ("question", "prompt"), strict=True):
        if path.exists():
            items += [(f"suite:{path.stem}:{item['id']}", item[key]) for item in read_jsonl(path)]
    return items


def find_contamination(
    train: list[dict], items: list[tuple[str, str]], cfg: SplitParams
) -> list[dict]:
    """One record per (train row, eval item) pair above the overlap threshold."""
    index = OverlapIndex([text for _, text in items], cfg.ngram)
    found = []
    for row in train:
        for overlap in index.overlaps(input_text(row), cfg.min_overlap):
            found.append(
                {"train": row["source"], "with": items[overlap.item][0], "overlap": overlap.share}
            )
    return found


def replay_rows(path: Path, n: int, seed: int) -> list[dict]:
    """The first n replay rows in (seed, id) hash order: a stable, seed-dependent sample."""
    if n == 0:
        return []
    if not path.exists():
        raise StageError(f"split.replay_fraction > 0 but {path} does not exist")
    rows = []
    for line, raw in enumerate(read_jsonl(path), start=1):
        messages = to_messages(raw, "chat")
        rows.append(
            {
                "id": exact_key(messages)[:16],
                **to_prompt_completion(messages),
                "source": f"{path}:{line}",
                "origin": "replay",
            }
        )
    rows.sort(key=lambda row: unit_interval(row["id"], seed))
    return rows[:n]


def replay_count(n_task_train: int, fraction: float) -> int:
    """Replay rows so that they make up `fraction` of the mixed train split."""
    return round(n_task_train * fraction / (1 - fraction))


def groups_across_splits(splits: dict[str, list[dict]]) -> int:
    """Near-duplicate groups with rows in more than one split (0 unless the split is broken)."""
    homes: dict[str, set[str]] = defaultdict(set)
    for name, rows in splits.items():
        for row in rows:
            if row.get("origin") != "replay":
                homes[group_key(row)].add(name)
    return sum(1 for names in homes.values() if len(names) > 1)


def counts_by_stratum(splits: dict[str, list[dict]], field: str | None) -> dict[str, dict]:
    table: dict[str, Counter] = defaultdict(Counter)
    for name, rows in splits.items():
        for row in rows:
            if row.get("origin") != "replay":
                table[stratum(row, field)][name] += 1
    return {key: {name: table[key][name] for name in SPLITS} for key in sorted(table)}


@dataclass
class SplitResult:
    splits: dict[str, list[dict]]  # train (task rows, then replay), val, test
    preferences: dict[str, list[dict]]  # preference pairs, split the same way
    overlaps: list[dict]  # contamination records (train row, the item it overlaps)
    contaminated: set[str]  # sources of the train rows that overlap
    stratify_by: str | None  # the field used (`auto` resolved)


@dataclass(frozen=True)
class SplitSources:
    """The files split reads besides the curated rows: the replay rows, the eval suites
    (general QA, instruction following) train is checked against, and the split report a
    contamination failure points to."""

    replay_rows: Path
    suites: tuple[Path, Path]
    report: Path


def make_splits(
    rows: list[dict],
    preference_rows: list[dict],
    sources: SplitSources,
    seed: int,
    cfg: SplitParams,
    score_fields: list[str] = (),
) -> SplitResult:
    """Split task rows (and preference pairs) by group, add the replay mix to train, then
    check train against val/test and the eval suites, acting on `split.contamination`.
    `split.stratify_by: auto` stratifies by the most imbalanced of `score_fields`."""
    field = cfg.stratify_by
    if field == AUTO_STRATIFY:
        field = auto_stratify_field(rows, list(score_fields))
    splits = split_rows(rows, seed, cfg.val_fraction, cfg.test_fraction, field)
    empty = [name for name, part in splits.items() if not part]
    if empty:
        raise StageError(f"{len(rows)} curated rows are too few to fill the {empty} split(s)")
    check_fractions(splits, rows, cfg)
    splits["train"] += replay_rows(
        sources.replay_rows, replay_count(len(splits["train"]), cfg.replay_fraction), seed
    )
    items = eval_items(splits["val"], splits["test"], sources.suites)
    overlaps = find_contamination(splits["train"], items, cfg)
    contaminated = {record["train"] for record in overlaps}
    if overlaps and cfg.contamination == "fail":
        raise StageError(
            f"{len(contaminated)} train rows overlap val/test or an eval suite "
            f"(split.contamination=fail); see {sources.report}"
        )
    if cfg.contamination == "remove":
        splits["train"] = [row for row in splits["train"] if row["source"] not in contaminated]
    preferences = split_rows(preference_rows, seed, cfg.val_fraction, cfg.test_fraction)
    return SplitResult(splits, preferences, overlaps, contaminated, field)


def split_report(
    rows: list[dict], result: SplitResult, cfg: SplitParams, hashes: dict[str, str]
) -> dict[str, Any]:
    """reports/split.json: counts and fractions, strata, near-duplicate groups, contamination
    and the splits' sha256 (`hashes`)."""
    splits = result.splits
    counts = {name: len(part) for name, part in splits.items()}
    total = max(sum(counts.values()), 1)
    return {
        "counts": counts,
        "task_rows": {
            name: sum(r["origin"] == "task" for r in part) for name, part in splits.items()
        },
        "replay_rows": sum(r["origin"] == "replay" for r in splits["train"]),
        "preference_rows": {name: len(part) for name, part in result.preferences.items()},
        "fractions": {name: round(n / total, 4) for name, n in counts.items()},
        "asked_fractions": {"val": cfg.val_fraction, "test": cfg.test_fraction},
        "largest_groups": largest_groups(rows),
        "stratify_by": result.stratify_by,
        "stratify_by_asked": cfg.stratify_by,
        "strata": counts_by_stratum(splits, result.stratify_by),
        "groups_multi_row": sum(1 for n in Counter(r.get("group") for r in rows).values() if n > 1),
        # near-duplicate overlap between splits: zero by construction, counted to prove it
        "groups_across_splits": groups_across_splits(splits),
        "contamination": {
            "action": cfg.contamination,
            "ngram": cfg.ngram,
            "min_overlap": cfg.min_overlap,
            "train_rows": len(result.contaminated),
            "removed": len(result.contaminated) if cfg.contamination == "remove" else 0,
            "overlaps": result.overlaps[:MAX_LISTED_OVERLAPS],
        },
        "sha256": hashes,
    }
