"""A pipeline run logged to MLflow: params, curves by step, headline metrics and tags."""

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..params import MlflowParams, flatten
from .context import Context, project_name
from .run_data import RunData

MLFLOW_STORE = "mlflow.db"
"""The local MLflow store (SQLite) under the project root, when track.mlflow.tracking_uri is
null; MLflow's own default name since 3.7."""
MLFLOW_ARTIFACTS = "mlruns"
"""Where the local store's experiments keep artifacts (none are logged here)."""


def param_text(value: Any) -> str:
    """MLflow params are strings: a string as is, anything else as JSON (null, true, [..])."""
    return value if isinstance(value, str) else json.dumps(value)


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers (a bool as 0/1) for MLflow's metrics, strings for its tags; nulls are left out."""
    numbers = {key: float(v) for key, v in metrics.items() if isinstance(v, int | float)}
    texts = {key: value for key, value in metrics.items() if isinstance(value, str)}
    return numbers, texts


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
