"""End to end, bring your own data: bake `task_preset=custom`, drop the messy data set of
tests/messy_data.py into data/raw (three formats, placeholders, templated prompts, other
languages, multi-turn chats, long and malformed rows), grade free text with chrF, and run
`dvc repro` through select on the tiny random Llama. Every raw line must be accounted for by
curate with the reason the data set's answer key gives it."""

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from bakery import HEADLINE, assert_baked_tests_pass, bake, dvc, git, use_tiny_model
from messy_data import PLACEHOLDERS, SYSTEM_PROMPTS, Manifest, write_messy_data

pytestmark = pytest.mark.e2e

CUSTOM_PARAMS = {
    "task": {"scorer": "chrf"},
    "split": {"stratify_by": "topic"},  # raw-row metadata, imbalanced
}
VALID_SLICES = (
    "english",
    "multi_turn",
    "german",
    "spanish",
    "japanese",
    "arabic",
    "blurb",
    "templated_summary",
)
MIN_STRATUM_GROUPS = 10  # splitting.py: a stratum this large gets val and test groups


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def byod(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> tuple[Path, Manifest]:
    """A custom bake with the messy data set, run once through `dvc repro`."""
    root = tmp_path_factory.mktemp("byod")
    project = bake(root, cc_config, task_preset="custom")
    use_tiny_model(project, root / "tiny-llama", CUSTOM_PARAMS)
    params = yaml.safe_load((project / "params.yaml").read_text())
    manifest = write_messy_data(
        project / "data/raw", keep_copies=params["curate"]["keep_target_copies"]
    )
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Bring our own data")
    dvc(project, "repro")
    return project, manifest


@pytest.fixture(scope="module")
def pool(byod: tuple[Path, Manifest]) -> dict[str, dict]:
    """The curated SFT rows by source (`data/raw/<file>:<line>`)."""
    project, _ = byod
    return {row["source"]: row for row in read_jsonl(project / "data/curated/train_pool.jsonl")}


def test_curate_accounts_for_every_raw_line(byod: tuple[Path, Manifest]) -> None:
    project, manifest = byod
    curate = json.loads((project / "reports/curate.json").read_text())
    duplicates = curate["duplicates"]["exact"] + curate["duplicates"]["near"]
    assert curate["rows_in"] == manifest.lines
    assert curate["rows_in"] == curate["kept"] + curate["quarantined"] + duplicates

    # every rejected row, and only those, with the reason the answer key gives it
    quarantine = read_jsonl(project / "data/quarantine.jsonl")
    reasons = {f"{row['file']}:{row['line']}": row["reason"] for row in quarantine}
    assert reasons == manifest.expected_reasons
    assert curate["reasons"] == dict(Counter(manifest.expected_reasons.values()))
    for row in quarantine:  # verbatim, as read (a Latin-1 line with replacement characters)
        lines = (project / row["file"]).read_bytes().split(b"\n")
        assert row["raw"] == lines[row["line"] - 1].decode("utf-8", errors="replace")

    copies = {row["source"]: row for row in read_jsonl(project / "data/curated/duplicates.jsonl")}
    assert {s: (row["kind"], row["duplicate_of"]) for s, row in copies.items()} == (
        manifest.duplicate_of
    )


def test_placeholder_targets_keep_only_a_few_copies(
    byod: tuple[Path, Manifest], pool: dict[str, dict]
) -> None:
    project, manifest = byod
    curate = json.loads((project / "reports/curate.json").read_text())
    findings = curate["targets"]["findings"]
    assert {f["reason"] for f in findings} == {"placeholder_target"}
    assert {f["target"] for f in findings} == {p.casefold() for p in PLACEHOLDERS}
    kept = Counter(
        target for source, target in manifest.placeholder_targets.items() if source in pool
    )
    keep = yaml.safe_load((project / "params.yaml").read_text())["curate"]["keep_target_copies"]
    assert kept == dict.fromkeys(PLACEHOLDERS, keep)
    # the kept copies are the first ones, in file order
    first: dict[str, list[str]] = defaultdict(list)
    for source, target in manifest.placeholder_targets.items():
        first[target].append(source)
    assert all(set(sources[:keep]) <= pool.keys() for sources in first.values())


def test_valid_rows_survive_curate_unchanged(
    byod: tuple[Path, Manifest], pool: dict[str, dict]
) -> None:
    """Other languages, multi-turn chats, varied system prompts and templated prompts are
    valid data: all kept, their text and metadata as written."""
    project, manifest = byod
    for name in VALID_SLICES:
        lost = [source for source in manifest.slices[name] if source not in pool]
        assert not lost, (name, lost)

    raw = {}
    for path in (project / "data/raw").glob("*.jsonl"):
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            raw[f"data/raw/{path.name}:{number}"] = line
    for name in ("german", "spanish", "japanese", "arabic", "multi_turn"):
        for source in manifest.slices[name]:
            row, written = pool[source], json.loads(raw[source])
            assert row["prompt"] + row["completion"] == written["messages"], source
            assert row["meta"] == {"topic": written["topic"]}
    for source in manifest.slices["multi_turn"]:
        turns = [m["role"] for m in pool[source]["prompt"] if m["role"] != "system"]
        assert turns[:3] == ["user", "assistant", "user"] and len(turns) in (3, 5), source

    systems = {
        m["content"] for row in pool.values() for m in row["prompt"] if m["role"] == "system"
    }
    assert set(SYSTEM_PROMPTS) <= systems
    max_length = yaml.safe_load((project / "params.yaml").read_text())["train"]["max_length"]
    assert all(row["tokens"] <= max_length for row in pool.values())
    assert all("topic" in row.get("meta", {}) for row in pool.values())


def test_split_keeps_fractions_groups_and_strata(
    byod: tuple[Path, Manifest], pool: dict[str, dict]
) -> None:
    project, _ = byod
    report = json.loads((project / "reports/split.json").read_text())
    params = yaml.safe_load((project / "params.yaml").read_text())["split"]
    splits = {
        name: read_jsonl(project / f"data/splits/{name}.jsonl") for name in ("train", "val", "test")
    }
    assert report["counts"] == {name: len(rows) for name, rows in splits.items()}
    removed = report["contamination"]["removed"]
    assert sum(report["counts"].values()) + removed == len(pool)

    n = len(pool)
    for name, asked in report["asked_fractions"].items():
        # split.fraction_tolerance, widened to 3 standard deviations on small data
        allowed = max(params["fraction_tolerance"], 3 * math.sqrt(asked * (1 - asked) / n))
        assert abs(report["fractions"][name] - asked) <= allowed, (name, report["fractions"])

    homes: dict[str, set[str]] = defaultdict(set)
    for name, rows in splits.items():
        for row in rows:
            homes[row["group"]].add(name)
    assert all(len(names) == 1 for names in homes.values())
    assert report["groups_across_splits"] == 0

    groups: dict[str, set[str]] = defaultdict(set)
    for row in pool.values():
        groups[row["meta"]["topic"]].add(row["group"])
    assert set(report["strata"]) == set(groups)
    for topic, members in groups.items():
        if len(members) >= MIN_STRATUM_GROUPS:
            counts = report["strata"][topic]
            assert counts["val"] > 0 and counts["test"] > 0, (topic, counts)
    assert min(len(m) for m in groups.values()) < MIN_STRATUM_GROUPS  # a rare topic exists


def test_graded_eval_and_select(byod: tuple[Path, Manifest]) -> None:
    project, _ = byod
    metrics = json.loads((project / "reports/metrics.json").read_text())
    for key in (*HEADLINE, "task_score", "val_task_score", "base_task_score"):
        assert key in metrics, key
    for key in ("task_score", "val_task_score", "base_task_score", "fewshot_task_score"):
        assert 0 <= metrics[key] <= 1, (key, metrics[key])

    val = read_jsonl(project / "data/splits/val.jsonl")
    reports = {p.stem: json.loads(p.read_text()) for p in (project / "reports/eval").glob("*.json")}
    assert {"base", "fewshot"} < reports.keys()
    min_score = yaml.safe_load((project / "params.yaml").read_text())["task"]["min_score"]
    for report in reports.values():
        items = report["items"]["task"]
        assert [item["id"] for item in items] == [row["id"] for row in val]
        assert all(0 <= item["score"] <= 1 for item in items)
        assert all(item["correct"] == (item["score"] >= min_score) for item in items)

    selected = metrics["selected"]
    assert reports[selected]["role"] == "checkpoint"
    assert metrics["val_task_score"] == reports[selected]["metrics"]["task_score"]
    page = (project / "reports/report.md").read_text()
    if metrics["guardrails_passed"]:
        assert f"Selected **{selected}**" in page and "by val task score" in page
    else:  # the tiny model's outputs: the best effort is still ranked by the graded score
        checkpoints = [r for r in reports.values() if r["role"] == "checkpoint"]

        def rank(r: dict) -> tuple:
            return (r["metrics"]["task_score"], r["metrics"]["format_correct"], -r["step"])

        assert selected == max(checkpoints, key=rank)["model"]
        assert f"Best effort: **{selected}**" in page
    out = project / "models/selected"
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((out / "selection.json").read_text())["checkpoint"] == selected
    assert (out / "README.md").exists()
    exports = project / "models/export"
    assert (exports / "merged/model.safetensors").exists()
    assert (exports / "gguf/model-q8_0.gguf").exists() and (exports / "gguf/Modelfile").exists()
    parity = json.loads((project / "reports/export.json").read_text())
    assert set(parity["exports"]) == {"adapter", "merged_f16", "gguf_q8_0"}


def test_baked_custom_project_tests_pass(byod: tuple[Path, Manifest]) -> None:
    """The custom bake ships no demo data; its own tests regenerate what they need. Its unit
    tests, and one tiny-model pipeline test (which regenerates the demo data): the other
    tiny-model tests run the same code as in the default bake (test_pipeline_e2e.py)."""
    assert_baked_tests_pass(byod[0], "-m", "not slow and not e2e and not real_model")
    assert_baked_tests_pass(byod[0], "tests/test_pipeline.py")
