#!/usr/bin/env bash
# The one test command (README.md "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need if it is missing, then checks formatting, lints, and runs
# every unit and end-to-end test. Safe to run again; needs network only for installs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v setpriv >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "test.sh: missing ${need_apt[*]} and cannot apt-get them (not root?)" >&2
        exit 1
    fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
