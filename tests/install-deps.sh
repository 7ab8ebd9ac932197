#!/usr/bin/env bash
# Installs what the test suite needs and is not part of the Rust toolchain: tshark (captures are
# checked by Wireshark's own dissector, not only by our reader), curl and git (real clients; dvc
# needs git), nginx and fcgiwrap (real TLS servers). Idempotent; runs as root here. The dvc venv is tests/install-dvc.sh's job.
set -euo pipefail

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# Python's ssl and Node's tls check minted leaf certificates as those clients do (tests/integration/tls.rs).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
# Real TLS servers for tests/integration/tls_clients.rs: nginx (`listen ... ssl http2`) in front of
# the built-in store, and fcgiwrap to run `git http-backend` behind it. Daemons live in sbin.
PATH="$PATH:/usr/sbin:/sbin"
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v fcgiwrap >/dev/null 2>&1 || need_apt+=(fcgiwrap)

if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark's package asks whether non-root users may capture; answer for it.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    # Installing a daemon must not start it (nginx would take port 80, fcgiwrap its socket):
    # policy-rc.d exit 101 tells invoke-rc.d no; most containers ship one already.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if ! apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq "${need_apt[@]}"
    fi
fi
tshark --version | head -n 1
