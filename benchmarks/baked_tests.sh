#!/usr/bin/env bash
# Bake the default project and run some of its own tests with their durations
# (docs/benchmarks.md "Crash safety": tests/test_resume.py, tests/test_distributed.py):
#   benchmarks/baked_tests.sh tests/test_resume.py tests/test_distributed.py
# Run with the template's dev venv on PATH (`make bench-crash-safety` does); bakes into
# ${OUT:-build/baked-tests}, emptied first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/build/baked-tests}
rm -rf "$OUT" && mkdir -p "$OUT"
cookiecutter "$ROOT" --no-input -f -o "$OUT" >/dev/null
cd "$OUT/support-triage-finetune"
PYTHONPATH=src /usr/bin/time -f "%e s wall" python -m pytest -q -p no:cacheprovider --durations=0 "$@"
