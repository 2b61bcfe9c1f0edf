"""reports/data.md: what happened to the data, from raw rows to the three splits.

Built from reports/curate.json and the split report, so it is regenerated whenever either
stage runs; the numbers in it always match the JSON reports. The funnel (`funnel_blocks`) is
also the data section of the select report.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..document import (
    Block,
    Bullets,
    Heading,
    Image,
    Item,
    Para,
    Table,
    to_markdown,
    write_markdown,
)
from .quality import QUALITY_REASONS
from .schemas import target_schema


@dataclass(frozen=True)
class DataFiles:
    """Where the page is written, and the files it names or shows."""

    page: Path
    curate_report: Path
    split_report: Path
    quarantine: Path
    duplicates: Path
    target_plot: Path
    token_plot: Path
    training_example: Path


# Reason codes by funnel step; every other code is a schema failure ("valid" step). Derived
# from the checks themselves, so a new filter or audit check is counted in the right step.
STAGE_OF_REASON = {
    "parse": ("not_utf8", "not_json", "not_json_object"),
    "audit": tuple(check.name for check in target_schema([]).columns["target"].checks),
    "filter": (*QUALITY_REASONS, "too_long", "no_trainable_tokens"),
}


def funnel(curate: dict[str, Any], split: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(step, rows after it, what the step removed or added)."""
    reasons: dict[str, int] = curate["reasons"]

    def removed(kind: str) -> int:
        return sum(reasons.get(code, 0) for code in STAGE_OF_REASON[kind])

    schema = curate["quarantined"] - removed("parse") - removed("audit") - removed("filter")
    dups = curate["duplicates"]
    rows = curate["rows_in"]
    steps = [("raw rows", rows, "")]
    for label, n, note in [
        ("parsed", removed("parse"), "not UTF-8 / not JSON / not an object"),
        ("valid", schema, "failed the format or chat schema"),
        ("format audit", removed("audit"), "JSON targets that are broken or drift"),
        (
            "quality filters",
            removed("filter"),
            "too short/long, repetitive, copies, charset, placeholder/dominant target, "
            "nothing to train",
        ),
        (
            "deduplicated",
            dups["exact"] + dups["near"],
            f"{dups['exact']} exact, {dups['near']} near",
        ),
    ]:
        rows -= n
        steps.append((label, rows, f"-{n} {note}"))
    contamination = split["contamination"]
    task_rows = split.get("task_rows", split["counts"])
    steps.append(
        (
            "train / val / test",
            sum(task_rows.values()),
            f"{task_rows['train']} / {task_rows['val']} / {task_rows['test']}; "
            f"-{contamination['removed']} contaminated train rows",
        )
    )
    if split.get("replay_rows"):
        steps.append(
            ("train + replay", split["counts"]["train"], f"+{split['replay_rows']} replay rows")
        )
    return steps


def funnel_blocks(curate: dict[str, Any], split: dict[str, Any]) -> list[Block]:
    """The funnel table and the size advice: the top of reports/data.md and the data section
    of the select report."""
    steps = [list(step) for step in funnel(curate, split)]
    blocks: list[Block] = [Table(["step", "rows", "change"], steps)]
    if curate.get("size_advice"):
        blocks.append(Para(f"**Size advice:** {curate['size_advice']}."))
    return blocks


def _code_span(text: str) -> str:
    """Raw text as inline code; a backtick in it would end the span."""
    return "`" + text.replace("`", "'") + "`"


def quarantine_blocks(curate: dict[str, Any], files: DataFiles) -> list[Block]:
    if not curate["reasons"]:
        return [Para("No row was quarantined.")]
    details = curate.get("reason_details", {})
    examples = [
        Item(f"`{code}`", [f"{e['file']}:{e['line']} {_code_span(e['raw'])}" for e in rows])
        for code, rows in curate.get("examples", {}).items()
    ]
    return [
        Table(
            ["reason", "rows", "meaning"],
            [[f"`{code}`", n, details.get(code, "")] for code, n in curate["reasons"].items()],
        ),
        Para(
            f"Every rejected line is in {files.quarantine}, verbatim, with its file and line."
            + (" Examples:" if examples else "")
        ),
        *([Bullets(examples)] if examples else []),
    ]


