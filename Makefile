# Two commands do all the set-up on a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS ?= models
WORKERS ?= 1

SERVE_VENV := .venv-serve
DEV_VENV := .venv

.PHONY: serve test lint models clean

# The service's own environment holds no torch: it proves the run-time dependency list.
$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --upgrade pip
	$(SERVE_VENV)/bin/pip install -q -e .
	touch $@

$(DEV_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install -q --upgrade pip
	$(DEV_VENV)/bin/pip install -q -e '.[train,dev]'
	touch $@

serve: $(SERVE_VENV)/.installed
	$(SERVE_VENV)/bin/auscult serve --models $(MODELS) --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: lint
	bash scripts/install-test-tools
	bash scripts/run-tests $(DEV_VENV)/bin/python

lint: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/ruff check service training tests benchmarks
	$(DEV_VENV)/bin/ruff format --check service training tests benchmarks
	$(DEV_VENV)/bin/mypy

# Rebuilds the default bundles in models/ from the real data (AUSCULT_DATA_DIR, default ../shared/data).
models: $(DEV_VENV)/.installed
	bash scripts/build-default-models $(DEV_VENV)/bin/python

clean:
	rm -rf $(SERVE_VENV) $(DEV_VENV)
