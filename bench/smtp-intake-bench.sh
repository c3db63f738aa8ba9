#!/usr/bin/env bash
#! smtp-intake-bench.sh: SMTP intake, mailroom against Postfix, in one run (issue 3).
#!
#! What is measured: `smtp-source -s 20 -m N -l 4096` (20 parallel sessions, one message per
#! connection, HELO/MAIL/RCPT/DATA/QUIT, 4096-byte body, one recipient) into
#!   - mailroom: `mailroom serve` (release build, copied aside so a concurrent rebuild cannot
#!     swap it), transport_maps = `*  discard:`
#!   - Postfix: a separate instance (bench/lib-postfix.sh: own config dir, queue
#!     /var/spool/postfix-bench, loopback port), default_transport = discard.
#! Both sides queue every message durably before the 250 reply (mailroom: the store's group
#! commit fdatasync; Postfix: cleanup(8) fsyncs each queue file in incoming/ before replying),
#! then the queue manager hands it to a discard transport and removes it.
#!
#! Reported per run: msgs/s = N / wall clock of smtp-source; the time until the queue is empty
#! again; CPU per message = CPU time of the whole MTA from just before smtp-source until the
#! queue is empty (intake + discard + removal), divided by N. CPU is read from /proc/PID/stat
#! (utime+stime+cutime+cstime) of the daemon's process tree: for mailroom the `serve` process
#! (all its threads), for Postfix the master and all its live children; children that exited in
#! between (smtpd, cleanup, ... hitting max_use/max_idle) are in the master's cutime/cstime.
#! Also reported: smtp-source's own CPU per message, and "other%": what the rest of the
#! machine used meanwhile (/proc/stat busy time minus the MTA, smtp-source and this script),
#! in % of all CPUs: this machine is shared, so a run with a high other% is noise.
#! Runs alternate mailroom / Postfix; each starts from an empty queue and a freshly started
#! daemon.
#!
#! Usage: bench/smtp-intake-bench.sh [-m N] [-s SESSIONS] [-l LEN] [--rounds R] [--no-build]
#!        [--no-postfix] [--no-mailroom] [--mr-port P] [--pf-port P] [--dir DIR] [--quiet-wait S]
#!   defaults: N=20000, SESSIONS=20, LEN=4096, R=2, mailroom port 12525, Postfix port 2625,
#!   S=60 (before each run, wait up to S seconds for the shared machine to be <25% busy),
#!   DIR=/var/tmp/mailroom-smtp-bench (mailroom's data; Postfix's queue is
#!   /var/spool/postfix-bench, its config /tmp/pfbench/etc). Needs root (Postfix), smtp-source.
set -euo pipefail

N=20000
SESS=20
LEN=4096
ROUNDS=2
DO_BUILD=1
DO_POSTFIX=1
DO_MAILROOM=1
MR_PORT=12525
PF_PORT=2625
DIR=/var/tmp/mailroom-smtp-bench
QUIET_WAIT=60
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-mailroom) DO_MAILROOM=0; shift ;;
        --mr-port) MR_PORT="$2"; shift 2 ;;
        --pf-port) PF_PORT="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --quiet-wait) QUIET_WAIT="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "smtp-intake-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "smtp-intake-bench: $*" >&2; }
command -v smtp-source >/dev/null || { log "smtp-source missing (apt-get install postfix)"; exit 1; }

if [ "$DO_BUILD" = 1 ] && [ "$DO_MAILROOM" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom >&2)
fi
mkdir -p "$DIR"
BIN="$DIR/mailroom.bin"
[ "$DO_MAILROOM" = 1 ] && cp "$ROOT/target/release/mailroom" "$BIN"

