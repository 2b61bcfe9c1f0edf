"""reports/data.md: the funnel adds up and every section shows what the JSON reports hold."""

from {{ cookiecutter.module_name }}.data.data_report import (
    build_blocks,
    funnel,
    funnel_blocks,
    render,
)
from {{ cookiecutter.module_name }}.document import Table
from {{ cookiecutter.module_name }}.paths import DATA_REPORT, TRAINING_EXAMPLE
from {{ cookiecutter.module_name }}.selection.report import data_blocks
from {{ cookiecutter.module_name }}.stages.split import DATA_FILES

CURATE = {
    "rows_in": 100,
    "kept": 80,
    "quarantined": 12,
    "duplicates": {"exact": 5, "near": 3},
    "reasons": {
        "not_json": 2,
        "unknown_role": 3,
        "format_drift": 4,
        "too_long": 2,
        "repetitive_target": 1,
    },
    "reason_details": {"not_json": "the line is not valid JSON"},
    "format_audit": {"format_drift": 4},
    "format_audit_share": 0.04,
    "size_advice": "under 100 examples: consider few-shot prompting instead of fine-tuning",
    "examples": {"not_json": [{"file": "data/raw/a.jsonl", "line": 7, "raw": "{oops"}]},
    "near_duplicate_examples": [
        {
            "kept": "data/raw/a.jsonl:1",
            "text": "my parcel is late",
            "removed": [{"source": "data/raw/a.jsonl:9", "similarity": 0.82}],
        }
    ],
    "near_duplicate_conflicts": 1,
    "near_duplicate_conflict_examples": [
        {"source": "data/raw/a.jsonl:9", "duplicate_of": "data/raw/a.jsonl:1", "similarity": 0.82}
    ],
    "tokens": {
        "rows": 87,
        "mean": 50.0,
        "p50": 48,
        "p95": 90,
        "max": 600,
        "over_max": 2,
        "over_max_share": 0.023,
        "max_tokens": 512,
    },
}
SPLIT = {
    "counts": {"train": 60, "val": 10, "test": 8},
    "task_rows": {"train": 56, "val": 10, "test": 8},
    "replay_rows": 4,
    "stratify_by": "category",
    "strata": {"billing": {"train": 30, "val": 5, "test": 4}},
    "groups_across_splits": 0,
    "contamination": {
        "action": "remove",
        "ngram": 8,
        "min_overlap": 0.7,
        "train_rows": 6,
        "removed": 6,
        "overlaps": [
            {"train": "data/raw/a.jsonl:3", "with": "test:data/raw/a.jsonl:4", "overlap": 0.9}
        ],
    },
}


def test_funnel_steps_add_up() -> None:
    steps = funnel(CURATE, SPLIT)
    rows = {label: n for label, n, _ in steps}
    assert rows["raw rows"] == 100
    assert rows["parsed"] == 98  # not_json
    assert rows["valid"] == 95  # unknown_role
    assert rows["format audit"] == 91  # format_drift
    assert rows["quality filters"] == 88  # too_long + repetitive_target
    assert rows["deduplicated"] == 80 == CURATE["kept"]
    assert rows["train / val / test"] == 74 == 80 - 6  # contaminated train rows removed
    assert rows["train + replay"] == 60


def test_render_has_every_section() -> None:
    text = render(CURATE, SPLIT, DATA_FILES)
    for heading in (
        "## Funnel",
        "## Quarantined rows by reason",
        "## Near-duplicate clusters",
        "## Token lengths",
        "## Contamination",
        "## Split by `category`",
    ):
        assert heading in text
    assert "| raw rows | 100 |  |" in text
    assert "| `not_json` | 2 | the line is not valid JSON |" in text
    assert "- `not_json`\n  - data/raw/a.jsonl:7 `{oops`" in text
    assert "- kept data/raw/a.jsonl:1: my parcel is late" in text
    assert "  - removed data/raw/a.jsonl:9 (similarity 0.82)" in text
    assert "| billing | 30 | 5 | 4 |" in text
    assert "1 near duplicate(s) answer differently" in text
    assert "- data/raw/a.jsonl:9 vs kept data/raw/a.jsonl:1" in text
    assert "![token lengths](figures/token_lengths.png)" in text
    assert "4.0% of rows flagged" in text
    assert "data/raw/a.jsonl:3 ~ test:data/raw/a.jsonl:4 (90%)" in text
    assert "few-shot" in text


def test_render_without_rejections_or_clusters() -> None:
    clean = CURATE | {
        "quarantined": 0,
        "reasons": {},
        "format_audit": {},
        "examples": {},
        "near_duplicate_examples": [],
    }
    text = render(clean, SPLIT, DATA_FILES)
    assert "No row was quarantined." in text and "None above the threshold." in text


