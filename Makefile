# pacelink developer entry points. `make demo` and `make test` work on a fresh machine:
# each creates the virtual environments it needs.

PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
DEMO_DIR ?= out/demo

.PHONY: demo encode-sample test lint typecheck pytest browser bench-encode schemas clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# ruff and mypy live apart: clkhash pins mypy_extensions<0.5, which mypy cannot use.
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet 'ruff==0.17.6' 'mypy==2.4.1' 'pandas-stubs'
	touch $@

## The main job end to end: partners encode and upload, the embedded unit links, releases.
demo: $(VENV)/.installed
	$(BIN)/pacelink demo

## The partner's side only: encode the bundled synthetic sample file.
encode-sample: $(VENV)/.installed
	mkdir -p $(DEMO_DIR)
	rm -f $(DEMO_DIR)/partnership.key
	$(BIN)/pacelink keygen --out $(DEMO_DIR)/partnership.key
	$(BIN)/pacelink encode encoder/data/sample_partner.csv --schema pace-default \
		--secret-file $(DEMO_DIR)/partnership.key --out $(DEMO_DIR)/sample.plk \
		--id-column local_id --consent-column consent --report $(DEMO_DIR)/report.json --force
	$(BIN)/pacelink inspect $(DEMO_DIR)/sample.plk

## Lint, type-check and run the whole test suite.
test: lint typecheck pytest

lint: $(TOOLS)/.installed
	$(TOOLS)/bin/ruff check .
	$(TOOLS)/bin/ruff format --check .

typecheck: $(TOOLS)/.installed $(VENV)/.installed
	$(TOOLS)/bin/mypy --python-executable $(BIN)/python

pytest: $(VENV)/.installed browser
	$(BIN)/python -m pytest

## The web console's tests drive Debian's headless Chromium (no browser download at run time).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
		{ echo "install Debian's chromium and chromium-driver (as root) for the console tests"; exit 1; }; \
	fi

bench-encode: $(VENV)/.installed
	$(BIN)/python -m benchmarks.encode_speed

schemas: $(VENV)/.installed
	$(BIN)/python -m encoder.exports schemas
	$(BIN)/python -m linkage_unit.exports schemas

clean:
	rm -rf $(VENV) $(TOOLS) out benchmarks/work
