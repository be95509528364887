# Every target makes its own virtualenv from the pinned requirements, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))

.PHONY: help venv render render-all urns lint test docs bench critical-path checkov clean sizing-plan sizing-calibrate bench-sizing

## List the targets with what they do (this text).
help:
	@awk '/^## /{doc=substr($$0, 4); gsub(/[$$][$$]/, "$$", doc); next} /^[a-zA-Z][a-zA-Z0-9_-]*:/{if (doc != "") {split($$0, t, ":"); printf "  make %-10s %s\n", t[1], doc}} {doc=""}' $(firstword $(MAKEFILE_LIST))

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

## Create .venv from requirements.txt and requirements-dev.txt (the targets that need it create it).
venv: $(VENV)/.installed

## Render one stack offline into build/<stack> (no AWS, no Pulumi CLI): make render STACK=prod
render: venv
	$(PY) -m tooling.render --stack $(STACK)

## Render every committed stack offline into build/<stack>.
render-all: venv
	@for s in $(STACKS); do $(PY) -m tooling.render --stack $$s || exit $$?; done

## Rewrite tests/golden/urns/<stack>.txt from a render of every stack file (when a change of the resource set is meant; review the diff).
urns: venv
	@rm -rf build/urns
	@for f in Pulumi.*.yaml tests/configs/Pulumi.*.yaml; do \
	  s=$$(basename $$f .yaml); s=$${s#Pulumi.}; \
	  $(PY) -m tooling.render --config $$f --out build/urns/$$s 2>/dev/null || { $(PY) -m tooling.render --config $$f --out build/urns/$$s; exit 1; }; \
	done
	@mkdir -p tests/golden/urns && rm -f tests/golden/urns/*.txt
	@for d in build/urns/*/; do cp $$d/urns.txt tests/golden/urns/$$(basename $$d).txt; done
	@git status --short -- tests/golden/urns 2>/dev/null || true

## ruff over the Python.
lint: venv
	$(VENV)/bin/ruff check --select E,F,W --ignore E501 .

## Lint, then run every test. The conformance test reads the upstream CRDs from $$DISAGG_CRD_DIR (skips without it).
test: lint
	$(PY) -m pytest -q

## checkov (Kubernetes framework, offline) over one stack's rendered manifests, in its own venv (.venv-checkov)
checkov: render
	scripts/checkov.sh build/$(STACK)/manifests

# vLLM's own argument parser (pinned wheel, CPU torch, in its own venv) over the engine command line of every stack
# and test config, and the KV transfer config as vLLM's KVTransferConfig. Heavy (3 GB venv): CI runs it when the
# engine pin, the serving builders or a stack file change (.github/workflows/ci.yml, job engine-args).
VLLM_VENV ?= .venv-vllm
ENGINE_CHECK := build/engine-check
.PHONY: check-engine
## vLLM 0.30.0's own parser over every rendered engine command line (.venv-vllm, ~3 GB; docs/serving.md)
check-engine: venv
	PYTHON=$(PYTHON) scripts/vllm-venv.sh $(VLLM_VENV)
	rm -rf $(ENGINE_CHECK) && mkdir -p $(ENGINE_CHECK)
	@for f in Pulumi.*.yaml tests/configs/Pulumi.*.yaml; do n=$$(basename $$f .yaml); n=$${n#Pulumi.}; \
	  $(PY) -m tooling.render --config $$f --out $(ENGINE_CHECK)/$$n > /dev/null || exit $$?; done
	$(PY) -m tests.tools.serving_commands --out $(ENGINE_CHECK)/engine-commands.json $(ENGINE_CHECK)/*/manifests
	$(VLLM_VENV)/bin/python tests/tools/vllm_argv_check.py $(ENGINE_CHECK)/engine-commands.json

## Regenerate the README config reference and docs/config.schema.json from the config models.
docs: venv
	$(PY) -m tooling.docs --write

## Render-time benchmark (prints figures).
bench: venv
	$(PY) benchmarks/render_bench.py

## Sizing planner (docs/sizing.md): make sizing-plan ARGS="--model <id> --instance p5.48xlarge --isl 4096 --osl 512 ..."
sizing-plan: venv
	$(PY) -m tooling.sizing plan $(ARGS)

# Calibration and its benchmark read the Parquet tables in ../shared: numpy/pandas/pyarrow live in their own venv.
SIZING_VENV ?= .venv-sizing
$(SIZING_VENV)/.installed: requirements.txt requirements-sizing.txt
	$(PYTHON) -m venv $(SIZING_VENV)
	$(SIZING_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-sizing.txt
	touch $@

## Re-derive tooling/sizing/data/calibration.json from ../shared/reference/data (commit the result).
sizing-calibrate: $(SIZING_VENV)/.installed
	$(SIZING_VENV)/bin/python -m tooling.sizing.calibrate

## Sizing-model accuracy and search-time figures (prints, asserts nothing).
bench-sizing: $(SIZING_VENV)/.installed
	$(SIZING_VENV)/bin/python benchmarks/sizing_bench.py

## Critical path of a first `pulumi up` of prod, from the render's dependency graph (prints the chain).
critical-path: venv
	$(PY) benchmarks/critical_path.py

## Remove build/ and the pytest cache (the virtualenvs stay).
clean:
	rm -rf build .pytest_cache
