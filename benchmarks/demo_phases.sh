#!/usr/bin/env bash
# Wall time of `make demo`'s phases (install, bake, each pipeline stage, the second
# experiment), from a fresh clone. scripts/demo.sh (make demo) times each phase itself and
# appends the figures to build/demo/timings.txt; this wrapper also times the whole command.
#   benchmarks/demo_phases.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
/usr/bin/time -f "make demo: %e s wall, %M KB peak (largest process)" make demo
tail -n 20 build/demo/timings.txt
