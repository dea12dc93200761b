# The two set-up commands of the README. Each creates .venv on first use and installs
# collapse into it (torch/torchvision pinned to the releases the CI machines carry).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: quickstart check test test-fast bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

quickstart: $(STAMP)
	$(BIN)/collapse run configs/quickstart.yaml

# The static checks both test targets run first: style, the layers (import-linter, contracts in
# pyproject.toml) and the types (mypy over collapse/).
check: $(STAMP)
	$(BIN)/ruff check collapse tests benchmarks ray_jobs
	$(BIN)/ruff format --check collapse tests benchmarks ray_jobs
	$(BIN)/lint-imports
	$(BIN)/mypy

test: check
	$(BIN)/pytest -q

# The suite without its slow tests (markers in pyproject.toml; docs/testing.md): minutes, not 20.
test-fast: check
	$(BIN)/pytest -q -m "not (ray_train or subprocess or faults or slow)"

bench: $(STAMP)
	$(BIN)/collapse bench chain
