# Every target makes its own virtualenv from the pinned requirements, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))

.PHONY: venv render render-all lint test docs bench checkov clean

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
	  $(PY) -m stacks.render --config $$f --out $(ENGINE_CHECK)/$$n > /dev/null || exit $$?; done
	$(PY) -m tests.tools.serving_commands --out $(ENGINE_CHECK)/engine-commands.json $(ENGINE_CHECK)/*/manifests
	$(VLLM_VENV)/bin/python tests/tools/vllm_argv_check.py $(ENGINE_CHECK)/engine-commands.json

## Regenerate the README config reference and docs/config.schema.json from the config models.
docs: venv
	$(PY) -m stacks.docs --write

## Render-time benchmark (prints figures).
bench: venv
	$(PY) benchmarks/render_bench.py

clean:
	rm -rf build .pytest_cache
