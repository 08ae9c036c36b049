#!/usr/bin/env bash
# Install Debian's wrk, the benchmarks' load generator (bench/loadgen.py; run as root; idempotent).
# tests/service/test_load_generator.py runs it against a real service.
set -euo pipefail

if ! command -v wrk >/dev/null; then
    echo "setup-wrk: installing wrk"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
echo "setup-wrk: $(wrk -v 2>&1 | head -1)"
