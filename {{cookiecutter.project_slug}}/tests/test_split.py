"""The split is a pure function of (seed, row id): deterministic and stable as data grows."""

import hashlib
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }} import split
from {{ cookiecutter.module_name }}.jsonio import (
    read_json,
    read_jsonl,
    write_jsonl,
)
from {{ cookiecutter.module_name }}.split import (
    SPLITS,
    assign_split,
    split_rows,
    unit_interval,
)

VAL, TEST = 0.15, 0.15


def ids(n: int, prefix: str = "row") -> list[str]:
    return [hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest()[:16] for i in range(n)]


def rows(row_ids: list[str]) -> list[dict]:
    return [{"id": row_id, "prompt": [], "completion": []} for row_id in row_ids]


def assignment(parts: dict[str, list[dict]]) -> dict[str, str]:
    return {row["id"]: name for name, part in parts.items() for row in part}


def test_same_ids_same_split_across_calls() -> None:
    data = rows(ids(500))
    first = split_rows(data, 42, VAL, TEST)
    second = split_rows(list(data), 42, VAL, TEST)
    assert first == second
    assert set(first) == set(SPLITS)
    assert [assign_split(r["id"], 42, VAL, TEST) for r in data] == [
        assign_split(r["id"], 42, VAL, TEST) for r in data
    ]


def test_order_of_rows_does_not_matter() -> None:
    data = rows(ids(300))
    forward = assignment(split_rows(data, 7, VAL, TEST))
    backward = assignment(split_rows(list(reversed(data)), 7, VAL, TEST))
    assert forward == backward


def test_adding_rows_never_moves_existing_rows() -> None:
    old = rows(ids(1000))
    new = rows(ids(1000, prefix="new"))
    before = assignment(split_rows(old, 42, VAL, TEST))
    after = assignment(split_rows(old + new, 42, VAL, TEST))
    assert {row_id: after[row_id] for row_id in before} == before
    assert len(after) == 2000


def test_every_row_lands_in_exactly_one_split() -> None:
    data = rows(ids(1000))
    parts = split_rows(data, 42, VAL, TEST)
    assert sum(len(part) for part in parts.values()) == len(data)
    assert len(assignment(parts)) == len(data)


@pytest.mark.parametrize(("val", "test"), [(0.15, 0.15), (0.1, 0.2), (0.05, 0.3)])
def test_fractions_roughly_respected(val: float, test: float) -> None:
    n = 5000
    parts = split_rows(rows(ids(n)), 42, val, test)
    assert abs(len(parts["val"]) / n - val) <= 0.03
    assert abs(len(parts["test"]) / n - test) <= 0.03
    assert abs(len(parts["train"]) / n - (1 - val - test)) <= 0.03


def test_seed_changes_the_assignment() -> None:
    data = ids(2000)
    a = [assign_split(row_id, 42, VAL, TEST) for row_id in data]
    b = [assign_split(row_id, 43, VAL, TEST) for row_id in data]
    moved = sum(x != y for x, y in zip(a, b, strict=True)) / len(data)
    # Independent draws disagree on 1 - (0.7^2 + 0.15^2 + 0.15^2) = 46.5 % of rows.
    assert 0.35 < moved < 0.6


def test_unit_interval_is_uniform_ish() -> None:
    values = [unit_interval(row_id, 0) for row_id in ids(4000)]
    assert all(0 <= v < 1 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.02
    # each tenth of [0, 1) gets roughly a tenth of the rows
    deciles = [sum(int(v * 10) == d for v in values) / len(values) for d in range(10)]
    assert all(abs(share - 0.1) < 0.025 for share in deciles)


def test_growing_val_fraction_only_moves_rows_out_of_train() -> None:
    """Test rows are the lowest hash values, so changing val_fraction leaves test alone."""
    data = rows(ids(2000))
    small = assignment(split_rows(data, 42, 0.1, TEST))
    large = assignment(split_rows(data, 42, 0.2, TEST))
    for row_id, name in small.items():
        if name == "test":
            assert large[row_id] == "test"
        if name == "val":
            assert large[row_id] == "val"


def test_stage_writes_splits_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "seed: 3\nsplit: {val_fraction: 0.2, test_fraction: 0.2}\n"
    )
    write_jsonl(Path("data/curated/train_pool.jsonl"), rows(ids(200)))
    split.main()
    report = read_json(Path("reports/split.json"))
    parts = {name: read_jsonl(Path(f"data/splits/{name}.jsonl")) for name in SPLITS}
    assert report["counts"] == {name: len(part) for name, part in parts.items()}
    assert sum(report["counts"].values()) == 200
    assert parts == split_rows(rows(ids(200)), 3, 0.2, 0.2)
    for name in SPLITS:
        digest = hashlib.sha256(Path(f"data/splits/{name}.jsonl").read_bytes()).hexdigest()
        assert report["sha256"][name] == digest


def test_stage_refuses_too_few_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    write_jsonl(Path("data/curated/train_pool.jsonl"), rows(ids(2)))
    with pytest.raises(ValueError, match="too few"):
        split.main()
