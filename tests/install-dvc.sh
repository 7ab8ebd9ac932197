#!/usr/bin/env bash
# Installs the real DVC that tests/integration/dvc.rs drives through faultline: a Python venv with
# dvc 3.67.1 + dvc-http 2.32.0 and every dependency pinned (the lock below), on the current aiohttp
# (3.14.5, which reports a reset mid-PUT as an error), plus an overlay folder holding aiohttp 3.14.3
# alone (the last release that silently retries a PUT from a half-consumed body). The test puts the
# overlay first on PYTHONPATH for the buggy case, so one venv serves both cases.
#
#   venv:    $FAULTLINE_DVC_VENV, default <repo>/target/dvc-venv
#   overlay: <venv>/aiohttp-3.14.3
#
# Idempotent: a stamp holding the lock's checksum, checked together with the installed versions,
# skips all work when nothing changed. Needs python3 (3.9+), its venv module, network access to
# PyPI, and git (dvc init runs in a git repository). Concurrent runs wait on a lock file.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FAULTLINE_DVC_VENV:-$repo/target/dvc-venv}"
python="${FAULTLINE_PYTHON:-python3}"
buggy_aiohttp="3.14.3"
overlay="$venv/aiohttp-$buggy_aiohttp"

# Everything `pip install dvc==3.67.1 dvc-http==2.32.0` resolved to when this was written, with
# aiohttp at the current 3.14.5. Installed with --no-deps so no resolver runs and nothing floats.
lock="$(
    cat <<'EOF'
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiohttp-retry==2.9.1
aiosignal==1.4.0
amqp==5.4.2
annotated-types==0.8.0
antlr4-python3-runtime==4.9.3
appdirs==1.4.4
asyncssh==2.24.1
atpublic==9.0.0
attrs==26.1.0
billiard==4.3.2
celery==5.7.0
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
click-didyoumean==0.3.1
click-plugins==1.1.1.2
click-repl==0.4.1
colorama==0.4.6
configobj==5.0.9
cryptography==50.0.2
dictdiffer==0.10.0
diskcache==5.6.3
distro==1.9.0
dpath==2.2.0
dulwich==1.2.21
dvc==3.67.1
dvc-data==3.18.3
dvc-http==2.32.0
dvc-objects==5.2.0
dvc-render==1.0.2
dvc-studio-client==0.23.0
dvc-task==0.40.2
entrypoints==0.4.2
filelock==4.2.11
flatten-dict==0.5.0
flufl.lock==9.2.0
frozenlist==1.8.0
fsspec==2026.9.0
funcy==2.1
gitdb==4.0.12
GitPython==3.2.1
grandalf==0.8
gto==1.10.1
hydra-core==1.3.8
idna==3.20
iterative-telemetry==0.0.10
kombu==5.7.0
markdown-it-py==4.3.0
mdurl==0.1.2
multidict==6.9.1
networkx==3.6.1
omegaconf==2.3.1
orjson==3.13.0
packaging==26.3
pathspec==1.1.1
platformdirs==4.14.7
prompt_toolkit==3.0.53
propcache==0.5.4
psutil==7.2.2
pycparser==3.12
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
pydot==4.0.1
pygit2==1.21.0
Pygments==2.21.0
pygtrie==2.6.2
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.3
requests==2.34.2
rich==15.0.0
ruamel.yaml==0.19.1
scmrepo==3.6.2
semver==3.1.1
shortuuid==1.0.13
shtab==1.13.0
six==1.17.0
smmap==5.0.3
sqltrie==0.11.3
tabulate==0.10.0
tomlkit==0.15.2
tqdm==4.70.1
typing-inspection==0.4.5
typing_extensions==4.16.0
tzlocal==5.4.5
urllib3==2.8.0
vine==5.1.0
voluptuous==0.16.0
wcwidth==0.9.4
yarl==1.25.1
zc.lockfile==4.0
EOF
)"
stamp_value="$(printf '%s\naiohttp-overlay==%s\n' "$lock" "$buggy_aiohttp" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.faultline-dvc-stamp"

command -v git >/dev/null 2>&1 || {
    echo "install-dvc: git is required (dvc init runs in a git repository)" >&2
    exit 1
}
command -v "$python" >/dev/null 2>&1 || {
    echo "install-dvc: $python not found (set FAULTLINE_PYTHON)" >&2
    exit 1
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# What the venv reports: "dvc dvc-http aiohttp" versions, plain and with the overlay first.
versions() {
    PYTHONPATH="${1:-}" "$venv/bin/python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
import aiohttp, dvc, dvc_http  # imports must work, not only the metadata
print(version("dvc"), version("dvc-http"), aiohttp.__version__)
EOF
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" ]] &&
    [[ "$(versions)" == "3.67.1 2.32.0 3.14.5" ]] &&
    [[ "$(versions "$overlay")" == "3.67.1 2.32.0 $buggy_aiohttp" ]]; then
    echo "install-dvc: up to date in $venv (dvc 3.67.1, dvc-http 2.32.0, aiohttp 3.14.5; overlay aiohttp $buggy_aiohttp)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-dvc: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-dvc: installing dvc 3.67.1, dvc-http 2.32.0 and $(wc -l <<<"$lock") pinned packages"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$lock"
echo "install-dvc: installing aiohttp $buggy_aiohttp into the overlay $overlay"
rm -rf "$overlay"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$overlay" "aiohttp==$buggy_aiohttp"

got="$(versions)"
got_overlay="$(versions "$overlay")"
if [[ "$got" != "3.67.1 2.32.0 3.14.5" || "$got_overlay" != "3.67.1 2.32.0 $buggy_aiohttp" ]]; then
    echo "install-dvc: unexpected versions after install: '$got' / overlay '$got_overlay'" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-dvc: done in $((SECONDS - start)) s: $("$venv/bin/dvc" --version 2>/dev/null | head -n1 | sed 's/^/dvc /'), aiohttp 3.14.5; overlay aiohttp $buggy_aiohttp"
