#!/usr/bin/env bash
#! many-destinations-bench.sh: 100,000 messages over 10,000 domains, some of them dead
#! (issue 15, goal 4), mailroom against Postfix, in one run.
#!
#! The world (all on loopback, started by this script, removed by its trap):
#!   - DNS: Debian's unbound on 127.0.1.53:53 with a static local zone `bench.`: domain
#!     dNNNNN.bench has `MX 10 mx.dNNNNN.bench.` (one MX host name per domain, so no two
#!     domains share a destination by name), whose A record is one of the sinks'
#!     addresses 127.0.2.1 .. 127.0.2.K (round robin), or 127.0.3.1 for a dead domain
#!     (nothing listens there: the connection is refused).
#!     mailroom asks it through dns_nameservers = ["127.0.1.53:53"]; Postfix through its
#!     libc resolver: it runs in its own mount namespace (`unshare -m`) in which
#!     /etc/resolv.conf is a bind mount of a file saying `nameserver 127.0.1.53` (the rest
#!     of the machine keeps its resolver). Both MTAs do the same MX + A lookups.
#!   - K smtp-sinks (bench/sinkwatch.py) on 127.0.2.1:25 .. 127.0.2.K:25, counting messages.
#!   - Injection: bench/inject.py, S sessions (one process each, one reused SMTP session),
#!     message i to rcpt@d<i mod D>.bench, LEN bytes.
#! Three runs per MTA, each with an empty queue and a fresh MTA:
#!   single: every message to one domain (d00000.bench): the single-destination rate with
#!           the same injector and the same DNS path;
#!   many:   N messages over D domains, all alive;
#!   dead:   the same, with every tenth domain (k mod 10 = 9) dead.
#! Intake and delivery are measured apart (on a shared, loaded machine the injector's own speed
#! would otherwise set the pace): both MTAs hold every message at intake (header_checks
#! `/^Subject: bench/ HOLD`), and once all N are in the hold queue, `postsuper -H ALL` and
#! `postqueue -f` release them at once (the clock starts there).
#! Measured from the release: live messages delivered per second (until the sinks counted
#! every live message), the times at which 50 %, 90 % and 99 % of the live mail had arrived at
#! the sinks (the delivery-time distribution of live mail, to compare with and without dead
#! domains: a dead one delaying live ones shows as a longer tail), the MTA's CPU per message
#! (its process tree, from /proc: for mailroom the daemon's getrusage — scheduler, SMTP client
#! and DNS together), connections opened to the sinks and to the dead address (nftables
#! counters), and the deferral log lines.
#!
#! Usage: bench/many-destinations-bench.sh [-m N] [--domains D] [--pf-m N] [--pf-domains D]
#!        [-s SESSIONS] [-l LEN] [--sinks K] [--modes "single many dead"] [--no-build]
#!        [--no-postfix] [--no-mailroom] [--dir DIR] [--dead refuse|drop]
#!   --dead drop: SYNs to the dead address are dropped instead of refused (every try to a dead
#!   domain holds a delivery slot until the connect timeout, 30 s on both sides).
#!   --perf: mailroom's delivery is sampled by `perf record` (cpu-clock, no call graphs);
#!   DIR/perf-MODE.txt gets the top symbols.
#!   --strace: mailroom's system calls during the delivery are counted by `strace -c -f`
#!   (attached at the release, detached when the sinks counted everything; the rates then
#!   mean nothing): DIR/strace-MODE.txt gets the table, the Ir|sys/msg column the calls per
#!   message.
#!   --callgrind: mailroom runs under valgrind's callgrind with instrumentation off until the
#!   release (callgrind_control -i on) and dumped when the sinks counted everything: the
#!   delivery's instructions per message (Ir/msg column; noise-free, unlike the rates, which
#!   then mean nothing); DIR/callgrind-MODE.txt gets callgrind_annotate's top functions and
#!   DIR/callgrind-MODE.out keeps the dump (for `callgrind_annotate --inclusive=yes`).
#!   defaults: N=100000, D=10000, Postfix the same (fewer with --pf-m/--pf-domains),
#!   S=10, LEN=4096, K=4, DIR=/var/tmp/mailroom-many-bench; MTA ports 12555 (mailroom),
#!   2655 (Postfix). Needs root, unbound, smtp-sink, nft, python3.
set -euo pipefail

