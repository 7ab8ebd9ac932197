#!/usr/bin/env bash
# Installs what the test suite needs and is not part of the Rust toolchain: tshark (captures are
# checked by Wireshark's own dissector, not only by our reader), curl and git (real clients; dvc
# needs git). Idempotent; runs as root here. The dvc venv is tests/install-dvc.sh's job.
set -euo pipefail

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# Python's ssl and Node's tls check minted leaf certificates as those clients do (tests/integration/tls.rs).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)

if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark's package asks whether non-root users may capture; answer for it.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    if ! apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq "${need_apt[@]}"
    fi
fi
tshark --version | head -n 1
