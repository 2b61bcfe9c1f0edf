"""Curation: every bad row is quarantined with exactly one reason, duplicates are dropped, and
in == kept + quarantined + duplicates, always."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from curating import CurateResult, curate_files, curate_lines
from helpers import assert_reconciles
from {{ cookiecutter.module_name }}.cli import run_stage
from {{ cookiecutter.module_name }}.data.curate_report import (
    ReportBuilder,
    token_histogram,
    token_stats,
)
from {{ cookiecutter.module_name }}.data.curation import raw_files
from {{ cookiecutter.module_name }}.data.decisions import Decisions
from {{ cookiecutter.module_name }}.data.masking import Lengths
from {{ cookiecutter.module_name }}.data.quality import dominant_script
from {{ cookiecutter.module_name }}.data.reasons import ALL_REASONS
from {{ cookiecutter.module_name }}.data.sizing import size_verdict
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import iter_lines, read_json, read_jsonl
from {{ cookiecutter.module_name }}.params import CurateParams, QualityParams, TaskParams
from {{ cookiecutter.module_name }}.stages import curate as curate_stage

PROJECT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED_DATA = PROJECT / "data" / "raw" / "support_tickets.jsonl"
FIELDS = ["category", "priority"]
JSON_TASK = TaskParams(target_format="json", fields=FIELDS, score_fields=FIELDS)
TEXT_TASK = TaskParams()
ANSWER = json.dumps({"category": "billing", "priority": "high"})
AUDIT_CODES = {"target_not_json", "format_drift", "target_schema_mismatch"}
DUPLICATE_FIXTURES = {"exact_duplicate": "exact", "near_duplicate": "near"}
FIXTURE_CURATE = CurateParams(quality=QualityParams(min_target_chars=8, max_target_chars=2000))
MAX_TOKENS = 1000
MAX_LENGTH = 500  # below MAX_TOKENS: a row whose prompt fills it has nothing left to train


def words_in(turns: list[dict]) -> int:
    return sum(len(turn["content"].split()) for turn in turns)


def count_words(chats: list[list[dict]], prompts: bool = True) -> list[Lengths]:
    """A stand-in tokenizer: one token per whitespace-separated word; the prompt is every turn
    but the last."""
    return [
        Lengths(words_in(chat), ((words_in(chat[:-1]), words_in(chat)),) if prompts else ())
        for chat in chats
    ]


def lines(*rows: Any, file: str = "data/raw/a.jsonl") -> list[tuple[str, int, bytes]]:
    encoded = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
    return [(file, number, row) for number, row in enumerate(encoded, start=1)]


def chat(user: str, answer: str = ANSWER) -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def reasons_by_line(result: CurateResult) -> dict[int, str]:
    return {record["line"]: record["reason"] for record in result.quarantined}


# ------------------------------------------------------------------- one fixture per defect


def fixture_lines(name: str) -> list[tuple[str, int, bytes]]:
    path = FIXTURES / f"{name}.jsonl"
    return [(str(path), line, data) for line, data in iter_lines(path)]


def run_fixture(name: str) -> CurateResult:
    task = JSON_TASK if name in AUDIT_CODES else TEXT_TASK
    path = FIXTURES / f"{name}.jsonl"
    return curate_files([path], task, FIXTURE_CURATE, count_words, MAX_TOKENS, MAX_LENGTH)


FIXTURE_NAMES = sorted(path.stem for path in FIXTURES.glob("*.jsonl"))
GOOD_ROWS = 10  # tests/fixtures/make_fixtures.py puts 10 clean rows first in every file


def test_there_is_a_fixture_for_every_reason_code() -> None:
    assert set(FIXTURE_NAMES) == set(ALL_REASONS) | set(DUPLICATE_FIXTURES)


@pytest.mark.parametrize("name", [n for n in FIXTURE_NAMES if n not in DUPLICATE_FIXTURES])
def test_each_defect_lands_in_quarantine_with_its_reason(name: str) -> None:
    result = run_fixture(name)
    bad = {line: name for _, line, _ in fixture_lines(name) if line > GOOD_ROWS}
    assert bad, "the fixture has no bad rows"
    assert reasons_by_line(result) == bad
    assert len(result.kept) + len(result.preferences) == GOOD_ROWS
    assert_reconciles(result)
    for record in result.quarantined:
        assert record["detail"] and record["file"].endswith(f"{name}.jsonl")


@pytest.mark.parametrize("name", sorted(DUPLICATE_FIXTURES))
def test_duplicate_fixtures_keep_one_row_per_cluster(name: str) -> None:
    result = run_fixture(name)
    last = fixture_lines(name)[-1][1]
    assert result.quarantined == []
    assert [(d["source"].rsplit(":", 1)[1], d["kind"]) for d in result.duplicates] == [
        (str(last), DUPLICATE_FIXTURES[name])
    ]
    kept_sources = {row["source"] for row in result.kept}
    assert result.duplicates[0]["duplicate_of"] in kept_sources
    assert_reconciles(result)


def test_all_fixtures_in_one_run_reconcile() -> None:
    files = [FIXTURES / f"{name}.jsonl" for name in FIXTURE_NAMES]
    result = curate_files(files, JSON_TASK, FIXTURE_CURATE, count_words, MAX_TOKENS, MAX_LENGTH)
    assert_reconciles(result)
    assert len({(r["file"], r["line"]) for r in result.quarantined}) == len(result.quarantined)


def test_quarantined_raw_is_the_verbatim_line() -> None:
    result = run_fixture("not_json")
    (record,) = result.quarantined
    assert record["raw"].encode() == fixture_lines("not_json")[-1][2]


def test_not_utf8_raw_keeps_what_it_can() -> None:
    (record,) = run_fixture("not_utf8").quarantined
    assert "caf\ufffd" in record["raw"]


@pytest.mark.parametrize("name", ["empty", "wrong_format", "unknown_keys"])
def test_bad_files_are_one_line_errors_naming_the_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(FIXTURES / "files" / f"{name}.jsonl", raw / f"{name}.jsonl")
    with pytest.raises(StageError) as info:
        curate_files(raw_files(raw), TEXT_TASK, CurateParams())
    message = str(info.value)
    assert f"{name}.jsonl" in message and "\n" not in message


def test_missing_raw_dir_names_it(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no \\*.jsonl files in .*raw"):
        raw_files(tmp_path / "raw")


# ------------------------------------------------------------------------------- formats


SHAREGPT = [
    {"from": "system", "value": "Be brief."},
    {"from": "human", "value": "first question"},
    {"from": "gpt", "value": "first answer"},
    {"from": "human", "value": "sharegpt row"},
    {"from": "gpt", "value": "the answer"},
]


def test_formats_are_detected_per_file_and_become_chats() -> None:
    rows = (
        lines(chat("chat row"), file="a.jsonl")
        + lines({"prompt": "pc row", "completion": ANSWER}, file="b.jsonl")
        + lines({"instruction": "Triage.", "input": "alpaca row", "output": ANSWER}, file="c.jsonl")
        + lines({"prompt": "pref row", "chosen": ANSWER, "rejected": "no"}, file="d.jsonl")
        + lines({"conversations": SHAREGPT, "id": "sg-1"}, file="e.jsonl")
    )
    result = curate_lines(rows, TEXT_TASK, CurateParams())
    assert result.decisions.formats == {
        "a.jsonl": "chat",
        "b.jsonl": "prompt_completion",
        "c.jsonl": "alpaca",
        "d.jsonl": "preference",
        "e.jsonl": "sharegpt",
    }
    users = [row["prompt"][-1]["content"] for row in result.kept]
    assert users == ["chat row", "pc row", "Triage.\n\nalpaca row", "sharegpt row"]
    roles = [turn["role"] for turn in result.kept[-1]["prompt"]]
    assert roles == ["system", "user", "assistant", "user"]  # every answer is trained
    assert all(
        row["completion"] == [{"role": "assistant", "content": ANSWER}] for row in result.kept[:-1]
    )
    (pair,) = result.preferences
    assert pair["chosen"][0]["content"] == ANSWER and pair["rejected"][0]["content"] == "no"


def test_a_sharegpt_turn_of_an_unknown_speaker_is_quarantined_by_the_chat_schema() -> None:
    bad = [*SHAREGPT[:3], {"from": "narrator", "value": "x"}, SHAREGPT[4]]
    rows = lines({"conversations": SHAREGPT}, {"conversations": bad}, {"conversations": "text"})
    result = curate_lines(rows, TEXT_TASK, CurateParams())
    assert reasons_by_line(result) == {2: "unknown_role", 3: "missing_messages"}


def test_a_row_not_in_its_files_format_is_quarantined() -> None:
    rows = lines(chat("one"), chat("two"), {"prompt": "three", "completion": "x"})
    assert reasons_by_line(curate_lines(rows, TEXT_TASK, CurateParams())) == {3: "missing_messages"}


def test_formats_param_overrides_detection() -> None:
    rows = lines({"prompt": "p", "completion": "c", "chosen": "a", "rejected": "b"})
    cfg = CurateParams(formats={"a.jsonl": "prompt_completion"})
    result = curate_lines(rows, TEXT_TASK, cfg)
    assert result.decisions.formats == {"data/raw/a.jsonl": "prompt_completion"}
    assert len(result.kept) == 1 and result.preferences == []


def test_extra_scalar_fields_are_kept_as_metadata() -> None:
    row = chat("hello") | {"category": "billing", "nested": {"x": 1}}
    (kept,) = curate_lines(lines(row), TEXT_TASK, CurateParams()).kept
    assert kept["meta"] == {"category": "billing"}


def test_first_failing_check_wins() -> None:
    row = {"messages": [{"role": "user", "content": ""}, {"role": "robot", "content": "x"}]}
    assert reasons_by_line(curate_lines(lines(row), TEXT_TASK, CurateParams())) == {
        1: "unknown_role"
    }


@pytest.mark.parametrize("role", [["user"], {"name": "user"}, None, 3])
def test_non_string_role_is_unknown_role(role: Any) -> None:
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": role, "content": "x"}]}
    assert reasons_by_line(curate_lines(lines(row), TEXT_TASK, CurateParams())) == {
        1: "unknown_role"
    }


def test_format_audit_keep_reports_but_keeps() -> None:
    rows = lines(chat("a", ANSWER + " Anything else?"), chat("b"))
    result = curate_lines(rows, JSON_TASK, CurateParams(format_audit="keep"))
    assert result.quarantined == [] and len(result.kept) == 2
    assert result.decisions.format_flags == {"format_drift": 1}


# ----------------------------------------------------------------------- tokens and dedup


def test_too_long_uses_the_token_counter_and_records_tokens() -> None:
    rows = lines(chat("one two three"), chat("one two three four five six seven"))
    # the answer is 4 "tokens": {"category": "billing", "priority": "high"}
    result = curate_lines(rows, TEXT_TASK, CurateParams(), count_words, max_tokens=8)
    assert reasons_by_line(result) == {2: "too_long"}
    assert result.kept[0]["tokens"] == 7


def test_exact_duplicates_ignore_case_and_whitespace_across_files() -> None:
    rows = lines(chat("I was charged twice.")) + lines(
        {"prompt": "  i WAS charged   twice. ", "completion": ANSWER}, file="b.jsonl"
    )
    result = curate_lines(rows, TEXT_TASK, CurateParams())
    assert [row["source"] for row in result.kept] == ["data/raw/a.jsonl:1"]
    assert result.duplicates == [
        {
            "source": "b.jsonl:1",
            "kind": "exact",
            "duplicate_of": "data/raw/a.jsonl:1",
            "similarity": 1.0,
        }
    ]


PARAGRAPH = (
    "After the latest update the mobile app logs me out every few minutes and I have to type "
    "my password again before I can see any of the documents shared with my team this week"
)


def test_near_duplicates_keep_the_first_and_point_to_it() -> None:
    variant = PARAGRAPH.replace("every few", "every FEW") + ", thanks!"
    rows = lines(
        chat("Totally unrelated question about gift cards and vouchers."),
        chat(PARAGRAPH),
        chat(variant),
    )
    result = curate_lines(rows, TEXT_TASK, CurateParams())
    (dup,) = result.duplicates
    assert dup["kind"] == "near" and dup["source"].endswith(":3")
    assert dup["duplicate_of"].endswith(":2") and 0.7 <= dup["similarity"] < 1
    assert dup["same_target"] is True


def test_near_duplicates_with_another_answer_are_flagged_as_conflicts() -> None:
    other = json.dumps({"category": "billing", "priority": "LOW"})
    rows = lines(chat(PARAGRAPH), chat(PARAGRAPH + " thanks", other), chat(PARAGRAPH + " cheers"))
    result = curate_lines(rows, TEXT_TASK, CurateParams())
    assert [(d["source"][-1], d["same_target"]) for d in result.duplicates] == [
        ("2", False),
        ("3", True),
    ]


def test_related_rows_below_the_dup_threshold_share_a_group() -> None:
    half = " ".join(PARAGRAPH.split()[:20])
    variant = half + " and the web version keeps asking me to verify my phone number again"
    cfg = CurateParams(near_dup_threshold=0.95, group_threshold=0.3)
    result = curate_lines(
        lines(chat(PARAGRAPH), chat(variant), chat("Where is my parcel?")), TEXT_TASK, cfg
    )
    groups = [row["group"] for row in result.kept]
    assert len(result.kept) == 3
    assert groups[0] == groups[1] == result.kept[0]["id"] != groups[2]


def test_group_threshold_above_dup_threshold_is_a_param_error() -> None:
    with pytest.raises(ValueError, match="group_threshold"):
        CurateParams(near_dup_threshold=0.5, group_threshold=0.7)


def test_japanese_is_one_script_and_a_small_language_is_not_an_outlier() -> None:
    assert dominant_script("ひらがなとカタカナと漢字の文です") == "CJK"
    assert dominant_script("ＡＢＣ ｄｅｆ") == "LATIN"  # full-width letters
    rows = lines(
        *(chat(f"Latin row number {i} about an order", f"Answer {i}.") for i in range(40)),
        # 3 rows, 7 %: data, not an outlier
        *(chat(f"注文{i}はどこですか？", f"まだ届いていません{i}") for i in range(3)),
        chat("Привет, где мой заказ?"),  # one stray row
    )
    assert reasons_by_line(curate_lines(rows, TEXT_TASK, CurateParams())) == {44: "charset_outlier"}


def test_script_outliers_follow_the_majority_or_the_param() -> None:
    rows = lines(
        *(chat(f"Latin row number {i} about an order", f"Answer {i}.") for i in range(12)),
        chat("Привет, где мой заказ?"),
    )
    assert reasons_by_line(curate_lines(rows, TEXT_TASK, CurateParams())) == {13: "charset_outlier"}
    cfg = CurateParams(quality=QualityParams(scripts=["latin", "cyrillic"]))
    assert curate_lines(rows, TEXT_TASK, cfg).quarantined == []


# ------------------------------------------------------------------------ report helpers


@pytest.mark.parametrize(
    ("rows", "advice"),
    [(50, "few-shot"), (100, "LoRA SFT works"), (5000, "optimal range"), (20000, "SFT + DPO")],
)
def test_size_advice_thresholds(rows: int, advice: str) -> None:
    assert advice in size_verdict(rows)[1]


def test_token_histogram_bins_and_marks_rows_over_the_max() -> None:
    bins = token_histogram([1, 2, 40, 63, 64, 70], max_tokens=64, bins=2)
    assert [b["rows"] for b in bins] == [2, 2, 2]
    assert [b["over_max"] for b in bins] == [False, False, True]
    assert token_histogram([], 64) == []


def test_cluster_examples_show_the_kept_row_however_late_it_comes() -> None:
    # the kept row of the first near-duplicate cluster is the 12,001st kept row
    late = 12_000
    decisions = Decisions(duplicate_of={late + 1: ("near", late, 0.8)}, rows_in=late + 2)
    builder = ReportBuilder(decisions, {})
    for i in range(late + 1):
        record = chat(f"row {i}")
        builder.add(
            "kept",
            {
                "source": f"a:{i}",
                "prompt": record["messages"][:1],
                "completion": record["messages"][1:],
            },
        )
    builder.add(
        "duplicate",
        {
            "source": f"a:{late + 1}",
            "kind": "near",
            "duplicate_of": f"a:{late}",
            "similarity": 0.8,
            "same_target": True,
        },
    )
    (cluster,) = builder.report(None, 0.5)["near_duplicate_examples"]
    assert cluster["kept"] == f"a:{late}" and cluster["text"].startswith(f"row {late} |")


def test_token_stats() -> None:
    stats = token_stats([10, 20, 30, 200], max_tokens=100)
    assert stats["over_max"] == 1 and stats["over_max_share"] == 0.25 and stats["max"] == 200


# ----------------------------------------------------------------------- the stage itself


def stage_params(max_reject_fraction: float) -> dict[str, Any]:
    return {
        "task": {
            "target_format": "json",
            "fields": ["category", "priority", "needs_human", "reply"],
            "score_fields": ["category"],
        },
        "curate": {"max_reject_fraction": max_reject_fraction},
        "train": {"max_length": 512},
    }


@pytest.fixture
def stage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    """A project dir with the demo data in data/raw and the tiny model as models/base."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    if SHIPPED_DATA.exists():
        shutil.copy(SHIPPED_DATA, raw / SHIPPED_DATA.name)
    else:
        script = PROJECT / "scripts" / "make_demo_data.py"
        out = raw / SHIPPED_DATA.name
        subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return tmp_path


