#!/usr/bin/env bash
#! relay-bench.sh: relay throughput end to end, mailroom against Postfix, in one run (issue 4).
#!
#! What is measured: `smtp-source -s 20 -m N -l 4096` (20 parallel sessions, one message per
#! connection, one recipient rcpt@example.net) -> MTA -> `smtp-sink` on loopback, with
#!   - mailroom: `mailroom serve` (release build, copied aside), relayhost = "[127.0.0.1]:SINK1"
#!   - Postfix:  a separate instance (bench/lib-postfix.sh), relayhost = [127.0.0.1]:SINK2
#! Each MTA has its own smtp-sink (`smtp-sink -c -u nobody 127.0.0.1:PORT 1000`, started fresh
#! for every run). Time = from just before smtp-source starts until the sink's counter (-c)
#! shows N messages received (a small Python reader on the sink's output notes the moment). msgs/s = N / that time. Also reported:
#! smtp-source's own wall clock (intake), the MTA's CPU per message over the same interval
#! (from /proc, as in smtp-intake-bench.sh) and "other%" (the rest of the shared machine).
#! Both MTAs queue each message durably before the 250 to smtp-source (mailroom: group-commit
#! fdatasync; Postfix: cleanup fsyncs the queue file) and record the delivery before removing it.
#! Concurrency towards the sink: both at their defaults (Postfix
#! default_destination_concurrency_limit = 20; mailroom smtp_destination_concurrency_limit = 20),
#! both reuse connections to the sink.
#!
#! Runs alternate mailroom, Postfix, mailroom, Postfix, ... (R rounds); each run starts with an
#! empty queue, a freshly started MTA and a fresh sink.
#!
#! With --fs ext4 (or xfs), both queues live on one freshly made journaled file system: an
#! image on the same disk attached through a loop device (the root ext4 here has no journal;
#! production queues do), mailroom's data directory and Postfix's queue_directory side by
#! side on it (issue 15, goal 2). The image is unmounted and removed at the end.
#!
#! Usage: bench/relay-bench.sh [-m N] [-s SESSIONS] [-l LEN] [--rounds R] [--no-build] [--bin MAILROOM]
#!        [--no-postfix] [--no-mailroom] [--dir DIR] [--quiet-wait S] [--fs ext4|xfs]
#!        [--mr-port P] [--mr-sink-port P] [--pf-port P] [--pf-sink-port P]
#!   defaults: N=20000, SESSIONS=20, LEN=4096, R=2, ports 12525/12526 (mailroom/its sink),
#!   2625/2626 (Postfix/its sink), DIR=/var/tmp/mailroom-relay-bench, S=60.
#!   Needs root (Postfix), smtp-source and smtp-sink (Debian's postfix package).
set -euo pipefail

N=20000
SESS=20
LEN=4096
ROUNDS=2
DO_BUILD=1
DO_POSTFIX=1
DO_MAILROOM=1
MR_PORT=12525
MR_SINK=12526
PF_PORT=2625
PF_SINK=2626
DIR=/var/tmp/mailroom-relay-bench
QUIET_WAIT=60
TIMEOUT=1800
FS=""
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --bin) SRC_BIN="$2"; DO_BUILD=0; shift 2 ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-mailroom) DO_MAILROOM=0; shift ;;
        --mr-port) MR_PORT="$2"; shift 2 ;;
        --mr-sink-port) MR_SINK="$2"; shift 2 ;;
        --pf-port) PF_PORT="$2"; shift 2 ;;
        --pf-sink-port) PF_SINK="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --quiet-wait) QUIET_WAIT="$2"; shift 2 ;;
        --fs) FS="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "relay-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FS_MNT=""
if [ -n "$FS" ]; then
    case "$FS" in ext4|xfs) ;; *) echo "relay-bench: --fs takes ext4 or xfs" >&2; exit 2 ;; esac
    [ "$(id -u)" = 0 ] || { echo "relay-bench: --fs needs root (mount -o loop)" >&2; exit 1; }
    [ "$FS" = xfs ] && ! command -v mkfs.xfs >/dev/null && apt-get install -y -qq xfsprogs >/dev/null
    FS_IMG="$ROOT/target/bench-tmp/relay-$FS.img"
    FS_MNT=/var/tmp/mailroom-relay-fs
    mkdir -p "$(dirname "$FS_IMG")" "$FS_MNT"
    mountpoint -q "$FS_MNT" && umount "$FS_MNT"
    rm -f "$FS_IMG"
    truncate -s 8G "$FS_IMG"
    if [ "$FS" = ext4 ]; then mkfs.ext4 -q -F -O has_journal "$FS_IMG"; else mkfs.xfs -q -f "$FS_IMG"; fi
    mount -o loop "$FS_IMG" "$FS_MNT"
    DIR="$FS_MNT/mailroom"
    export PF_QUEUE="$FS_MNT/postfix-queue"
