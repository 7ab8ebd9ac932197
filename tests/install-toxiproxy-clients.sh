#!/usr/bin/env bash
# Installs the real Toxiproxy clients that tests/integration/api.rs drives `faultline serve` with:
# the Node client toxiproxy-node-client 4.1.0 (npm; no dependencies: it uses Node's fetch, so
# Node >= 18) and the Python client toxiproxy-python 0.1.1 (PyPI) in a venv with its two
# dependencies (future, requests) and theirs, all pinned.
#
#   node client: $FAULTLINE_TOXIPROXY_CLIENTS/node/node_modules/toxiproxy-node-client
#   venv:        $FAULTLINE_TOXIPROXY_CLIENTS/venv
#   default $FAULTLINE_TOXIPROXY_CLIENTS: <repo>/target/toxiproxy-clients
#
# Idempotent: a stamp holding the pins' checksum, checked together with the installed versions,
# skips all work when nothing changed. Needs node, npm and python3 with its venv module (apt
# installs npm when missing) and network access to npm and PyPI. Concurrent runs wait on a lock.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
root="${FAULTLINE_TOXIPROXY_CLIENTS:-$repo/target/toxiproxy-clients}"
python="${FAULTLINE_PYTHON:-python3}"
node_client="toxiproxy-node-client@4.1.0"
pins="$(
    cat <<'PINS'
toxiproxy-python==0.1.1
future==1.0.0
requests==2.34.2
urllib3==2.8.0
certifi==2026.10.18
charset-normalizer==3.5.2
idna==3.20
PINS
)"
stamp_value="$(printf '%s\n%s\n' "$node_client" "$pins" | sha256sum | cut -d' ' -f1)"
stamp="$root/.faultline-stamp"

if ! command -v npm >/dev/null 2>&1; then
    echo "install-toxiproxy-clients: installing npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq npm; }
fi
for tool in node npm "$python"; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-toxiproxy-clients: $tool not found" >&2
        exit 1
    }
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 18)); then
    echo "install-toxiproxy-clients: Node $(node --version) is too old; toxiproxy-node-client needs >= 18 (fetch)" >&2
    exit 1
fi

mkdir -p "$root"
exec 9>"$root.lock"
flock 9

versions() {
    local node_version python_version
    node_version="$(node -p "require('$root/node/node_modules/toxiproxy-node-client/package.json').version" 2>/dev/null || true)"
    python_version="$("$root/venv/bin/python" -c 'import toxiproxy, requests, future; from importlib.metadata import version; print(version("toxiproxy-python"))' 2>/dev/null || true)"
    echo "$node_version $python_version"
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && "$(versions)" == "4.1.0 0.1.1" ]]; then
    echo "install-toxiproxy-clients: up to date in $root (toxiproxy-node-client 4.1.0, toxiproxy-python 0.1.1)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
echo "install-toxiproxy-clients: installing $node_client into $root/node"
mkdir -p "$root/node"
npm install --silent --no-audit --no-fund --prefix "$root/node" "$node_client"
if [[ ! -x "$root/venv/bin/python" ]]; then
    echo "install-toxiproxy-clients: creating venv $root/venv with $("$python" --version 2>&1)"
    "$python" -m venv "$root/venv"
fi
echo "install-toxiproxy-clients: installing toxiproxy-python 0.1.1 and $(($(wc -l <<<"$pins") - 1)) pinned dependencies"
"$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$pins"

got="$(versions)"
if [[ "$got" != "4.1.0 0.1.1" ]]; then
    echo "install-toxiproxy-clients: unexpected versions after install: '$got'" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-toxiproxy-clients: done in $((SECONDS - start)) s"
