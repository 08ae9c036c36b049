#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (tests/browser; run as root; idempotent).
#
# Playwright (the dev extra) drives this system browser through its executable path and never
# downloads a browser of its own. Prints the version, so a broken install fails here and not in a test.
set -euo pipefail

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    echo "setup-chromium: installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "setup-chromium: $(/usr/bin/chromium --version 2>/dev/null)"