def audit_blocks(curate: dict[str, Any]) -> list[Block]:
    audit = curate.get("format_audit") or {}
    if not audit:
        return []
    return [
        Para(
            "Format audit of JSON targets (the root cause of format drift): "
            f"{curate.get('format_audit_share', 0):.1%} of rows flagged: "
            + ", ".join(f"`{code}` {n}" for code, n in audit.items())
            + "."
        )
    ]


def duplicate_blocks(curate: dict[str, Any], files: DataFiles) -> list[Block]:
    clusters = [
        Item(
            f"kept {cluster['kept']}: {cluster['text']}",
            [
                f"removed {member['source']} (similarity {member['similarity']}"
                + ("" if member.get("same_target", True) else ", **different answer**")
                + ")"
                for member in cluster["removed"]
            ],
        )
        for cluster in curate.get("near_duplicate_examples", [])
    ]
    blocks: list[Block] = [Bullets(clusters) if clusters else Para("None above the threshold.")]
    conflicts = curate.get("near_duplicate_conflicts", 0)
    if conflicts:
        blocks.append(
            Para(
                f"{conflicts} near duplicate(s) answer differently from the row kept: the same "
                "input with two labels is label noise or a distinction the kept row loses. "
                f"Review them in {files.duplicates} (`same_target: false`):"
            )
        )
        pairs = curate.get("near_duplicate_conflict_examples", [])
        if pairs:
            blocks.append(Bullets([f"{p['source']} vs kept {p['duplicate_of']}" for p in pairs]))
    return blocks


def target_blocks(curate: dict[str, Any], files: DataFiles) -> list[Block]:
    """The most frequent targets, what curate did about a dominant or placeholder one, and the
    label distribution of each JSON score field."""
    targets = curate.get("targets") or {}
    if not targets.get("top"):
        return []
    kind = (
        "free text, so one answer for many rows is a finding"
        if targets["free_text"]
        else "a label set: repeated targets are expected, only placeholders count"
    )
    blocks: list[Block] = [
        Heading("Targets"),
        Image(files.target_plot, "most frequent targets"),
        Para(
            f"{targets['rows']} rows with {targets['distinct']} distinct normalised targets "
            f"({kind}). Most frequent:"
        ),
        Table(
            ["target", "rows", "share"],
            [
                [
                    _code_span(row["target"]) + (" (placeholder)" if row["placeholder"] else ""),
                    row["count"],
                    f"{row['share']:.1%}",
                ]
                for row in targets["top"]
            ],
        ),
    ]
    blocks += target_finding_blocks(curate)
    labels = targets.get("labels") or {}
    if labels:
        rows = []
        for name, counts in labels.items():
            total = sum(counts.values()) or 1
            rows += [[f"`{name}`", value, n, f"{n / total:.1%}"] for value, n in counts.items()]
        blocks += [
            Para("Labels of the score fields:"),
            Table(["field", "value", "rows", "share"], rows),
        ]
    for item in targets.get("label_imbalance", []):
        blocks.append(
            Para(
                f"**Imbalanced:** `{item['field']}` is {_code_span(item['value'])} in "
                f"{item['share']:.0%} of the rows; {targets.get('label_advice', '')}."
            )
        )
    return blocks


