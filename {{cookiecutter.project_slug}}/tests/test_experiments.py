"""`make compare-exps`: two experiments' committed per-item records paired item by item, in a
throwaway git repository whose experiment ref is laid out as DVC lays them out; and the
winner of `make improve`/`make sweep` against the rest, from the same records."""

import shutil
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.commands.compare_exps import main
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.experiments.compare import resolve
from {{ cookiecutter.module_name }}.experiments.noise import versus_rest
from {{ cookiecutter.module_name }}.experiments.runs import BASELINE, Run, collect_tests
from {{ cookiecutter.module_name }}.io import write_json
from {{ cookiecutter.module_name }}.paths import EVAL_DIR, RL_EVAL_DIR, TEST_ITEMS

PROJECT = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def write_run(model: str, task_right: int, qa_right: int, n: int = 40) -> None:
    """What select and eval leave in the workspace: test items of the selected `model` (the
    first `task_right` of n correct) and its eval report (the first `qa_right` QA items)."""
    task = [
        {"id": f"t{i}", "correct": i < task_right, "score": float(i < task_right)}
        | {"exact": False, "format_ok": True, "drift": False}
        for i in range(n)
    ]
    entry = {"model": model, "items": {"task": task}}
    write_json(TEST_ITEMS, {"split": "test", "selected": entry, "base": {**entry, "model": "base"}})
    general = {
        "general_qa": [{"id": f"q{i}", "correct": i < qa_right} for i in range(20)],
        "instruction_follow": [{"id": f"i{i}", "correct": True} for i in range(5)],
    }
    eval_dir = RL_EVAL_DIR if model.startswith("rl-") else EVAL_DIR  # eval_rl's reports
    write_json(eval_dir / f"{model}.json", {"model": model, "items": general})


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HEAD: a run selecting checkpoint-4 (10 of 40 test items right); experiment `high-lr`
    (a ref under refs/exps, as `dvc exp run` makes): checkpoint-6 with 30 of 40."""
    monkeypatch.chdir(tmp_path)
    for key, value in {"NAME": "Test", "EMAIL": "test@example.com"}.items():
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)
    git("init", "-q")
    shutil.copy(PROJECT / "params.yaml", "params.yaml")
    write_run("checkpoint-4", 10, 12)
    git("add", "-A")
    git("commit", "-qm", "baseline")
    baseline = git("rev-parse", "HEAD")
    write_run("checkpoint-6", 30, 11)
    git("add", "-A")
    git("commit", "-qm", "high-lr")
    git("update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/high-lr", "HEAD")
    git("reset", "-q", "--hard", baseline)
    return tmp_path


def test_two_experiments_are_compared_item_by_item(
    repo: Path, capsys: pytest.CaptureFixture
) -> None:
    main(["HEAD", "high-lr"])
    out = capsys.readouterr().out
    assert out.startswith("B = high-lr (checkpoint-6) minus A = HEAD (checkpoint-4)")
    lines = {line.split()[0]: line for line in out.splitlines()[3:]}
    # 20 more of 40 test items right, none lost: McNemar 2 / 2**20
    assert lines["task_accuracy"].split()[1:5] == ["test", "40", "0.250", "0.750"]
    assert "+0.500 [+0.3" in lines["task_accuracy"] and "< 0.001  better" in lines["task_accuracy"]
    # one general QA item fewer: inside the noise
    assert lines["general_qa"].split()[1:5] == ["general", "20", "0.600", "0.550"]
    assert lines["general_qa"].endswith("no difference detectable on 20 items")
    assert lines["task_score"].split()[-2:] == ["-", "better"]  # scores: no McNemar
    assert "note:" not in out  # the same test items


def test_the_workspace_is_the_default_b(repo: Path, capsys: pytest.CaptureFixture) -> None:
    main(["HEAD", "workspace"])
    out = capsys.readouterr().out
    assert "minus A = HEAD" in out and "no difference detectable on 40 items" in out


def test_an_rl_checkpoint_is_compared_on_eval_rl_s_report(
    repo: Path, capsys: pytest.CaptureFixture
) -> None:
    write_run("rl-checkpoint-8", 20, 12)
    main(["HEAD", "workspace"])
    out = capsys.readouterr().out
    assert "B = workspace (rl-checkpoint-8) minus A = HEAD (checkpoint-4)" in out
    assert [line.split()[1:5] for line in out.splitlines() if line.startswith("general_qa")] == [
        ["general", "20", "0.600", "0.600"]
    ]


def test_a_different_test_split_is_paired_on_the_shared_items(
    repo: Path, capsys: pytest.CaptureFixture
) -> None:
    write_run("checkpoint-4", 10, 12, n=30)
    main(["HEAD", "workspace"])
    assert "note: the test splits differ (A 40 items, B 30): only the 30 in both" in (
        capsys.readouterr().out
    )


def test_names_that_are_not_experiments_say_what_is_accepted(repo: Path) -> None:
    with pytest.raises(StageError, match="neither a DVC experiment .* nor a git revision"):
        resolve("no-such-exp")
    head = git("rev-parse", "HEAD")
    git("update-ref", f"refs/exps/ff/{'0' * 38}/high-lr", head)  # same name, other baseline
    with pytest.raises(StageError, match="names 2 experiments"):
        resolve("high-lr")


def test_a_commit_without_test_items_asks_for_a_rerun(repo: Path) -> None:
    git("rm", "-q", str(TEST_ITEMS))
    git("commit", "-qm", "before test_items.json")
    with pytest.raises(StageError, match="has no reports/test_items.json.*run that experiment"):
        main(["HEAD", "high-lr"])


def selected(model: str, right: int, n: int = 40) -> dict:
    task = [{"id": f"t{i}", "correct": i < right, "score": float(i < right)} for i in range(n)]
    return {"model": model, "items": {"task": task}}


def test_the_winner_against_the_rest_holm_adjusted() -> None:
    reports = {"a": selected("c-6", 30), "b": selected("c-4", 10), "c": selected("c-5", 29)}
    settings = {"samples": 500, "confidence": 0.95, "seed": 0}
    found = {v.other: v for v in versus_rest("a", reports, "task_accuracy", settings)}
    assert set(found) == {"b", "c"}
    # 20 items only a gets right: McNemar 2 / 2**20; Holm doubles the smaller of two p-values
    assert found["b"].p == pytest.approx(2 / 2**20)
    assert found["b"].adjusted == pytest.approx(4 / 2**20)
    assert (found["b"].n, found["b"].diff, found["b"].verdict) == (40, 0.5, "better")
    # one item apart: p 1, and Holm keeps the larger p-value at least as large
    assert (found["c"].p, found["c"].adjusted) == (1.0, 1.0)
    assert found["c"].verdict == "no difference detectable"
    # a different test split: paired on the shared items only; none shared: nothing to call
    reports["d"] = {**selected("c-1", 0, 5), "items": {"task": [{"id": "x", "correct": True}]}}
    lonely = {v.other: v for v in versus_rest("a", reports, "task_accuracy", settings)}["d"]
    assert (lonely.n, lonely.verdict) == (0, "no items in common")


def test_improve_reads_each_runs_committed_test_items(repo: Path) -> None:
    refs = git("for-each-ref", "--format=%(objectname)", "refs/exps").split()
    baseline = git("rev-parse", "HEAD")
    git("rm", "-q", str(TEST_ITEMS))
    git("commit", "-qm", "before test_items.json")
    older = git("rev-parse", "HEAD")
    git("reset", "-q", "--hard", baseline)
    runs = [
        Run(BASELINE, "workspace", BASELINE),
        Run("high-lr", refs[0], "success"),
        Run("older", older, "success"),
        Run("broken", refs[0], "failed"),  # its commit holds old files: never read
        Run("waiting", refs[0], "queued"),
    ]
    tests = collect_tests(runs, TEST_ITEMS)
    assert set(tests) == {BASELINE, "high-lr"}
    assert (
        tests[BASELINE]["model"] == "checkpoint-4" and tests["high-lr"]["model"] == "checkpoint-6"
    )
