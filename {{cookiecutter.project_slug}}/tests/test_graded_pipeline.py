"""A free-text task under a graded scorer (chrF), end to end on the tiny model: curate's
report finds the targets free text and the null task.scorer resolves to chrF in every stage;
every eval report and the headline carry `task_score`, every task item its `score`, and
select and the diagnosis rank by the score. Findings whose fixes contradict each other are
printed as one verdict with one command."""

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.data.curate_report import scoring_report
from {{ cookiecutter.module_name }}.io import read_json, write_json
from {{ cookiecutter.module_name }}.params import TaskParams, load_params
from {{ cookiecutter.module_name }}.paths import (
    CURATE_REPORT,
    DIAGNOSIS,
    EVAL_DIR,
    METRICS,
    REPORT_MD,
)
from {{ cookiecutter.module_name }}.selection import run as select_run
from {{ cookiecutter.module_name }}.selection.diagnose import Finding
from {{ cookiecutter.module_name }}.selection.guardrails import guardrail_failures
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage

pytestmark = pytest.mark.e2e

TEXT_TASK = {"target_format": "text", "fields": [], "score_fields": [], "scorer": None}
# contradicting fixes: a larger rank and longer training vs a smaller rank
CONTRADICTING = [
    Finding("forgetting", "forgetting score 0.4", "use a smaller rank", {"train.lora_r": 4}),
    Finding("underfitting", "no gain", "increase the rank", {"train.lora_r": 16}),
]


def test_a_graded_text_task_runs_through_eval_and_select(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["task"] = {**params.get("task", {}), **TEXT_TASK}
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # what curate reports for the demo rows' varied, sentence-long targets
    targets = {"free_text": True, "distinct": 24, "rows": 24}
    scoring = scoring_report(TaskParams(**TEXT_TASK), targets, [20] * 24, [120] * 24)
    write_json(CURATE_REPORT, {"scoring": scoring})
    assert scoring["scorer"] == "chrf" and load_params().task.resolved_scorer == "chrf"
    real_diagnose = select_run.diagnose

    def diagnose(*args, **kwargs) -> list[Finding]:
        found = real_diagnose(*args, **kwargs)
        return [f for f in found if f.mode not in ("forgetting", "underfitting")] + CONTRADICTING

    monkeypatch.setattr(select_run, "diagnose", diagnose)
    train_stage.main()
    eval_stage.main()
    select_stage.main()
    printed = capsys.readouterr().out
    verdict = read_json(DIAGNOSIS)["verdict"]
    assert set(verdict["replaces"]) == {"forgetting", "underfitting"}
    assert printed.count("select: verdict:") == 1
    assert "select: forgetting:" not in printed and "select: underfitting:" not in printed
    assert "train.lora_r=16" not in printed and "train.lora_r=4" not in printed
    assert not verdict["command"] or printed.count(verdict["command"]) == 1
    assert "## Verdict" in REPORT_MD.read_text()
    reports = {path.stem: read_json(path) for path in EVAL_DIR.glob("*.json")}
    assert set(reports) == {"base", "fewshot", "checkpoint-4", "checkpoint-6"}
    # eval scored with the chrF the null scorer resolved to: partial credit, not 0/1
    graded = [i["score"] for r in reports.values() for i in r["items"]["task"]]
    assert any(0 < score < 1 for score in graded)
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
