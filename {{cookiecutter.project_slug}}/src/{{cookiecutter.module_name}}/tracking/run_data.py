"""What a tracker logs of a pipeline run: the validated params, every curve dvclive wrote for
train (and dpo), eval's val loss by step and the headline metrics, read from the files the
stages wrote (their paths passed in), under the names `dvc exp show` and `dvc plots` use."""

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..evaluation.metric_names import VAL_LOSS
from ..io import read_json
from ..params import Params


@dataclass(frozen=True)
class RunData:
    """What a tracker logs: params (nested, as validated), curves (name -> [(step, value)]),
    the headline metrics (reports/metrics.json as is)."""

    params: dict[str, Any]
    curves: dict[str, list[tuple[int, float]]]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Sources:
    """Where the stages wrote what is logged."""

    metrics: Path  # select's reports/metrics.json
    log_dirs: dict[str, Path]  # the prefix of their curves' names -> a dvclive log dir
    eval_plot: Path  # eval's val loss by step


def tracked_params(params: Params) -> dict[str, Any]:
    """Every section but `track` (where to log is not part of the experiment)."""
    return params.model_dump(mode="json", exclude={"track"})


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


def val_loss_curve(eval_plot: Path) -> dict[str, list[tuple[int, float]]]:
    """The val loss eval measured (step 0 = the base), under the name a trainer's val passes
    log it with (`eval/loss`)."""
    if not eval_plot.exists():
        return {}
    rows = read_json(eval_plot)
    points = [(int(r["step"]), float(r[VAL_LOSS])) for r in rows if r[VAL_LOSS] is not None]
    return {"eval/loss": sorted(points)} if points else {}


def collect(params: Params, sources: Sources) -> RunData:
    if not sources.metrics.exists():
        raise StageError(
            f"{sources.metrics} not found: run the pipeline (`dvc repro`) up to select"
        )
    curves: dict[str, list[tuple[int, float]]] = {}
    for prefix, log_dir in sources.log_dirs.items():
        curves |= read_curves(log_dir, prefix)
    curves |= val_loss_curve(sources.eval_plot)
    return RunData(tracked_params(params), curves, read_json(sources.metrics))
