# AFRNN serving image: the FastAPI service, a CUDA build of torch and the shipped TorchScript checkpoints.
#
# Production (the defaults):  docker build -t afrnn-serving:0.1.0 .
#                             podman build --format docker -t afrnn-serving:0.1.0 .
#   BASE_IMAGE         docker.io/nvidia/cuda:13.0.2-base-ubuntu24.04 (Ubuntu 24.04, Python 3.12 from apt),
#                      fully qualified so that podman resolves it without a short-name alias.
#   TORCH_REQUIREMENT  empty: torch==2.13.0 from requirements/torch-cuda.txt, hash-locked: the CUDA 13.0
#                      build with its CUDA libraries (cuBLAS, cuDNN, ...) as pip wheels. CUDA 13.x needs
#                      an NVIDIA driver >= 580 on the host and the NVIDIA Container Toolkit (`--gpus all`).
#   The -base variant is enough: torch carries its own CUDA libraries, and the base image sets the
#   NVIDIA_* variables the container toolkit reads.
#
# CI (no registry, no GPU; see .ci/ and tests/container/): the same file, built with podman against a
# locally bootstrapped Debian 12 base and the host's CPU wheel of the same torch release (not on PyPI,
# so it cannot carry a PyPI hash: that is why torch is outside requirements/runtime.txt):
#   podman build --format docker -v /opt/wheels:/wheels:ro \
#     --build-arg BASE_IMAGE=localhost/ci-debian-base:bookworm \
#     --build-arg TORCH_REQUIREMENT=/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl .
# (.ci/build-image.sh does exactly this.)
#
# Layers, from the least to the most often changed: OS + python3; torch; the locked dependencies
# (requirements/runtime.txt, `make lock`); the checkpoints; the project itself (`pip install --no-deps`).
# A change in service/ rebuilds only the last stage and adds a layer of a few hundred KB.
#
# No SHELL instruction (the OCI image format drops it): no RUN step uses a pipe. `--format docker` keeps
# the HEALTHCHECK, which OCI images have no field for. Every RUN step works on both bases.

ARG BASE_IMAGE=docker.io/nvidia/cuda:13.0.2-base-ubuntu24.04

# --- os: python3 and the service user, shared by the build stages and the runtime --------------------
FROM ${BASE_IMAGE} AS os
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && groupadd --gid 10001 afrnn \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin afrnn

# --- deps: a venv with torch and the hash-locked dependencies (pip stays here, not in the runtime) ------
FROM os AS deps
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv

# torch first, in its own layer: the largest download, and it changes least often. --no-deps in both
# branches: torch-cuda.txt is complete (torch, its NVIDIA wheels, sympy, ...), and a CPU wheel's
# dependencies all come from runtime.txt below. --no-compile here and below: the slim stage compiles
# the bytecode of what serving imports, and only that.
ARG TORCH_REQUIREMENT=
COPY requirements/torch-cuda.txt /tmp/requirements/
# hadolint ignore=DL3013
RUN if [ -z "${TORCH_REQUIREMENT}" ]; then \
        pip install --no-cache-dir --no-compile --require-hashes --no-deps \
            -r /tmp/requirements/torch-cuda.txt; \
    else \
        pip install --no-cache-dir --no-compile --no-deps "${TORCH_REQUIREMENT}"; \
    fi

# Everything else the service needs, exactly as locked (versions and sha256 hashes).
COPY requirements/runtime.txt /tmp/requirements/
RUN pip install --no-cache-dir --no-compile --require-hashes --no-deps -r /tmp/requirements/runtime.txt

# --- slim: the venv minus what serving never loads ------------------------------------------------------
# Removed: torch's test/ (test binaries), include/ (C++ headers) and bin/ except torch_shm_manager (torch
# checks for it at import); every test/tests folder; pip and setuptools (and their scripts); networkx
# (only torch.compile's partitioner imports it); the symbol tables of torch's own libraries
# (`strip --strip-unneeded` keeps the dynamic symbols that linking needs: -89 MB on the CPU build).
# sympy and mpmath stay: torch.autograd.grad imports
# torch.fx.experimental.symbolic_shapes, which imports sympy, and the stability report calls it.
# Bytecode: pip installed none (all of it would be about 210 MB of __pycache__); this stage compiles
# only what the imports below load (what serving loads: torch's core, sympy, scipy's integrate and
# linalg, matplotlib's Agg figure, the web stack), so start-up does not recompile those; any other
# module still imports, compiled in memory. tests/container/test_container.py proves the result: every
# module of the four packages imports in the image, and a forward pass, a stability report and its PNG
# are served.
FROM deps AS slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends binutils \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && strip --strip-unneeded "$site"/torch/lib/libtorch*.so \
    && rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/share/cmake" \
              "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* "$site"/_distutils_hack \
              "$site"/distutils-precedence.pth "$site"/networkx "$site"/networkx-* \
              /opt/venv/bin/pip /opt/venv/bin/pip3* \
    && find "$site/torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} + \
    && find "$site" -depth -type d \( -name test -o -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && python -c "import torch, torch.fx.experimental.symbolic_shapes, sympy, numpy, scipy.integrate, \
