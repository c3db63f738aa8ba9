#!/usr/bin/env bash
#! drain-bench.sh: draining a big deferred queue when its one destination comes back
#! (issue 15, goal 3), mailroom against Postfix, in one run.
#!
#! Per MTA:
#!   1. fill: `smtp-source -s 20 -m N -l LEN` into the MTA, which relays everything to
#!      [127.0.0.1]:SINK (relayhost) where nothing listens yet: every message is tried, the
#!      connection is refused, the destination is marked dead and the mail is deferred
#!      (minimal_backoff_time stays at its default 300 s on both sides, so nothing is retried
#!      on its own during the measurement). Waits until all N are in the deferred queue.
#!   2. the destination comes back: smtp-sink on SINK (bench/sinkwatch.py runs it), then
#!      `postqueue -f` (both MTAs), and the clock runs until the sink counted N messages and
#!      the queue is empty.
#!   Measured at the sink: connections opened (an nftables counter of SYNs to SINK: exact),
#!   the most opened in any one second, and the peak of established connections (sampled
#!   every 0.1 s from /proc/net/tcp); the MTA's CPU over the drain (from /proc, its whole
#!   process tree). Both MTAs at their defaults: destination concurrency limit 20, slow start
#!   (Postfix: initial 5, +1 per success; mailroom: the same), connection reuse.
#! Also the mailroom relay rate of the same binary, same machine, minutes before, for the
#! "≥ 80 % of the relay rate" goal (bench/relay-bench.sh --no-postfix, -m RELAY_N).
#!
#! Usage: bench/drain-bench.sh [-m N] [--pf-m N] [-l LEN] [--relay-m N] [--no-relay]
#!        [--no-build] [--bin MAILROOM-BINARY (instead of building: e.g. an older commit's)] [--no-postfix] [--no-mailroom] [--dir DIR]
#!   defaults: N=200000 (mailroom), --pf-m 20000 (Postfix; compare per message), LEN=4096,
#!   RELAY_N=20000, DIR=/var/tmp/mailroom-drain-bench; ports 12535/12536 (mailroom/sink),
#!   2635/2636 (Postfix/sink); the relay baseline uses 12545/12546.
#!   Needs root (Postfix, nftables), smtp-source/smtp-sink (postfix), nft (nftables), python3.
set -euo pipefail

N=200000
PF_N=20000
LEN=4096
RELAY_N=20000
DO_RELAY=1
DO_BUILD=1
DO_POSTFIX=1
DO_MAILROOM=1
MR_PORT=12535
MR_SINK=12536
PF_PORT=2635
PF_SINK=2636
DIR=/var/tmp/mailroom-drain-bench
FILL_TIMEOUT=3600
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        --pf-m) PF_N="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --relay-m) RELAY_N="$2"; shift 2 ;;
        --no-relay) DO_RELAY=0; shift ;;
        --no-build) DO_BUILD=0; shift ;;
        --bin) SRC_BIN="$2"; DO_BUILD=0; shift 2 ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-mailroom) DO_MAILROOM=0; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "drain-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# This script's own Postfix instance (not relay-bench's), so both may run on one machine.
PF_ETC=/tmp/pfdrain/etc PF_QUEUE=/var/spool/postfix-drain PF_DATA=/var/lib/postfix-drain
PF_LOG=/tmp/pfdrain/maillog
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "drain-bench: $*" >&2; }
for tool in smtp-source smtp-sink nft python3; do
    command -v "$tool" >/dev/null || { log "$tool missing"; exit 1; }
done

if [ "$DO_BUILD" = 1 ] && [ "$DO_MAILROOM" = 1 ]; then
    (cd "$ROOT" && nice -n 19 cargo build --release -p mailroom >&2)
fi
mkdir -p "$DIR"
BIN="$DIR/mailroom.bin"
[ "$DO_MAILROOM" = 1 ] && cp "${SRC_BIN:-$ROOT/target/release/mailroom}" "$BIN"