cleanup() {
    mr_stop
    [ "$DO_POSTFIX" = 1 ] && pf_stop
    true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=(smtp-source -s "$SESS" -m "$N" -l "$LEN" -f bench@example.org -t rcpt@example.net)
RESULTS="$DIR/results.tsv"
: > "$RESULTS"

# measure NAME PORT MTA-PID QUEUE-COUNT-FUNC LOGFILE
measure() {
    local name="$1" port="$2" pid="$3" qcount="$4" logfile="$5"
    local c0 c1 s0 s1 b0 b1 t0 t1 t2 q rc=0 i quiet
    quiet="$(wait_quiet "$QUIET_WAIT")"
    c0="$(tree_cpu_ticks "$pid")"; s0="$(self_ticks)"; b0="$(sys_busy_ticks)"
    t0="$(now_ns)"
    timeout 1800 "${SRC[@]}" "127.0.0.1:$port" >"$DIR/source.out" 2>&1 || rc=$?
    t1="$(now_ns)"
    if [ "$rc" != 0 ]; then log "$name: smtp-source failed ($rc): $(tail -3 "$DIR/source.out")"; return 1; fi
    for i in $(seq 1 6000); do
        q="$($qcount)"
        [ "$q" = 0 ] && break
        sleep 0.1
    done
    t2="$(now_ns)"
    c1="$(tree_cpu_ticks "$pid")"; s1="$(self_ticks)"; b1="$(sys_busy_ticks)"
    local removed wall drain rate cpu_ms src_ms other
    removed="$(grep -c ': removed$' "$logfile" || true)"
    wall="$(fmt_div $((t1 - t0)) 1000000000 2)"
    drain="$(fmt_div $((t2 - t0)) 1000000000 2)"
    rate="$(fmt_div "$N" "$wall" 0)"
    cpu_ms="$(fmt_div $(( (c1 - c0) * 1000 )) $((CLK_TCK * N)) 3)"
    src_ms="$(fmt_div $(( (s1 - s0) * 1000 )) $((CLK_TCK * N)) 3)"
    # CPU used by everything else on the machine meanwhile, in % of all CPUs
    other="$(awk -v b=$((b1 - b0 - (c1 - c0) - (s1 - s0))) -v t=$((t2 - t0)) -v hz="$CLK_TCK" -v n="$(nproc)" \
        'BEGIN { v = 100 * b / hz / (t / 1e9) / n; if (v < 0) v = 0; printf "%.0f", v }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$rate" "$drain" "$cpu_ms" "$src_ms" "$other" "$removed" >> "$RESULTS"
    log "$name: $N msgs in ${wall}s = ${rate} msg/s; queue empty after ${drain}s; MTA CPU ${cpu_ms} ms/msg; smtp-source ${src_ms} ms/msg; other load ${other}% (before: ${quiet}%); removed=$removed"
    [ "$removed" = "$N" ] || log "$name: WARNING: $removed of $N messages logged as removed"
}

mr_qcount() { mr_queue_count "$BIN"; }
pf_qcount() { pf_queue_count; }

run_mailroom() {
    port_free_or_die "$MR_PORT"
    mr_setup "$DIR/data" discard "$MR_PORT"
    mr_start "$BIN" "$MR_PORT"
    measure mailroom "$MR_PORT" "$MR_PID" mr_qcount "$MR_DIR/maillog"
    mr_stop
}

run_postfix() {
    port_free_or_die "$PF_PORT"
    pf_setup discard
    measure postfix "$PF_PORT" "$(pf_master_pid)" pf_qcount "$PF_LOG"
    pf_stop
}

log "$(machine_info | tr '\n' ' ')"
log "command: ${SRC[*]} 127.0.0.1:PORT"
for r in $(seq 1 "$ROUNDS"); do
    [ "$DO_MAILROOM" = 1 ] && run_mailroom
    [ "$DO_POSTFIX" = 1 ] && run_postfix
done

echo
echo "SMTP intake: smtp-source -s $SESS -m $N -l $LEN, delivery to discard, $ROUNDS round(s)"
printf '%-9s %8s %8s %8s %11s %11s %7s\n' MTA "wall s" "msg/s" "drain s" "MTA CPU ms" "src CPU ms" "other%"
awk -F'\t' '{ printf "%-9s %8s %8s %8s %11s %11s %7s\n", $1, $2, $3, $4, $5, $6, $7 }' "$RESULTS"
awk -F'\t' '
    { n[$1]++; rate[$1] += $3; cpu[$1] += $5 }
    END {
        for (k in n) printf "mean %-8s %9.0f msg/s  %.3f CPU ms/msg\n", k, rate[k] / n[k], cpu[k] / n[k]
        if (n["mailroom"] && n["postfix"]) {
            printf "ratio mailroom/postfix: %.2fx msgs/s; CPU per message: postfix/mailroom %.2fx\n",
                (rate["mailroom"] / n["mailroom"]) / (rate["postfix"] / n["postfix"]),
                (cpu["postfix"] / n["postfix"]) / (cpu["mailroom"] / n["mailroom"])
        }
    }' "$RESULTS"