def test_stage_writes_reconciling_outputs(stage_dir: Path) -> None:
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(stage_params(0.5)))
    curate_stage.main()
    report = read_json(stage_dir / "reports" / "curate.json")
    kept = read_jsonl(stage_dir / "data" / "curated" / "train_pool.jsonl")
    quarantined = read_jsonl(stage_dir / "data" / "quarantine.jsonl")
    duplicates = read_jsonl(stage_dir / "data" / "curated" / "duplicates.jsonl")
    raw_lines = (stage_dir / "data" / "raw" / SHIPPED_DATA.name).read_bytes().split(b"\n")
    dups = report["duplicates"]["exact"] + report["duplicates"]["near"]
    assert report["rows_in"] == sum(1 for line in raw_lines if line.strip())
    assert report["rows_in"] == report["kept"] + report["quarantined"] + dups
    assert report["kept"] == len(kept) > 0
    assert report["quarantined"] == len(quarantined) > 0
    assert dups == len(duplicates) > 0
    assert sum(report["reasons"].values()) == report["quarantined"]
    assert len({row["id"] for row in kept}) == len(kept)
    assert all(0 < row["tokens"] <= 512 for row in kept)
    # the tiny model's ChatML has a system role; every assistant turn is trained by default
    assert report["chat"] == {"assistant_turns": "all", "system_folded": False}
    assert report["trainable"]["assistant_turns"] == "all"
    assert report["tokens"]["rows"] >= len(kept)
    for record in quarantined:
        assert raw_lines[record["line"] - 1].decode() == record["raw"]
    hist = read_json(stage_dir / "reports" / "token_lengths.json")
    assert sum(b["rows"] for b in hist) == report["tokens"]["rows"]
    assert (stage_dir / "reports" / "figures" / "token_lengths.png").stat().st_size > 1000
    # the demo's JSON targets carry a free-text reply: diverse, so no target check fires
    targets = report["targets"]
    assert targets["free_text"] and targets["findings"] == []
    assert not {"placeholder_target", "dominant_target"} & set(report["reasons"])
    assert sum(targets["labels"]["category"].values()) == targets["rows"] == report["kept_sft"]
    assert (stage_dir / "reports" / "figures" / "targets.png").stat().st_size > 1000


