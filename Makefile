# dr-toolkit — every target creates its own virtualenv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The README's first command: the two-region estate on the embedded sandbox.
demo: $(STAMP)
	$(PY) scripts/demo.py

# The README's second command. -n auto: pytest-xdist over the machine's cores.
# Exit code 5 (no tests collected) is a failure here, never a silent success.
# Bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set: otherwise every xdist
# worker, sandbox and `dr` subprocess recompiles (and pytest re-rewrites) every module it imports
# (collection alone: 10 s → 4 s of CPU per worker).
test: $(STAMP)
	@env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n auto -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests — failing on purpose" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check dr tests scripts $(wildcard __main__.py)
	$(VENV)/bin/ruff format --check dr tests scripts $(wildcard __main__.py)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .dr-sandbox
