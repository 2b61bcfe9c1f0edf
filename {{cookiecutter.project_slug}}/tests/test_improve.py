"""`make improve`'s pure parts: the diagnosis's suggestions, `dvc exp show --json` parsed, the
winner picked, and the summary. tests/fixtures/exp_show.json is DVC 3's real output (trimmed:
no deps or outs, a few params and metrics) after a baseline run and two queued experiments,
one of which failed."""

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.commands.improve import (
    Suggestion,
    Summary,
    main,
    plan,
    render,
    suggestions,
    verdict_note,
)
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.experiments.formatting import log_tail
from {{ cookiecutter.module_name }}.experiments.ranking import pick_winner
from {{ cookiecutter.module_name }}.experiments.runs import BASELINE, Run, parse_exp_show
from {{ cookiecutter.module_name }}.paths import TEST_ITEMS

EXP_SHOW = json.loads((Path(__file__).parent / "fixtures" / "exp_show.json").read_text())
METRIC = "task_accuracy"


def finding(mode: str, try_params: dict) -> dict:
    return {"mode": mode, "evidence": "numbers", "fix": f"fix {mode}", "try_params": try_params}


def run(name: str, val: float, loss: float, passed: bool = True, **extra) -> Run:
    metrics = {
        "val_task_accuracy": val,
        "val_loss": loss,
        "guardrails_passed": passed,
        "task_accuracy": val - 0.01,
        "forgetting_score": 0.3,
        "format_correct": 0.9,
        "general_qa": 0.5,
        "diagnosis": "none",
        **extra,
    }
    return Run(name, "abc1234", BASELINE if name == BASELINE else "success", metrics=metrics)


def test_one_experiment_per_distinct_suggestion() -> None:
    diagnosis = {
        "findings": [
            finding("overfitting", {"train.num_epochs": 1.5, "train.lora_r": 4}),
            finding("format_drift", {"curate.format_audit": "quarantine"}),
            finding("contamination", {}),  # nothing to try: reported, not run
            finding("forgetting", {"train.lora_r": 4, "train.num_epochs": 1.5}),  # same params
        ]
    }
    found, advice_only = suggestions(diagnosis)
    assert [(s.name, s.modes) for s in found] == [
        ("fix-overfitting-forgetting", ("overfitting", "forgetting")),
        ("fix-format-drift", ("format_drift",)),
    ]
    assert found[0].set_args() == ["-S", "train.num_epochs=1.5", "-S", "train.lora_r=4"]
    assert [f["mode"] for f in advice_only] == ["contamination"]
    assert suggestions({"findings": []}) == ([], [])


def verdict(try_params: dict, replaces: list[str]) -> dict:
    """A reports/diagnosis.json `verdict` as select writes it (selection/verdict.as_dict)."""
    sets = " ".join(f"-S {key}={value}" for key, value in try_params.items())
    return {
        "summary": "the fine-tune does not help",
        "evidence": ["underfitting: numbers", "forgetting: numbers"],
        "advice": "prompt the base with solved examples",
        "try_params": try_params,
        "command": f"dvc exp run {sets}" if sets else "",
        "replaces": replaces,
    }


def contradicting_findings() -> list[dict]:
    return [
        finding("underfitting", {"train.lora_r": 16, "train.num_epochs": 2.0}),
        finding("forgetting", {"train.lora_r": 4}),
        finding("format_drift", {"curate.format_audit": "quarantine"}),  # not replaced
        finding("contamination", {}),
    ]