N=100000
D=10000
PF_N=""
PF_D=""
SESS=10
LEN=4096
K=4
MODES="single many dead"
DO_BUILD=1
DO_POSTFIX=1
DO_MAILROOM=1
MR_PORT=12555
PF_PORT=2655
DIR=/var/tmp/mailroom-many-bench
DEAD_MODE=refuse
DNS_IP=127.0.1.53
DEAD_IP=127.0.3.1
PROFILE=""
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        --domains) D="$2"; shift 2 ;;
        --pf-m) PF_N="$2"; shift 2 ;;
        --pf-domains) PF_D="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        -l) LEN="$2"; shift 2 ;;
        --sinks) K="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --dead) DEAD_MODE="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --perf) PROFILE=perf; shift ;;
        --callgrind) PROFILE=callgrind; shift ;;
        --strace) PROFILE=strace; shift ;;
        --bin) SRC_BIN="$2"; DO_BUILD=0; shift 2 ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-mailroom) DO_MAILROOM=0; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "many-destinations-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
PF_N="${PF_N:-$N}"
PF_D="${PF_D:-$D}"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PF_ETC=/tmp/pfmany/etc PF_QUEUE=/var/spool/postfix-many PF_DATA=/var/lib/postfix-many
PF_LOG=/tmp/pfmany/maillog
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
log() { echo "many-destinations-bench: $*" >&2; }
for tool in unbound smtp-sink nft python3 unshare; do
    command -v "$tool" >/dev/null || { log "$tool missing"; exit 1; }
done

if [ "$DO_BUILD" = 1 ] && [ "$DO_MAILROOM" = 1 ]; then
    (cd "$ROOT" && nice -n 19 cargo build --release -p mailroom >&2)
fi
mkdir -p "$DIR"
BIN="$DIR/mailroom.bin"
[ "$DO_MAILROOM" = 1 ] && cp "${SRC_BIN:-$ROOT/target/release/mailroom}" "$BIN"

# ---- DNS ----------------------------------------------------------------------------------
UNBOUND_PID=""
dns_start() {
    local domains="$1" dead="$2"
    mkdir -p "$DIR/dns"
    python3 - "$domains" "$dead" "$K" "$DEAD_IP" > "$DIR/dns/zone.conf" <<'EOF'
import sys
domains, dead, k, dead_ip = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
print('  local-zone: "bench." static')
for n in range(domains):
    d = "d%05d.bench" % n
    ip = dead_ip if dead and n % 10 == 9 else "127.0.2.%d" % (1 + n % k)
    print('  local-data: "%s. 3600 IN MX 10 mx.%s."' % (d, d))
    print('  local-data: "mx.%s. 3600 IN A %s"' % (d, ip))
EOF
    cat > "$DIR/dns/unbound.conf" <<EOF
server:
  interface: $DNS_IP
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$DIR/dns"
  pidfile: ""
  use-syslog: no
  logfile: "$DIR/dns/unbound.log"
  verbosity: 0
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  msg-cache-size: 64m
  rrset-cache-size: 64m
EOF
    cat "$DIR/dns/zone.conf" >> "$DIR/dns/unbound.conf"
    unbound -d -c "$DIR/dns/unbound.conf" >/dev/null 2>&1 &
    UNBOUND_PID=$!
    local i
    for i in $(seq 1 100); do
        python3 - "$DNS_IP" <<'EOF' && return 0
import socket, sys
q = bytes.fromhex("123401000001000000000000066430303030300562656e63680000 0f0001".replace(" ", ""))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
try:
    s.sendto(q, (sys.argv[1], 53)); r = s.recv(4096)
    sys.exit(0 if r[3] & 0x0f == 0 and int.from_bytes(r[6:8], "big") > 0 else 1)
except OSError:
    sys.exit(1)
EOF
        kill -0 "$UNBOUND_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "unbound did not answer on $DNS_IP:53: $(tail -5 "$DIR/dns/unbound.log" 2>/dev/null)"
    return 1
}
dns_stop() {
    [ -n "$UNBOUND_PID" ] && kill "$UNBOUND_PID" 2>/dev/null && wait "$UNBOUND_PID" 2>/dev/null || true
    UNBOUND_PID=""
}

