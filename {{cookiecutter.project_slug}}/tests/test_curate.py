"""Curation: every bad row is quarantined with exactly one reason, duplicates are dropped and
the counts always reconcile."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.module_name }} import curate
from {{ cookiecutter.module_name }}.cli import StageError
from {{ cookiecutter.module_name }}.curate import (
    PARSE_REASONS,
    CurateResult,
    build_report,
    curate_rows,
    read_raw,
    size_advice,
)
from {{ cookiecutter.module_name }}.jsonio import (
    read_json,
    read_jsonl,
)
from {{ cookiecutter.module_name }}.schemas import REASONS

PROJECT = Path(__file__).parents[1]
SHIPPED_DATA = PROJECT / "data" / "raw" / "support_tickets.jsonl"
FIELDS = ["category", "priority", "needs_human", "reply"]
TARGET = {"category": "billing", "priority": "high", "needs_human": True, "reply": "On it."}
GOOD = json.dumps(TARGET)
SYSTEM = {"role": "system", "content": "Triage the ticket."}


def user(text: str = "I was charged twice.") -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str = GOOD) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def chat(*turns: dict) -> bytes:
    return json.dumps({"messages": list(turns)}).encode()


def lines(*rows: bytes, file: str = "data/raw/a.jsonl") -> list[tuple[str, int, bytes]]:
    return [(file, number, row) for number, row in enumerate(rows, start=1)]


def json_curate(rows: list[tuple[str, int, bytes]]) -> CurateResult:
    return curate_rows(rows, "json", FIELDS, 1)


def reasons_by_line(result: CurateResult) -> dict[int, str]:
    return {record["line"]: record["reason"] for record in result.quarantined}


def assert_reconciles(result: CurateResult) -> None:
    assert result.rows_in == len(result.kept) + len(result.quarantined) + result.duplicates


# One hand-made line per reason code (json target format).
JSON_CASES: dict[str, bytes] = {
    "not_utf8": b'{"prompt": "caf\xe9", "completion": "x"}',
    "not_json": b'{"messages": [',
    "not_json_object": b'[{"role": "user", "content": "hi"}]',
    "unknown_format": json.dumps({"text": "hello", "label": "billing"}).encode(),
    "empty_prompt_or_completion": json.dumps({"prompt": "hi", "completion": "   "}).encode(),
    "missing_messages": json.dumps({"messages": []}).encode(),
    "unknown_role": chat(user(), {"role": "bot", "content": GOOD}),
    "missing_content": chat({"role": "user"}, assistant()),
    "no_user_turn": chat(SYSTEM, assistant()),
    "no_assistant_turn": chat(SYSTEM, user()),
    "assistant_not_last": chat(user(), assistant(), user("thanks")),
    "empty_content": chat(user("   "), assistant()),
    "target_not_json": chat(user(), assistant("billing, high priority")),
    "format_drift": chat(user(), assistant(GOOD + " Let me know if you need more help!")),
    "target_schema_mismatch": chat(user(), assistant(json.dumps({"category": "billing"}))),
}


def test_every_reason_code_has_a_case() -> None:
    codes = set(PARSE_REASONS) | set(REASONS)
    assert codes == set(JSON_CASES) | {"target_too_short"}


@pytest.mark.parametrize("code", sorted(JSON_CASES))
def test_each_bad_row_gets_its_reason(code: str) -> None:
    result = json_curate(lines(JSON_CASES[code]))
    assert [record["reason"] for record in result.quarantined] == [code]
    assert result.kept == []
    record = result.quarantined[0]
    assert record["file"] == "data/raw/a.jsonl"
    assert record["line"] == 1
    assert record["detail"]


def test_all_reasons_in_one_batch_one_reason_per_row() -> None:
    codes = sorted(JSON_CASES)
    good = chat(SYSTEM, user(), assistant())
    result = json_curate(lines(good, *(JSON_CASES[code] for code in codes)))
    assert reasons_by_line(result) == {line: code for line, code in enumerate(codes, start=2)}
    assert len(result.quarantined) == len(codes)
    assert [row["source"] for row in result.kept] == ["data/raw/a.jsonl:1"]
    assert_reconciles(result)


def test_first_failing_check_wins() -> None:
    # Unknown role AND no assistant turn AND empty content: the first check in order wins.
    row = chat(user(""), {"role": "robot", "content": "x"})
    assert reasons_by_line(json_curate(lines(row))) == {1: "unknown_role"}


@pytest.mark.parametrize("role", [["user"], {"name": "user"}, None, 3])
def test_non_string_role_is_unknown_role(role: Any) -> None:
    # A well-formed chat around the bad turn: the row must be quarantined, not kept or crash.
    row = chat(user(), {"role": role, "content": "hi"}, assistant())
    assert reasons_by_line(json_curate(lines(row))) == {1: "unknown_role"}


def test_target_too_short_for_text_tasks() -> None:
    rows = lines(chat(user(), assistant("ok")), chat(user("other"), assistant("  fine  ")))
    # "fine" is 4 characters once surrounding whitespace is stripped
    result = curate_rows(rows, "text", [], 5)
    assert reasons_by_line(result) == {1: "target_too_short", 2: "target_too_short"}
    assert result.kept == []
    result = curate_rows(rows, "text", [], 4)
    assert reasons_by_line(result) == {1: "target_too_short"}
    assert [row["source"] for row in result.kept] == ["data/raw/a.jsonl:2"]


def test_text_tasks_accept_any_non_empty_target() -> None:
    result = curate_rows(lines(chat(user(), assistant("not json at all"))), "text", [], 1)
    assert result.quarantined == []
    assert len(result.kept) == 1


def test_quarantined_raw_is_the_verbatim_line() -> None:
    odd = b'  {"messages": [{"role": "user", "content": "hi"}],   "x": 1}  '
    messy = b'{"prompt":"p",\t"completion":""}'
    result = json_curate(lines(odd, messy))
    raws = {record["line"]: record["raw"] for record in result.quarantined}
    assert raws == {1: odd.decode(), 2: messy.decode()}


def test_not_utf8_raw_keeps_what_it_can() -> None:
    result = json_curate(lines(JSON_CASES["not_utf8"]))
    assert result.quarantined[0]["raw"].startswith('{"prompt": "caf\ufffd"')


def test_duplicates_differing_in_case_and_whitespace_are_removed() -> None:
    first = chat(SYSTEM, user("My invoice is WRONG."), assistant())
    again = chat(SYSTEM, user("  my   invoice is wrong. "), assistant(GOOD.upper().lower()))
    exact = first
    other = chat(SYSTEM, user("My parcel is late."), assistant())
    result = json_curate(lines(first, again, exact, other))
    assert result.duplicates == 2
    assert [row["source"] for row in result.kept] == ["data/raw/a.jsonl:1", "data/raw/a.jsonl:4"]
    assert result.quarantined == []
    assert_reconciles(result)


def test_duplicates_across_formats_and_files() -> None:
    as_chat = chat(user("Reset my password"), assistant())
    as_pair = json.dumps({"prompt": "reset my  password", "completion": GOOD}).encode()
    rows = lines(as_chat, file="data/raw/a.jsonl") + lines(as_pair, file="data/raw/b.jsonl")
    result = json_curate(rows)
    assert result.duplicates == 1
    assert len(result.kept) == 1


def test_prompt_completion_rows_become_chat() -> None:
    row = json.dumps({"prompt": "Where is my parcel?", "completion": GOOD}).encode()
    (kept,) = json_curate(lines(row)).kept
    assert kept["prompt"] == [{"role": "user", "content": "Where is my parcel?"}]
    assert kept["completion"] == [{"role": "assistant", "content": GOOD}]
    assert kept["source"] == "data/raw/a.jsonl:1"
    assert len(kept["id"]) == 16


def test_kept_rows_are_prompt_completion_with_stable_ids() -> None:
    rows = lines(chat(SYSTEM, user(), assistant()), chat(SYSTEM, user("Hi again"), assistant()))
    first = json_curate(rows)
    second = json_curate(list(reversed(rows)))
    assert {row["id"] for row in first.kept} == {row["id"] for row in second.kept}
    for row in first.kept:
        assert set(row) == {"id", "prompt", "completion", "source"}
        assert row["prompt"][0] == SYSTEM
        assert row["completion"] == [assistant()]


def test_quarantine_is_sorted_by_file_and_line() -> None:
    bad = JSON_CASES["not_json"]
    drift = JSON_CASES["format_drift"]
    rows = [("b.jsonl", 2, drift), ("b.jsonl", 1, bad), ("a.jsonl", 9, drift)]
    result = json_curate(rows)
    assert [(r["file"], r["line"]) for r in result.quarantined] == [
        ("a.jsonl", 9),
        ("b.jsonl", 1),
        ("b.jsonl", 2),
    ]


def test_counts_reconcile_on_a_mixed_batch() -> None:
    good = [chat(SYSTEM, user(f"ticket {i}"), assistant()) for i in range(6)]
    rows = lines(*good, *good[:3], *JSON_CASES.values())
    result = json_curate(rows)
    assert result.rows_in == len(rows)
    assert (len(result.kept), len(result.quarantined), result.duplicates) == (6, 15, 3)
    assert_reconciles(result)


def test_empty_input() -> None:
    result = json_curate([])
    assert (result.rows_in, result.kept, result.quarantined, result.duplicates) == (0, [], [], 0)
    result = curate_rows(lines(b"not json"), "text", [], 1)
    assert reasons_by_line(result) == {1: "not_json"}


def test_read_raw_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no \\*.jsonl files") as info:
        read_raw(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_read_raw_empty_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("\n  \n")
    with pytest.raises(StageError, match="no rows") as info:
        read_raw(tmp_path)
    assert str(tmp_path / "a.jsonl") in str(info.value)
    assert str(tmp_path / "b.jsonl") in str(info.value)


def test_read_raw_reads_files_in_order_with_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_bytes(b'{"x": 2}\r\n')
    (tmp_path / "a.jsonl").write_bytes(b'{"x": 1}\n\n{"x": 3}\n')
    (tmp_path / "notes.txt").write_text("ignored")
    assert read_raw(tmp_path) == [
        (str(tmp_path / "a.jsonl"), 1, b'{"x": 1}'),
        (str(tmp_path / "a.jsonl"), 3, b'{"x": 3}'),
        (str(tmp_path / "b.jsonl"), 1, b'{"x": 2}'),
    ]


@pytest.mark.parametrize(
    ("rows", "advice"),
    [
        (0, "few-shot"),
        (99, "few-shot"),
        (100, "LoRA SFT works"),
        (999, "LoRA SFT works"),
        (1000, "sweet spot"),
        (9999, "sweet spot"),
        (10000, "DPO"),
    ],
)
def test_size_advice_thresholds(rows: int, advice: str) -> None:
    assert advice in size_advice(rows)


def test_build_report() -> None:
    result = CurateResult(
        kept=[{"id": str(i)} for i in range(5)],
        quarantined=[{"reason": "not_json"}, {"reason": "format_drift"}, {"reason": "not_json"}],
        duplicates=2,
        rows_in=10,
    )
    report = build_report(result)
    assert report == {
        "rows_in": 10,
        "kept": 5,
        "quarantined": 3,
        "duplicates": 2,
        "reasons": {"format_drift": 1, "not_json": 2},
        "reject_fraction": 0.3,
        "size_advice": size_advice(5),
    }
    assert list(report["reasons"]) == ["format_drift", "not_json"]
    assert build_report(CurateResult())["reject_fraction"] == 0.0


# ----------------------------------------------------------------------- the stage itself


def stage_params(max_reject_fraction: float) -> dict[str, Any]:
    return {
        "task": {"target_format": "json", "fields": FIELDS, "score_fields": FIELDS[:3]},
        "curate": {"max_reject_fraction": max_reject_fraction, "min_completion_chars": 1},
    }


@pytest.fixture
def stage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with the demo data in data/raw (generated when the preset pruned it)."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    if SHIPPED_DATA.exists():
        shutil.copy(SHIPPED_DATA, raw / SHIPPED_DATA.name)
    else:
        script = PROJECT / "scripts" / "make_demo_data.py"
        out = raw / SHIPPED_DATA.name
        subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_writes_reconciling_outputs(stage_dir: Path) -> None:
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(stage_params(0.5)))
    curate.main()
    report = read_json(stage_dir / "reports" / "curate.json")
    kept = read_jsonl(stage_dir / "data" / "curated" / "train_pool.jsonl")
    quarantined = read_jsonl(stage_dir / "data" / "quarantine.jsonl")
    raw_lines = (stage_dir / "data" / "raw" / SHIPPED_DATA.name).read_bytes().split(b"\n")
    assert report["rows_in"] == sum(1 for line in raw_lines if line.strip())
    assert report["rows_in"] == report["kept"] + report["quarantined"] + report["duplicates"]
    assert report["kept"] == len(kept) > 0
    assert report["quarantined"] == len(quarantined) > 0
    assert report["duplicates"] > 0
    assert sum(report["reasons"].values()) == report["quarantined"]
    assert len({row["id"] for row in kept}) == len(kept)
    for record in quarantined:
        assert record["reason"] in report["reasons"]
        # `raw` is the line exactly as it is in the file
        assert raw_lines[record["line"] - 1].decode() == record["raw"]


def test_stage_fails_above_max_reject_fraction(stage_dir: Path) -> None:
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(stage_params(0.0)))
    with pytest.raises(StageError, match="curate.max_reject_fraction") as info:
        curate.main()
    assert "data/quarantine.jsonl" in str(info.value)
    # The outputs are still written, so the quarantine can be inspected.
    assert read_jsonl(stage_dir / "data" / "quarantine.jsonl")
