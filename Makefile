# One command to start the service, one to run the whole test suite (see README); `make lock` after
# any dependency change in pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Extra pip arguments for torch. Development and CI pin torch==2.13.0; where pip finds no local CPU
# wheel, PyPI's default is the multi-GB CUDA build, and
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# takes the CPU build instead.
TORCH_PIP_ARGS ?=
# Where `make lock` finds the CPU torch wheel whose dependencies the locks pin (this machine: /opt/wheels).
TORCH_FIND_LINKS ?= /opt/wheels
TORCH_PIN = $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

# Hash-locked requirements, generated from pyproject.toml by `make lock` (uv pip compile):
#   requirements/runtime.txt     the service's dependencies (the Docker image installs these)
#   requirements/dev.txt         the same plus every extra (dev, bench, ...): what `make test` installs
#   requirements/torch-cuda.txt  the image's CUDA torch build and its NVIDIA wheels (Python 3.12, the
#                                nvidia/cuda:*-ubuntu24.04 base)
# torch itself is left out of runtime.txt and dev.txt (--no-emit-package torch): development and CI
# install the CPU wheel of the same release from local disk (`pip install torch==2.13.0` finds it via
# pip's find-links), which is not on PyPI and would fail a PyPI hash; its dependencies (sympy,
# networkx, jinja2, ...) are in the locks. The image installs torch from torch-cuda.txt, or in CI the
# CPU wheel through the Dockerfile's TORCH_REQUIREMENT build-arg.
LOCKS = requirements/runtime.txt requirements/dev.txt requirements/torch-cuda.txt
LOCK_FLAGS = --quiet --generate-hashes --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock"

.PHONY: install serve test test-fast lint lock image clean bench

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-installs when the dev lock or pyproject.toml (entry points, package list) changes.
# --no-deps: the lock is complete, so pip installs exactly its versions and checks every hash.
$(VENV)/.installed: requirements/dev.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) $(TORCH_PIN)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/afrnn-serve

# pytest exits 5 when it collects no tests; that must fail, and it does (any non-zero exit fails make).
test: install
	$(BIN)/ruff check model artifact physics training service afrnn_client afrnn_schemas tests bench
	$(BIN)/python -m pytest -q

# The fast lane: ruff and the tests that start no service process (the `server` marker, set from a
# test's fixtures in tests/conftest.py), no container, no browser, need no real data and are not
# marked slow; also left out: the README's commands (they serve and train), the multi-process
# training test, and the fifty-step training comparison of the fused recurrence. `make test` runs all.
FAST_MARKERS = not slow and not container and not browser and not realdata and not server
FAST_LEFT_OUT = --ignore=tests/docs/test_readme_commands.py --ignore=tests/training/test_ddp.py \
    --deselect tests/model/test_fused_recurrence.py::test_fifty_mnist_shaped_training_steps_match_autograd
test-fast: install
	$(BIN)/ruff check model artifact physics training service afrnn_client afrnn_schemas tests bench
	$(BIN)/python -m pytest -q -m "$(FAST_MARKERS)" $(FAST_LEFT_OUT)

lint: install
	$(BIN)/ruff check model artifact physics training service afrnn_client afrnn_schemas tests bench

# Every benchmark's --quick (each under 45 s), one after the other, each one's JSON figures in
# $(BENCH_OUT)/<name>.json; `python bench/render_tables.py $(BENCH_OUT)` then writes the tables of
# docs/performance.md from them (the committed tables show the full runs in docs/performance-data/).
BENCH_OUT ?= bench/out
bench: install
	$(BIN)/python bench/run_all.py --quick --out $(BENCH_OUT)

# Re-resolve the three locks from pyproject.toml (newest versions that fit; needs PyPI). Run it after
# every dependency change, commit the requirements/ files, then `make install`. The dev lock is resolved
# first and constrains the runtime lock, so a package pinned in both has one version (pip-audit reads
# both files together and refuses two pins of one package).
lock: | $(BIN)/activate
	$(BIN)/python -m uv --version >/dev/null 2>&1 || $(BIN)/pip install --quiet "$$(grep -o 'uv==[0-9.]*' pyproject.toml)"
	mkdir -p requirements
	$(BIN)/python -m uv pip compile pyproject.toml --all-extras $(LOCK_FLAGS) --python-version 3.11 \
	    --find-links $(TORCH_FIND_LINKS) --no-emit-package torch --no-emit-package afrnn-serving \
	    -o requirements/dev.txt
	$(BIN)/python -m uv pip compile pyproject.toml $(LOCK_FLAGS) --python-version 3.11 \
	    --find-links $(TORCH_FIND_LINKS) --no-emit-package torch --constraint requirements/dev.txt \
	    -o requirements/runtime.txt
	echo "$(TORCH_PIN)" | $(BIN)/python -m uv pip compile - $(LOCK_FLAGS) --python-version 3.12 \
	    --constraint requirements/runtime.txt -o requirements/torch-cuda.txt
	@echo "lock: wrote $(LOCKS)"

# The CPU stand-in image, as CI builds it (podman, registry-free Debian base, host CPU torch wheel);
# needs .ci/setup-podman.sh once. Layers are cached: a change in service/ rebuilds in seconds.
image:
	bash .ci/build-image.sh localhost/afrnn-serving:dev

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
