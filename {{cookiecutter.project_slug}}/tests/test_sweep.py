"""`make sweep`'s pure parts: the grid expanded as DVC's `-S` does, every point checked against
the params schema before anything is queued, experiments reused by their params, and the
`dvc exp show` call sorted by the val ranking metric, and the summary's verdict on whether the
best point is ahead beyond the noise. tests/test_sweep_e2e.py in the template runs the whole
target on a tiny model."""

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.commands import sweep
from {{ cookiecutter.module_name }}.commands.sweep import (
    Point,
    check,
    exp_show_args,
    expected_params,
    free_prefix,
    grid,
    main,
    plan,
    requeue_command,
    summarise,
    with_point,
)
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.experiments.queue import worker_threads
from {{ cookiecutter.module_name }}.experiments.runs import Run

PARAMS = Path(__file__).parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def test_grid_is_every_combination_last_setting_fastest() -> None:
    points = grid(["train.lora_r=4,8", "train.learning_rate=1e-4,2e-4", "seed=7"])
    assert [p.settings for p in points] == [
        ("train.lora_r=4", "train.learning_rate=0.0001", "seed=7"),
        ("train.lora_r=4", "train.learning_rate=0.0002", "seed=7"),
        ("train.lora_r=8", "train.learning_rate=0.0001", "seed=7"),
        ("train.lora_r=8", "train.learning_rate=0.0002", "seed=7"),
    ]
    assert [p.index for p in points] == [1, 2, 3, 4]
    assert points[0].set_args()[:4] == ["-S", "train.lora_r=4", "-S", "train.learning_rate=0.0001"]


def test_grid_takes_hydra_sweeps_and_the_params_file_prefix() -> None:
    points = grid(
        ["params.yaml:train.num_epochs=range(1,4)", "train.preset=choice(general,style-format)"]
    )
    assert len(points) == 6
    assert points[0].settings == ("train.num_epochs=1", "train.preset=general")
    assert points[-1].settings == ("train.num_epochs=3", "train.preset=style-format")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ([], "nothing to sweep"),
        (["other.yaml:train.lora_r=4,8"], "a sweep sets params.yaml only"),
        (["train.learning_rate=interval(0,1)"], "can be swept"),
        (["train.lora_r=4,,"], "train.lora_r=4,,"),
    ],
)
def test_grid_refuses_what_cannot_be_enumerated(settings: list[str], message: str) -> None:
    with pytest.raises(StageError, match=message):
        grid(settings)


def test_a_point_is_applied_as_dvc_applies_it(raw: dict) -> None:
    before = copy.deepcopy(raw)
    point = Point(1, ("train.lora_r=16", "train.learning_rate=0.0005", "~train.lora_alpha"))
    updated = with_point(raw, point)
    assert updated["train"]["lora_r"] == 16
    assert updated["train"]["learning_rate"] == 0.0005
    assert "lora_alpha" not in updated["train"]
    assert raw == before  # the workspace's data is left alone


def test_every_point_is_checked_before_anything_is_queued(raw: dict) -> None:
    check(grid(["train.lora_r=4,8", "train.learning_rate=1e-4,2e-4"]), raw)
    with pytest.raises(StageError, match=r"train\.lora_rr: unknown key") as typo:
        check(grid(["train.lora_rr=4,8"]), raw)
    assert "grid point 1 of 2" in str(typo.value) and "nothing was queued" in str(typo.value)
    with pytest.raises(StageError, match=r"point 2 of 2.*\n.*train\.lora_r: Input should be"):
        check(grid(["train.lora_r=4,0"]), raw)


def run(name: str, state: str = "success", **params: object) -> Run:
    base = {"seed": 42, "train.lora_r": 4, "train.learning_rate": 0.0002}
    return Run(name, f"rev-{name}", state, params={**base, **params}, error=None)


def test_an_experiment_with_the_points_params_is_reused_a_failed_one_is_not() -> None:
    baseline = run("baseline", "baseline")
    points = grid(["train.lora_r=8,16"])
    assert expected_params(baseline.params, points[0])["train.lora_r"] == 8
    existing = [
        run("sweep-1", "success", **{"train.lora_r": 8}),
        run("sweep-2", "failed", **{"train.lora_r": 16}),
        run("other", "success", **{"train.lora_r": 16, "seed": 1}),  # not this point's params
    ]
    planned = plan(points, baseline, existing, "sweep")
    assert [(p.index, name, reused) for p, name, reused in planned] == [
        (1, "sweep-1", True),
        (2, "sweep2-2", False),  # sweep-* names are taken: the next free prefix
    ]


