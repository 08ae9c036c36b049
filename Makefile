# One command to start the service, one to run the whole test suite (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install serve test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'

serve: install
	$(BIN)/afrnn-serve

# pytest exits 5 when it collects no tests; that must fail, and it does (any non-zero exit fails make).
test: install
	$(BIN)/ruff check model training service tests bench
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check model training service tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
