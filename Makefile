# One command to start the service, one to run the whole test suite (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Extra pip arguments for torch. Development and CI pin torch==2.13.0; where pip finds no local CPU
# wheel, PyPI's default is the multi-GB CUDA build, and
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# takes the CPU build instead.
TORCH_PIP_ARGS ?=

.PHONY: install serve test lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/afrnn-serve

# pytest exits 5 when it collects no tests; that must fail, and it does (any non-zero exit fails make).
test: install
	$(BIN)/ruff check model artifact physics training service afrnn_client tests bench
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check model artifact physics training service afrnn_client tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