def target_finding_blocks(curate: dict[str, Any]) -> list[Block]:
    """One paragraph per placeholder or dominant target curate found, with what it did."""
    targets = curate.get("targets") or {}
    blocks: list[Block] = []
    for finding in targets.get("findings", []):
        if targets["policy"] == "quarantine":
            action = (
                f"all but the first {targets['keep_copies']} copies quarantined as "
                f"`{finding['reason']}`"
            )
        else:
            action = "kept (`curate.dominant_target: warn`): a model trained on them prints it"
        blocks.append(
            Para(
                f"**{finding['reason']}**: {_code_span(finding['target'])} answers "
                f"{finding['share']:.1%} of the rows ({finding['count']}, first at "
                f"{finding['example']}); {action}."
            )
        )
    return blocks


def token_blocks(tokens: dict[str, Any], files: DataFiles) -> list[Block]:
    if not tokens.get("rows"):
        return []
    return [
        Heading("Token lengths"),
        Image(files.token_plot, "token lengths"),
        Para(
            f"{tokens['rows']} rows: mean {tokens['mean']}, median {tokens['p50']}, p95 "
            f"{tokens['p95']}, max {tokens['max']} tokens; {tokens['over_max']} "
            f"({tokens['over_max_share']:.1%}) longer than max_tokens {tokens['max_tokens']} "
            "(quarantined as `too_long`: truncation would cut the target)."
        ),
    ]


def trainable_blocks(curate: dict[str, Any], files: DataFiles) -> list[Block]:
    """What the kept rows train on: the completion tokens left after the chat template and the
    cut to train.max_length, as TRL masks them, and a link to one row shown token by token."""
    stats = curate.get("trainable") or {}
    if not stats.get("rows"):
        return []
    dropped = curate["reasons"].get("no_trainable_tokens", 0)
    every = stats.get("assistant_turns") != "last"
    notes = [
        f"{stats['multi_turn']} rows ({stats['multi_turn_share']:.1%}) are multi-turn: "
        + (
            "every assistant turn of theirs is trained (train.assistant_turns: all); the user "
            "and system turns are context."
            if every
            else "only their final assistant turn is trained (train.assistant_turns: last); "
            "the earlier ones are context."
        )
    ]
    if stats["truncated"]:
        notes.append(
            f"{stats['truncated']} rows are longer than max_length: their answers lose their "
            "end, the end-of-turn token included (curate.max_tokens is above max_length)."
        )
    if dropped:
        notes.append(
            f"{dropped} rows had no trainable token left and were quarantined as "
            "`no_trainable_tokens` (TRL would have dropped them silently)."
        )
    page = files.training_example.relative_to(files.page.parent).as_posix()
    return [
        Heading("Trainable tokens"),
        Para(
            "The loss is computed on the assistant's tokens only: "
            + ("each assistant turn" if every else "the final assistant turn")
            + " and the end-of-turn token(s) the chat template writes after it, once the row is "
            "cut to "
            f"train.max_length ({stats['max_length']}). Per kept row: min {stats['min']}, "
            f"p5 {stats['p5']}, median {stats['p50']}, p95 {stats['p95']}, max {stats['max']} "
            f"trainable tokens (fewest: {stats['fewest']}); {stats['trained_share']:.1%} of "
            f"the {stats['sequence_tokens']} tokens in the training sequences are trained, "
            "the rest is prompt."
        ),
        Bullets(notes),
        Para(
            f"One train row as TRL tokenized it, trained tokens highlighted, and its prompt as "
            f"the model sees it: [{files.training_example}]({page}) (written by the `smoke` stage)."
        ),
    ]


def trainable_summary(curate: dict[str, Any]) -> list[Block]:
    """One line on what the kept rows train on, for the select report's data section."""
    stats = curate.get("trainable") or {}
    if not stats.get("rows"):
        return []
    return [
        Para(
            f"Trained tokens per row (the completion, after the cut to max_length "
            f"{stats['max_length']}): median {stats['p50']}, min {stats['min']}, p95 "
            f"{stats['p95']}; {stats['trained_share']:.1%} of all tokens; "
            f"{stats['multi_turn']} multi-turn rows "
            f"({TURNS_TRAINED[stats.get('assistant_turns')]})."
        )
    ]


