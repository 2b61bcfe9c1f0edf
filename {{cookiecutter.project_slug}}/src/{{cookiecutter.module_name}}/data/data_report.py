"""reports/data.md: what happened to the data, from raw rows to the three splits.

Built from reports/curate.json and the split report, so it is regenerated whenever either
stage runs; the numbers in it always match the JSON reports.
"""

from typing import Any

from ..paths import DATA_REPORT, TOKEN_PLOT
from .quality import QUALITY_REASONS
from .schemas import target_schema

# Reason codes by funnel step; every other code is a schema failure ("valid" step). Derived
# from the checks themselves, so a new filter or audit check is counted in the right step.
STAGE_OF_REASON = {
    "parse": ("not_utf8", "not_json", "not_json_object"),
    "audit": tuple(check.name for check in target_schema([]).columns["target"].checks),
    "filter": (*QUALITY_REASONS, "too_long"),
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
        ("quality filters", removed("filter"), "too short/long, repetitive, copies, charset"),
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


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def render(curate: dict[str, Any], split: dict[str, Any]) -> str:
    lines = [
        "# Data report",
        "",
        "Written by the `split` stage from reports/curate.json and reports/split.json.",
        "",
        "## Funnel",
        "",
    ]
    lines += _table(["step", "rows", "change"], [list(step) for step in funnel(curate, split)])
    lines += ["", f"**Size advice:** {curate['size_advice']}.", ""]

    lines += ["## Quarantined rows by reason", ""]
    if curate["reasons"]:
        details = curate.get("reason_details", {})
        lines += _table(
            ["reason", "rows", "meaning"],
            [[f"`{code}`", n, details.get(code, "")] for code, n in curate["reasons"].items()],
        )
        lines += [
            "",
            "Every rejected line is in data/quarantine.jsonl, verbatim, with its file "
            "and line. Examples:",
            "",
        ]
        for code, examples in curate.get("examples", {}).items():
            lines.append(f"- `{code}`")
            for example in examples:
                raw = example["raw"].replace("`", "'")
                lines.append(f"  - {example['file']}:{example['line']} `{raw}`")
    else:
        lines.append("No row was quarantined.")
    audit = curate.get("format_audit") or {}
    if audit:
        lines += [
            "",
            "Format audit of JSON targets (the seed's format-drift root cause): "
            + f"{curate.get('format_audit_share', 0):.1%} of rows flagged: "
            + ", ".join(f"`{code}` {n}" for code, n in audit.items())
            + ".",
        ]

    lines += ["", "## Near-duplicate clusters", ""]
    clusters = curate.get("near_duplicate_examples", [])
    if clusters:
        for cluster in clusters:
            lines.append(f"- kept {cluster['kept']}: {cluster['text']}")
            for member in cluster["removed"]:
                conflict = "" if member.get("same_target", True) else ", **different answer**"
                lines.append(
                    f"  - removed {member['source']} (similarity {member['similarity']}{conflict})"
                )
    else:
        lines.append("None above the threshold.")
    conflicts = curate.get("near_duplicate_conflicts", 0)
    if conflicts:
        lines += [
            "",
            f"{conflicts} near duplicate(s) answer differently from the row kept: the same input "
            "with two labels is label noise or a distinction the kept row loses. Review them in "
            "data/curated/duplicates.jsonl (`same_target: false`):",
        ]
        for example in curate.get("near_duplicate_conflict_examples", []):
            lines.append(f"- {example['source']} vs kept {example['duplicate_of']}")

    tokens = curate.get("tokens", {})
    lines += ["", "## Token lengths", ""]
    if tokens.get("rows"):
        lines += [
            f"![token lengths]({TOKEN_PLOT.relative_to(DATA_REPORT.parent)})",
            "",
            f"{tokens['rows']} rows: mean {tokens['mean']}, median {tokens['p50']}, p95 "
            f"{tokens['p95']}, max {tokens['max']} tokens; {tokens['over_max']} "
            f"({tokens['over_max_share']:.1%}) longer than max_tokens {tokens['max_tokens']} "
            "(quarantined as `too_long`: truncation would cut the target).",
        ]

    contamination = split["contamination"]
    lines += [
        "",
        "## Contamination",
        "",
        f"Train rows containing at least "
        f"{contamination['min_overlap']:.0%} of the {contamination['ngram']}-word n-grams of a "
        f"val/test row or an eval-suite item: {contamination['train_rows']}; action "
        f"`{contamination['action']}`, "
        f"{contamination['removed']} removed. Near-duplicate groups split across train/val/test: "
        f"{split.get('groups_across_splits', 0)} (each group is assigned whole).",
    ]
    for overlap in contamination["overlaps"][:10]:
        lines.append(f"- {overlap['train']} ~ {overlap['with']} ({overlap['overlap']:.0%})")
    if split.get("strata") and split.get("stratify_by"):
        lines += ["", f"## Split by `{split['stratify_by']}`", ""]
        lines += _table(
            ["stratum", "train", "val", "test"],
            [[key, c["train"], c["val"], c["test"]] for key, c in split["strata"].items()],
        )
    return "\n".join(lines) + "\n"


def write_data_report(curate: dict[str, Any], split: dict[str, Any]) -> None:
    DATA_REPORT.parent.mkdir(parents=True, exist_ok=True)
    DATA_REPORT.write_text(render(curate, split), encoding="utf-8")
