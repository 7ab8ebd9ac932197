#!/usr/bin/env bash
# Installs headless Chromium for the HTML report's browser test (tests/integration/report.rs:
# `--dump-dom` and `--screenshot` of `faultline inspect --html`). Idempotent; needs root (apt-get), like tests/install-deps.sh.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing: chromium"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq chromium
    fi
fi
chromium --version
