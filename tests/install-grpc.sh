#!/usr/bin/env bash
# Installs the real gRPC stack that tests/integration/h2.rs drives through faultline: a Python venv
# with grpcio 1.85.1 (and its one dependency, pinned). The test programs under tests/grpc/ speak
# google.bytestream.ByteStream with hand-written protobuf, so grpcio-tools is not needed.
# The same venv holds python-hyper's h2 4.4.1 (with hpack and hyperframe, pinned) for
# tests/h2c/upgrade_server.py, the h2c server that accepts `Upgrade: h2c` (tests/integration/h2c_upgrade.rs):
# nginx and nghttpd speak h2c with prior knowledge only.
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
h2="4.4.1"

# Installed with --no-deps so no resolver runs and nothing floats.
lock="$(
    cat <<EOF
grpcio==$grpcio
typing_extensions==4.16.0
h2==$h2
hpack==4.2.0
hyperframe==6.1.0
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

# What the venv reports: the grpcio and h2 versions, imported (not only their metadata).
version() {
    "$venv/bin/python" -c 'import grpc, h2; print(grpc.__version__, h2.__version__)' 2>/dev/null
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && "$(version)" == "$grpcio $h2" ]]; then
    echo "install-grpc: up to date in $venv (grpcio $grpcio, h2 $h2)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-grpc: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-grpc: installing grpcio $grpcio and h2 $h2"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$lock"

got="$(version)"
if [[ "$got" != "$grpcio $h2" ]]; then
    echo "install-grpc: unexpected grpcio and h2 versions after install: '$got'" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-grpc: done in $((SECONDS - start)) s: grpcio and h2 $got"
