#!/usr/bin/env bash
# `make demo`: bake the default project, run its whole pipeline stage by stage, commit that as
# the baseline, run the experiments its diagnosis suggests (`make improve`: the baseline and
# each experiment ranked within the guardrails, the winner's `dvc exp apply`), show them all
# with their intervals (`make exp-show`), print the exports with their parity table, and report
# how long each phase took.
#
# Called by the root Makefile, which passes its variables:
#   VENV      the dev virtualenv (required; `make venv` creates or reuses it)
#   MAKE      the make to run sub-targets with (default: make)
#   DEMO_OUT  where the project is baked (default: build/demo); the phase timings are
#             appended to $DEMO_OUT/timings.txt
# Run by hand: VENV=<path from `make help`> bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${VENV:?set VENV to the dev virtualenv (see make help)}"
MAKE=${MAKE:-make}
DEMO_OUT=${DEMO_OUT:-build/demo}
SLUG=support-triage-finetune      # the default answers' project_slug

# Phase 1: the virtualenv (cached across runs, so usually instant).
t0=$(date +%s)
"$MAKE" --no-print-directory venv VENV="$VENV"
t1=$(date +%s)

# Phase 2: bake the template with its default answers.
mkdir -p "$DEMO_OUT"
demo_out=$(cd "$DEMO_OUT" && pwd)
timings="$demo_out/timings.txt"
rm -rf "${demo_out:?}/$SLUG"
"$VENV/bin/cookiecutter" . --no-input -f -o "$demo_out"
t2=$(date +%s)

# Phase 3: install the baked package into the venv (its dependencies are already there).
cd "$demo_out/$SLUG"
"$VENV/bin/pip" install -e . --no-deps -q
t3=$(date +%s)

# Phase 4: every stage on its own, in dvc.yaml order (the pipeline order), timed.
export PATH="$VENV/bin:$PATH" PYTHONPATH=src DVC_NO_ANALYTICS=1
stages=$(dvc stage list --name-only)
stage_times=()
for stage in $stages; do
    s0=$(date +%s)
    dvc repro --single-item "$stage"
    stage_times+=("  $stage: $(($(date +%s) - s0))s")
done
t4=$(date +%s)

# Every stage ran in dvc.yaml order, so the pipeline is up to date; commit it as the baseline
# experiment. Without a git identity configured, commit as a demo user rather than failing.
# (${a[@]+"${a[@]}"} expands an empty array without tripping `set -u` in bash 3.2, macOS's
# /bin/bash.)
ident=()
git config user.email >/dev/null || ident=(-c user.name=demo -c user.email=demo@localhost)
git add -A
git ${ident[@]+"${ident[@]}"} commit -q -m "Baseline: dvc repro"
t5=$(date +%s)

# Phase 5: the baseline's diagnosis (select printed it; reports/report.md has the evidence),
# its suggestions run as experiments, ranked with the baseline; then all of them side by side.
echo
echo "== diagnosis of the baseline (reports/diagnosis.json) =="
python - <<'PY'
import json

diagnosis = json.load(open("reports/diagnosis.json"))
print("guardrails passed:", diagnosis["guardrails_passed"])
if diagnosis.get("verdict"):
    print(f"verdict: {diagnosis['verdict'].get('summary', '')}")
for finding in diagnosis["findings"] or [{"mode": "none"}]:
    print(f"- {finding['mode']}: {finding.get('evidence', '')}")
    if finding.get("command") or finding.get("fix"):
        print(f"  try: {finding.get('command') or finding['fix']}")
PY
"$MAKE" --no-print-directory improve VENV="$VENV"
t6=$(date +%s)
"$MAKE" --no-print-directory exp-show VENV="$VENV"

# What people deploy: the exports of the model in the workspace and how each reproduced it.
echo
echo "== exports (models/export) and their parity with the adapter (reports/export.md) =="
du -sh models/selected models/export/* 2>/dev/null || true
sed -n '/^|/p' reports/export.md

summary=$(printf '%s\n' \
    "install: $((t1 - t0 + t3 - t2))s (venv + editable install)" \
    "bake: $((t2 - t1))s" \
    "repro: $((t4 - t3))s, by stage:" \
    "${stage_times[@]}" \
    "improve: $((t6 - t5))s (the diagnosis's experiments)")
echo
echo "== demo timings =="
echo "$summary"
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "$summary"
} >>"$timings"
echo "(appended to $DEMO_OUT/timings.txt)"
