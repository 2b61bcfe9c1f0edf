"""A task the template was not built around: free-text targets none of us wrote (the first
line of Python standard-library docstrings, "What does `module.func` do?"). curate finds
them free text and a null task.scorer resolves to chrF, for every stage that loads the
params; an exact-match scorer set by hand on them is kept and warned about; short answers
keep exact matching."""

import importlib
import inspect
import json
import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.data.curate_report import scoring_lines, scoring_report
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.params import TaskParams, load_params
from {{ cookiecutter.module_name }}.selection.guardrails import ranking_metric
from {{ cookiecutter.module_name }}.stages import curate as curate_stage

MODULES = (
    "base64", "bisect", "calendar", "colorsys", "difflib", "fnmatch", "functools", "heapq",
    "json", "math", "operator", "os.path", "random", "shutil", "statistics", "string",
    "textwrap",
)  # fmt: skip
ROWS = 120


def stdlib_functions() -> list[tuple[str, str, str]]:
    """(module, name, first docstring line) of public functions with a one-line summary of at
    least three words, sorted, first line unique: data no one here wrote."""
    found, seen = [], set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, value in sorted(vars(module).items()):
            if name.startswith("_") or not callable(value) or inspect.isclass(value):
                continue
            summary = (inspect.getdoc(value) or "").strip().splitlines()
            first = summary[0].strip() if summary else ""
            if len(first.split()) >= 3 and "(" not in first and first not in seen:
                seen.add(first)
                found.append((module_name, name, first))
    return found


def chat(question: str, answer: str) -> dict:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": turns}


def summary_rows() -> list[dict]:
    """A question about a function in, its one-line summary out."""
    functions = stdlib_functions()
    assert len(functions) >= ROWS, f"only {len(functions)} standard-library summaries"
    return [chat(f"What does `{m}.{n}` do?", first) for m, n, first in functions[:ROWS]]


def module_rows() -> list[dict]:
    """The same functions, answered by their module's name: a label set, not free text."""
    return [chat(f"Which module defines `{n}`?", m) for m, n, _ in stdlib_functions()[:ROWS]]


@pytest.fixture
def stage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return tmp_path


def run_curate(root: Path, rows: list[dict], scorer: str | None) -> dict:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (root / "data" / "raw" / "stdlib.jsonl").write_text(text)
    task = {"target_format": "text", "fields": [], "score_fields": [], "scorer": scorer}
    params = {"base": {"model": "models/base"}, "task": task, "train": {"max_length": 256}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    curate_stage.main()
    return read_json(root / "reports" / "curate.json")


def test_free_text_targets_are_scored_with_chrf_in_every_stage(
    stage_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    report = run_curate(stage_dir, summary_rows(), None)
    assert report["kept"] >= ROWS * 0.9
    assert report["targets"]["free_text"]
    scoring = report["scoring"]
    assert scoring["free_text"] and scoring["scorer"] == "chrf"
    assert scoring["chosen_by"] == "free-text targets" and scoring["warning"] is None
    assert "free text" in capsys.readouterr().out
    task = load_params().task  # what eval, select, improve and sweep load
    assert task.scorer is None and task.resolved_scorer == "chrf" and task.graded
    assert ranking_metric(task) == "task_score"
    assert load_params(curate_report=None).task.resolved_scorer == "normalised"


def test_an_exact_scorer_set_on_free_text_is_kept_and_warned_about(
    stage_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    report = run_curate(stage_dir, summary_rows(), "normalised")
    scoring = report["scoring"]
    assert scoring["scorer"] == "normalised" and scoring["chosen_by"] == "task.scorer"
    assert "scores ~0" in scoring["warning"]
    assert "WARNING: task.scorer normalised on free-text targets" in capsys.readouterr().out
    assert load_params().task.resolved_scorer == "normalised"


def test_a_label_answer_keeps_exact_matching(stage_dir: Path) -> None:
    scoring = run_curate(stage_dir, module_rows(), None)["scoring"]
    assert not scoring["free_text"] and scoring["scorer"] == "normalised"
    assert load_params().task.resolved_scorer == "normalised"


TEXT = TaskParams()


def test_distinct_short_answers_are_not_free_text() -> None:
    """Names and numbers, each written once: exact matching is what they need."""
    targets = {"free_text": True, "distinct": 50, "rows": 50}
    short = scoring_report(TEXT, targets, [1] * 30 + [2] * 20, [6] * 50)
    assert not short["free_text"] and short["scorer"] == "normalised"
    assert scoring_lines(short) == []
    # a script written without spaces: long in characters, one "word"
    unspaced = scoring_report(TEXT, targets, [1] * 50, [40] * 50)
    assert unspaced["free_text"] and unspaced["scorer"] == "chrf"


def test_json_targets_and_chosen_scorers_are_left_alone() -> None:
    targets = {"free_text": True, "distinct": 50, "rows": 50}
    json_task = TaskParams(target_format="json", fields=["a"], score_fields=["a"])
    assert scoring_report(json_task, targets, [9] * 50, [60] * 50)["scorer"] == "json_fields"
    rouge = scoring_report(TaskParams(scorer="rougeL"), targets, [9] * 50, [60] * 50)
    assert rouge["scorer"] == "rougeL" and rouge["warning"] is None
    assert TaskParams(scorer="exact").for_targets(True).resolved_scorer == "exact"
