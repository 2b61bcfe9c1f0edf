"""Optional trackers (the `track` stage): the params are strict and hold no secret, the stage
changes nothing that training depends on, and a real train run plus a metrics.json logged to
MLflow (a local SQLite store) and W&B (offline) read back equal to the files they came from,
with no environment secret in anything written. The tests that log for real are skipped where
the mlflow / wandb extras are not installed."""

import json
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json, write_json, write_jsonl
from {{ cookiecutter.module_name }}.params import ParamsError, flatten, load_params, parse_params
from {{ cookiecutter.module_name }}.paths import EVAL_PLOT, METRICS, TRACKING, TRAIN_LOG_DIR, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.stages import track as track_stage
from {{ cookiecutter.module_name }}.tracking.context import Context, context, project_name
from {{ cookiecutter.module_name }}.tracking.mlflow_logger import param_text, split_metrics
from {{ cookiecutter.module_name }}.tracking.run_data import read_curves, tracked_params
from {{ cookiecutter.module_name }}.tracking.track import track
from {{ cookiecutter.module_name }}.tracking.wandb_logger import by_step
from {{ cookiecutter.module_name }}.training import trainer

PROJECT = Path(__file__).parents[1]
DVC_YAML = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
SECRETS = {
    "MLFLOW_TRACKING_TOKEN": "mlflow-secret-7f3a9c",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-password-51d2e8",
    "WANDB_API_KEY": "wandb-secret-0b6e4d" + "0" * 21,  # W&B keys are 40 characters
}

# ------------------------------------------------------------------------------ params


def test_trackers_are_off_by_default_and_w_and_b_offline() -> None:
    shipped = load_params(PROJECT / "params.yaml").track
    assert shipped == parse_params({}).track
    assert not shipped.mlflow.enabled and not shipped.wandb.enabled
    assert shipped.mlflow.tracking_uri is None
    assert shipped.wandb.mode == "offline"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"mlflow": {"uri": "http://x"}}, "track.mlflow.uri: unknown key"),
        ({"wandb": {"mode": "cloud"}}, "track.wandb.mode"),
        ({"neptune": {}}, "track.neptune: unknown key"),
    ],
)
def test_track_params_are_strict(raw: dict, named: str) -> None:
    with pytest.raises(ParamsError, match=named):
        parse_params({"track": raw})


def test_a_tracking_uri_with_credentials_is_refused_without_repeating_them() -> None:
    uri = "https://alice:hunter2@mlflow.example.com"
    with pytest.raises(ParamsError) as info:
        parse_params({"track": {"mlflow": {"tracking_uri": uri}}})
    message = str(info.value)
    assert "track.mlflow.tracking_uri" in message
    assert "MLFLOW_TRACKING_TOKEN" in message
    assert "hunter2" not in message
    server = parse_params({"track": {"mlflow": {"tracking_uri": "https://mlflow.example.com"}}})
    assert server.track.mlflow.tracking_uri == "https://mlflow.example.com"


# ------------------------------------------------------------------- DVC and training


