"""Stage `track` (last; off by default): log the run to MLflow and/or Weights & Biases.

dvclive stays the record DVC reads (reports/train, reports/metrics.json). With
`track.mlflow.enabled` or `track.wandb.enabled` this stage also logs the params, the loss
curves and the headline metrics to those trackers (tracking/track.py), and writes where it
logged them to reports/tracking.json (the run ids; nulls when both are off). It reads other
stages' outputs and writes nothing they read, so a change under `track` re-runs this stage
only."""

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import DPO_LOG_DIR, EVAL_PLOT, METRICS, RL_LOG_DIR, TRACKING, TRAIN_LOG_DIR
from ..tracking.run_data import Sources
from ..tracking.track import track

# dvclive's log dirs by the prefix of their curves' names (train's keep dvclive's names)
SOURCES = Sources(METRICS, {"": TRAIN_LOG_DIR, "dpo/": DPO_LOG_DIR, "rl/": RL_LOG_DIR}, EVAL_PLOT)


def main() -> None:
    params = load_params()
    record = track(params, SOURCES)
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