def test_free_prefix() -> None:
    assert free_prefix("sweep", {"fix-underfitting", "sweeping"}) == "sweep"
    assert free_prefix("sweep", {"sweep-1", "sweep2-3"}) == "sweep3"


@pytest.mark.parametrize(
    ("jobs", "cores", "threads"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8)]
)
def test_workers_share_the_cores(jobs: int, cores: int, threads: int) -> None:
    assert worker_threads(jobs, cores) == threads
    assert jobs * threads <= max(cores, jobs)


def test_exp_show_sorts_by_the_val_metric_and_keeps_its_column_and_the_swept_keys() -> None:
    args = exp_show_args("task_score", ["train.lora_r"], ["--drop", "val_task_score"])
    assert args[args.index("--sort-by") + 1] == "reports/metrics.json:val_task_score"
    assert args[args.index("--sort-order") + 1] == "desc"
    kept = [args[i + 1] for i, arg in enumerate(args) if arg == "--keep"]
    assert kept == [r"val_task_score$", r"train\.lora_r$"]
    assert {"--hide-failed", "--hide-queued"} <= set(args)


def test_requeue_command_quotes_the_settings() -> None:
    command = requeue_command("sweep-2", Point(2, ("base.model='/my models/x'", "seed=1")))
    assert command == (
        "dvc queue remove sweep-2 && dvc exp run --queue -n sweep-2 "
        "-S 'base.model='\"'\"'/my models/x'\"'\"'' -S seed=1 && dvc exp run --run-all"
    )


def test_a_bad_grid_fails_before_dvc_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "params.yaml").write_text(PARAMS.read_text())
    monkeypatch.chdir(tmp_path)  # no git, no DVC here: reaching them would fail differently
    with pytest.raises(StageError, match=r"train\.lora_rr: unknown key"):
        main(["-S", "train.lora_rr=4,8", "--", "--precision", "3"])


def selected(right: int, n: int = 40) -> dict:
    """test_items.json's `selected` entry: the first `right` of n items correct."""
    task = [{"id": f"t{i}", "correct": i < right, "score": float(i < right)} for i in range(n)]
    return {"model": "checkpoint-2", "items": {"task": task}}


def finished(name: str, val: float) -> Run:
    metrics = {"val_task_accuracy": val, "val_loss": 1.0, "guardrails_passed": True}
    state = "baseline" if name == "baseline" else "success"
    return Run(name, f"rev-{name}", state, metrics=metrics)


def test_summary_says_whether_the_best_point_is_ahead_beyond_the_noise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """summarise on what DVC would report (no DVC here): three points ranked on val, each
    with its committed test items."""
    runs = [finished("sweep-1", 0.6), finished("sweep-2", 0.55), finished("sweep-3", 0.5)]
    test_right = {"baseline": 10, "sweep-1": 28, "sweep-2": 27, "sweep-3": 12}
    tests = {name: selected(right) for name, right in test_right.items()}

    def fake_dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(args, 0, stdout="| Experiment |\n", stderr="")

    monkeypatch.setattr(sweep, "dvc", fake_dvc)
    monkeypatch.setattr(sweep, "exp_show", lambda: (finished("baseline", 0.4), runs))
    monkeypatch.setattr(sweep, "guardrail_failures_at", lambda run, diagnosis: [])
    monkeypatch.setattr(
        sweep, "collect_tests", lambda found, _: {r.name: tests[r.name] for r in found}
    )
    planned = plan(grid(["train.lora_r=4,8,16"]), None, [], "sweep")
    settings = {"samples": 200, "confidence": 0.95, "seed": 0}
    assert summarise(planned, "task_accuracy", ["exp", "show"], settings) == 0
    out = capsys.readouterr().out
    assert "**Best: sweep-1**" in out
    assert "Holm-adjusted over 3 comparisons" in out
    assert "| sweep-2 (runner-up) | 40 | +0.025 | 1 | 1 | no difference detectable |" in out
    assert (
        "sweep-1 is detectably better than the baseline (McNemar p < 0.001, Holm-adjusted "
        "< 0.001, 3 comparisons) but not than the runner-up sweep-2" in out
    )
    assert out.rstrip().endswith("dvc exp apply sweep-1")
