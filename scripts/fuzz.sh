#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS (default 30), one after
# the other; prints one line per target (executions, corpus) and exits 1 if any target found
# a crash (its input is in fuzz/artifacts/TARGET/). Without a nightly toolchain it says so in
# one line and exits 0. scripts/test.sh runs it with 30 s per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # all targets when none are named
#
# Corpora grow in fuzz/corpus/TARGET/ and are reused by the next run (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 64
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (cargo +nightly), fuzzing skipped"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if ((${#targets[@]} == 0)); then
    echo "fuzz.sh: no fuzz targets (cargo +nightly fuzz list printed none)" >&2
    exit 1
fi

# Every target is safe Rust: no sanitizer (twice the speed), but overflow checks and debug
# assertions on, so an arithmetic overflow is a crash like a panic.
build=(cargo +nightly fuzz build --sanitizer none --debug-assertions)
started=$(date +%s)
mkdir -p fuzz/artifacts
if ! "${build[@]}" 2>fuzz/artifacts/build.log; then
    cat fuzz/artifacts/build.log >&2
    echo "fuzz.sh: build failed" >&2
    exit 1
fi
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - started)) s"

bin_dir=fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
failed=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    log=fuzz/artifacts/$target.log
    mkdir -p "$corpus" "$artifacts"
    # -timeout: one input running this long is a hang. 60 s, not libFuzzer's usual 10 s: on
    # a loaded CI box a slow input is not a hang (a real one still shows within the run).
    args=(-max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/")
    [ -f "fuzz/dicts/$target.dict" ] && args+=(-dict="fuzz/dicts/$target.dict")
    status=0
    "$bin_dir/$target" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    size=$(($(du -sb "$corpus" | cut -f1) / 1024))
    if ((status == 0)); then
        echo "fuzz.sh: $target: ${runs:-?} executions in ${seconds} s, corpus $files files (${size} KB), no crash"
    else
        crash=$(ls -t "$artifacts" 2>/dev/null | head -1)
        echo "fuzz.sh: $target: CRASH after ${runs:-?} executions: $artifacts/$crash (log: $log)"
        grep -m1 -E "panicked at|ERROR: libFuzzer|==ERROR" -A2 "$log" | sed 's/^/    /' || true
        failed+=("$target")
    fi
done
echo "fuzz.sh: ${#targets[@]} targets, $(($(date +%s) - started)) s in all"
if ((${#failed[@]})); then
    echo "fuzz.sh: crashes in: ${failed[*]} (reproduce: cargo +nightly fuzz run TARGET ARTIFACT)" >&2
    exit 1
fi
