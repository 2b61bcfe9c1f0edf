#!/usr/bin/env bash
# A custom bake trained and evaluated on data no one here wrote (benchmarks/stdlib_data.py):
#   benchmarks/stdlib_task.sh summaries   # code -> one-sentence summary, chrF then ROUGE-L
#   benchmarks/stdlib_task.sh scraped     # the scraper's view: curate + split only
#   benchmarks/stdlib_task.sh auto        # 400 summary rows, task.scorer left null: curate
#                                         # picks the scorer, select gives one verdict
# Uses the template's dev venv (make venv); writes under ${OUT:-build/stdlib-task}.
set -euo pipefail
KIND=${1:-summaries}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$ROOT" venv >/dev/null
VENV=${VENV:-$(make -s -C "$ROOT" help | sed -n 's/.*VENV=//p')}
OUT=${OUT:-$ROOT/build/stdlib-task}
export PATH=$VENV/bin:$PATH PYTHONPATH=src DVC_NO_ANALYTICS=1 TOKENIZERS_PARALLELISM=false
rm -rf "$OUT" && mkdir -p "$OUT"
cookiecutter "$ROOT" --no-input -f -o "$OUT" task_preset=custom project_name="Stdlib $KIND" >/dev/null
cd "$OUT/stdlib-$KIND"
DATA=$KIND
[ "$KIND" = auto ] && DATA=summaries
python "$ROOT/benchmarks/stdlib_data.py" "$DATA" "data/raw/stdlib_$DATA.jsonl" \
  $([ "$KIND" = auto ] && echo --n 400)
KIND=$KIND python - <<'PY'
import os
import yaml
p = yaml.safe_load(open("params.yaml"))
if os.environ["KIND"] == "auto":  # the defaults, shortened: one epoch, 64 general items
    p["train"]["num_epochs"] = 1
    p["eval"]["general_qa_limit"] = 64
else:
    p["task"]["scorer"] = "chrf"
    p["train"]["save_steps"] = 50
    p["eval"]["general_qa_limit"] = 16
    p["eval"]["instruction_limit"] = 8
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
git add -A && git commit -qm "stdlib $KIND data"
if [ "$KIND" = scraped ]; then
  time dvc repro split
  exit
fi
if [ "$KIND" = auto ]; then
  time dvc repro select
  python - <<'PY'
import json
curate = json.load(open("reports/curate.json"))
print("curate scoring:", json.dumps(curate.get("scoring")))
diagnosis = json.load(open("reports/diagnosis.json"))
print("findings:", [f["mode"] for f in diagnosis["findings"]])
print("verdict:", json.dumps(diagnosis.get("verdict")))
metrics = json.load(open("reports/metrics.json"))
print({k: metrics.get(k) for k in ("task_score", "task_score_lo", "task_score_hi", "task_accuracy",
      "base_task_score", "fewshot_task_score", "general_qa", "forgetting_score", "diagnosis")})
PY
  cp reports/metrics.json reports/diagnosis.json "$OUT/"
  exit
fi
time dvc repro
cp reports/metrics.json "$OUT/metrics-chrf.json"
# the same generations scored with ROUGE-L: eval's cache re-scores without generating again
sed -i 's/^  scorer: chrf/  scorer: rougeL/' params.yaml
time dvc repro
cp reports/metrics.json "$OUT/metrics-rougeL.json"