def test_a_verdict_replaces_the_findings_it_names_with_its_own_run() -> None:
    diagnosis = {
        "findings": contradicting_findings(),
        "verdict": verdict({"eval.fewshot_k": 3}, ["underfitting", "forgetting"]),
    }
    found, advice_only = suggestions(diagnosis)
    # underfitting's larger rank and forgetting's smaller one are not tried: the verdict's is
    assert [(s.name, s.modes, s.try_params) for s in found] == [
        ("fix-underfitting-forgetting", ("underfitting", "forgetting"), {"eval.fewshot_k": 3}),
        ("fix-format-drift", ("format_drift",), {"curate.format_audit": "quarantine"}),
    ]
    assert [f["mode"] for f in advice_only] == ["contamination"]
    assert verdict_note(diagnosis) == (
        "The diagnosis's verdict replaces underfitting and forgetting: trying "
        "`dvc exp run -S eval.fewshot_k=3` instead (the fine-tune does not help)."
    )
    assert verdict_note({"findings": [], "verdict": None}) is None


def test_a_verdict_without_a_command_leaves_its_findings_untried() -> None:
    diagnosis = {
        "findings": contradicting_findings(),
        "verdict": verdict({}, ["underfitting", "forgetting"]),
    }
    found, advice_only = suggestions(diagnosis)
    assert [s.name for s in found] == ["fix-format-drift"]
    assert [f["mode"] for f in advice_only] == ["contamination"]
    assert verdict_note(diagnosis) == (
        "The diagnosis's verdict replaces underfitting and forgetting: nothing to try, the "
        "fine-tune does not help. Instead: prompt the base with solved examples."
    )


def test_parse_exp_show_reads_dvc_3_json() -> None:
    baseline, experiments = parse_exp_show(EXP_SHOW)
    assert baseline is not None and baseline.name == BASELINE
    assert baseline.metrics["val_loss"] == 5.827
    assert baseline.params["train.lora_r"] == 8
    by_name = {run.name: run for run in experiments}
    assert set(by_name) == {"fix-underfitting", "fix-invalid-params"}
    good = by_name["fix-underfitting"]
    assert good.state == "success" and not good.failed
    assert good.params["train.lora_r"] == 16 and good.params["train.num_epochs"] == 2.0
    assert good.metrics["val_loss"] == 5.6057
    assert good.rev == "e505fb2405acf7cd13e97f71b188da8e623d873e"
    # its commit still holds the baseline's metrics.json: they must not count as its result
    bad = by_name["fix-invalid-params"]
    assert bad.failed and bad.metrics == {} and bad.error == "Experiment run failed"


def test_parse_exp_show_queued_and_running() -> None:
    shown = copy.deepcopy(EXP_SHOW)
    for exp in shown[1]["experiments"]:
        exp["executor"]["state"] = "queued"
        exp["revs"][0]["error"] = None
    _, experiments = parse_exp_show(shown)
    assert {run.state for run in experiments} == {"queued"}
    assert not any(run.failed for run in experiments)


def test_plan_reuses_a_matching_experiment_and_renames_a_clash() -> None:
    _, existing = parse_exp_show(EXP_SHOW)
    same = Suggestion(
        "fix-underfitting", ("underfitting",), {"train.num_epochs": 2.0, "train.lora_r": 16}
    )
    other = Suggestion("fix-underfitting", ("underfitting",), {"train.num_epochs": 3.0})
    failed = Suggestion("fix-invalid-params", ("x",), {"train.lora_r": 0})
    fresh = Suggestion("fix-forgetting", ("forgetting",), {"train.learning_rate": 1e-4})
    planned = plan([same, other, failed, fresh], existing)
    assert [(s.name, reuse) for s, reuse in planned] == [
        ("fix-underfitting", True),
        ("fix-underfitting-2", False),
        ("fix-invalid-params-2", False),  # a failed one is run again
        ("fix-forgetting", False),
    ]


def test_winner_is_the_best_val_metric_among_runs_passing_the_guardrails() -> None:
    base = run(BASELINE, 0.40, 1.0)
    better = run("fix-a", 0.50, 1.2)
    best_but_failing = run("fix-b", 0.70, 0.9, passed=False)
    assert pick_winner([base, better, best_but_failing], METRIC) is better
    assert pick_winner([base, best_but_failing], METRIC) is base
    assert pick_winner([best_but_failing], METRIC) is None


