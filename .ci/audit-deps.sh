#!/usr/bin/env bash
# pip-audit over the hash-locked dependency set (requirements/runtime.txt + requirements/dev.txt):
# known vulnerabilities from the PyPI advisory database. Exit status non-zero on a finding, and (with
# --strict) also when a locked package could not be audited: an audit that audited nothing must not pass.
# Usage: .ci/audit-deps.sh [--lenient]   (--lenient: skipped packages are reported but do not fail)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
strict=--strict
[[ "${1:-}" == "--lenient" ]] && strict=
"$PY" -m pip_audit $strict --disable-pip --progress-spinner off \
    -r requirements/runtime.txt -r requirements/dev.txt
