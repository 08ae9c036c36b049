#!/usr/bin/env bash
# Sourced by the CI scripts: where the private podman configuration and the stand-in base image live.
# Every value can be overridden from the environment.
AFRNN_CI_STATE="${AFRNN_CI_STATE:-/var/lib/afrnn-ci}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$AFRNN_CI_STATE/containers.conf}"
export AFRNN_CI_BASE_IMAGE="${AFRNN_CI_BASE_IMAGE:-localhost/ci-debian-base:bookworm}"
