#!/usr/bin/env bash
# Installs the real gRPC stack that tests/integration/h2.rs drives through faultline: a Python venv
# with grpcio 1.85.1 (and its one dependency, pinned). The test programs under tests/grpc/ speak
# google.bytestream.ByteStream with hand-written protobuf, so grpcio-tools is not needed.
#
#   venv: $FAULTLINE_GRPC_VENV, default <repo>/target/grpc-venv
#
# Idempotent: a stamp holding the lock's checksum, checked together with the installed version,
# skips all work when nothing changed. Needs python3 (3.10+), its venv module and network access
# to PyPI. Concurrent runs wait on a lock file.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FAULTLINE_GRPC_VENV:-$repo/target/grpc-venv}"
python="${FAULTLINE_PYTHON:-python3}"
grpcio="1.85.1"

# Installed with --no-deps so no resolver runs and nothing floats.
lock="$(
    cat <<EOF
grpcio==$grpcio
typing_extensions==4.16.0
EOF
)"
stamp_value="$(printf '%s\n' "$lock" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.faultline-grpc-stamp"

command -v "$python" >/dev/null 2>&1 || {
    echo "install-grpc: $python not found (set FAULTLINE_PYTHON)" >&2
    exit 1
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# What the venv reports: the grpcio version, imported (not only its metadata).
version() {
    "$venv/bin/python" -c 'import grpc; print(grpc.__version__)' 2>/dev/null
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && "$(version)" == "$grpcio" ]]; then
    echo "install-grpc: up to date in $venv (grpcio $grpcio)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-grpc: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-grpc: installing grpcio $grpcio"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$lock"

got="$(version)"
if [[ "$got" != "$grpcio" ]]; then
    echo "install-grpc: unexpected grpcio version after install: '$got'" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-grpc: done in $((SECONDS - start)) s: grpcio $got"
