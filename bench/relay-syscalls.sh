#!/usr/bin/env bash
#! relay-syscalls.sh: system calls and context switches per relayed message of `mailroom serve`
#! (issue 15 goal 2: where the kernel's share of a message's CPU comes from).
#!
#! The same relay as relay-bench.sh (`smtp-source -s S -m N -l LEN` -> mailroom -> smtp-sink,
#! relayhost = the sink), mailroom alone. Once the daemon listens, `strace -c -f -p PID` is
#! attached to every thread of it; when the sink has counted N messages strace is stopped and
#! its table (calls and errors per system call, summed over the threads) is written to
#! DIR/strace.txt, with the calls per message. Context switches per message (voluntary and
#! involuntary, summed over the daemon's threads from /proc/PID/task/*/status) are counted over
#! the same interval, once more in a second run without strace (strace itself adds switches).
#! strace slows the daemon a lot: only the counts mean anything, never its times.
#! With --perf, the run without strace is sampled by `perf record -e cpu-clock -g` (user and
#! kernel stacks of the daemon's threads); `perf report`'s summaries go to DIR/perf-*.txt.
#! PERF_EVENT=EVENT samples another event (e.g. syscalls:sys_enter_futex, sched:sched_switch).
#! PERF_CALLGRAPH=dwarf unwinds user stacks without frame pointers (slower, bigger data).
#!
#! Usage: bench/relay-syscalls.sh [-m N] [-s S] [-l LEN] [--bin PATH] [--dir DIR] [--port P] [--sink-port P] [--perf]
#!   defaults: N=2000, S=20, LEN=4096, BIN=target/release/mailroom, DIR=/var/tmp/mailroom-syscalls,
#!   ports 12555/12556. Needs root (strace -p), strace, smtp-source and smtp-sink.
set -euo pipefail
N=2000; SESS=20; LEN=4096; PORT=12555; SINK=12556
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/mailroom"; DIR=/var/tmp/mailroom-syscalls; PERF=0
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --sink-port) SINK="$2"; shift 2 ;;
        --perf) PERF=1; shift ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "relay-syscalls: unknown argument $1" >&2; exit 2 ;;
    esac
done
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "relay-syscalls: $*" >&2; }
for c in strace smtp-source smtp-sink; do
    command -v "$c" >/dev/null || { log "$c missing"; exit 1; }
done
mkdir -p "$DIR"
cp "$BIN" "$DIR/mailroom.bin"
SINK_PID=""; STRACE_PID=""; PERF_PID=""; MR_PID=""
cleanup() {
    [ -n "$STRACE_PID" ] && kill "$STRACE_PID" 2>/dev/null || true
    [ -n "$PERF_PID" ] && kill "$PERF_PID" 2>/dev/null || true
    mr_stop
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    true
}
trap cleanup EXIT

# Context switches of every thread of PID: "voluntary involuntary".
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '
        /^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 }
        END { print v + 0, n + 0 }'
}

sink_count() {
    tr '\r' '\n' < "$DIR/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1
}

# run WITH_STRACE: one relay of N messages; prints "voluntary involuntary" switches per message.
run() {
    local traced="$1" v0 n0 v1 n1 got deadline
    port_free_or_die "$SINK"
    smtp-sink -c -u nobody "127.0.0.1:$SINK" 1000 > "$DIR/sink.out" 2>&1 &
    SINK_PID=$!
    mr_setup "$DIR/data" relay "$PORT" "$SINK"
    mr_start "$DIR/mailroom.bin" "$PORT"
    if [ "$traced" = 1 ]; then
        strace -c -f -o "$DIR/strace.txt" -p "$MR_PID" 2>"$DIR/strace.err" &
        STRACE_PID=$!
        sleep 1
    elif [ "$PERF" = 1 ]; then
        perf record -q -e "${PERF_EVENT:-cpu-clock}" --call-graph "${PERF_CALLGRAPH:-fp}" -o "$DIR/perf.data" -p "$MR_PID" 2>"$DIR/perf.err" &
        PERF_PID=$!
        sleep 1
    fi
    read -r v0 n0 < <(switches "$MR_PID")
    smtp-source -s "$SESS" -m "$N" -l "$LEN" -f bench@example.org -t rcpt@example.net \
        "127.0.0.1:$PORT" > "$DIR/source.out" 2>&1
    deadline=$((SECONDS + 600))
    while :; do
        got="$(sink_count)"
        [ "${got:-0}" -ge "$N" ] && break
        [ "$SECONDS" -lt "$deadline" ] || { log "sink counted ${got:-0} of $N in 10 min"; exit 1; }
        sleep 0.2
    done
    read -r v1 n1 < <(switches "$MR_PID")
    if [ "$traced" = 1 ]; then
        kill -INT "$STRACE_PID"; wait "$STRACE_PID" 2>/dev/null || true; STRACE_PID=""
    elif [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
    fi
    mr_stop
    kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""
    echo "$(fmt_div $((v1 - v0)) "$N" 2) $(fmt_div $((n1 - n0)) "$N" 2)"
}

read -r sv sn < <(run 1)
read -r pv pn < <(run 0)
echo "relay-syscalls: $N messages, smtp-source -s $SESS -l $LEN; binary $(sha256sum "$BIN" | cut -c1-12)"
echo "system calls per message (strace -c -f, every thread of the daemon):"
awk -v n="$N" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 {
        name = $NF; calls = $4; errors = (NF == 6) ? $5 : 0
        printf "  %-18s %8.2f calls/msg %8.2f errors/msg\n", name, calls / n, errors / n
    }
    $NF == "total" { printf "  %-18s %8.2f calls/msg\n", "total", $4 / n }' "$DIR/strace.txt"
if [ "$PERF" = 1 ]; then
    perf report -i "$DIR/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^$' > "$DIR/perf-self.txt" || true
    perf report -i "$DIR/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v '^$' > "$DIR/perf-children.txt" || true
    echo "perf: $DIR/perf-self.txt (self, by object and symbol), $DIR/perf-children.txt (inclusive)"
fi
echo "context switches per message: voluntary $pv, involuntary $pn (without strace; with it: $sv, $sn)"
