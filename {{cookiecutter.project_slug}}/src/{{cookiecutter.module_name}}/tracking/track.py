"""Optional experiment trackers next to dvclive (the default): MLflow and Weights & Biases.

The `track` stage runs last and logs one run per pipeline run to each tracker enabled under
`track` in params.yaml: the validated params, every curve dvclive wrote for train (and dpo)
under reports/, and the headline metrics of reports/metrics.json (run_data.py), under the
same names `dvc exp show` and `dvc plots` use; mlflow_logger.py and wandb_logger.py log them.
It only reads what other stages wrote, so turning a tracker on or off never re-runs training
or changes a result.

Secrets: nothing here reads a credential or logs an environment value. MLflow's and W&B's
own clients read theirs (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD,
WANDB_API_KEY) from the environment; params.yaml, which is committed, holds none
(params.py rejects a tracking_uri with user:password@ in it). The only environment values
used are DVC's: DVC_ROOT (where the local stores live, also for `dvc exp run --queue`, whose
runs work in a temporary copy), DVC_EXP_NAME (the run's name) and DVC_EXP_BASELINE_REV.
"""

import os
from collections.abc import Mapping
from typing import Any

from ..errors import StageError
from ..params import Params, WandbParams
from .context import context
from .mlflow_logger import log_mlflow, mlflow_uri
from .run_data import Sources, collect
from .wandb_logger import log_wandb


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


def track(
    params: Params, sources: Sources, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """Log this pipeline run (read from `sources`) to each enabled tracker; returns what was
    logged where."""
    settings = params.track
    record: dict[str, Any] = {"mlflow": None, "wandb": None}
    enabled = [name for name in ("mlflow", "wandb") if getattr(settings, name).enabled]
    if not enabled:
        return record
    for name in enabled:
        check_installed(name)
    if settings.wandb.enabled:
        check_wandb_credentials(settings.wandb, environ)
    data, where = collect(params, sources), context(environ)
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
