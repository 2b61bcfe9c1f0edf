#!/usr/bin/env bash
# `make sweep` wall time, workers x torch threads: a 2-point grid (train.lora_r=16,32) queued
# and run from scratch RUNS times per setting, the settings interleaved (docs/benchmarks.md
# "make sweep"). Run in a project whose baseline is committed, e.g. the tiny-model project
# of `python benchmarks/tiny_project.py DIR`, with the project's venv on PATH:
#   benchmarks/sweep_workers.sh PROJECT_DIR [RUNS] [SETTINGS]
# SETTINGS: space-separated JOBSxTHREADS (default "1x2 2x1 2x2": OMP_NUM_THREADS overrides
# the sweep's cores / JOBS split). Each run first removes every experiment and queued task.
set -euo pipefail
project=$(cd "${1:?usage: sweep_workers.sh PROJECT_DIR [RUNS] [SETTINGS]}" && pwd)
runs=${2:-3}
settings=${3:-1x2 2x1 2x2}
grid=${SWEEP_GRID:--S train.lora_r=16,32}
cd "$project"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}  # the project's own package first
for run in $(seq "$runs"); do
    for setting in $settings; do
        jobs=${setting%x*} threads=${setting#*x}
        dvc exp remove --all-commits >/dev/null 2>&1 || true
        dvc queue remove --all >/dev/null 2>&1 || true
        SECONDS=0
        OMP_NUM_THREADS=$threads make sweep VENV= JOBS="$jobs" SWEEP="$grid" >"${TMPDIR:-/tmp}/sweep-$setting-$run.log" 2>&1
        echo "JOBS=$jobs, $threads thread(s) each, run $run: $SECONDS s"
    done
done
