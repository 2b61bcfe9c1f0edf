"""A free-text task under a graded scorer (chrF), end to end on the tiny model: every eval
report and the headline carry `task_score`, every task item its `score`, and select and the
diagnosis rank by the score."""

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.params import load_params
from {{ cookiecutter.module_name }}.paths import EVAL_DIR, METRICS
from {{ cookiecutter.module_name }}.selection.guardrails import guardrail_failures
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage

pytestmark = pytest.mark.e2e

TEXT_TASK = {"target_format": "text", "fields": [], "score_fields": [], "scorer": "chrf"}


def test_a_graded_text_task_runs_through_eval_and_select(project: Path) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["task"] = {**params.get("task", {}), **TEXT_TASK}
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    train_stage.main()
    eval_stage.main()
    select_stage.main()
    reports = {path.stem: read_json(path) for path in EVAL_DIR.glob("*.json")}
    assert set(reports) == {"base", "fewshot", "checkpoint-4", "checkpoint-6"}
    for report in reports.values():
        scores = [item["score"] for item in report["items"]["task"]]
        assert all(0 <= score <= 1 for score in scores)
        assert report["metrics"]["task_score"] == round(sum(scores) / len(scores), 4)
        correct = [item["correct"] for item in report["items"]["task"]]
        assert correct == [score >= 0.5 for score in scores]  # task.min_score
    metrics = read_json(METRICS)
    rules, base = load_params().select, reports["base"]["metrics"]
    checkpoints = [reports["checkpoint-4"], reports["checkpoint-6"]]
    pool = [r for r in checkpoints if not guardrail_failures(r["metrics"], rules, base)]

    def rank(report: dict) -> tuple:
        values = report["metrics"]
        return (values["task_score"], values["format_correct"], -report["step"])

    assert metrics["selected"] == max(pool or checkpoints, key=rank)["model"]
    assert metrics["val_task_score"] == reports[metrics["selected"]]["metrics"]["task_score"]
    for key in ("task_score", "base_task_score", "fewshot_task_score"):
        assert 0 <= metrics[key] <= 1