def test_ties_go_to_lower_val_loss_then_to_the_baseline() -> None:
    base = run(BASELINE, 0.40, 1.0)
    assert pick_winner([base, run("fix-a", 0.40, 0.9)], METRIC).name == "fix-a"
    assert pick_winner([base, run("fix-a", 0.40, 1.0)], METRIC) is base


def test_a_failed_experiment_never_wins() -> None:
    failed = Run(
        "fix-a", "abc", "failed", metrics={"val_task_accuracy": 1.0, "guardrails_passed": True}
    )
    assert pick_winner([run(BASELINE, 0.1, 1.0, passed=False), failed], METRIC) is None


def test_graded_tasks_rank_by_val_task_score() -> None:
    a = run("fix-a", 0.0, 1.0, val_task_score=0.7)
    b = run("fix-b", 0.0, 1.0, val_task_score=0.6)
    assert pick_winner([b, a], "task_score") is a


def summary(*runs: Run, **extra) -> Summary:
    baseline, *experiments = runs
    return Summary(
        metric=METRIC,
        baseline=baseline,
        test_items=TEST_ITEMS,
        runs=experiments,
        changes={r.name: "train.lora_r=4" for r in experiments},
        modes={r.name: ("overfitting",) for r in experiments},
        **extra,
    )


def test_summary_names_the_winner_its_test_score_and_the_command() -> None:
    winner = run("fix-overfitting", 0.52, 1.1, task_accuracy_lo=0.4, task_accuracy_hi=0.6)
    text = render(summary(run(BASELINE, 0.45, 1.0), winner))
    assert "| fix-overfitting | overfitting | train.lora_r=4 | 0.520 | 1.100 | pass |" in text
    assert "0.510 [0.400, 0.600]" in text  # test task_accuracy with its interval
    assert "**Best: fix-overfitting** (val task_accuracy 0.520 vs the baseline's 0.450" in text
    assert text.rstrip().endswith("dvc exp apply fix-overfitting")


def test_summary_says_what_the_verdict_replaced() -> None:
    note = "The diagnosis's verdict replaces underfitting and forgetting: trying `x` instead (y)."
    text = render(summary(run(BASELINE, 0.45, 1.0), run("fix-a", 0.5, 1.0), note=note))
    assert f"\n\n{note}\n" in text


def test_summary_says_when_a_tie_was_decided_by_val_loss() -> None:
    text = render(summary(run(BASELINE, 0.45, 1.0), run("fix-a", 0.45, 0.8)))
    assert "as the baseline; lower val loss, 0.800 vs 1.000" in text


def test_summary_when_the_baseline_stays_best() -> None:
    text = render(summary(run(BASELINE, 0.45, 1.0), run("fix-a", 0.30, 0.8)))
    assert "**Best: the baseline**" in text and "nothing to apply" in text
    assert "dvc exp apply" not in text


def test_summary_when_no_run_passes_gives_each_runs_guardrail_evidence() -> None:
    failures = {BASELINE: ["format_correct 0.5 < min_format_correct 0.8"]}
    runs = (run(BASELINE, 0.45, 1.0, passed=False), run("fix-a", 0.5, 0.9, passed=False))
    text = render(summary(*runs, failures=failures))
    assert "**No run passes the guardrails**" in text
    assert "- baseline: format_correct 0.5 < min_format_correct 0.8" in text
    # without select's reasons (an older commit): the guardrail metrics themselves
    assert "- fix-a: forgetting_score 0.300, format_correct 0.900, general_qa 0.500" in text
    assert "dvc exp apply" not in text


