# Every target makes its own virtualenv from the pinned requirements, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))

.PHONY: venv render render-all lint test docs bench checkov clean sizing-plan sizing-calibrate bench-sizing

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

## Render one stack offline into build/<stack> (no AWS, no Pulumi CLI): make render STACK=prod
render: venv
	$(PY) -m stacks.render --stack $(STACK)

render-all: venv
	@for s in $(STACKS); do $(PY) -m stacks.render --stack $$s || exit $$?; done

lint: venv
	$(VENV)/bin/ruff check --select E,F,W --ignore E501 .

## Lint, then run every test. The conformance test reads the upstream CRDs from $$DISAGG_CRD_DIR (skips without it).
test: lint
	$(PY) -m pytest -q

## checkov (Kubernetes framework, offline) over one stack's rendered manifests, in its own venv (.venv-checkov)
checkov: render
	scripts/checkov.sh build/$(STACK)/manifests

## Regenerate the README config reference and docs/config.schema.json from the config models.
docs: venv
	$(PY) -m stacks.docs --write

## Render-time benchmark (prints figures).
bench: venv
	$(PY) benchmarks/render_bench.py

## Sizing planner (docs/sizing.md): make sizing-plan ARGS="--model nvidia/Llama-3.3-70B-Instruct-FP8 --instance p5.48xlarge
##   --isl 4096 --osl 512 --rate 10 --ttft-ms 1000 --itl-ms 40 --out Pulumi.sized.yaml"
sizing-plan: venv
	$(PY) -m stacks.sizing plan $(ARGS)

# Calibration and its benchmark read the Parquet tables in ../shared: numpy/pandas/pyarrow live in their own venv.
SIZING_VENV ?= .venv-sizing
$(SIZING_VENV)/.installed: requirements.txt requirements-sizing.txt
	$(PYTHON) -m venv $(SIZING_VENV)
	$(SIZING_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-sizing.txt
	touch $@

## Re-derive stacks/sizing/data/calibration.json from ../shared/reference/data (commit the result).
sizing-calibrate: $(SIZING_VENV)/.installed
	$(SIZING_VENV)/bin/python -m stacks.sizing.calibrate

## Sizing-model accuracy and search-time figures (prints, asserts nothing).
bench-sizing: $(SIZING_VENV)/.installed
	$(SIZING_VENV)/bin/python benchmarks/sizing_bench.py

clean:
	rm -rf build .pytest_cache