def test_only_the_track_stage_reads_track(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turning a tracker on re-runs `track` alone: no other stage declares the section, and
    train's resume fingerprint ignores it."""
    stages = DVC_YAML["stages"]
    assert "track" in stages["track"]["params"]
    readers = [name for name, stage in stages.items() if "track" in stage.get("params", [])]
    assert readers == ["track"]
    monkeypatch.chdir(tmp_path)
    write_jsonl(Path("data/splits/train.jsonl"), [{"id": "a"}])
    write_jsonl(Path("data/splits/val.jsonl"), [{"id": "b"}])
    on = {"mlflow": {"enabled": True, "experiment": "x"}, "wandb": {"enabled": True}}
    assert trainer.fingerprint(parse_params({"track": on}), TRAIN_SPLIT) == trainer.fingerprint(
        parse_params({}), TRAIN_SPLIT
    )


def test_track_declares_every_section_it_logs() -> None:
    logged = set(tracked_params(parse_params({})))
    assert logged == set(DVC_YAML["stages"]["track"]["params"]) - {"track"}


# ------------------------------------------------------------------ what gets logged


def test_flatten_names_params_as_dvc_does() -> None:
    nested = {"seed": 1, "train": {"lora_r": 8, "target_modules": ["q_proj"]}, "curate": {}}
    flat = flatten(nested)
    assert flat == {"seed": 1, "train.lora_r": 8, "train.target_modules": ["q_proj"], "curate": {}}
    texts = {key: param_text(value) for key, value in flat.items()}
    assert texts == {
        "seed": "1",
        "train.lora_r": "8",
        "train.target_modules": '["q_proj"]',
        "curate": "{}",
    }
    assert param_text("all-linear") == "all-linear"
    assert param_text(None) == "null"


def write_tsv(path: Path, column: str, points: list[tuple[int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"step\t{column}", *(f"{step}\t{value}" for step, value in points)]
    path.write_text("\n".join(lines) + "\n")


def test_read_curves_keeps_dvclive_names(tmp_path: Path) -> None:
    write_tsv(tmp_path / "plots/metrics/loss.tsv", "loss", [(1, 2.5), (2, 2.25)])
    write_tsv(tmp_path / "plots/metrics/eval/loss.tsv", "loss", [(0, 3.0)])
    assert read_curves(tmp_path) == {
        "eval/loss": [(0, 3.0)],
        "loss": [(1, 2.5), (2, 2.25)],
    }
    assert set(read_curves(tmp_path, "dpo/")) == {"dpo/loss", "dpo/eval/loss"}
    assert read_curves(tmp_path / "absent") == {}


def test_split_metrics_numbers_and_texts() -> None:
    metrics = {"task_accuracy": 0.5, "test_items": 6, "guardrails_passed": False}
    metrics |= {"diagnosis": "none", "val_loss": None}
    numbers, texts = split_metrics(metrics)
    assert numbers == {"task_accuracy": 0.5, "test_items": 6.0, "guardrails_passed": 0.0}
    assert texts == {"diagnosis": "none"}


def test_by_step_merges_curves_in_step_order() -> None:
    curves = {"loss": [(1, 2.0), (2, 1.5)], "eval/loss": [(0, 3.0), (2, 1.8)]}
    assert by_step(curves) == [
        (0, {"eval/loss": 3.0}),
        (1, {"loss": 2.0}),
        (2, {"loss": 1.5, "eval/loss": 1.8}),
    ]


def test_context_comes_from_dvc(tmp_path: Path) -> None:
    environ = {"DVC_ROOT": str(tmp_path), "DVC_EXP_NAME": "fix-overfitting"}
    where = context(environ | {"DVC_EXP_BASELINE_REV": "abc123"})
    assert where == Context(tmp_path.resolve(), "fix-overfitting", "abc123")
    assert context({}).run_name is None
    assert context({}).root == Path.cwd()


# ------------------------------------------------------------------ the stage, offline


def test_with_no_tracker_the_stage_writes_nulls_and_loads_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # an import would fail
    monkeypatch.setitem(sys.modules, "wandb", None)
    Path("params.yaml").write_text("{}\n")
    track_stage.main()
    assert read_json(TRACKING) == {"mlflow": None, "wandb": None}


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, tracker: str) -> None:
    monkeypatch.setitem(sys.modules, tracker, None)
    params = parse_params({"track": {tracker: {"enabled": True}}})
    with pytest.raises(StageError, match=rf"pip install -e '\.\[{tracker}\]'"):
        track(params, track_stage.SOURCES, {})


def test_online_w_and_b_needs_the_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))
    params = parse_params({"track": {"wandb": {"enabled": True, "mode": "online"}}})
    with pytest.raises(StageError, match="WANDB_API_KEY is not set"):
        track(params, track_stage.SOURCES, {})


def test_a_tracker_without_metrics_names_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))
    params = parse_params({"track": {"wandb": {"enabled": True}}})
    with pytest.raises(StageError, match=f"{METRICS} not found"):
        track(params, track_stage.SOURCES, {})


# ------------------------------------------------- a real train run, logged for real


HEADLINE = {
    "task_accuracy": 0.5,
    "task_accuracy_lo": 0.25,
    "task_accuracy_hi": 0.75,
    "format_correct": 1.0,
    "test_items": 6,
    "selected": "checkpoint-6",
    "selected_step": 6,
    "guardrails_passed": True,
    "diagnosis": "none",
    "val_loss": None,
}


def tsv_points(path: Path) -> list[tuple[int, float]]:
    header, *rows = path.read_text().splitlines()
    return [(int(step), float(value)) for step, value in (row.split("\t") for row in rows)]


# the val loss eval measures for the base (step 0) and each checkpoint (reports/eval_by_step.json)
VAL_LOSSES = [
    {"step": 0, "val_loss": 3.25},
    {"step": 4, "val_loss": 2.5},
    {"step": 6, "val_loss": 2.0},
]


def logged_curves() -> dict[str, list[tuple[int, float]]]:
    """What a tracker gets: dvclive's train loss and eval's val loss (as `eval/loss`)."""
    val = [(row["step"], row["val_loss"]) for row in VAL_LOSSES]
    return {"loss": tsv_points(TRAIN_LOG_DIR / "plots/metrics/loss.tsv"), "eval/loss": val}


