#!/usr/bin/env bash
# What `dvc repro` re-runs after one edit, and its wall time (docs/benchmarks.md "`make demo`
# after the layout restructure"), in a project where `dvc repro` has run (e.g. after `make demo`):
#   benchmarks/edit_repro.sh build/demo/support-triage-finetune [MODULE]
# 1. a comment appended to MODULE (default training/advisor.py, a library only smoke uses):
#    the stages `dvc repro` runs, and its wall time;
# 2. `train.learning_rate: fast` in params.yaml: check_params must stop the run naming the key,
#    and reports/smoke.json and reports/metrics.json must stay byte-identical (md5).
# Both edits are undone at the end (git checkout of the module, params.yaml and dvc.lock, then
# `dvc checkout`); outputs that DVC does not cache (reports/smoke.json) keep the re-run's.
set -euo pipefail
project=$(cd "${1:?usage: edit_repro.sh PROJECT_DIR [MODULE]}" && pwd)
cd "$project"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}  # the project's own package first
package=$(basename "$(dirname "$(ls src/*/params.py)")")
module=src/$package/${2:-training/advisor.py}
undo() { git checkout HEAD -- "$module" params.yaml dvc.lock && dvc checkout --force >/dev/null 2>&1 || true; }
trap undo EXIT
dvc repro >/dev/null   # up to date first

echo "# comment" >>"$module"
SECONDS=0
ran=$(dvc repro 2>&1 | sed -n "s/^Running stage '\([^']*\)'.*/\1/p" | paste -sd, -)
echo "edit $module: dvc repro ran [$ran] in $SECONDS s"
git checkout HEAD -- "$module"

before=$(md5sum reports/smoke.json reports/metrics.json)
sed -i '/^train:/,/^[a-z]/ s/^  learning_rate: [^#]*/  learning_rate: fast    /' params.yaml
SECONDS=0
if out=$(dvc repro 2>&1); then
    echo "train.learning_rate: fast: dvc repro did not fail" >&2
    exit 1
fi
ran=$(echo "$out" | sed -n "s/^Running stage '\([^']*\)'.*/\1/p" | paste -sd, -)
echo "train.learning_rate: fast: dvc repro ran [$ran], failed in $SECONDS s;" \
    "names the key: $(echo "$out" | grep -q 'train.learning_rate' && echo yes || echo no);" \
    "smoke.json and metrics.json unchanged: $([ "$before" = "$(md5sum reports/smoke.json reports/metrics.json)" ] && echo yes || echo no)"