NFT_TABLE="mrdrain$$"
nft_setup() {
    local port="$1"
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
    nft add table inet "$NFT_TABLE"
    nft add counter inet "$NFT_TABLE" syns
    nft add chain inet "$NFT_TABLE" input '{ type filter hook input priority 0; policy accept; }'
    nft add rule inet "$NFT_TABLE" input tcp dport "$port" 'tcp flags & (syn|ack) == syn' counter name syns
}
nft_syns() { nft list counter inet "$NFT_TABLE" syns | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

WATCH_PID=""
watch_start() {
    local port="$1" expect="$2"
    port_free_or_die "$port"
    rm -f "$DIR/done.fifo"
    mkfifo "$DIR/done.fifo"
    python3 "$ROOT/bench/sinkwatch.py" --sink "127.0.0.1:$port" --expect "$expect" \
        --fifo "$DIR/done.fifo" --samples "$DIR/samples" --nft "inet $NFT_TABLE syns" \
        2>"$DIR/sink.err" &
    WATCH_PID=$!
    local i
    for i in $(seq 1 100); do
        port_listening "$port" && return 0
        sleep 0.05
    done
    log "smtp-sink did not start on $port: $(cat "$DIR/sink.err")"
    return 1
}
watch_stop() {
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=""
}

cleanup() {
    watch_stop
    mr_stop
    [ "$DO_POSTFIX" = 1 ] && pf_stop
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS="$DIR/results.tsv"
: > "$RESULTS"

# fill NAME PORT COUNT: smtp-source into the MTA (its destination is down).
fill() {
    local name="$1" port="$2" count="$3" t0 t1 rc=0
    t0="$(now_ns)"
    timeout "$FILL_TIMEOUT" smtp-source -s 20 -m "$count" -l "$LEN" -f bench@example.org \
        -t rcpt@example.net "127.0.0.1:$port" >"$DIR/source.out" 2>&1 || rc=$?
    t1="$(now_ns)"
    [ "$rc" = 0 ] || log "$name: WARNING: smtp-source exited $rc: $(tail -3 "$DIR/source.out")"
    log "$name: filled $count messages in $(fmt_div $((t1 - t0)) 1000000000 1) s (destination down)"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, every 2 s.
wait_for() {
    local what="$1" max="$2" start
    shift 2
    start="$(date +%s)"
    until "$@"; do
        if [ $(( $(date +%s) - start )) -ge "$max" ]; then
            log "gave up waiting for $what"
            return 1
        fi
        sleep 2
    done
}

mr_deferred() { "$BIN" -c "$MR_CFG" postqueue -j 2>/dev/null | grep -c '"queue_name": *"deferred"' || true; }
mr_all_deferred() { [ "$(mr_deferred)" -ge "$1" ]; }
mr_empty() { [ "$(mr_queue_count "$BIN")" = 0 ]; }
pf_deferred() { find "$PF_QUEUE/deferred" -type f 2>/dev/null | wc -l; }
pf_all_deferred() { [ "$(pf_deferred)" -ge "$1" ] && [ "$(pf_queue_count)" = "$1" ]; }
pf_empty() { [ "$(pf_queue_count)" = 0 ]; }

# drain NAME COUNT PID SINKPORT FLUSH-COMMAND EMPTY-TEST: the destination comes back.
drain() {
    local name="$1" count="$2" pid="$3" sink="$4" flush="$5" empty="$6"
    local c0 c1 b0 b1 t0 t1 t2 line syns0 syns
    nft_setup "$sink"
    watch_start "$sink" "$count"
    c0="$(tree_cpu_ticks "$pid")"; b0="$(sys_busy_ticks)"; syns0="$(nft_syns)"
    t0="$(now_ns)"
    $flush >/dev/null
    read -r line < "$DIR/done.fifo"
    set -- $line
    if [ "$1" != DONE ]; then
        log "$name: FAILED: the sink stalled ($line)"
        watch_stop
        return 1
    fi
    t1="$2"
    wait_for "$name queue empty" 600 $empty
    t2="$(now_ns)"
    c1="$(tree_cpu_ticks "$pid")"; b1="$(sys_busy_ticks)"
    syns=$(( $(nft_syns) - syns0 ))
    watch_stop
    local secs rate cpu_ms peak_est max_opens other load
    secs="$(fmt_div $((t2 - t0)) 1000000000 2)"
    rate="$(fmt_div "$count" "$secs" 0)"
    cpu_ms="$(fmt_div $(( (c1 - c0) * 1000 )) $((CLK_TCK * count)) 3)"
    # samples: unix_s syns_total established_now established_peak messages
    peak_est="$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$DIR/samples")"
    max_opens="$(awk -v p="$syns0" '$2 >= 0 { d = $2 - p; if (d > m) m = d; p = $2 } END { print m + 0 }' "$DIR/samples")"
    other="$(awk -v b=$((b1 - b0 - (c1 - c0))) -v t=$((t2 - t0)) -v hz="$CLK_TCK" -v n="$(nproc)" \
        'BEGIN { v = 100 * b / hz / (t / 1e9) / n; if (v < 0) v = 0; printf "%.0f", v }')"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    cp "$DIR/samples" "$DIR/samples.$name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$count" "$secs" "$rate" \
        "$(fmt_div $((t1 - t0)) 1000000000 2)" "$syns" "$max_opens" "$peak_est" "$cpu_ms" "$other ($load)" >> "$RESULTS"
    log "$name: drained $count in ${secs}s = $rate msg/s (sink had all after $(fmt_div $((t1 - t0)) 1000000000 2)s); $syns connections opened, at most $max_opens in one second, peak $peak_est established; MTA CPU $cpu_ms ms/msg; other load $other% (loadavg $load)"
}

run_mailroom() {
    port_free_or_die "$MR_PORT"; port_free_or_die "$MR_SINK"
    mr_setup "$DIR/data" relay "$MR_PORT" "$MR_SINK"
    mr_start "$BIN" "$MR_PORT"
    fill mailroom "$MR_PORT" "$N"
    wait_for "mailroom: $N deferred" "$FILL_TIMEOUT" mr_all_deferred "$N"
    log "mailroom: $(mr_deferred) deferred; $(grep -c 'status=deferred' "$MR_DIR/maillog" || true) deferral log lines"
    drain mailroom "$N" "$MR_PID" "$MR_SINK" "$BIN -c $MR_CFG postqueue -f" mr_empty
    log "mailroom: $(grep -c 'status=sent' "$MR_DIR/maillog" || true) status=sent lines; daemon peak RSS $(awk '/^VmHWM/ { print $2, $3 }' /proc/"$MR_PID"/status)"
    mr_stop
}

run_postfix() {
    port_free_or_die "$PF_PORT"; port_free_or_die "$PF_SINK"
    pf_setup relay "$PF_SINK"
    fill postfix "$PF_PORT" "$PF_N"
    wait_for "postfix: $PF_N deferred" "$FILL_TIMEOUT" pf_all_deferred "$PF_N"
    drain postfix "$PF_N" "$(pf_master_pid)" "$PF_SINK" "postqueue -c $PF_ETC -f" pf_empty
    log "postfix: $(grep -c 'status=sent' "$PF_LOG" || true) status=sent lines"
    pf_stop
}

RELAY_RATE=""
run_relay() {
    local out
    out="$("$ROOT/bench/relay-bench.sh" --bin "$BIN" --no-postfix --rounds 1 -m "$RELAY_N" \
        --mr-port 12545 --mr-sink-port 12546 --dir "$DIR/relay" --quiet-wait 15)"
    echo "$out" >&2
    RELAY_RATE="$(echo "$out" | awk '/^mean mailroom/ { print $3 }')"
}

log "$(machine_info | tr '\n' ' ')"
log "loadavg at start: $(cat /proc/loadavg)"
if [ "$DO_MAILROOM" = 1 ] && [ "$DO_RELAY" = 1 ]; then
    run_relay
fi
[ "$DO_MAILROOM" = 1 ] && run_mailroom
[ "$DO_POSTFIX" = 1 ] && run_postfix

echo
echo "Drain of a deferred queue (one destination, back up): fill with smtp-source -s 20 -l $LEN, destination down; then smtp-sink + postqueue -f"
printf '%-9s %8s %8s %7s %9s %7s %9s %9s %8s %s\n' MTA msgs "drain s" "msg/s" "sink s" conns "max/s" "peak est" "CPU ms" "other% (loadavg)"
awk -F'\t' '{ printf "%-9s %8s %8s %7s %9s %7s %9s %9s %8s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RESULTS"
awk -F'\t' -v relay="$RELAY_RATE" '
    { rate[$1] = $4 }
    END {
        if (relay != "" && rate["mailroom"]) printf "mailroom drain / its relay rate (%s msg/s): %.0f %%\n", relay, 100 * rate["mailroom"] / relay
        if (rate["mailroom"] && rate["postfix"]) printf "ratio mailroom/postfix per message: %.2fx\n", rate["mailroom"] / rate["postfix"]
    }' "$RESULTS"
