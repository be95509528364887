# Every target makes its own virtualenv from the pinned requirements, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))

.PHONY: venv render render-all lint test docs bench critical-path checkov clean

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

## Critical path of a first `pulumi up` of prod, from the render's dependency graph (prints the chain).
critical-path: venv
	$(PY) benchmarks/critical_path.py

clean:
	rm -rf build .pytest_cache
