"""curate.engine: spark gives the same kept rows and duplicate records as the local path, and
asking for an engine that is not installed says which extra to install."""

import importlib.util
import json
import random
import sys
import types
from pathlib import Path

import pytest

from curating import CurateResult, curate_files, curate_lines
from {{ cookiecutter.module_name }}.data import dedup_engine
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.params import CurateParams, QualityParams, TaskParams

FIXTURES = Path(__file__).parent / "fixtures"
WORDS = [f"w{i}" for i in range(3000)]
QUALITY = QualityParams(min_target_chars=8, max_target_chars=2000)
if importlib.util.find_spec("pyspark") is None:
    SKIP = "pyspark is not installed (the `scale` extra: pip install -e '.[scale]')"
elif not dedup_engine.java_found():
    SKIP = "Spark needs Java 17+: no java on PATH and no JAVA_HOME"
else:
    SKIP = ""
spark_installed = pytest.mark.skipif(bool(SKIP), reason=SKIP)


def fixture(name: str) -> list[Path]:
    return [FIXTURES / f"{name}.jsonl"]


def chat(user: str, answer: str) -> bytes:
    turns = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": turns}).encode()


def planted_rows() -> list[tuple[str, int, bytes]]:
    """200 unrelated rows, 30 near copies (one or two words changed, some answering
    differently), 10 exact copies (case and spacing changed), a chain of near copies of one
    row, and 6 preference pairs with a near copy (punctuation added) among them."""
    rng = random.Random(11)
    users = [" ".join(rng.choices(WORDS, k=40)) for _ in range(200)]
    answers = [" ".join(rng.choices(WORDS, k=8)) for _ in range(200)]
    rows = [chat(u, a) for u, a in zip(users, answers, strict=True)]
    for k in range(30):
        tokens = users[k].split()
        for _ in range(1 + k % 2):
            tokens[rng.randrange(len(tokens))] = rng.choice(WORDS)
        rows.append(chat(" ".join(tokens), answers[k] if k % 3 else "another answer here"))
    for k in range(30, 40):
        rows.append(chat("  " + users[k].upper(), answers[k] + " "))
    chain = users[50].split()
    for step in range(3):  # each link a little further from row 50
        chain[step * 5] = rng.choice(WORDS)
        rows.append(chat(" ".join(chain), answers[50]))
    rng.shuffle(rows)  # copies before their originals too
    pairs = [
        {"prompt": users[100 + k], "chosen": answers[k], "rejected": answers[k + 1]}
        for k in range(5)
    ]
    pairs.append(pairs[0] | {"prompt": users[100] + "!"})  # same words: a near copy
    preference = [("pref.jsonl", n, json.dumps(p).encode()) for n, p in enumerate(pairs, 1)]
    return [("a.jsonl", n, data) for n, data in enumerate(rows, 1)] + preference


def curate(raw: list[Path] | list[tuple[str, int, bytes]], engine: str, **cfg) -> CurateResult:
    """curate's streaming path on files, or on (file, line, bytes) triples written to files."""
    params = CurateParams(engine=engine, quality=QUALITY, **cfg)
    if all(isinstance(item, Path) for item in raw):
        return curate_files(raw, TaskParams(), params)
    return curate_lines(raw, TaskParams(), params)


@spark_installed
@pytest.mark.parametrize("name", ["exact_duplicate", "near_duplicate"])
def test_spark_decides_as_local_on_the_duplicate_fixtures(name: str) -> None:
    local, spark = curate(fixture(name), "local"), curate(fixture(name), "spark")
    assert local.duplicates, "the fixture has no duplicate"
    assert spark.kept == local.kept
    assert spark.duplicates == local.duplicates
    assert spark.quarantined == local.quarantined


@spark_installed
@pytest.mark.parametrize(
    ("near", "group", "conflicts"),
    [(0.7, 0.5, True), (0.9, 0.3, False)],  # at 0.9 the copies that answer differently stay
)
def test_spark_decides_as_local_on_planted_duplicates(
    near: float, group: float, conflicts: bool
) -> None:
    lines = planted_rows()
    local = curate(lines, "local", near_dup_threshold=near, group_threshold=group)
    spark = curate(lines, "spark", near_dup_threshold=near, group_threshold=group)
    kinds = {record["kind"] for record in local.duplicates}
    assert kinds == {"exact", "near"}, "the file must hold both kinds of duplicate"
    assert any(not record.get("same_target", True) for record in local.duplicates) == conflicts
    assert any(record["source"].startswith("pref.jsonl") for record in local.duplicates)
    assert len({row["group"] for row in local.kept}) < len(local.kept), "no group formed"
    # kept rows (with their groups), duplicates (kind, kept-as, similarity), preferences
    assert spark.kept == local.kept
    assert spark.duplicates == local.duplicates
    assert spark.preferences == local.preferences
    assert spark.decisions.duplicate_of == local.decisions.duplicate_of
    assert spark.decisions.group_of == local.decisions.group_of


def test_an_engine_that_is_not_installed_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    with pytest.raises(StageError, match=r"curate\.engine=spark.*pip install -e '\.\[scale\]'"):
        curate(fixture("near_duplicate"), "spark")


def test_spark_without_java_says_so(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", types.ModuleType("pyspark"))
    monkeypatch.setattr(dedup_engine, "java_found", lambda: False)
    with pytest.raises(StageError, match=r"curate\.engine=spark needs Java 17"):
        curate(fixture("near_duplicate"), "spark")


def test_engine_is_a_checked_param() -> None:
    assert CurateParams().engine == "local"
    with pytest.raises(ValueError, match="engine"):
        CurateParams(engine="dask")
