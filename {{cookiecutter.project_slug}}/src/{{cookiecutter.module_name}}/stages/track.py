"""Stage `track` (last; off by default): log the run to MLflow and/or Weights & Biases.

dvclive stays the record DVC reads (reports/train, reports/metrics.json). With
`track.mlflow.enabled` or `track.wandb.enabled` this stage also logs the params, the loss
curves and the headline metrics to those trackers (tracking/trackers.py), and writes where it logged
them to reports/tracking.json (the run ids; nulls when both are off). It reads other stages'
outputs and writes nothing they read, so a change under `track` re-runs this stage only."""

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import TRACKING
from ..tracking.trackers import track


def main() -> None:
    params = load_params()
    record = track(params)
    write_json(TRACKING, record)
    mlflow, wandb = record["mlflow"], record["wandb"]
    if mlflow:
        where = f"{mlflow['experiment']} ({mlflow['tracking_uri']})"
        print(f"track: MLflow run {mlflow['run_id']} in {where}")
    if wandb:
        print(f"track: W&B {wandb['mode']} run {wandb['run_id']} in {wandb['run_dir']}")
        if wandb["mode"] == "offline":
            print(f"track: upload it with `wandb sync {wandb['run_dir']}`")
    if not any(record.values()):
        print("track: no tracker enabled (track.mlflow.enabled, track.wandb.enabled); dvclive only")


if __name__ == "__main__":
    run_stage("track", main)