# Postfix's resolver: its own mount namespace where /etc/resolv.conf names our unbound.
echo "nameserver $DNS_IP" > "$DIR/resolv.conf"
cat > "$DIR/with-resolv.sh" <<EOF
#!/bin/sh
mount --bind "$DIR/resolv.conf" /etc/resolv.conf && exec "\$@"
EOF
chmod +x "$DIR/with-resolv.sh"
PF_WRAP="unshare -m --propagation private $DIR/with-resolv.sh"

# ---- sinks and counters -------------------------------------------------------------------
NFT_TABLE="mrmany$$"
nft_setup() {
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
    nft add table inet "$NFT_TABLE"
    nft add counter inet "$NFT_TABLE" syns
    nft add counter inet "$NFT_TABLE" dead
    nft add chain inet "$NFT_TABLE" input '{ type filter hook input priority 0; policy accept; }'
    nft add rule inet "$NFT_TABLE" input ip daddr 127.0.2.0/24 tcp dport 25 'tcp flags & (syn|ack) == syn' counter name syns
    nft add rule inet "$NFT_TABLE" input ip daddr "$DEAD_IP" tcp dport 25 'tcp flags & (syn|ack) == syn' counter name dead
    # --dead drop: the dead address does not even refuse (each try waits for the connect timeout).
    [ "$DEAD_MODE" = drop ] && nft add rule inet "$NFT_TABLE" input ip daddr "$DEAD_IP" tcp dport 25 drop
    true
}
nft_get() { nft list counter inet "$NFT_TABLE" "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

WATCH_PID=""
watch_start() {
    local expect="$1" args=() i
    for i in $(seq 1 "$K"); do
        port_free_or_die_at "127.0.2.$i" 25
        args+=(--sink "127.0.2.$i:25")
    done
    rm -f "$DIR/done.fifo"
    mkfifo "$DIR/done.fifo"
    python3 "$ROOT/bench/sinkwatch.py" "${args[@]}" --expect "$expect" --interval 0.5 \
        --fifo "$DIR/done.fifo" --samples "$DIR/samples" --nft "inet $NFT_TABLE syns" \
        2>"$DIR/sink.err" &
    WATCH_PID=$!
    for i in $(seq 1 100); do
        ss -Hltn "sport = :25" | grep -q "127.0.2.$K:25" && return 0
        sleep 0.05
    done
    log "smtp-sinks did not start: $(cat "$DIR/sink.err")"
    return 1
}
watch_stop() {
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=""
}
port_free_or_die_at() {
    if ss -Hltn "sport = :$2" | grep -q "$1:$2"; then
        log "$1:$2 is already in use"; exit 1
    fi
}

cleanup() {
    watch_stop
    mr_stop
    [ "$DO_POSTFIX" = 1 ] && pf_stop
    dns_stop
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS="$DIR/results.tsv"
: > "$RESULTS"

# wait_held NAME COUNT: until COUNT messages are in the MTA's hold queue.
wait_held() {
    local name="$1" count="$2" start n
    start="$(date +%s)"
    while :; do
        if [ "$1" = mailroom ]; then
            n="$("$BIN" -c "$MR_CFG" postqueue -j 2>/dev/null | grep -c '"queue_name": *"hold"' || true)"
        else
            n="$(find "$PF_QUEUE/hold" -type f 2>/dev/null | wc -l)"
        fi
        [ "$n" -ge "$count" ] && return 0
        [ $(( $(date +%s) - start )) -lt 600 ] || { log "$name: only $n of $count held"; return 1; }
        sleep 2
    done
}

# run NAME MODE COUNT DOMAINS PORT
run() {
    local name="$1" mode="$2" count="$3" domains="$4" port="$5"
    local dead=0 live="$count" doms="$domains"
    case "$mode" in
        single) doms=1 ;;
        many) ;;
        dead) dead=1
              # messages i with (i mod D) mod 10 = 9 go to dead domains
              live="$(python3 -c "import sys; n, d = int(sys.argv[1]), int(sys.argv[2]); print(sum(1 for i in range(n) if (i % d) % 10 != 9))" "$count" "$domains")" ;;
    esac
    dns_start "$doms" "$dead"
    nft_setup
    local pid logfile
    printf '/^Subject: bench/ HOLD\n' > "$DIR/header_checks"
    local release
    if [ "$name" = mailroom ]; then
        MR_EXTRA="dns_nameservers = [\"$DNS_IP:53\"]