def test_summary_reports_a_failed_experiment_with_its_log() -> None:
    baseline, experiments = parse_exp_show(EXP_SHOW)
    logs = {"fix-invalid-params": ["train.lora_r: Input should be greater than or equal to 1"]}
    text = render(summary(baseline, *experiments, logs=logs))
    assert "| fix-invalid-params | overfitting | train.lora_r=4 |  |  | run failed |" in text
    assert "**fix-invalid-params failed.**" in text
    assert "train.lora_r: Input should be greater than or equal to 1" in text
    assert "dvc exp apply fix-underfitting" in text  # the failure does not stop the verdict


SETTINGS = {"samples": 2000, "confidence": 0.95, "seed": 0}


def items(model: str, right: int, n: int = 40, scores: list[float] | None = None) -> dict:
    """A test_items.json `selected` entry: items t0..t(n-1), the first `right` correct (and
    their graded scores, when given)."""
    task = [
        {"id": f"t{i}", "correct": i < right, "score": scores[i] if scores else float(i < right)}
        for i in range(n)
    ]
    return {"model": model, "items": {"task": task}}


def ranked_summary(test_right: dict[str, int], **extra) -> Summary:
    """The baseline and experiments ranked on val in the order given (first best), each with
    `test_right` of 40 test items right."""
    names = list(test_right)
    vals = {name: 0.7 - 0.05 * rank for rank, name in enumerate(names)}
    runs = [run(BASELINE, vals[BASELINE], 1.0)]
    runs += [run(name, vals[name], 1.0) for name in names if name != BASELINE]
    tests = {
        name: items(f"checkpoint-{i}", right) for i, (name, right) in enumerate(test_right.items())
    }
    return summary(*runs, tests=tests, settings=SETTINGS, **extra)


def test_the_winner_is_ahead_of_the_baseline_but_not_of_the_runner_up() -> None:
    # 18 more right than the baseline and none fewer; 2 more than the runner-up
    text = render(ranked_summary({"fix-a": 28, "fix-b": 26, BASELINE: 10}))
    assert "Holm-adjusted over 2 comparisons" in text
    assert "| fix-b (runner-up) | 40 | +0.050 | 0.5 | 0.5 | no difference detectable |" in text
    assert "| baseline | 40 | +0.450 | < 0.001 | < 0.001 | better |" in text
    assert (
        "fix-a is detectably better than the baseline (McNemar p < 0.001, Holm-adjusted "
        "< 0.001, 2 comparisons) but not than the runner-up fix-b (McNemar p 0.5, Holm-adjusted "
        "0.5): the ranking between them is noise." in text
    )
    assert text.rstrip().endswith("dvc exp apply fix-a")  # the pick still stands


def test_a_lead_that_only_passes_without_the_correction_is_not_detectable() -> None:
    # 6 more right than the baseline, none fewer: McNemar 2 / 2**6 = 0.031 < 0.05, but it is
    # the smallest of 3 p-values: Holm multiplies it by 3 -> 0.094
    text = render(ranked_summary({"fix-a": 16, "fix-b": 15, "fix-c": 14, BASELINE: 10}))
    assert "| baseline | 40 | +0.150 | 0.0312 | 0.0938 | no difference detectable |" in text
    assert (
        "fix-a is not detectably better than the baseline (McNemar p 0.0312, Holm-adjusted "
        "0.0938, 3 comparisons) nor than the runner-up fix-b (McNemar p 1, Holm-adjusted 1): "
        "the ranking between them is noise." in text
    )
    # the same lead over the baseline alone is one comparison: detectable
    alone = render(ranked_summary({"fix-a": 16, BASELINE: 10}))
    assert (
        "fix-a is detectably better than the baseline (McNemar p 0.0312, Holm-adjusted 0.0312, "
        "1 comparison)." in alone
    )


def test_when_the_baseline_stays_best_it_is_compared_with_the_runner_up() -> None:
    text = render(ranked_summary({BASELINE: 30, "fix-a": 10, "fix-b": 29}))
    assert "**Best: the baseline**" in text
    assert "The winner (the baseline) minus each other finished run" in text
    assert "| fix-a (runner-up) | 40 | +0.500 | < 0.001 | < 0.001 | better |" in text
    assert "The baseline is detectably better than the runner-up fix-a (McNemar p" in text
    assert "dvc exp apply" not in text


