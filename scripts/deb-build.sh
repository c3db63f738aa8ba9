#!/usr/bin/env bash
# Builds the Debian package: scripts/deb-build.sh [PROFILE] (default release) prints the
# path of target/debian/mailroom_*.deb. Stages target/deb-share/ (installed as /usr/share:
# the README and the manual pages `mailroom man --dir` writes — none when this build has
# no `man` command yet), then `cargo deb` with the metadata in crates/mailroom/Cargo.toml.
# Needs cargo-deb (cargo install cargo-deb --version 3.8.0 --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in dev) out=target/debug ;; *) out=target/$profile ;; esac

cargo build -q -p mailroom -p submit --profile "$profile"
share=target/deb-share
rm -rf "$share" && mkdir -p "$share/doc/mailroom" "$share/man"
cp README.md "$share/doc/mailroom/README.md"
if ! "$out/mailroom" man --dir "$share/man" >/dev/null 2>&1; then
    echo "deb-build.sh: this mailroom has no man command: packaging without manual pages" >&2
    rm -rf "$share/man"
fi
rm -rf target/debian
cargo deb -q -p mailroom --no-build --profile "$profile" --fast -o target/debian/ >&2
ls target/debian/mailroom_*.deb
