#!/usr/bin/env bash
# Installs what tests/integration/annex.rs drives through faultline: git-annex 10.20261026 from PyPI
# (the wheel ships the git-annex binary, built with p2phttp and WebDAV) and the wsgidav 4.4.0
# WebDAV server (with cheroot), every package pinned (the lock below), in one Python venv.
#
#   venv: $FAULTLINE_ANNEX_VENV, default <repo>/target/annex-venv
#         (git-annex and wsgidav end up in <venv>/bin)
#
# Idempotent: a stamp holding the lock's checksum, checked together with the installed versions,
# skips all work when nothing changed. Needs python3 (3.9+) with its venv module, git, and network
# access to PyPI. Concurrent runs wait on a lock file.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FAULTLINE_ANNEX_VENV:-$repo/target/annex-venv}"
python="${FAULTLINE_PYTHON:-python3}"

# Everything `pip install git-annex==10.20261026 wsgidav==4.4.0 cheroot` resolved to when this was
# written. Installed with --no-deps so no resolver runs and nothing floats.
lock="$(
    cat <<'LOCK'
cheroot==11.1.2
defusedxml==0.7.1
git-annex==10.20261026
jaraco.functools==4.6.0
Jinja2==3.1.6
json5==0.17.3
MarkupSafe==3.0.4
more-itertools==11.2.1
PyYAML==6.0.4
wsgidav==4.4.0
LOCK
)"
stamp_value="$(printf '%s\n' "$lock" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.faultline-annex-stamp"
want="git-annex 10.20261026 wsgidav 4.4.0"

command -v git >/dev/null 2>&1 || {
    echo "install-annex: git is required (git-annex works on git repositories)" >&2
    exit 1
}
command -v "$python" >/dev/null 2>&1 || {
    echo "install-annex: $python not found (set FAULTLINE_PYTHON)" >&2
    exit 1
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# What the venv holds: "git-annex VERSION wsgidav VERSION", from the programs themselves.
versions() {
    local annex dav
    annex="$("$venv/bin/git-annex" version --raw 2>/dev/null)" || return 0
    dav="$("$venv/bin/wsgidav" --version 2>/dev/null)" || return 0
    echo "git-annex ${annex%%-*} wsgidav $dav"
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && "$(versions)" == "$want" ]]; then
    echo "install-annex: up to date in $venv ($want)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-annex: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-annex: installing $(wc -l <<<"$lock") pinned packages ($want)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$lock"

got="$(versions)"
if [[ "$got" != "$want" ]]; then
    echo "install-annex: unexpected versions after install: '$got' (want '$want')" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-annex: done in $((SECONDS - start)) s: $got"