def test_a_winner_worse_on_test_is_called_out() -> None:
    text = render(ranked_summary({"fix-a": 10, BASELINE: 30}))
    assert (
        "On test fix-a is detectably worse than the baseline (McNemar p < 0.001, "
        "Holm-adjusted < 0.001, 1 comparison): its lead on val did not hold up." in text
    )


def test_graded_scores_are_compared_by_a_paired_permutation_test() -> None:
    gain = [0.9] * 12 + [0.5] * 8  # 12 items scored higher by 0.4, 8 the same
    base = [0.5] * 20
    runs = [
        run(BASELINE, 0.0, 1.0, val_task_score=0.5),
        run("fix-a", 0.0, 1.0, val_task_score=0.7),
    ]
    tests = {BASELINE: items("base", 0, 20, base), "fix-a": items("ckpt", 0, 20, gain)}
    graded = Summary(
        metric="task_score",
        baseline=runs[0],
        test_items=TEST_ITEMS,
        runs=runs[1:],
        changes={},
        modes={},
        tests=tests,
        settings=SETTINGS,
    )
    text = render(graded)
    # 12 equal gains: 2 of 4096 sign patterns as extreme, exact
    assert "test task_score difference" in text and "permutation p" in text
    assert "| baseline (runner-up) | 20 | +0.240 | < 0.001 | < 0.001 | better |" in text
    assert "fix-a is detectably better than the baseline (permutation p < 0.001" in text


def test_runs_without_test_items_are_left_out_and_named() -> None:
    found = ranked_summary({"fix-a": 28, "fix-b": 26, BASELINE: 10})
    text = render(replace(found, tests={k: v for k, v in found.tests.items() if k != "fix-b"}))
    assert "No reports/test_items.json for fix-b (run before select wrote it)" in text
    assert "Holm-adjusted over 1 comparison;" in text and "runner-up" not in text
    no_winner = render(replace(found, tests={BASELINE: found.tests[BASELINE]}))
    assert "No reports/test_items.json for fix-a" in no_winner and "Holm" not in no_winner


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        ("a\n\nb\nc\n", ["b", "c"]),
        ("step 1\rstep 2\rdone\nERROR: x\n", ["done", "ERROR: x"]),
    ],
)
def test_log_tail(text: str, tail: list[str]) -> None:
    assert log_tail(text, 2) == tail


def test_no_suggestion_runs_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    diagnosis = {"findings": [finding("contamination", {})], "guardrails_passed": True}
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "diagnosis.json").write_text(json.dumps(diagnosis))
    main([])  # no params.yaml, no DVC: it must stop before needing them
    out = capsys.readouterr().out
    assert "suggests no experiment: nothing to run" in out
    assert "contamination: no params to try; fix contamination." in out
    assert "nothing to run" in (tmp_path / "reports" / "improve.md").read_text()


def test_a_verdict_with_nothing_to_try_runs_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    findings = [f for f in contradicting_findings() if f["mode"] != "format_drift"]
    diagnosis = {"findings": findings, "verdict": verdict({}, ["underfitting", "forgetting"])}
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "diagnosis.json").write_text(json.dumps(diagnosis))
    main([])  # the replaced findings' params are not queued: nothing reaches DVC
    out = capsys.readouterr().out
    assert "suggests no experiment: nothing to run" in out
    assert "verdict replaces underfitting and forgetting: nothing to try, the fine-tune" in out
    assert "no params to try" in out and "underfitting: no params" not in out
    assert "Instead: prompt the base" in (tmp_path / "reports" / "improve.md").read_text()


def test_without_a_diagnosis_it_says_to_run_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="run the pipeline first"):
        main([])