header_checks = [\"regexp:$DIR/header_checks\"]" mr_setup "$DIR/data" mx "$port"
        if [ "$PROFILE" = callgrind ]; then
            rm -f "$DIR"/callgrind.out*
            valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/callgrind.out.%p" \
                "$BIN" -c "$MR_CFG" serve >>"$MR_DIR/serve.out" 2>&1 &
            MR_PID=$!
            for _ in $(seq 1 1200); do port_listening "$port" && break; sleep 0.1; done
            port_listening "$port" || { log "mailroom did not listen under valgrind"; return 1; }
        else
            mr_start "$BIN" "$port"
        fi
        pid="$MR_PID"; logfile="$MR_DIR/maillog"
        release="$BIN -c $MR_CFG postsuper -H ALL"
    else
        PF_EXTRA="header_checks = regexp:$DIR/header_checks" pf_setup mx
        pid="$(pf_master_pid)"; logfile="$PF_LOG"
        release="postsuper -c $PF_ETC -H ALL"
    fi
    local quiet c0 c1 b0 b1 t0 t1 line inj marks=""
    inj="$(python3 "$ROOT/bench/inject.py" 127.0.0.1 "$port" "$count" --domains "$doms" \
        --sessions "$SESS" --size "$LEN" 2>"$DIR/inject.err")" || log "$name $mode: inject: $inj $(head -3 "$DIR/inject.err")"
    wait_held "$name" "$count"
    watch_start "$live"
    quiet="$(wait_quiet 15)"
    c0="$(tree_cpu_ticks "$pid")"; b0="$(sys_busy_ticks)"
    local prof_pid=""
    if [ "$name" = mailroom ] && [ "$PROFILE" = callgrind ]; then
        callgrind_control -i on "$pid" >/dev/null
    elif [ "$name" = mailroom ] && [ "$PROFILE" = perf ]; then
        perf record -q -F 499 -p "$pid" -o "$DIR/perf-$mode.data" >/dev/null 2>&1 &
        prof_pid=$!
    elif [ "$name" = mailroom ] && [ "$PROFILE" = strace ]; then
        strace -c -f -q -p "$pid" -o "$DIR/strace-$mode.txt" >/dev/null 2>&1 &
        prof_pid=$!
        sleep 1
    fi
    t0="$(now_ns)"
    $release >/dev/null 2>&1
    if [ "$name" = mailroom ]; then "$BIN" -c "$MR_CFG" postqueue -f >/dev/null; else postqueue -c "$PF_ETC" -f; fi
    read -r line < "$DIR/done.fifo"
    c1="$(tree_cpu_ticks "$pid")"; b1="$(sys_busy_ticks)"
    local ir_msg=""
    if [ -n "$prof_pid" ] && [ "$PROFILE" = strace ]; then
        kill -INT "$prof_pid" 2>/dev/null; wait "$prof_pid" 2>/dev/null || true
        ir_msg="$(awk '$NF == "total" { print $4 }' "$DIR/strace-$mode.txt")"
        ir_msg="$(fmt_div "${ir_msg:-0}" "$count" 1)"
    elif [ -n "$prof_pid" ]; then
        kill -INT "$prof_pid" 2>/dev/null; wait "$prof_pid" 2>/dev/null || true
        perf report -i "$DIR/perf-$mode.data" --no-children --sort symbol --stdio 2>/dev/null \
            | grep -v '^#' | grep . | head -60 > "$DIR/perf-$mode.txt" || true
        rm -f "$DIR/perf-$mode.data"
    elif [ "$name" = mailroom ] && [ "$PROFILE" = callgrind ]; then
        callgrind_control -d "$pid" >/dev/null
        sleep 1
        local dump
        dump="$(ls -t "$DIR"/callgrind.out.* | head -1)"
        callgrind_annotate --inclusive=no "$dump" 2>/dev/null | head -80 > "$DIR/callgrind-$mode.txt" || true
        ir_msg="$(awk '/^summary:/ { print $2 }' "$dump" | tail -1)"
        ir_msg="$(fmt_div "${ir_msg:-0}" "$count" 0)"
        mv "$dump" "$DIR/callgrind-$mode.out"
        rm -f "$DIR"/callgrind.out*
    fi
    set -- $line
    if [ "$1" != DONE ]; then
        log "$name $mode: FAILED: the sinks stalled ($line); $inj"
    else
        t1="$2"; marks="$(fmt_div $(($4 - t0)) 1000000000 1) $(fmt_div $(($5 - t0)) 1000000000 1) $(fmt_div $(($6 - t0)) 1000000000 1) $(fmt_div $((t1 - t0)) 1000000000 1)"
    fi
    local syns deadsyns
    syns="$(nft_get syns)"; deadsyns="$(nft_get dead)"
    watch_stop
    if [ "$name" = mailroom ]; then mr_stop; else pf_stop; fi
    dns_stop
    [ "$1" = DONE ] || return 0
    local secs rate cpu_ms other d load deferred
    secs="$(fmt_div $((t1 - t0)) 1000000000 2)"
    rate="$(fmt_div "$live" "$secs" 0)"
    cpu_ms="$(fmt_div $(( (c1 - c0) * 1000 )) $((CLK_TCK * count)) 3)"
    other="$(awk -v b=$((b1 - b0 - (c1 - c0))) -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$(nproc)" \
        'BEGIN { v = 100 * b / hz / (t / 1e9) / n; if (v < 0) v = 0; printf "%.0f", v }')"
    d="$marks"
    deferred="$(grep -c 'status=deferred' "$logfile" || true)"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" "$count" "$doms" "$live" "$secs" "$rate" \
        "$d" "$syns" "$deadsyns/$deferred" "$cpu_ms" "$other ($load)" "${ir_msg:--}" >> "$RESULTS"
    log "$name $mode: $live live of $count msgs to $doms domains in ${secs}s = $rate live msg/s; live mail at the sinks after (50/90/99/100 %): $d s; $syns connections to the sinks, $deadsyns to the dead address, $deferred deferral lines; CPU $cpu_ms ms/msg; instructions ${ir_msg:--}/msg; other load $other% (before: $quiet%; loadavg $load); injector: $inj"
}

