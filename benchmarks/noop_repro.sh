#!/usr/bin/env bash
# Wall time of a no-op `dvc repro` (everything up to date) in a project that has run once,
# e.g. after `make demo`. Prints one line per run; quote the median.
#   benchmarks/noop_repro.sh build/demo/support-triage-finetune [runs]
set -euo pipefail
project=${1:?usage: noop_repro.sh PROJECT_DIR [RUNS]}
runs=${2:-5}
cd "$project"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}  # the project's own package first
dvc repro >/dev/null   # make sure it is up to date first
for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e s wall, %M KB peak" dvc repro 2>&1 >/dev/null | tail -1
done
