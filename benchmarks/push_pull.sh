#!/usr/bin/env bash
# `dvc push` of a project to a directory remote on the same disk, then `git clone` + `dvc pull`
# into a new directory and `dvc status` there: wall time of each step, the number of files
# sent and the size of each pushed output (docs/benchmarks.md "Sharing").
#   benchmarks/push_pull.sh build/demo/support-triage-finetune [WORK_DIR]
# Run with the project's venv on PATH, after its baseline is committed (e.g. after `make demo`).
# The remote is added to each repo's local (uncommitted) DVC config; WORK_DIR is emptied first.
set -euo pipefail
project=$(cd "${1:?usage: push_pull.sh PROJECT_DIR [WORK_DIR]}" && pwd)
work=${2:-/tmp/bench-push-pull}
rm -rf "$work" && mkdir -p "$work/remote"
timed() { /usr/bin/time -f "$1: %e s wall" "${@:2}" >/dev/null; }

cd "$project"
if ! git diff --quiet HEAD -- dvc.lock; then
    echo "$project: dvc.lock differs from HEAD's (a later run?): the clone would pull HEAD's" \
        "outputs, not these; commit it or restore HEAD's (git checkout + dvc checkout)" >&2
    exit 1
fi
dvc remote add --local --force -d bench "$work/remote"
timed "dvc push" dvc push -r bench
echo "files in the remote: $(find "$work/remote" -type f | wc -l)"
echo "sizes (du) of models/ and data/ (models/checkpoints stays local: not pushed):"
du -sh models/* data 2>/dev/null | sed 's/^/  /'

git clone -q "$project" "$work/clone"
cd "$work/clone"
dvc remote add --local --force -d bench "$work/remote"
timed "dvc pull in the clone" dvc pull -r bench
/usr/bin/time -f "dvc status in the clone: %e s wall" dvc status
