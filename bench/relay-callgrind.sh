#!/usr/bin/env bash
#! relay-callgrind.sh: instructions per relayed message, counted by valgrind's callgrind (the
#! noise-free figure beside relay-bench.sh's wall clock; issue 15 goal 2).
#!
#! `mailroom serve` runs under `valgrind --tool=callgrind` with relayhost = a fresh smtp-sink;
#! once it listens its counters are zeroed (callgrind_control -z), `smtp-source -s S -m N -l LEN`
#! relays N messages, and when the sink has counted N the counters are dumped
#! (callgrind_control -d). Instructions per message = the dump's total Ir / N; the dump's
#! callgrind_annotate summary (top functions, inclusive) is written beside it.
#!
#! Usage: bench/relay-callgrind.sh [-m N] [-s S] [-l LEN] [--bin PATH] [--dir DIR] [--port P] [--sink-port P]
#!   defaults: N=2000, S=20, LEN=4096, BIN=target/release/mailroom, DIR=/var/tmp/mailroom-callgrind,
#!   ports 12545/12546. Needs valgrind, smtp-source and smtp-sink (Debian's postfix package).
set -euo pipefail
N=2000; SESS=20; LEN=4096; PORT=12545; SINK=12546
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/mailroom"; DIR=/var/tmp/mailroom-callgrind
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --sink-port) SINK="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "relay-callgrind: unknown argument $1" >&2; exit 2 ;;
    esac
done
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "relay-callgrind: $*" >&2; }
for c in valgrind callgrind_control smtp-source smtp-sink; do
    command -v "$c" >/dev/null || { log "$c missing"; exit 1; }
done
mkdir -p "$DIR"
cp "$BIN" "$DIR/mailroom.bin"
SINK_PID=""; VG_PID=""
cleanup() {
    [ -n "$VG_PID" ] && kill "$VG_PID" 2>/dev/null || true
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    true
}
trap cleanup EXIT
port_free_or_die "$SINK"
smtp-sink -c -u nobody "127.0.0.1:$SINK" 1000 > "$DIR/sink.out" 2>&1 &
SINK_PID=$!
mr_setup "$DIR/data" relay "$PORT" "$SINK"
rm -f "$DIR"/callgrind.out*
valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out.%p" \
    "$DIR/mailroom.bin" -c "$MR_CFG" serve >>"$MR_DIR/serve.out" 2>&1 &
VG_PID=$!
for _ in $(seq 1 1200); do port_listening "$PORT" && break; sleep 0.1; done
port_listening "$PORT" || { log "mailroom did not listen under valgrind"; tail -5 "$MR_DIR/serve.out"; exit 1; }
callgrind_control -z "$VG_PID" >/dev/null
smtp-source -s "$SESS" -m "$N" -l "$LEN" -f bench@example.org -t rcpt@example.net "127.0.0.1:$PORT" \
    > "$DIR/source.out" 2>&1
# smtp-sink -c rewrites one status line with \r; its last "mesg=K" is the count so far.
deadline=$((SECONDS + 1800))
while :; do
    got="$(tr '\r' '\n' < "$DIR/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1)"
    [ "${got:-0}" -ge "$N" ] && break
    [ "$SECONDS" -lt "$deadline" ] || { log "sink counted ${got:-0} of $N in 30 min"; exit 1; }
    sleep 1
done
callgrind_control -d "$VG_PID" >/dev/null
kill -TERM "$VG_PID"; wait "$VG_PID" 2>/dev/null || true; VG_PID=""
dump="$(ls -t "$DIR"/callgrind.out.*.1 2>/dev/null | head -1)"
[ -n "$dump" ] || { log "no callgrind dump"; exit 1; }
total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
callgrind_annotate --inclusive=yes "$dump" > "$DIR/annotate-inclusive.txt" 2>/dev/null || true
callgrind_annotate "$dump" > "$DIR/annotate-self.txt" 2>/dev/null || true
echo "relay-callgrind: $N messages: $total instructions = $((total / N)) per message (dump $dump; summaries in $DIR)"
