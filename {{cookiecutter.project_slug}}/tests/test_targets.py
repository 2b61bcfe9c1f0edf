"""Targets: curate reports what the rows answer, and a placeholder or one answer for most rows
of free-text data is quarantined beyond a few copies, reported, or fatal; a classifier's
label set, however imbalanced, never is."""

import json
import random
from pathlib import Path

import pytest

from curating import CurateResult, curate_lines
from helpers import assert_reconciles
from {{ cookiecutter.module_name }}.data.curate_report import plot_targets
from {{ cookiecutter.module_name }}.data.data_report import target_blocks
from {{ cookiecutter.module_name }}.data.quality import is_placeholder
from {{ cookiecutter.module_name }}.document import to_markdown
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.params import CurateParams, TaskParams
from {{ cookiecutter.module_name }}.stages.split import DATA_FILES

TEXT_TASK = TaskParams()
FIELDS = ["category", "priority"]
JSON_TASK = TaskParams(target_format="json", fields=FIELDS, score_fields=FIELDS)
VOCABULARY = [f"w{i}" for i in range(400)]


def sentence(rng: random.Random, n: int = 14) -> str:
    """Random words: rows that share no near-duplicate shingles."""
    return " ".join(rng.sample(VOCABULARY, n))


def rows_with(targets: list[str], seed: int = 0) -> list[tuple[str, int, bytes]]:
    rng = random.Random(seed)
    rows = []
    for line, target in enumerate(targets, start=1):
        turns = [
            {"role": "user", "content": sentence(rng)},
            {"role": "assistant", "content": target},
        ]
        rows.append(("data/raw/a.jsonl", line, json.dumps({"messages": turns}).encode()))
    return rows


def curate(targets: list[str], task: TaskParams = TEXT_TASK, **cfg) -> CurateResult:
    return curate_lines(rows_with(targets), task, CurateParams(**cfg))


def report(result: CurateResult) -> dict:
    """The `targets` section of reports/curate.json."""
    return result.report["targets"]


def free_text(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng, 8) for _ in range(n)]


PLACEHOLDER_DATA = free_text(10) + ["N/A"] * 90  # the public data set of the issue


def test_placeholder_rows_are_quarantined_down_to_a_few_copies() -> None:
    result = curate(PLACEHOLDER_DATA)
    assert_reconciles(result)
    assert len(result.kept) == 10 + 3
    assert {r["reason"] for r in result.quarantined} == {"placeholder_target"}
    assert len(result.quarantined) == 87
    assert [r["line"] for r in result.quarantined] == list(range(14, 101))  # first 3 copies kept
    targets = report(result)
    assert targets["top"][0] == {"target": "n/a", "count": 90, "share": 0.9, "placeholder": True}
    (finding,) = targets["findings"]
    assert finding["reason"] == "placeholder_target" and finding["example"].endswith(":11")


def test_one_answer_for_most_free_text_rows_is_dominant() -> None:
    answer = json.dumps({"category": "billing", "priority": "low"})
    result = curate(free_text(20) + [answer] * 30, JSON_TASK, format_audit="keep")
    assert {r["reason"] for r in result.quarantined} == {"dominant_target"}
    assert len(result.quarantined) == 27
    assert_reconciles(result)


@pytest.mark.parametrize(
    "shares",
    [(34, 33, 33), (80, 15, 5), (90, 5, 5)],
    ids=["balanced", "imbalanced", "very-imbalanced"],
)
def test_a_three_class_classifier_never_fires(shares: tuple[int, int, int]) -> None:
    labels = ["none", "billing", "shipping"]  # even a placeholder-looking class is a label
    targets = [label for label, n in zip(labels, shares, strict=True) for _ in range(n)]
    result = curate(targets)
    assert result.quarantined == [] and len(result.kept) == 100
    summary = result.decisions.targets
    assert summary["findings"] == [] and summary["free_text"] is False
    assert summary["top"][0]["share"] == shares[0] / 100


@pytest.mark.parametrize("answer", ["See the attached file.", "unknown"])
def test_one_answer_for_every_row_is_a_finding(answer: str) -> None:
    result = curate([answer] * 40)
    assert len(result.kept) == 3 and len(result.quarantined) == 37
    (finding,) = result.decisions.targets["findings"]
    expected = "placeholder_target" if answer == "unknown" else "dominant_target"
    assert (finding["reason"], finding["share"]) == (expected, 1.0)


def test_fail_names_the_target_its_share_and_a_row() -> None:
    with pytest.raises(StageError) as info:
        curate(PLACEHOLDER_DATA, dominant_target="fail")
    message = str(info.value)
    assert "'n/a'" in message and "90%" in message and "data/raw/a.jsonl:11" in message
    assert "\n" not in message


def test_warn_keeps_every_row_and_reports() -> None:
    result = curate(PLACEHOLDER_DATA, dominant_target="warn")
    assert result.quarantined == [] and len(result.kept) == 100
    (finding,) = result.decisions.targets["findings"]
    assert finding["share"] == 0.9
    text = to_markdown(target_blocks({"targets": report(result)}, DATA_FILES), Path("reports"))
    assert "placeholder_target" in text and "`n/a`" in text and "90.0%" in text


@pytest.mark.parametrize("target", ["N/A", "n/a", "Unknown", "(no description)", "-", "...", " "])
def test_placeholders(target: str) -> None:
    assert is_placeholder(target)


@pytest.mark.parametrize("target", ["No, the order shipped.", "billing", "42", "None of them"])
def test_answers_are_not_placeholders(target: str) -> None:
    assert not is_placeholder(target)


def test_a_few_copies_are_not_a_finding() -> None:
    result = curate(free_text(40) + ["unknown"] * 3)
    assert result.quarantined == [] and result.decisions.targets["findings"] == []


def test_json_score_field_labels_and_imbalance_are_reported_not_quarantined() -> None:
    rng = random.Random(3)
    targets = [
        json.dumps({"category": "billing" if i < 85 else "shipping", "priority": p})
        for i, p in enumerate(rng.choice(["low", "high"]) for _ in range(100))
    ]
    result = curate(targets, JSON_TASK)
    assert result.quarantined == []
    targets_report = report(result)
    assert targets_report["labels"]["category"] == {"billing": 85, "shipping": 15}
    assert sum(targets_report["labels"]["priority"].values()) == 100
    assert targets_report["label_imbalance"] == [
        {"field": "category", "value": "billing", "share": 0.85}
    ]
    text = to_markdown(target_blocks({"targets": targets_report}, DATA_FILES), Path("reports"))
    assert "Imbalanced" in text and "`billing`" in text


def test_target_plot_is_written(tmp_path: Path) -> None:
    top = curate(PLACEHOLDER_DATA, dominant_target="warn").decisions.targets["top"]
    plot_targets(top, tmp_path / "targets.png")
    assert (tmp_path / "targets.png").stat().st_size > 1000
