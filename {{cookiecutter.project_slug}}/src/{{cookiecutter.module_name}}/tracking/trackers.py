"""Optional experiment trackers next to dvclive (the default): MLflow and Weights & Biases.

The `track` stage runs last and logs one run per pipeline run to each tracker enabled under
`track` in params.yaml: the validated params, every curve dvclive wrote for train (and dpo)
under reports/, and the headline metrics of reports/metrics.json, under the same names
`dvc exp show` and `dvc plots` use. It only reads what other stages wrote, so turning a
tracker on or off never re-runs training or changes a result.

Secrets: nothing here reads a credential or logs an environment value. MLflow's and W&B's
own clients read theirs (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD,
WANDB_API_KEY) from the environment; params.yaml, which is committed, holds none
(params.py rejects a tracking_uri with user:password@ in it). The only environment values
used are DVC's: DVC_ROOT (where the local stores live, also for `dvc exp run --queue`, whose
runs work in a temporary copy), DVC_EXP_NAME (the run's name) and DVC_EXP_BASELINE_REV.
"""

import csv
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..io import read_json
from ..params import MlflowParams, Params, WandbParams, flatten
from ..paths import DPO_LOG_DIR, EVAL_PLOT, METRICS, TRAIN_LOG_DIR

MLFLOW_STORE = "mlflow.db"
"""The local MLflow store (SQLite) under the project root, when track.mlflow.tracking_uri is
null; MLflow's own default name since 3.7."""
MLFLOW_ARTIFACTS = "mlruns"
"""Where the local store's experiments keep artifacts (none are logged here)."""
LOG_DIRS = {"": TRAIN_LOG_DIR, "dpo/": DPO_LOG_DIR}
"""dvclive log dirs -> the prefix of their curves' names (train's keep dvclive's names)."""


@dataclass(frozen=True)
class RunData:
    """What a tracker logs: params (nested, as validated), curves (name -> [(step, value)]),
    the headline metrics (reports/metrics.json as is)."""

    params: dict[str, Any]
    curves: dict[str, list[tuple[int, float]]]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """Where and under what name a run is logged, from DVC's environment variables: the
    project root (local stores live there; W&B writes <root>/wandb/), the experiment's name
    and the commit it started from."""

    root: Path
    run_name: str | None
    baseline_rev: str | None


def project_name() -> str:
    """The default MLflow experiment and W&B project: the package's name, dashed."""
    return __package__.partition(".")[0].replace("_", "-")


def context(environ: Mapping[str, str] = os.environ) -> Context:
    return Context(
        root=Path(environ.get("DVC_ROOT") or ".").resolve(),
        run_name=environ.get("DVC_EXP_NAME") or None,
        baseline_rev=environ.get("DVC_EXP_BASELINE_REV") or None,
    )


def tracked_params(params: Params) -> dict[str, Any]:
    """Every section but `track` (where to log is not part of the experiment)."""
    return params.model_dump(mode="json", exclude={"track"})


def param_text(value: Any) -> str:
    """MLflow params are strings: a string as is, anything else as JSON (null, true, [..])."""
    return value if isinstance(value, str) else json.dumps(value)