scipy.linalg, matplotlib.figure, matplotlib.font_manager, matplotlib.backends.backend_agg, PIL.Image, \
fastapi, fastapi.openapi.docs, fastapi.staticfiles, starlette.staticfiles, uvicorn, uvicorn.main, \
pydantic, pydantic_settings, prometheus_client, httpx, tqdm; print('torch', torch.__version__)"

# --- project: this repository's packages, installed with --no-deps under /staging ----------------------
FROM deps AS project
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY afrnn_schemas/ afrnn_schemas/
COPY artifact/ artifact/
COPY physics/ physics/
COPY service/ service/
# --root: the files land under /staging at their final paths (/opt/venv/...), so the runtime stage takes
# them with one COPY whatever the Python version. setuptools comes from the lock (no build isolation,
# nothing downloaded here). No import check here: it would load torch on every code change; the
# container test imports every module inside the finished image instead.
RUN pip install --no-cache-dir --no-deps --no-build-isolation --root /staging .

# --- kernel: the batch-1 recurrence's C loop (model.inference), prebuilt -------------------------------
# Where a compiler exists the service builds the loop with -march=native at first use. The runtime has
# no compiler, and the image cannot know the CPU it will run on, so it carries portable builds for the
# x86-64-v3 (AVX2, FMA) and -v2 levels and loads the best one the CPU runs ($AFRNN_KERNEL_PREBUILT); on
# another architecture none is built and the TorchScript forward runs. gcc stays in this stage.
FROM deps AS compiler
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

FROM compiler AS kernel
WORKDIR /src
COPY model/ model/
RUN mkdir -p /opt/afrnn-kernels && python -m model.inference --prebuild /opt/afrnn-kernels

# --- runtime ----------------------------------------------------------------------------------------
FROM os AS runtime
# MALLOC_ARENA_MAX=2: all threads share two glibc heap arenas, so the resident set falls back after a
# burst instead of keeping an arena per thread that allocated (docs/deployment.md, "Memory").
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    AFRNN_MODEL_DIR=/models \
    AFRNN_HOST=0.0.0.0 \
    AFRNN_PORT=8000 \
    AFRNN_HEALTH_PORT=8001 \
    AFRNN_KERNEL_PREBUILT=/opt/afrnn-kernels \
    MALLOC_ARENA_MAX=2 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=slim /opt/venv /opt/venv
# matplotlib's font cache, built now into a read-only seed that the service copies into MPLCONFIGDIR at
# start-up (service/matplotlib_env.py): with a read-only root filesystem and an empty /tmp (Kubernetes'
# emptyDir, `podman run --read-only`) the first PNG request does not scan the fonts again.
RUN MPLCONFIGDIR=/opt/venv/share/afrnn-serving/matplotlib python -c "import matplotlib.font_manager"
COPY --from=kernel /opt/afrnn-kernels /opt/afrnn-kernels
# The shipped checkpoints (<name>.pt + <name>.json); mount a volume over /models to serve your own.
COPY checkpoints/ /models/

# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/k8s.yaml).
USER 10001:10001
WORKDIR /home/afrnn
# 8000: the API; 8001: the health port (probes answered by a thread of their own, service.health_port)
EXPOSE 8000 8001

# Ready = models loaded (503 until then), asked on the health port (the API port when it is unset).
# python's urllib, so the image needs no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + (os.environ.get('AFRNN_HEALTH_PORT') or os.environ.get('AFRNN_PORT', '8000')) + '/health/ready', timeout=4)"]

# Exec form: the server is PID 1 and gets SIGTERM itself; uvicorn then stops accepting connections,
# finishes the requests in flight (up to AFRNN_REQUEST_TIMEOUT_S + 5 s, 35 s by default) and exits.
# Give the engine at least that long: `docker run --stop-timeout 40` / `podman run --stop-timeout 40`.
STOPSIGNAL SIGTERM
CMD ["afrnn-serve"]

# The project last, after every metadata instruction: a code change re-creates this one layer only.
COPY --from=project /staging/ /
