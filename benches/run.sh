#!/usr/bin/env bash
# Runs the relay benchmark (benches/relay.rs: faultline, with and without capture, vs socat vs haproxy vs a
# direct connection), the connection-scale benchmark (benches/connections.rs) and the HTTP/2
# benchmark (benches/h2.rs: a gRPC-style stream and unary calls through faultline).
#
# Installs socat and haproxy if missing (apt-get update only when the plain install fails, to stay fast
# and offline-friendly), builds faultline in release mode and runs `cargo bench --bench relay` with
# FAULTLINE_BIN pointing at it. A FAULTLINE_BIN already in the environment is used as is and nothing is
# built (to benchmark another build). BENCH_BULK_MIB, BENCH_RTT_ITERS, BENCH_ROUNDS, BENCH_CAPTURE and
# FAULTLINE_EXTRA_ARGS pass through; see the doc comment of benches/relay.rs.
set -euo pipefail

# Everything below is relative to the repository root, wherever this is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=""
for tool in socat haproxy; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "run.sh: installing$missing" >&2
    # shellcheck disable=SC2086 # $missing is a space-separated list of package names
    if ! $sudo apt-get install -y $missing; then
        $sudo apt-get update
        # shellcheck disable=SC2086
        $sudo apt-get install -y $missing
    fi
fi

if [ -z "${FAULTLINE_BIN:-}" ]; then
    cargo build --release --bin faultline
    target_dir="${CARGO_TARGET_DIR:-target}"
    case "$target_dir" in
        /*) ;;
        *) target_dir="$PWD/$target_dir" ;;
    esac
    FAULTLINE_BIN="$target_dir/release/faultline"
fi
export FAULTLINE_BIN

# Both benches hold both ends of thousands of connections: lift this shell's soft fd limit (faultline
# itself is started under `ulimit -Sn 1024` by the connections bench, to show it raises its own).
ulimit -Sn "$(ulimit -Hn)"

BENCH_CAPTURE="${BENCH_CAPTURE:-1}" cargo bench --bench relay

# 9,000 idle connections under a stock soft fd limit, 10,000 short ones, and the memory of a 10 GB
# capture (see the doc comment of benches/connections.rs).
cargo bench --bench connections

# HTTP/2: a gRPC-style stream and unary calls, direct vs faultline with no rule vs an armed h2 rule.
cargo bench --bench h2
# TLS interception (issue 11): `faultline run` intercepting vs direct TLS, bulk and handshakes.
cargo bench --bench tls

# Capture writer and inspect throughput (ignored tests, run in release): MB/s of payload written
# to a pcapng file, and MB/s of capture read back by `faultline inspect`.
cargo test --release --test integration -- --ignored --nocapture \
    capture_writer::bulk_throughput inspect::throughput_on_a_200_mb_capture

# The control API under load (benches/api.rs, issue 14).
cargo bench --bench api
