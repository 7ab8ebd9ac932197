#!/usr/bin/env bash
# Installs the real gRPC stack that tests/integration/inspect_grpc.rs drives through faultline: a
# Python venv with grpcio 1.66.1 (the version the tests/fixtures/h2 recordings were made with; it has
# no Python dependencies), used by tests/grpc_inspect/*.py.
#
#   venv: $FAULTLINE_GRPC_INSPECT_VENV, default <repo>/target/grpc-inspect-venv
#
# Idempotent: a stamp plus the imported version skip all work when nothing changed. Needs python3
# (3.9+), its venv module and network access to PyPI. Concurrent runs wait on a lock file.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FAULTLINE_GRPC_INSPECT_VENV:-$repo/target/grpc-inspect-venv}"
python="${FAULTLINE_PYTHON:-python3}"
version="1.66.1"
stamp="$venv/.faultline-grpc-inspect-stamp"

command -v "$python" >/dev/null 2>&1 || {
    echo "install-grpc-inspect: $python not found (set FAULTLINE_PYTHON)" >&2
    exit 1
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

installed() {
    "$venv/bin/python" -c 'import grpc; print(grpc.__version__)' 2>/dev/null
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "grpcio==$version" && "$(installed)" == "$version" ]]; then
    echo "install-grpc-inspect: up to date in $venv (grpcio $version)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-grpc-inspect: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-grpc-inspect: installing grpcio $version"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "grpcio==$version"
got="$(installed)"
if [[ "$got" != "$version" ]]; then
    echo "install-grpc-inspect: unexpected grpcio version after install: '$got'" >&2
    exit 1
fi
echo "grpcio==$version" >"$stamp"
echo "install-grpc-inspect: done in $((SECONDS - start)) s: grpcio $version"
