"""End to end: `make improve` on a baked project with a tiny random Llama. The baseline run's
diagnosis (underfitting: the tiny model learns nothing) suggests more epochs and a larger
rank; the test adds one suggestion that must fail (an invalid param) so the failure path runs
against the real `dvc queue logs` too. Both are queued and run; the summary names the winner,
says it is no better than the baseline beyond the noise (every test score is 0), and gives the
`dvc exp apply` command, which must then put the experiment's params in place."""

import json
import re
from pathlib import Path

import pytest
import yaml
from bakery import bake, dvc, git, run, use_tiny_model

pytestmark = pytest.mark.e2e

# Guardrails every run passes (the tiny model never writes JSON), so the ranking decides. Kept
# short: half an epoch (underfitting then suggests 1.5), one checkpoint per run (the final
# one), no few-shot baseline.
IMPROVE_PARAMS = {
    "train": {"save_steps": 1000, "num_epochs": 0.5},
    "eval": {"fewshot_k": 0},
    "select": {"min_format_correct": 0.0, "min_general_qa_ratio": 0.0},
}
BROKEN = {
    "mode": "invalid_params",
    "evidence": "added by the test",
    "fix": "none: this experiment must fail",
    "try_params": {"train.lora_r": 0},
    "command": "dvc exp run -S train.lora_r=0",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> Path:
    """A baked default project on the tiny model, its baseline run committed, and the test's
    failing suggestion added to that run's diagnosis."""
    root = tmp_path_factory.mktemp("improve")
    project = bake(root, cc_config)
    use_tiny_model(project, root / "tiny-llama", IMPROVE_PARAMS)
    dvc(project, "repro")
    diagnosis_path = project / "reports/diagnosis.json"
    diagnosis = json.loads(diagnosis_path.read_text())
    diagnosis["findings"].append(BROKEN)
    diagnosis_path.write_text(json.dumps(diagnosis, indent=2))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Baseline run")
    return project


def experiment_states(exp_show: list) -> dict[str, str]:
    """Experiment name -> executor state (success, failed, ...) from `dvc exp show --json`."""
    return {
        exp["name"]: (exp.get("executor") or {}).get("state", "success")
        for entry in exp_show
        for exp in entry.get("experiments") or []
    }


def test_improve_runs_the_suggestions_and_names_the_one_to_apply(project: Path) -> None:
    diagnosis = json.loads((project / "reports/diagnosis.json").read_text())
    suggested = {f["mode"]: f["try_params"] for f in diagnosis["findings"] if f["try_params"]}
    assert "underfitting" in suggested, diagnosis  # the tiny model learns nothing
    assert diagnosis["verdict"] is None, diagnosis  # nothing contradicts it: its fix is tried
    expected = suggested["underfitting"]

    result = run(project, "make", "improve", "VENV=")
    out = result.stdout
    assert "queued fix-underfitting" in out and "queued fix-invalid-params" in out, out
    states = experiment_states(json.loads(dvc(project, "exp", "show", "--json").stdout))
    assert states.get("fix-underfitting") == "success", states
    assert states.get("fix-invalid-params") == "failed", states

    # the failure is reported with the end of its log, and the summary still comes
    assert "**fix-invalid-params failed.**" in out, out
    assert "train.lora_r: Input should be greater than or equal to 1" in out, out
    summary = (project / "reports/improve.md").read_text()
    assert summary in out
    assert git(project, "status", "--porcelain") == "", "reports/improve.md is not git-ignored"

    # every run passes the guardrails here: the summary names a winner and its command
    assert "No run passes the guardrails" not in out, out
    commands = re.findall(r"^\s+(dvc exp apply \S+)$", out, re.MULTILINE)
    assert commands == ["dvc exp apply fix-underfitting"], out
    # every test score of the tiny model is 0: the val pick is no better than the baseline
    # beyond the noise (the failed experiment has no test items: one comparison)
    assert (
        "fix-underfitting is not detectably better than the baseline (McNemar p 1, "
        "Holm-adjusted 1, 1 comparison): the ranking between them is noise." in out
    ), out
    dvc(project, *commands[0].split()[1:])
    params = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in expected.items():
        section, name = key.split(".")
        assert params[section][name] == value, (key, params[section])
    status = dvc(project, "status").stdout
    assert "up to date" in status, status
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["guardrails_passed"] is True