fi
fs_cleanup() {
    [ -n "$FS_MNT" ] || return 0
    mountpoint -q "$FS_MNT" && umount "$FS_MNT"
    rm -f "$FS_IMG"
}
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "relay-bench: $*" >&2; }
command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null \
    || { log "smtp-source/smtp-sink missing (apt-get install postfix)"; exit 1; }

if [ "$DO_BUILD" = 1 ] && [ "$DO_MAILROOM" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom >&2)
fi
mkdir -p "$DIR"
BIN="$DIR/mailroom.bin"
[ "$DO_MAILROOM" = 1 ] && cp "${SRC_BIN:-$ROOT/target/release/mailroom}" "$BIN"

# smtp-sink -c prints "... mesg=K\r" as messages arrive; a small Python reader on its stdout
# writes the time (ns, CLOCK_REALTIME like `date +%s%N`) at which K reached N into a FIFO, so
# the script waits without polling (a polling loop of forks would steal CPU from the MTA).
SINK_PID=""
COUNTER_PID=""
sink_start() {
    local port="$1" i
    port_free_or_die "$port"
    rm -f "$DIR/done.fifo" "$DIR/sink.port"
    mkfifo "$DIR/done.fifo"
    smtp-sink -c -u nobody "127.0.0.1:$port" 1000 2>"$DIR/sink.err" | python3 -c '
import os, re, sys, time, threading
n, fifo = int(sys.argv[1]), sys.argv[2]
pat = re.compile(rb"mesg=(\d+)")
state = {"count": 0, "changed": time.monotonic(), "done": False}
def report(text):
    with open(fifo, "w") as f:
        f.write(text + "\n")
def watchdog():
    while not state["done"]:
        time.sleep(1)
        if time.monotonic() - state["changed"] > 120:
            state["done"] = True
            report("STALL %d" % state["count"])
threading.Thread(target=watchdog, daemon=True).start()
tail = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    m = pat.findall(tail + chunk)
    tail = chunk[-32:]
    if m and not state["done"]:
        c = int(m[-1])
        if c != state["count"]:
            state["count"], state["changed"] = c, time.monotonic()
        if c >= n:
            state["done"] = True
            report("DONE %d %d" % (time.time_ns(), c))
' "$N" "$DIR/done.fifo" &
    COUNTER_PID=$!
    for i in $(seq 1 100); do
        SINK_PID="$(pgrep -f "^smtp-sink -c -u nobody 127.0.0.1:$port " || true)"
        [ -n "$SINK_PID" ] && port_listening "$port" && return 0
        sleep 0.05
    done
    log "smtp-sink did not start on $port: $(cat "$DIR/sink.err")"
    return 1
}
sink_stop() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    [ -n "$COUNTER_PID" ] && wait "$COUNTER_PID" 2>/dev/null || true
    SINK_PID=""; COUNTER_PID=""
}

