#!/usr/bin/env bash
# `make soak`: builds faultline (release), runs benches/soak.rs for SOAK_MINUTES (default 30) at
# SOAK_RATE connections/s (default 1000), then plots fds and resident memory to benches/soak.png
# with matplotlib from a venv cached under target/ (pinned version, created once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SOAK_MINUTES="${SOAK_MINUTES:-30}"
export SOAK_CSV="${SOAK_CSV:-$PWD/target/soak/soak.csv}"
ulimit -Sn "$(ulimit -Hn)"

cargo build --release --bin faultline
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$PWD/$target_dir" ;;
esac
export FAULTLINE_BIN="${FAULTLINE_BIN:-$target_dir/release/faultline}"

venv="$target_dir/soak-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "matplotlib==3.9.2"
fi

status=0
cargo bench --bench soak || status=$?
"$venv/bin/python" benches/plot_soak.py "$SOAK_CSV" benches/soak.png
exit "$status"
