# The newcomer's two commands: `make demo` and `make test`. Everything installs itself on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PYTHONPATH := lambda_src:.

.PHONY: demo test lint typecheck unit integration infra synth bench clean

$(VENV)/.installed: requirements.txt lambda_src/requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.installed
	$(PY) -m demo

test: lint typecheck unit integration infra synth

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest -q tests/integration

infra: $(VENV)/.installed node_modules/.installed
	$(PY) -m pytest -q tests/infra

# One full synth with bundling and cdk-nag, then a vault (issue 11) from the same app into cdk.out/vault, then
# cfn-lint over every template they wrote.
VAULT_CONTEXT := {"sources": [{"account": "111111111111", "regions": ["eu-west-1", "us-east-1"]}], "policy": "gfs", "kmsKey": "alias/snapshot-vault"}
synth: $(VENV)/.installed node_modules/.installed
	rm -rf cdk.out
	PATH="$(abspath $(VENV))/bin:$$PATH" npx --no-install cdk synth --quiet
	PATH="$(abspath $(VENV))/bin:$$PATH" npx --no-install cdk synth --quiet -o cdk.out/vault \
		-c 'vault=$(VAULT_CONTEXT)'
	$(VENV)/bin/cfn-lint cdk.out/*.template.json cdk.out/vault/*.template.json

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache
