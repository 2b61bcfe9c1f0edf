#!/usr/bin/env bash
# A custom bake trained and evaluated on data no one here wrote (benchmarks/stdlib_data.py):
#   benchmarks/stdlib_task.sh summaries   # code -> one-sentence summary, chrF then ROUGE-L
#   benchmarks/stdlib_task.sh scraped     # the scraper's view: curate + split only
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
python "$ROOT/benchmarks/stdlib_data.py" "$KIND" "data/raw/stdlib_$KIND.jsonl"
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["task"]["scorer"] = "chrf"
p["train"]["save_steps"] = 50
p["eval"]["general_qa_limit"] = 16
p["eval"]["instruction_limit"] = 8
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
git add -A && git commit -qm "stdlib $KIND data, chrF"
if [ "$KIND" = scraped ]; then
  time dvc repro split
  exit
fi
time dvc repro
cp reports/metrics.json "$OUT/metrics-chrf.json"
# the same generations scored with ROUGE-L: eval's cache re-scores without generating again
sed -i 's/^  scorer: chrf/  scorer: rougeL/' params.yaml
time dvc repro
cp reports/metrics.json "$OUT/metrics-rougeL.json"