def test_raw_text_cannot_break_the_markdown() -> None:
    curate = CURATE | {
        "examples": {"not_json": [{"file": "a.jsonl", "line": 1, "raw": "x`y|z"}]},
        "reason_details": {"not_json": "a | b"},
    }
    text = render(curate, SPLIT, DATA_FILES)
    assert "a.jsonl:1 `x'y|z`" in text  # a backtick would end the code span
    assert "| `not_json` | 2 | a \\| b |" in text  # a pipe would end the table cell


def test_the_select_report_shows_the_same_funnel_and_advice() -> None:
    section = funnel_blocks(CURATE, SPLIT)
    assert isinstance(section[0], Table) and "under 100 examples" in section[1].text
    blocks = build_blocks(CURATE, SPLIT, DATA_FILES)
    start = blocks.index(section[0])
    assert blocks[start : start + len(section)] == section
    details = data_blocks(CURATE, SPLIT, DATA_REPORT, TRAINING_EXAMPLE)
    assert details[1:-1] == section
    assert (
        f"Details: {DATA_REPORT} (" in details[-1].text
        and str(TRAINING_EXAMPLE) in details[-1].text
    )
    # splits made by hand: no data section
    assert data_blocks({}, SPLIT, DATA_REPORT, TRAINING_EXAMPLE) == []


TARGETS = {
    "rows": 100,
    "distinct": 11,
    "free_text": True,
    "top": [
        {"target": "n/a", "count": 90, "share": 0.9, "placeholder": True},
        {"target": "we refunded the | charge", "count": 1, "share": 0.01, "placeholder": False},
    ],
    "findings": [
        {
            "key": "0" * 16,
            "target": "n/a",
            "reason": "placeholder_target",
            "count": 90,
            "share": 0.9,
            "example": "data/raw/a.jsonl:11",
        }
    ],
    "policy": "quarantine",
    "keep_copies": 3,
    "labels": {"category": {"billing": 85, "shipping": 15}},
    "label_imbalance": [{"field": "category", "value": "billing", "share": 0.85}],
    "label_advice": "add examples of the rarer values",
}


def test_render_shows_the_targets_and_what_curate_did() -> None:
    curate = CURATE | {
        "quarantined": 99,
        "reasons": CURATE["reasons"] | {"placeholder_target": 87},
        "targets": TARGETS,
    }
    rows = {label: n for label, n, _ in funnel(curate, SPLIT)}
    assert rows["quality filters"] == 88 - 87  # a placeholder target is a quality finding
    text = render(curate, SPLIT, DATA_FILES)
    assert "## Targets" in text and "![most frequent targets](figures/targets.png)" in text
    assert "| `n/a` (placeholder) | 90 | 90.0% |" in text
    assert "`we refunded the \\| charge`" in text
    assert "**placeholder_target**: `n/a` answers 90.0% of the rows (90, first at " in text
    assert "all but the first 3 copies quarantined" in text
    assert "| `category` | billing | 85 | 85.0% |" in text
    assert "**Imbalanced:** `category` is `billing` in 85% of the rows" in text
    assert "## Targets" not in render(CURATE, SPLIT, DATA_FILES)  # reports from before the check


def test_the_select_report_names_the_target_findings() -> None:
    curate = CURATE | {"targets": TARGETS}
    blocks = data_blocks(curate, SPLIT, DATA_REPORT, TRAINING_EXAMPLE)
    text = "\n".join(getattr(block, "text", "") for block in blocks)
    assert "**placeholder_target**: `n/a` answers 90.0% of the rows" in text
    assert "placeholder_target" not in str(
        data_blocks(CURATE, SPLIT, DATA_REPORT, TRAINING_EXAMPLE)
    )


def test_render_shows_asked_and_realised_fractions_and_the_largest_groups() -> None:
    split = SPLIT | {
        "fractions": {"train": 0.7692, "val": 0.1282, "test": 0.1026},
        "asked_fractions": {"val": 0.15, "test": 0.15},
        "largest_groups": [
            {"group": "g1", "rows": 3, "share": 0.0385, "example": "Reset my password"}
        ],
    }
    text = render(CURATE, split, DATA_FILES)
    assert "## Split sizes" in text
    assert "val 12.8% (asked 15%), test 10.3% (asked 15%)" in text
    assert "| g1 | 3 | 3.9% | `Reset my password` |" in text
    assert "## Split sizes" not in render(
        CURATE, SPLIT, DATA_FILES
    )  # reports from before the check
