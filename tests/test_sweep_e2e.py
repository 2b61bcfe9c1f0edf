"""End to end: `make sweep` on a baked project with a tiny random Llama. A typo'd grid key fails
before anything is queued; a 2-point grid runs two workers at a time and prints `dvc exp show`
sorted by the val ranking metric; running it again reuses both experiments; a point that
fails at run time (a base model that does not exist passes the schema, then base stops) is
reported with the end of its `dvc queue logs` and the command that re-queues it."""

import json
import os
import re
from pathlib import Path

import pytest
from bakery import bake, dvc, git, run, use_tiny_model

pytestmark = pytest.mark.e2e

# As test_improve_e2e: half an epoch, the final checkpoint only, no few-shot baseline, and
# guardrails every run passes. lora_r 4 is the workspace's own value (the style-format
# preset): that point re-runs nothing but check_params, so only lora_r 8 trains.
SWEEP_PARAMS = {
    "train": {"save_steps": 1000, "num_epochs": 0.5},
    "eval": {"fewshot_k": 0},
    "select": {"min_format_correct": 0.0, "min_general_qa_ratio": 0.0},
}
GRID = "-S train.lora_r=4,8"
VAL = "val_task_accuracy"  # the ranking metric of the support-triage task (not graded)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> Path:
    """A baked default project on the tiny model, its baseline run committed."""
    root = tmp_path_factory.mktemp("sweep")
    project = bake(root, cc_config)
    use_tiny_model(project, root / "tiny-llama", SWEEP_PARAMS)
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Baseline run")
    return project


def sweep(project: Path, grid: str, *extra: str) -> tuple[int, str]:
    result = run(project, "make", "sweep", "VENV=", f"SWEEP={grid}", *extra, check=False)
    return result.returncode, result.stdout + result.stderr


def experiments(project: Path) -> dict[str, dict]:
    """Experiment name -> {state, params (params.yaml), metrics (reports/metrics.json)}."""
    found = {}
    for entry in json.loads(dvc(project, "exp", "show", "--json").stdout):
        for exp in entry.get("experiments") or []:
            data = exp["revs"][0].get("data") or {}
            found[exp["name"]] = {
                "state": (exp.get("executor") or {}).get("state", "success"),
                "params": data["params"]["params.yaml"]["data"],
                "metrics": ((data.get("metrics") or {}).get("reports/metrics.json") or {}).get(
                    "data", {}
                ),
            }
    return found


def table_rows(out: str, column: str) -> list[tuple[str, str]]:
    """(experiment name, `column`'s cell) per experiment row of the printed Markdown table."""
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    at = header.index(column)
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if name := re.search(r"\[(.+)\]", cells[0]):
            rows.append((name.group(1), cells[at]))
    return rows


def test_a_bad_key_fails_before_anything_is_queued(project: Path) -> None:
    rc, out = sweep(project, "-S train.lora_rr=4,8")
    assert rc != 0, out
    assert "train.lora_rr: unknown key" in out and "nothing was queued" in out, out
    assert experiments(project) == {}
    assert "No experiment tasks in the queue" in dvc(project, "queue", "status").stdout


def test_the_grid_runs_and_prints_best_first(project: Path) -> None:
    rc, out = sweep(project, GRID, "JOBS=2")
    assert rc == 0, out
    assert "sweep: 2 points, each valid" in out, out
    assert "queued sweep-1: train.lora_r=4" in out and "queued sweep-2: train.lora_r=8" in out
    cores = len(os.sched_getaffinity(0))
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, cores // 2)))
    assert f"2 at a time, {threads} torch thread" in out, out

    found = experiments(project)
    for name, rank in (("sweep-1", 4), ("sweep-2", 8)):
        assert found[name]["state"] == "success", found[name]
        assert found[name]["params"]["train"]["lora_r"] == rank
        assert found[name]["metrics"][VAL] is not None and found[name]["metrics"]["val_loss"] > 0
    assert found["sweep-1"]["metrics"]["val_loss"] != found["sweep-2"]["metrics"]["val_loss"]

    # the table keeps the ranking column and the swept key whatever EXP_SHOW_ARGS drops, and
    # lists the experiments by it, best first (on the tiny model every val accuracy is 0.0)
    rows = table_rows(out, VAL)
    assert {name for name, _ in rows} == {"sweep-1", "sweep-2"}, out
    values = [float(value) for _, value in rows]
    assert values == sorted(values, reverse=True), rows
    assert dict(table_rows(out, "train.lora_r")) == {"sweep-1": "4", "sweep-2": "8"}
    assert "(sorted by val task_accuracy, best first" in out
    assert re.search(r"^\*\*Best: (the baseline|sweep-[12])\*\*", out, re.MULTILINE), out

    # the same grid again: both experiments are reused, nothing runs
    rc, out = sweep(project, GRID)
    assert rc == 0, out
    assert "reusing sweep-1" in out and "reusing sweep-2" in out, out
    assert "running the queue" not in out and not re.search(r"^sweep: queued", out, re.M), out


def test_a_failing_point_is_reported_with_its_log_and_requeue_command(project: Path) -> None:
    rc, out = sweep(project, "-S base.model=/no/such/model")
    assert rc != 0, out
    queued = re.search(r"^sweep: queued (\S+): base\.model=/no/such/model$", out, re.M)
    assert queued, out
    name = queued.group(1)  # sweep2-1 after the grid above: sweep-* names are taken
    assert experiments(project)[name]["state"] == "failed"
    assert f"**{name} failed** (base.model=/no/such/model)" in out, out
    assert f"The end of `dvc queue logs {name}`" in out
    assert "base.model: '/no/such/model' is neither a directory nor a hub id" in out, out
    requeue = (
        f"dvc queue remove {name} && dvc exp run --queue -n {name} "
        "-S base.model=/no/such/model && dvc exp run --run-all"
    )
    assert requeue in out, out
    assert "sweep failed: 1 of 1 points failed" in out, out
    # the table still comes, without the failed experiment (its commit holds old metrics)
    assert name not in {row for row, _ in table_rows(out, VAL)}, out
    assert "(sorted by val task_accuracy, best first" in out