TURNS_TRAINED = {
    "all": "every assistant turn is trained",
    None: "every assistant turn is trained",
    "last": "only their final assistant turn is trained",
}
SYSTEM_FOLDED = (
    "The base's chat template has no system role: system prompts are folded into the first "
    "user turn (the system prompt, a blank line, then the user's text, as Gemma 3's template "
    "does), the same way in training, eval and the exported models."
)


def template_blocks(curate: dict[str, Any]) -> list[Block]:
    """How the base's chat template changes the rows, when it does."""
    folded = (curate.get("chat") or {}).get("system_folded")
    return [Para(SYSTEM_FOLDED)] if folded else []


def split_size_blocks(split: dict[str, Any]) -> list[Block]:
    """Realised against asked val/test fractions, and the largest near-duplicate groups (each
    stays in one split)."""
    asked, groups = split.get("asked_fractions"), split.get("largest_groups")
    if not (asked and groups):
        return []
    realised = split["fractions"]
    return [
        Heading("Split sizes"),
        Para(
            f"val {realised['val']:.1%} (asked {asked['val']:.0%}), test "
            f"{realised['test']:.1%} (asked {asked['test']:.0%}). Largest near-duplicate groups:"
        ),
        Table(
            ["group", "rows", "share", "example"],
            [
                [g["group"], g["rows"], f"{g['share']:.1%}", _code_span(g["example"])]
                for g in groups
            ],
        ),
    ]


def split_blocks(split: dict[str, Any]) -> list[Block]:
    contamination = split["contamination"]
    blocks: list[Block] = [
        *split_size_blocks(split),
        Heading("Contamination"),
        Para(
            f"Train rows containing at least {contamination['min_overlap']:.0%} of the "
            f"{contamination['ngram']}-word n-grams of a val/test row or an eval-suite item: "
            f"{contamination['train_rows']}; action `{contamination['action']}`, "
            f"{contamination['removed']} removed. Near-duplicate groups split across "
            f"train/val/test: {split.get('groups_across_splits', 0)} (each group is assigned "
            "whole)."
        ),
    ]
    overlaps = contamination["overlaps"][:10]
    if overlaps:
        blocks.append(
            Bullets([f"{o['train']} ~ {o['with']} ({o['overlap']:.0%})" for o in overlaps])
        )
    if split.get("strata") and split.get("stratify_by"):
        blocks += [
            Heading(f"Split by `{split['stratify_by']}`"),
            Table(
                ["stratum", "train", "val", "test"],
                [[key, c["train"], c["val"], c["test"]] for key, c in split["strata"].items()],
            ),
        ]
    return blocks


def build_blocks(curate: dict[str, Any], split: dict[str, Any], files: DataFiles) -> list[Block]:
    """reports/data.md: funnel, quarantine, duplicates, targets, token lengths, trainable
    tokens, contamination, strata."""
    return [
        Heading("Data report", 1),
        Para(f"Written by the `split` stage from {files.curate_report} and {files.split_report}."),
        Heading("Funnel"),
        *funnel_blocks(curate, split),
        Heading("Quarantined rows by reason"),
        *quarantine_blocks(curate, files),
        *audit_blocks(curate),
        Heading("Near-duplicate clusters"),
        *duplicate_blocks(curate, files),
        *target_blocks(curate, files),
        *token_blocks(curate.get("tokens", {}), files),
        *template_blocks(curate),
        *trainable_blocks(curate, files),
        *split_blocks(split),
    ]


def render(curate: dict[str, Any], split: dict[str, Any], files: DataFiles) -> str:
    return to_markdown(build_blocks(curate, split, files), files.page.parent)


def write_data_report(curate: dict[str, Any], split: dict[str, Any], files: DataFiles) -> None:
    write_markdown(build_blocks(curate, split, files), files.page)
