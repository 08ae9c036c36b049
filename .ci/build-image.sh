#!/usr/bin/env bash
# Build the CI stand-in image with podman, as tests/container/test_container.py does, but with layer
# caching, so that a rebuild after a change in service/ takes seconds.
#
#   .ci/build-image.sh [TAG]        (default localhost/afrnn-serving:dev; `make image` calls it)
#
# Needs .ci/setup-podman.sh once (podman, CONTAINERS_CONF, the registry-free base image). torch comes
# from the host's CPU wheel (AFRNN_CI_TORCH_WHEEL) mounted read-only at /wheels. Cached layers stay in
# podman's store: `podman image prune` removes the dangling ones of earlier builds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/podman-env.sh"
tag="${1:-localhost/afrnn-serving:dev}"
wheel="${AFRNN_CI_TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
[[ -f "$wheel" ]] || { echo "build-image: no CPU torch wheel at $wheel (set AFRNN_CI_TORCH_WHEEL)" >&2; exit 1; }
podman image exists "$AFRNN_CI_BASE_IMAGE" || "$here/bootstrap-base-image.sh"
cd "$here/.."
start=$SECONDS
podman build --format docker --layers --tag "$tag" \
    --volume "$(dirname "$wheel"):/wheels:ro" \
    --build-arg BASE_IMAGE="$AFRNN_CI_BASE_IMAGE" \
    --build-arg TORCH_REQUIREMENT="/wheels/$(basename "$wheel")" .
echo "build-image: $tag built in $((SECONDS - start)) s, $(podman image inspect --format '{{.Size}}' "$tag") bytes"