def test_a_row_the_chat_template_rejects_stops_the_stage_in_one_line(
    stage_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Gemma 2's template: a system prompt is folded into the first user turn, two user turns
    in a row are the template's error, reported with the row and no traceback."""
    from tiny_model import build_tiny_model

    shutil.rmtree(stage_dir / "models" / "base")
    build_tiny_model(stage_dir / "models" / "base", family="gemma2")
    fields = {"category": "billing", "priority": "high", "needs_human": False, "reply": "Sorry!"}
    answer = {"role": "assistant", "content": json.dumps(fields)}
    chats = [
        [
            {"role": "system", "content": "Triage the ticket."},
            {"role": "user", "content": "My refund is late."},
            answer,
        ],
        [{"role": "user", "content": "Hello?"}, {"role": "user", "content": "Anyone?"}, answer],
    ]
    raw = stage_dir / "data" / "raw" / "chats.jsonl"  # read before the demo file
    raw.write_text("".join(json.dumps({"messages": chat}) + "\n" for chat in chats))
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(stage_params(0.5)))
    with pytest.raises(SystemExit) as exit_info:
        run_stage("curate", curate_stage.main)
    assert str(exit_info.value.code) == (
        "curate failed: data/raw/chats.jsonl:2: the chat template rejects it: Conversation "
        "roles must alternate user/assistant/user/assistant/..."
    )


def test_stage_fails_above_max_reject_fraction(stage_dir: Path) -> None:
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(stage_params(0.0)))
    with pytest.raises(StageError, match="curate.max_reject_fraction") as info:
        curate_stage.main()
    assert "data/quarantine.jsonl" in str(info.value)
    assert read_jsonl(stage_dir / "data" / "quarantine.jsonl")  # still written, to inspect