log "$(machine_info | tr '\n' ' ')"
log "loadavg at start: $(cat /proc/loadavg)"
for mode in $MODES; do
    [ "$DO_MAILROOM" = 1 ] && run mailroom "$mode" "$N" "$D" "$MR_PORT"
    [ "$DO_POSTFIX" = 1 ] && run postfix "$mode" "$PF_N" "$PF_D" "$PF_PORT"
done

echo
echo "Many destinations: inject.py -s $SESS -l $LEN -> MTA -> MX via unbound -> $K smtp-sinks; dead = every tenth domain refuses"
printf '%-9s %-6s %7s %6s %7s %7s %7s %-28s %6s %13s %7s %9s %s\n' MTA mode msgs doms live "secs" "live/s" "live in at 50/90/99/100% s" conns "dead/deferred" "CPU ms" "Ir|sys/msg" "other% (loadavg)"
awk -F'\t' '{ printf "%-9s %-6s %7s %6s %7s %7s %7s %-28s %6s %13s %7s %9s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12 }' "$RESULTS"
awk -F'\t' '
    { rate[$1 "/" $2] = $7 }
    END {
        for (m in rate) {
            split(m, k, "/")
            if (k[2] != "single" && rate[k[1] "/single"])
                printf "%s %s: %.0f %% of its single-destination rate\n", k[1], k[2], 100 * rate[m] / rate[k[1] "/single"]
        }
        if (rate["mailroom/dead"] && rate["postfix/dead"]) printf "mailroom/postfix, dead: %.2fx\n", rate["mailroom/dead"] / rate["postfix/dead"]
    }' "$RESULTS"
