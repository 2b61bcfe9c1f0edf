"""The split is a pure function of (seed, group id): deterministic, stable as data grows,
stratified, group-aware; contaminated train rows are found and removed; replay is mixed in."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.data import splitting
from {{ cookiecutter.module_name }}.data.contamination import OverlapIndex
from {{ cookiecutter.module_name }}.data.splitting import (
    MIN_STRATUM_GROUPS,
    SPLITS,
    assign_split,
    replay_count,
    split_rows,
    unit_interval,
)
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json, read_jsonl, write_jsonl
from {{ cookiecutter.module_name }}.stages import split as split_stage

VAL, TEST = 0.15, 0.15


def ids(n: int, prefix: str = "row") -> list[str]:
    return [hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest()[:16] for i in range(n)]


def rows(row_ids: list[str]) -> list[dict]:
    return [
        {
            "id": row_id,
            "prompt": [{"role": "user", "content": f"question {row_id}"}],
            "completion": [{"role": "assistant", "content": "answer"}],
            "source": f"data/raw/a.jsonl:{line}",
        }
        for line, row_id in enumerate(row_ids, start=1)
    ]


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
        "seed: 3\nsplit: {val_fraction: 0.2, test_fraction: 0.2, replay_fraction: 0.0}\n"
    )
    write_jsonl(Path("data/curated/train_pool.jsonl"), rows(ids(200)))
    split_stage.main()
    report = read_json(Path("reports/split.json"))
    parts = {name: read_jsonl(Path(f"data/splits/{name}.jsonl")) for name in SPLITS}
    assert report["counts"] == {name: len(part) for name, part in parts.items()}
    assert sum(report["counts"].values()) == 200
    expected = split_rows([r | {"origin": "task"} for r in rows(ids(200))], 3, 0.2, 0.2)
    assert parts == expected
    for name in SPLITS:
        digest = hashlib.sha256(Path(f"data/splits/{name}.jsonl").read_bytes()).hexdigest()
        assert report["sha256"][name] == digest


def test_stage_refuses_too_few_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 3\n")
    write_jsonl(Path("data/curated/train_pool.jsonl"), rows(ids(2)))
    with pytest.raises(StageError, match="too few"):
        split_stage.main()


# ------------------------------------------------------------------- groups and strata


def test_a_group_lands_in_one_split() -> None:
    data = rows(ids(300))
    for row in data[:60]:
        row["group"] = "shared-group"
    parts = split_rows(data, 42, VAL, TEST)
    homes = {
        name for name, part in parts.items() for row in part if row.get("group") == "shared-group"
    }
    assert len(homes) == 1
    assert splitting.groups_across_splits(parts) == 0
    (home,) = homes
    other = "val" if home != "val" else "test"
    member = next(row for row in parts[home] if row.get("group") == "shared-group")
    parts[other].append(member)  # what a broken split would do
    assert splitting.groups_across_splits(parts) == 1


def labelled(n: int, label: str) -> list[dict]:
    data = rows(ids(n, prefix=label))
    for row in data:
        row["completion"] = [{"role": "assistant", "content": json.dumps({"category": label})}]
    return data


def test_every_big_enough_stratum_gets_val_and_test_rows() -> None:
    # 12 groups: with fractions 0.1 each, some seed leaves a stratum without val or test rows
    data = labelled(300, "common") + labelled(MIN_STRATUM_GROUPS + 2, "rare")
    for seed in range(20):
        parts = split_rows(data, seed, 0.1, 0.1, stratify_by="category")
        for name in ("val", "test"):
            assert any("rare" in row["completion"][0]["content"] for row in parts[name]), seed


def test_stratum_repair_moves_only_train_rows() -> None:
    data = labelled(300, "common") + labelled(MIN_STRATUM_GROUPS + 2, "rare")
    for seed in range(20):
        plain = assignment(split_rows(data, seed, 0.1, 0.1))
        strat = assignment(split_rows(data, seed, 0.1, 0.1, stratify_by="category"))
        moved = {row_id for row_id in plain if plain[row_id] != strat[row_id]}
        assert all(plain[row_id] == "train" for row_id in moved)
        assert len(moved) <= 2


def test_stratum_reads_metadata_before_the_json_target() -> None:
    row = rows(ids(1))[0] | {"meta": {"category": "from-meta"}}
    assert splitting.stratum(row, "category") == "from-meta"
    assert splitting.stratum(labelled(1, "billing")[0], "category") == "billing"
    assert splitting.stratum(rows(ids(1))[0], "category") == "(missing)"
    assert splitting.stratum(rows(ids(1))[0], None) == "all"


def test_auto_stratifies_by_the_most_imbalanced_score_field() -> None:
    data = labelled(80, "common") + labelled(20, "rare")
    for i, row in enumerate(data):  # priority: balanced; category: 80/20; reply: free text
        target = {"category": json.loads(row["completion"][0]["content"])["category"]}
        target |= {"priority": ("low", "high")[i % 2], "reply": f"text {i}"}
        row["completion"] = [{"role": "assistant", "content": json.dumps(target)}]
    assert splitting.auto_stratify_field(data, ["priority", "category", "reply"]) == "category"
    assert splitting.auto_stratify_field(data, ["priority"]) == "priority"
    assert splitting.auto_stratify_field(data, ["reply"]) is None  # 100 values: not a label
    assert splitting.auto_stratify_field(data, []) is None


def test_stage_reports_the_field_auto_resolved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = labelled(150, "common") + labelled(MIN_STRATUM_GROUPS + 2, "rare")
    monkeypatch.chdir(tmp_path)
    params = {
        "seed": 3,
        "task": {"target_format": "json", "fields": ["category"], "score_fields": ["category"]},
        "split": {
            "val_fraction": 0.1,
            "test_fraction": 0.1,
            "fraction_tolerance": 0.5,
            "replay_fraction": 0.0,
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_jsonl(Path("data/curated/train_pool.jsonl"), data)
    split_stage.main()
    report = read_json(Path("reports/split.json"))
    assert (report["stratify_by_asked"], report["stratify_by"]) == ("auto", "category")
    assert report["strata"]["rare"]["val"] >= 1 and report["strata"]["rare"]["test"] >= 1


# ------------------------------------------------------------------------ contamination

TICKET = "the export dialog freezes for forty seconds before any file is written to disk"


def test_overlap_share_is_per_item_ngrams() -> None:
    index = OverlapIndex([TICKET, "What is the capital of France?"], n=8)
    assert [o.item for o in index.overlaps(f"Hello team, {TICKET}. Thanks!", 0.7)] == [0]
    half = " ".join(TICKET.split()[:9])  # 2 of the 7 8-grams of the 14-word item
    assert index.overlaps(half, 0.7) == []
    assert index.overlaps(half, 0.2)[0].share == round(2 / 7, 4)


def test_short_items_match_only_whole() -> None:
    index = OverlapIndex(["What is the capital of France?"], n=8)
    assert index.overlaps("Quiz: what is the capital of france? Paris.", 0.7)[0].share == 1.0
    assert index.overlaps("What is the capital of Spain?", 0.7) == []


def stage_rows(n: int) -> list[dict]:
    data = rows(ids(n))
    for i, row in enumerate(data):
        row["prompt"] = [{"role": "user", "content": f"ticket {i}: " + " ".join(ids(12, str(i)))}]
    return data


def run_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: list[dict], **extra) -> dict:
    monkeypatch.chdir(tmp_path)
    split = {"val_fraction": 0.2, "test_fraction": 0.2, "replay_fraction": 0.0, **extra}
    params = {"seed": 3, "split": split}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_jsonl(Path("data/curated/train_pool.jsonl"), data)
    split_stage.main()
    return read_json(Path("reports/split.json"))


def test_stage_removes_train_rows_containing_a_test_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = stage_rows(100)
    parts = split_rows(data, 3, 0.2, 0.2)
    leaked = parts["test"][0]["prompt"][0]["content"]
    copy = rows(ids(1, "copy"))[0]
    copy["prompt"] = [{"role": "user", "content": "Fwd: " + leaked}]
    copy["source"] = "data/raw/b.jsonl:1"
    data = data + [copy]
    assert splitting.assign_split(copy["id"], 3, 0.2, 0.2) == "train"
    report = run_stage(tmp_path, monkeypatch, data)
    train_sources = {r["source"] for r in read_jsonl(Path("data/splits/train.jsonl"))}
    assert "data/raw/b.jsonl:1" not in train_sources
    assert report["contamination"]["removed"] == 1
    (overlap,) = report["contamination"]["overlaps"]
    assert overlap["train"] == "data/raw/b.jsonl:1" and overlap["with"].startswith("test:")
    assert Path("reports/data.md").exists() is False  # no curate report in this directory


def test_stage_contamination_fail_and_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = stage_rows(100)
    leaked = split_rows(data, 3, 0.2, 0.2)["val"][0]["prompt"][0]["content"]
    copy = rows(ids(1, "copy"))[0] | {"source": "data/raw/b.jsonl:1"}
    copy["prompt"] = [{"role": "user", "content": leaked}]
    with pytest.raises(StageError, match="contamination=fail"):
        run_stage(tmp_path, monkeypatch, data + [copy], contamination="fail")
    report = run_stage(tmp_path, monkeypatch, data + [copy], contamination="warn")
    assert report["contamination"]["train_rows"] == 1 and report["contamination"]["removed"] == 0


# -------------------------------------------------------------------------------- replay


def test_replay_count_makes_the_fraction_of_the_mix() -> None:
    assert replay_count(90, 0.1) == 10
    assert replay_count(100, 0.0) == 0


def test_stage_mixes_tagged_replay_rows_into_train_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = [
        {
            "messages": [
                {"role": "user", "content": f"Rewrite sentence number {i} politely."},
                {"role": "assistant", "content": f"Here is sentence {i}, politely."},
            ]
        }
        for i in range(50)
    ]
    write_jsonl(tmp_path / "data" / "replay_rows.jsonl", replay)  # the replay stage's output
    report = run_stage(tmp_path, monkeypatch, stage_rows(100), replay_fraction=0.2)
    train = read_jsonl(Path("data/splits/train.jsonl"))
    origins = Counter(row["origin"] for row in train)
    assert origins["replay"] == report["replay_rows"] == replay_count(origins["task"], 0.2)
    for name in ("val", "test"):
        assert {row["origin"] for row in read_jsonl(Path(f"data/splits/{name}.jsonl"))} == {"task"}


# ------------------------------------------------------------------- asked-for fractions


def test_stage_reports_asked_fractions_and_the_largest_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = stage_rows(200)
    for row in data[:3]:
        row["group"] = "g-templated"
    report = run_stage(tmp_path, monkeypatch, data)
    assert report["asked_fractions"] == {"val": 0.2, "test": 0.2}
    top = report["largest_groups"][0]
    assert (top["group"], top["rows"], top["share"]) == ("g-templated", 3, 0.015)
    assert top["example"].startswith("ticket 0:")
    for name in ("val", "test"):
        assert abs(report["fractions"][name] - 0.2) <= 0.1


def test_a_group_too_large_for_the_asked_fractions_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """~90 % of the rows chained into one near-duplicate group: never a silent 98/1/1."""
    data = stage_rows(200)
    for row in data[:180]:
        row["group"] = "g-placeholder-chain"
    with pytest.raises(StageError) as info:
        run_stage(tmp_path, monkeypatch, data)
    message = str(info.value)
    assert "g-placeholder-chain" in message and "180 of 200 rows (90%)" in message
    assert "ticket 0:" in message and "split.fraction_tolerance" in message
    assert not Path("data/splits/train.jsonl").exists()


def test_the_allowed_deviation_widens_only_on_small_data() -> None:
    assert splitting.allowed_deviation(0.15, 10_000, 0.05) == 0.05
    small = splitting.allowed_deviation(0.15, 100, 0.05)
    assert 0.1 < small < 0.11  # three standard deviations of 100 Bernoulli(0.15) draws
