#!/usr/bin/env bash
# Installs what tests/integration/s3.rs drives through faultline: a real S3 API (moto 5.2.5's
# server, `moto_server`), boto3 1.44.8 and the AWS CLI 1.46.3 (`aws`, which carries its own
# botocore), every package pinned (the lock below), in one Python venv. Plus awscrt 0.38.0 (the pin
# of botocore's `crt` extra): botocore computes CRC32C, CRC64NVME and XXHASH checksums only through
# it. The tests set BOTO_DISABLE_CRT=true except where they ask for those checksums, so every other
# run is the pure-Python botocore most users have.
#
#   venv: $FAULTLINE_S3_VENV, default <repo>/target/s3-venv
#         (moto_server, aws and the venv's python, which imports boto3, end up in <venv>/bin)
#
# Idempotent: a stamp holding the lock's checksum, checked together with the installed versions,
# skips all work when nothing changed. Needs python3 (3.9+) with its venv module and network access
# to PyPI. Concurrent runs wait on a lock file.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${FAULTLINE_S3_VENV:-$repo/target/s3-venv}"
python="${FAULTLINE_PYTHON:-python3}"

# Everything `pip install "moto[server]==5.2.5" boto3==1.44.8 awscli==1.46.3` resolved to when this
# was written, and awscrt. Installed with --no-deps so no resolver runs and nothing floats.
lock="$(
    cat <<'LOCK'
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
awscrt==0.38.0
awscli==1.46.3
blinker==1.9.0
boto3==1.44.8
botocore==1.44.8
certifi==2026.10.19.post1
cffi==2.1.1
cfn-lint==1.58.0
charset-normalizer==3.5.3
click==8.5.1
colorama==0.4.6
cryptography==50.0.2
docker==7.2.0
docutils==0.19
Flask==3.1.3
flask-cors==6.0.5
graphql-core==3.3.2
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
joserfc==1.8.0
jsonpatch==1.48
jsonpath-ng==1.16.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
MarkupSafe==3.0.4
moto==5.2.5
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pyasn1==0.6.5
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.4
referencing==0.37.0
regex==2026.11.19
requests==2.34.2
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
rsa==4.7.2
s3transfer==0.19.3
six==1.17.0
sympy==1.14.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4
LOCK
)"
stamp_value="$(printf '%s\n' "$lock" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.faultline-s3-stamp"
want="moto 5.2.5 boto3 1.44.8 aws-cli/1.46.3 awscrt 0.38.0"

command -v "$python" >/dev/null 2>&1 || {
    echo "install-s3: $python not found (set FAULTLINE_PYTHON)" >&2
    exit 1
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# What the venv holds: "moto VERSION boto3 VERSION aws-cli/VERSION awscrt VERSION", from the programs
# themselves.
versions() {
    local py aws crt
    py="$("$venv/bin/python" -c 'import moto.server, boto3; print("moto", moto.__version__, "boto3", boto3.__version__)' 2>/dev/null)" || return 0
    "$venv/bin/moto_server" --help >/dev/null 2>&1 || return 0
    aws="$("$venv/bin/aws" --version 2>&1)" || return 0
    crt="$("$venv/bin/python" -c 'import awscrt; print("awscrt", awscrt.__version__)' 2>/dev/null)" || return 0
    echo "$py ${aws%% *} $crt"
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_value" && "$(versions)" == "$want" ]]; then
    echo "install-s3: up to date in $venv ($want)"
    exit 0
fi

start=$SECONDS
rm -f "$stamp"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "install-s3: creating venv $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
echo "install-s3: installing $(wc -l <<<"$lock") pinned packages ($want)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r /dev/stdin <<<"$lock"

got="$(versions)"
if [[ "$got" != "$want" ]]; then
    echo "install-s3: unexpected versions after install: '$got' (want '$want')" >&2
    exit 1
fi
echo "$stamp_value" >"$stamp"
echo "install-s3: done in $((SECONDS - start)) s: $got"