cleanup() {
    sink_stop
    mr_stop
    [ "$DO_POSTFIX" = 1 ] && pf_stop
    fs_cleanup
    true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=(smtp-source -s "$SESS" -m "$N" -l "$LEN" -f bench@example.org -t rcpt@example.net)
RESULTS="$DIR/results.tsv"
: > "$RESULTS"

# measure NAME PORT MTA-PID LOGFILE
measure() {
    local name="$1" port="$2" pid="$3" logfile="$4"
    local c0 c1 s0 s1 b0 b1 k0 k1 t0 t1 t2 quiet src_pid rc line what got
    quiet="$(wait_quiet "$QUIET_WAIT")"
    c0="$(tree_cpu_ticks "$pid")"; s0="$(self_ticks)"; b0="$(sys_busy_ticks)"; k0="$(sink_ticks)"
    t0="$(now_ns)"
    ( rc=0; timeout "$TIMEOUT" "${SRC[@]}" "127.0.0.1:$port" >"$DIR/source.out" 2>&1 || rc=$?
      echo "$rc $(date +%s%N)" > "$DIR/source.done" ) &
    src_pid=$!
    read -r line < "$DIR/done.fifo"
    c1="$(tree_cpu_ticks "$pid")"; k1="$(sink_ticks)"
    wait "$src_pid" || true
    s1="$(self_ticks)"; b1="$(sys_busy_ticks)"
    read -r rc t1 < "$DIR/source.done"
    set -- $line
    what="$1"
    if [ "$what" != DONE ]; then
        log "$name: FAILED: the sink received nothing for 120 s ($line); smtp-source rc=$rc: $(tail -3 "$DIR/source.out")"
        return 1
    fi
    t2="$2"; got="$3"
    [ "$rc" = 0 ] || log "$name: WARNING: smtp-source exited $rc: $(tail -3 "$DIR/source.out")"
    local sent wall e2e rate irate cpu_ms src_ms other
    sent="$(grep -c 'status=sent' "$logfile" || true)"
    wall="$(fmt_div $((t1 - t0)) 1000000000 2)"
    e2e="$(fmt_div $((t2 - t0)) 1000000000 2)"
    rate="$(fmt_div "$N" "$e2e" 0)"
    irate="$(fmt_div "$N" "$wall" 0)"
    cpu_ms="$(fmt_div $(( (c1 - c0) * 1000 )) $((CLK_TCK * N)) 3)"
    src_ms="$(fmt_div $(( (s1 - s0 + k1 - k0) * 1000 )) $((CLK_TCK * N)) 3)"
    other="$(awk -v b=$((b1 - b0 - (c1 - c0) - (s1 - s0) - (k1 - k0))) -v t=$((t2 - t0)) -v hz="$CLK_TCK" -v n="$(nproc)" \
        'BEGIN { v = 100 * b / hz / (t / 1e9) / n; if (v < 0) v = 0; printf "%.0f", v }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$e2e" "$rate" "$wall" "$irate" "$cpu_ms" "$src_ms" "$other" >> "$RESULTS"
    log "$name: $N msgs end to end in ${e2e}s = ${rate} msg/s (smtp-source done after ${wall}s = ${irate} msg/s); MTA CPU ${cpu_ms} ms/msg; source+sink ${src_ms} ms/msg; other load ${other}% (before: ${quiet}%); log status=sent so far: $sent"
    [ "$got" = "$N" ] || log "$name: NOTE: the sink counted $got messages (expected $N)"
}
sink_ticks() { echo $(( $(tree_cpu_ticks_one "$SINK_PID") + $(tree_cpu_ticks_one "$COUNTER_PID") )); }

run_mailroom() {
    port_free_or_die "$MR_PORT"
    sink_start "$MR_SINK"
    mr_setup "$DIR/data" relay "$MR_PORT" "$MR_SINK"
    mr_start "$BIN" "$MR_PORT"
    measure mailroom "$MR_PORT" "$MR_PID" "$MR_DIR/maillog"
    mr_stop
    sink_stop
}

run_postfix() {
    port_free_or_die "$PF_PORT"
    sink_start "$PF_SINK"
    pf_setup relay "$PF_SINK"
    measure postfix "$PF_PORT" "$(pf_master_pid)" "$PF_LOG"
    pf_stop
    sink_stop
}

log "$(machine_info | tr '\n' ' ')"
[ -n "$FS" ] && log "both queues on a journaled $FS: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS "$FS_MNT")"
log "command: ${SRC[*]} 127.0.0.1:PORT  (MTA relays to smtp-sink)"
for r in $(seq 1 "$ROUNDS"); do
    [ "$DO_MAILROOM" = 1 ] && run_mailroom
    [ "$DO_POSTFIX" = 1 ] && run_postfix
done

echo
echo "Relay end to end: smtp-source -s $SESS -m $N -l $LEN -> MTA -> smtp-sink, $ROUNDS round(s)"
printf '%-9s %8s %8s %9s %9s %11s %11s %7s\n' MTA "e2e s" "msg/s" "intake s" "intake/s" "MTA CPU ms" "src+sink ms" "other%"
awk -F'\t' '{ printf "%-9s %8s %8s %9s %9s %11s %11s %7s\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$RESULTS"
awk -F'\t' '
    { n[$1]++; rate[$1] += $3; cpu[$1] += $6 }
    END {
        for (k in n) printf "mean %-8s %9.0f msg/s  %.3f CPU ms/msg\n", k, rate[k] / n[k], cpu[k] / n[k]
        if (n["mailroom"] && n["postfix"]) {
            printf "ratio mailroom/postfix: %.2fx msgs/s end to end; CPU per message: postfix/mailroom %.2fx\n",
                (rate["mailroom"] / n["mailroom"]) / (rate["postfix"] / n["postfix"]),
                (cpu["postfix"] / n["postfix"]) / (cpu["mailroom"] / n["mailroom"])
        }
    }' "$RESULTS"