def decoded(text: str) -> Any:
    """An MLflow param back to its value: JSON, or the string itself (param_text)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def wandb_records(run_file: Path) -> Iterator[Any]:
    """The protobuf records of an offline run's transaction log (run-<id>.wandb): a 7-byte
    header, then LevelDB-style log records (crc32c, length, type) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B transaction log"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        payload = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = payload if kind in (1, 2) else pending + payload  # FULL/FIRST, MIDDLE/LAST
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def items(updates) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}


def read_wandb_run(run_dir: Path) -> tuple[dict, list[dict], dict]:
    """config, history rows and the final summary of an offline run."""
    (run_file,) = run_dir.glob("run-*.wandb")
    config, history, summary = {}, [], {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config |= items(record.run.config.update)
        elif kind == "config":
            config |= items(record.config.update)
        elif kind == "history":
            history.append(items(record.history.item))
        elif kind == "summary":
            summary |= items(record.summary.update)
    return config, history, summary


@pytest.fixture
def tracked(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The train stage on the tiny model, a metrics.json like select's, then the track stage
    with MLflow (local store) and W&B (offline) on, secrets in the environment, run as
    `dvc exp run` runs it."""
    pytest.importorskip("mlflow", reason="the mlflow extra: pip install -e '.[mlflow]'")
    pytest.importorskip("wandb", reason="the wandb extra: pip install -e '.[wandb]'")
    from {{ cookiecutter.module_name }}.stages import train as train_stage

    train_stage.main()
    write_json(EVAL_PLOT, VAL_LOSSES)
    write_json(METRICS, HEADLINE)
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["track"] = {"mlflow": {"enabled": True}, "wandb": {"enabled": True, "mode": "offline"}}
    Path("params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    home = project.parent / "home"  # W&B's own settings and logs stay out of the real home
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("DVC_ROOT", str(project))
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-tracked")
    track_stage.main()
    return read_json(TRACKING)


@pytest.mark.e2e
def test_mlflow_run_equals_params_losses_and_metrics(project: Path, tracked: dict) -> None:
    from mlflow import MlflowClient

    assert tracked["mlflow"]["tracking_uri"] == "sqlite:///mlflow.db"
    assert tracked["mlflow"]["experiment"] == project_name()
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.get_run(tracked["mlflow"]["run_id"])
    assert run.info.run_name == "tiny-tracked"
    assert run.info.status == "FINISHED"
    logged = run.data.params
    train = load_params().train.model_dump(mode="json")
    assert {key: decoded(logged[f"train.{key}"]) for key in train} == train
    assert decoded(logged["seed"]) == load_params().seed
    assert not any(key.startswith("track") for key in logged)
    for curve, expected in logged_curves().items():
        history = client.get_metric_history(run.info.run_id, curve)
        points = sorted((m.step, m.value) for m in history)
        assert points == expected
        assert len(points) >= 2
    numbers = {k: v for k, v in HEADLINE.items() if isinstance(v, int | float)}
    assert {key: run.data.metrics[key] for key in numbers} == numbers
    assert "val_loss" not in run.data.metrics  # null in metrics.json
    assert run.data.tags["selected"] == "checkpoint-6"
    assert run.data.tags["diagnosis"] == "none"


@pytest.mark.e2e
def test_wandb_offline_run_equals_params_losses_and_metrics(project: Path, tracked: dict) -> None:
    record = tracked["wandb"]
    assert record["mode"] == "offline"
    run_dir = project / record["run_dir"]
    assert run_dir.parent == project / "wandb"
    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith(record["run_id"])
    config, history, summary = read_wandb_run(run_dir)
    params = load_params()
    assert config["train"] == params.train.model_dump(mode="json")
    assert config["seed"] == params.seed
    assert "track" not in config
    for curve, expected in logged_curves().items():
        points = [(row["_step"], row[curve]) for row in history if curve in row]
        assert points == expected
        assert len(points) >= 2
    assert {key: summary[key] for key in HEADLINE} == HEADLINE


@pytest.mark.e2e
def test_no_environment_secret_is_written(project: Path, tracked: dict) -> None:
    """Not in the MLflow store, reports/tracking.json, the W&B run, nor W&B's own settings
    and logs (its config and cache dirs)."""
    written = [project / "mlflow.db", TRACKING.resolve()]
    for directory in (project / "wandb", project.parent / "home"):
        written += [path for path in directory.rglob("*") if path.is_file()]
    assert len(written) > 3
    for path in written:
        content = path.read_bytes()
        for name, secret in SECRETS.items():
            assert secret.encode() not in content, f"{name}'s value is in {path}"