def read_curves(log_dir: Path, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    """dvclive's TSVs under `log_dir`/plots/metrics: the path without .tsv names the curve
    (loss, eval/loss, learning_rate, ...), as in `dvc plots`."""
    root = log_dir / "plots" / "metrics"
    curves = {}
    for tsv in sorted(root.rglob("*.tsv")):
        with tsv.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        column = tsv.stem
        name = prefix + tsv.relative_to(root).with_suffix("").as_posix()
        curves[name] = [(int(float(row["step"])), float(row[column])) for row in rows]
    return curves


def collect(params: Params) -> RunData:
    if not METRICS.exists():
        raise StageError(f"{METRICS} not found: run the pipeline (`dvc repro`) up to select")
    curves: dict[str, list[tuple[int, float]]] = {}
    for prefix, log_dir in LOG_DIRS.items():
        curves |= read_curves(log_dir, prefix)
    curves |= val_loss_curve(EVAL_PLOT)
    return RunData(tracked_params(params), curves, read_json(METRICS))


def val_loss_curve(eval_plot: Path) -> dict[str, list[tuple[int, float]]]:
    """The val loss eval measured (step 0 = the base), under the name a trainer's val passes
    log it with (`eval/loss`)."""
    if not eval_plot.exists():
        return {}
    rows = read_json(eval_plot)
    points = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"] is not None]
    return {"eval/loss": sorted(points)} if points else {}


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers (a bool as 0/1) for MLflow's metrics, strings for its tags; nulls are left out."""
    numbers = {key: float(v) for key, v in metrics.items() if isinstance(v, int | float)}
    texts = {key: value for key, value in metrics.items() if isinstance(value, str)}
    return numbers, texts


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------- MLflow


def mlflow_uri(settings: MlflowParams, root: Path) -> str:
    return settings.tracking_uri or f"sqlite:///{root / MLFLOW_STORE}"


def mlflow_experiment(client, name: str, root: Path, local: bool) -> str:
    """The experiment's id, created when missing (queued experiments may race to create it)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (root / MLFLOW_ARTIFACTS).as_uri() if local else None
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def log_mlflow(settings: MlflowParams, data: RunData, where: Context) -> dict[str, Any]:
    """One MLflow run: params as `section.key` strings, each curve as a metric history by
    step, the headline numbers as metrics (step 0) and its strings as tags."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = mlflow_uri(settings, where.root)
    client = MlflowClient(tracking_uri=uri)
    name = settings.experiment or project_name()
    experiment_id = mlflow_experiment(client, name, where.root, settings.tracking_uri is None)
    numbers, texts = split_metrics(data.metrics)
    if where.baseline_rev:
        texts["dvc.baseline_rev"] = where.baseline_rev
    run = client.create_run(experiment_id, run_name=where.run_name, tags=texts)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = [Param(key, param_text(value)) for key, value in flatten(data.params).items()]
    metrics = [
        Metric(key, value, now, step)
        for key, points in data.curves.items()
        for step, value in points
    ]
    metrics += [Metric(key, value, now, 0) for key, value in numbers.items()]
    for batch in chunks(params, 100):  # MLflow's limits per log_batch call
        client.log_batch(run_id, params=batch)
    for batch in chunks(metrics, 1000):
        client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    shown = "sqlite:///" + MLFLOW_STORE if settings.tracking_uri is None else uri
    return {"tracking_uri": shown, "experiment": name, "run_id": run_id}


# ----------------------------------------------------------------------- Weights & Biases


def log_wandb(settings: WandbParams, data: RunData, where: Context) -> dict[str, Any]:
    """One W&B run: params as its config, the train curves by global step (dpo's against
    dpo/step), the headline metrics as its summary."""
    import wandb

    run = wandb.init(
        project=settings.project or project_name(),
        entity=settings.entity,
        mode=settings.mode,
        dir=str(where.root),
        name=where.run_name,
        notes=f"dvc baseline {where.baseline_rev}" if where.baseline_rev else None,
        config=data.params,
        settings=wandb.Settings(console="off", save_code=False, disable_git=True, quiet=True),
    )
    try:
        train = {k: v for k, v in data.curves.items() if not k.startswith("dpo/")}
        for step, values in by_step(train):
            run.log(values, step=step)
        dpo = {k: v for k, v in data.curves.items() if k.startswith("dpo/")}
        if dpo:
            run.define_metric("dpo/step")
            run.define_metric("dpo/*", step_metric="dpo/step")
            for step, values in by_step(dpo):
                run.log({"dpo/step": step, **values})
        run.summary.update(data.metrics)
        run_dir = Path(run.dir).parent
        record = {"project": run.project, "mode": settings.mode, "run_id": run.id}
        record["run_dir"] = run_dir.relative_to(where.root).as_posix()
    finally:
        run.finish()
    return record


def by_step(curves: Mapping[str, list[tuple[int, float]]]) -> list[tuple[int, dict[str, float]]]:
    """Curves -> [(step, {name: value})] in step order (W&B's steps only go forward)."""
    steps: dict[int, dict[str, float]] = {}
    for name, points in curves.items():
        for step, value in points:
            steps.setdefault(step, {})[name] = value
    return sorted(steps.items())


# ----------------------------------------------------------------------------------- both


def check_installed(tracker: str) -> None:
    try:
        __import__(tracker)
    except ImportError as error:
        raise StageError(
            f"track.{tracker}.enabled is true but {tracker} is not installed: "
            f"pip install -e '.[{tracker}]' (or set it to false)"
        ) from error


def check_wandb_credentials(settings: WandbParams, environ: Mapping[str, str]) -> None:
    if settings.mode == "online" and not environ.get("WANDB_API_KEY"):
        raise StageError(
            "track.wandb.mode is online but WANDB_API_KEY is not set: export it in the "
            "environment (never in params.yaml), or use mode offline and `wandb sync` later"
        )


def track(params: Params, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Log this pipeline run to each enabled tracker; returns what was logged where."""
    settings = params.track
    record: dict[str, Any] = {"mlflow": None, "wandb": None}
    enabled = [name for name in ("mlflow", "wandb") if getattr(settings, name).enabled]
    if not enabled:
        return record
    for name in enabled:
        check_installed(name)
    if settings.wandb.enabled:
        check_wandb_credentials(settings.wandb, environ)
    data, where = collect(params), context(environ)
    if settings.mlflow.enabled:
        from mlflow.exceptions import MlflowException

        try:
            record["mlflow"] = log_mlflow(settings.mlflow, data, where)
        except MlflowException as error:
            uri = mlflow_uri(settings.mlflow, where.root)
            raise StageError(f"MLflow ({uri}): {error}") from error
    if settings.wandb.enabled:
        import wandb

        try:
            record["wandb"] = log_wandb(settings.wandb, data, where)
        except wandb.errors.Error as error:
            raise StageError(f"W&B ({settings.wandb.mode}): {error}") from error
    return record
