#!/usr/bin/env bash
#! queue-tools-down-bench.sh: the queue tools with the daemon DOWN at N queued messages
#! (issue 15, goal 6; seed 000's situation). Postfix's mailq then refuses ("mail system is
#! down"); mailroom's reads the store itself, lock-free, so this times the read of the log.
#!
#! The queue is filled once with bench/src/bin/queue_fill.rs (N deferred ~1 KiB messages, as
#! queue-tools-bench.sh does), then for R rounds, alternating, each binary given with
#! --baseline (e.g. a build of an older commit) and this tree's are timed on the same queue:
#! `mailq | head -1`, `postqueue -p > /dev/null`, `qshape deferred > /dev/null`.
#! With --instructions, `qshape deferred` is also run once under `perf stat -e instructions`
#! (noise-free beside the wall clock on a shared machine).
#!
#! Usage: bench/queue-tools-down-bench.sh [-n 1000000] [--rounds 3] [--dir DIR] [--keep]
#!        [--baseline BIN] [--instructions] [--no-build] [--no-fill]
set -euo pipefail

N=1000000
ROUNDS=3
DIR=/var/tmp/mailroom-queue-down-bench
BASELINE=""
KEEP=0
DO_BUILD=1
DO_FILL=1
INSTRUCTIONS=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --baseline) BASELINE="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --instructions) INSTRUCTIONS=1; shift ;;
        --no-build) DO_BUILD=0; shift ;;
        --no-fill) DO_FILL=0; shift ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "queue-tools-down-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
if [ "$DO_BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom -p mailroom-bench --bin mailroom --bin queue_fill)
fi

now() { date +%s.%N; }
timed() {
    local name="$1"; shift
    local t0 t1
    t0=$(now); "$@"; t1=$(now)
    printf '%-44s %8.2f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)"
}

if [ "$DO_FILL" = 1 ]; then
    rm -rf "$DIR"; mkdir -p "$DIR"
    "$BIN/queue_fill" "$DIR/queue" "$N"
fi
cat > "$DIR/mailroom.toml" <<CONF
queue_directory = "$DIR/queue"
mail_spool_directory = "$DIR/mail"
maillog_file = "$DIR/mail.log"
myhostname = "bench.example"
smtpd_listen = []
CONF
export MAILROOM_CONFIG="$DIR/mailroom.toml"
du -sh "$DIR/queue/store" | awk '{print "store size: " $1}'
cat "$DIR/queue/store"/*.seg > /dev/null   # warm the page cache for every binary alike

binaries=("$BIN/mailroom")
[ -n "$BASELINE" ] && binaries=("$BASELINE" "$BIN/mailroom")
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for b in "${binaries[@]}"; do
        label="$(basename "$(dirname "$(dirname "$b")")")/$(basename "$b")"
        [ "$b" = "$BIN/mailroom" ] && label="this tree"
        [ "$b" = "$BASELINE" ] && label="baseline"
        timed "$label: mailq | head -1" sh -c "'$b' mailq | head -1 > /dev/null"
        timed "$label: postqueue -p > /dev/null" sh -c "'$b' postqueue -p > /dev/null"
        timed "$label: qshape deferred > /dev/null" sh -c "'$b' qshape deferred > /dev/null"
    done
done
if [ "$INSTRUCTIONS" = 1 ]; then
    for b in "${binaries[@]}"; do
        echo "-- perf stat, $b qshape deferred"
        perf stat -e instructions -x, "$b" qshape deferred 2>&1 > /dev/null | grep instructions || true
    done
fi
"$BIN/mailroom" mailq | tail -1
[ "$KEEP" = 1 ] || rm -rf "$DIR"
