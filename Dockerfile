# AFRNN serving image: the FastAPI service, a CUDA build of torch and the shipped TorchScript checkpoints.
#
# Production (the defaults):  docker build -t afrnn-serving .
#   BASE_IMAGE         nvidia/cuda:13.0.2-base-ubuntu24.04 (Ubuntu 24.04, Python 3.12 from apt)
#   TORCH_REQUIREMENT  torch==2.13.0 from PyPI's default index: the CUDA 13.0 build, which brings its
#                      CUDA libraries (cuBLAS, cuDNN, ...) as pip wheels. CUDA 13.x needs an NVIDIA
#                      driver >= 580 on the host and the NVIDIA Container Toolkit (`--gpus all`).
#   The -base variant is enough: torch carries its own CUDA libraries, and the base image sets the
#   NVIDIA_* variables the container toolkit reads. A -runtime tag of the same CUDA version works too,
#   but duplicates those libraries.
#
# CI (no registry, no GPU; see .ci/ and tests/container/): the same file, built with podman against a
# locally bootstrapped Debian 12 base and the host's CPU wheel of the same torch release:
#   podman build --format docker -v /opt/wheels:/wheels:ro \
#     --build-arg BASE_IMAGE=localhost/ci-debian-base:bookworm \
#     --build-arg TORCH_REQUIREMENT=/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl .
#
# Every RUN step works on both bases (apt's python3 + python3-venv). The build stage makes the venv
# in /opt/venv; the runtime stage copies it, without pip's caches, compilers or the source tree.

ARG BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04

FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv

# torch first, in its own layer: the largest download, and it changes least often. The requirement is
# pinned through the build-arg (hadolint cannot see through the variable, hence DL3013 ignored here).
ARG TORCH_REQUIREMENT=torch==2.13.0
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "${TORCH_REQUIREMENT}"

# The project itself, non-editable; its own pin torch==2.13.0 is already met by the line above.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY artifact/ artifact/
COPY physics/ physics/
COPY service/ service/
RUN pip install --no-cache-dir . \
    && python -c "import torch, model, artifact, physics, service; print('torch', torch.__version__)"


FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 afrnn \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin afrnn

COPY --from=build /opt/venv /opt/venv
# The shipped checkpoints (<name>.pt + <name>.json); mount a volume over /models to serve your own.
COPY checkpoints/ /models/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AFRNN_MODEL_DIR=/models \
    AFRNN_HOST=0.0.0.0 \
    AFRNN_PORT=8000 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/k8s.yaml).
USER 10001:10001
WORKDIR /home/afrnn
EXPOSE 8000

# Ready = models loaded (503 until then). python's urllib, so the image needs no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AFRNN_PORT', '8000') + '/health/ready', timeout=4)"]

# Exec form: the server is PID 1 and gets docker stop's SIGTERM itself; uvicorn then stops accepting
# connections, finishes the requests in flight and exits.
STOPSIGNAL SIGTERM
CMD ["afrnn-serve"]
