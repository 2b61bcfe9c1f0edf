"""Unit tests for the evaluation suite checkers and the shipped suite files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.evaluation.suites import (
    CHECK_FIELDS,
    CHECKS,
    canonical_answer,
    check_instruction,
    failed_checks,
    load_suite,
    score_general_qa,
    validate_checks,
)

SUITES_DIR = Path(__file__).parents[1] / "data" / "suites"
QA_KINDS = {"fact", "arithmetic", "definition", "conversion"}


# --------------------------------------------------------------------------------------
# QA normaliser and scorer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The capital of France is Paris.", "capital of france is paris"),
        ("  An   apple,  a pear! ", "apple pear"),
        ("It is 3.5 metres.", "it is 3.5 metres"),
        ("Pi is about 3.14159...", "pi is about 3.14159"),
        ("It costs $1,000.", "it costs 1000"),
        ("Minus -4 degrees", "minus -4 degrees"),
        ("5-3=2", "5 3 2"),
        ("Don't panic", "dont panic"),
        ("Twenty-five", "twenty five"),
        ("H2O!", "h2o"),
        ("THE END", "end"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_canonical_answer(text: str, expected: str) -> None:
    assert canonical_answer(text) == expected


@pytest.mark.parametrize(
    ("output", "answers", "expected"),
    [
        ("The capital of France is Paris.", ["Paris"], True),
        ("paris", ["Paris"], True),
        ("Parisian food is great.", ["Paris"], False),
        ("17", ["7", "seven"], False),
        ("There are 7 days in a week.", ["7", "seven"], True),
        ("There are seven days.", ["7", "seven"], True),
        ("The answer is 1,000 metres.", ["1000"], True),
        ("The answer is 3.5", ["3"], False),
        ("It is 3.5.", ["3.5"], True),
        ("It is a blue whale.", ["blue whale"], True),
        ("Blue, whale!", ["blue whale"], True),
        ("It is blue, like a whale.", ["blue whale"], False),
        ("The whale is blue.", ["blue whale"], False),
        ("Twenty-five", ["twenty-five", "25"], True),
        ("I do not know.", ["Paris"], False),
        ("", ["Paris"], False),
        ("Paris", [], False),
        ("Paris", ["", "the"], False),
    ],
)
def test_score_general_qa(output: str, answers: list[str], expected: bool) -> None:
    assert score_general_qa(output, answers) is expected


def test_score_general_qa_only_reads_first_40_words() -> None:
    filler = "word " * 40
    assert not score_general_qa(filler + "Paris", ["Paris"])
    assert score_general_qa("word " * 39 + "Paris", ["Paris"])


# --------------------------------------------------------------------------------------
# Instruction checks: one passing and one failing output per type
# --------------------------------------------------------------------------------------

CHECK_CASES: list[tuple[dict, str, str]] = [
    ({"type": "max_words", "value": 5}, "one two three four five", "one two three four five six"),
    ({"type": "min_words", "value": 3}, "one two three", "one two"),
    ({"type": "max_sentences", "value": 2}, "It is 3.5 km. Nice!", "One. Two. Three."),
    ({"type": "all_lowercase"}, "hello there, friend 42.", "Hello there"),
    ({"type": "all_uppercase"}, "WATCH OUT, WET FLOOR!", "WATCH out"),
    ({"type": "include_words", "words": ["blue", "sea"]}, "The Sea is BLUE.", "The sea is bluer."),
    ({"type": "exclude_words", "words": ["hot"]}, "The sun is a photon factory.", "It is Hot."),
    ({"type": "json_only"}, ' {"name": "Ana", "age": 30}\n', 'Here: {"name": "Ana"}'),
    ({"type": "bullet_count", "value": 2}, "Tips:\n- sleep\n* water\n", "- sleep\n- water\n- run"),
    ({"type": "starts_with", "text": "Yes"}, "  yes, water matters.", "Well, yes."),
    ({"type": "ends_with", "text": "Thank you."}, "Trees grow. Thank you.  \n", "Thank you. Bye"),
    ({"type": "no_commas"}, "Rain falls and falls.", "Rain, rain."),
]


def test_every_check_type_has_a_case() -> None:
    assert {case[0]["type"] for case in CHECK_CASES} == set(CHECKS) == set(CHECK_FIELDS)


@pytest.mark.parametrize(("check", "good", "bad"), CHECK_CASES, ids=lambda v: str(v)[:30])
def test_check_pass_and_fail(check: dict, good: str, bad: str) -> None:
    assert check_instruction(good, [check]), good
    assert not check_instruction(bad, [check]), bad
    assert failed_checks(bad, [check]) == [check["type"]]


@pytest.mark.parametrize("kind", ["all_lowercase", "all_uppercase", "json_only", "max_sentences"])
def test_checks_fail_on_empty_output(kind: str) -> None:
    check = {"type": kind, "value": 3}
    assert not check_instruction("", [check])
    assert not check_instruction("   ", [check])


def test_bullet_count_ignores_dashes_inside_lines() -> None:
    check = {"type": "bullet_count", "value": 0}
    assert check_instruction("well-known - fine\n-not a bullet", [check])


def test_max_sentences_ignores_decimal_points() -> None:
    assert check_instruction("Pi is 3.14 roughly.", [{"type": "max_sentences", "value": 1}])


def test_all_checks_must_pass() -> None:
    checks = [{"type": "all_lowercase"}, {"type": "max_words", "value": 3}]
    assert check_instruction("hello there", checks)
    assert not check_instruction("hello there my friend", checks)
    assert failed_checks("Hello there my friend", checks) == ["all_lowercase", "max_words"]
    assert check_instruction("Anything at all.", [])


def test_unknown_check_type_raises() -> None:
    with pytest.raises(StageError, match="no_emojis"):
        check_instruction("hi", [{"type": "no_emojis"}])
    with pytest.raises(StageError, match="None"):
        failed_checks("hi", [{"value": 3}])


def test_missing_check_field_raises() -> None:
    with pytest.raises(StageError, match=r"max_words.*value"):
        validate_checks([{"type": "max_words"}])


# --------------------------------------------------------------------------------------
# load_suite
# --------------------------------------------------------------------------------------


def test_load_suite_reads_objects_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n', encoding="utf-8")
    assert load_suite(path) == [{"id": "a"}, {"id": "b"}]


@pytest.mark.parametrize("bad_line", ['{"id": "b"', "not json", '["an", "array"]'])
def test_load_suite_error_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "a"}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(StageError, match=r"broken\.jsonl:3") as info:
        load_suite(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------
# Shipped suite files
# --------------------------------------------------------------------------------------


def test_general_qa_suite_is_valid() -> None:
    items = load_suite(SUITES_DIR / "general_qa.jsonl")
    assert len(items) >= 100
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    for item in items:
        assert item["kind"] in QA_KINDS, item["id"]
        assert item["question"].strip(), item["id"]
        assert item["answers"], item["id"]
        question = canonical_answer(item["question"]).split()
        for answer in item["answers"]:
            assert canonical_answer(answer), (item["id"], answer)
            # Echoing the question must never score as correct.
            assert not score_general_qa(" ".join(question), [answer]), (item["id"], answer)
        # The first accepted answer, stated in a sentence, scores as correct.
        assert score_general_qa(f"The answer is {item['answers'][0]}.", item["answers"])


def test_instruction_suite_is_valid() -> None:
    items = load_suite(SUITES_DIR / "instruction_follow.jsonl")
    assert len(items) >= 40
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for item in items:
        assert item["prompt"].strip(), item["id"]
        assert item["checks"], item["id"]
        validate_checks(item["checks"])
        used.update(check["type"] for check in item["checks"])
        json.dumps(item)
    assert used == set(CHECKS)
