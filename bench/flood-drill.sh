#!/usr/bin/env bash
#! flood-drill.sh: a flooding client against the per-client rate limits, mailroom and Postfix
#! side by side in one run (issue 13). A drill, not a throughput benchmark.
#!
#! Each MTA relays example.net (relay_domains) to its own `smtp-sink`; mynetworks is
#! 127.0.0.1/32 only, so smtpd_client_event_limit_exceptions (default $mynetworks) exempts
#! the legitimate client and not the flooder. Both MTAs get the same lines:
#!   smtpd_client_connection_rate_limit = 30, smtpd_client_message_rate_limit = 100,
#!   anvil_rate_time_unit = 60s, and as smtpd_recipient_restrictions $FLOOD_RESTRICTIONS
#!   (default "permit_mynetworks, reject_unauth_destination, reject_rbl_client
#!   dnsbl.flood.test"; FLOOD_RESTRICTIONS=none for the rate limits alone).
#! The DNS list is real DNS: Debian's unbound serves dnsbl.flood.test (local-data: the
#! flooder 127.0.0.2 listed as 127.0.0.2 with a TXT reason) on 127.0.0.1:53 inside a network
#! namespace made for the drill (`ip netns`, its /etc/netns/NAME/resolv.conf naming
#! 127.0.0.1), because Postfix asks the resolver of /etc/resolv.conf, on port 53 only; the
#! whole drill runs in that namespace, so nothing leaves its loopback.
#! Two phases per MTA:
#!   1. the legitimate client, `smtp-source -s 2 -m LEGIT` from 127.0.0.1, while the flood runs:
#!      rounds of `smtp-source -s 20 -m 20` from 127.0.0.2 (smtp-source exits at the first 421
#!      banner, so a flood is a loop of rounds; it cannot bind a source address, so a tiny
#!      LD_PRELOAD shim built here with cc binds its sockets to 127.0.0.2 before connect);
#!      at least FLOOD_ROUNDS rounds, and until the legitimate client is done;
#!   2. CPU_ROUNDS more flood rounds alone, the flooder already over its limit.
#! Reported per MTA: flood recipients refused by the DNS list, flood messages accepted (at most the rate limit per time unit: without
#! an RBL restriction the admitted ones are ordinary mail) and connections refused (the 421
#! comes before any command, so nothing of a refused connection reaches DATA), legitimate
#! messages accepted and delivered to the sink, the largest queue seen in phase 1 (sampled
#! each round), and the MTA's CPU (process tree, from /proc) in phase 2 per connection it
#! refused in phase 2.
#!
#! Usage: bench/flood-drill.sh [--flood-rounds N] [--cpu-rounds N] [--legit N] [--no-build] [--no-postfix] [--dir DIR]
#!        [--bin PATH]   (a mailroom binary to use instead of target/release/mailroom)
#!   defaults: FLOOD_ROUNDS=50, CPU_ROUNDS=20, LEGIT=200, DIR=/var/tmp/mailroom-flood-drill; ports 12535/12536
#!   (mailroom/its sink), 2635/2636 (Postfix/its sink). Needs root (Postfix, ip netns), cc,
#!   smtp-source and smtp-sink (Debian's postfix package), unbound (with the list).
set -euo pipefail

ARGS=("$@")   # for the run inside the network namespace
FLOOD_ROUNDS=50
CPU_ROUNDS=20
LEGIT=200
DO_BUILD=1
DO_POSTFIX=1
DIR=/var/tmp/mailroom-flood-drill
MR_PORT=12535
MR_SINK=12536
PF_PORT=2635
PF_SINK=2636
while [ $# -gt 0 ]; do
    case "$1" in
        --flood-rounds) FLOOD_ROUNDS="$2"; shift 2 ;;
        --cpu-rounds) CPU_ROUNDS="$2"; shift 2 ;;
        --legit) LEGIT="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        --bin) MR_BIN="$2"; DO_BUILD=0; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "flood-drill: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FLOOD_RESTRICTIONS="${FLOOD_RESTRICTIONS:-permit_mynetworks, reject_unauth_destination, reject_rbl_client dnsbl.flood.test}"
[ "$FLOOD_RESTRICTIONS" = none ] && FLOOD_RESTRICTIONS=""
NETNS=mailroom-flood-drill
# Outside the namespace: make it (loopback up, resolv.conf naming 127.0.0.1), run this
# script in it, remove it.
if [ -z "${FLOOD_DRILL_IN_NETNS:-}" ]; then
    for tool in unbound ip; do
        command -v "$tool" >/dev/null || { echo "flood-drill: $tool missing (apt-get install unbound iproute2)" >&2; exit 1; }
    done
    ip netns del "$NETNS" 2>/dev/null || true
    ip netns add "$NETNS"
    mkdir -p "/etc/netns/$NETNS"
    echo "nameserver 127.0.0.1" > "/etc/netns/$NETNS/resolv.conf"
    ip -n "$NETNS" link set lo up
    status=0
    ip netns exec "$NETNS" env FLOOD_DRILL_IN_NETNS=1 FLOOD_RESTRICTIONS="${FLOOD_RESTRICTIONS:-none}" \
        bash "$0" "${ARGS[@]}" || status=$?
    ip netns del "$NETNS" || true
    rm -rf "/etc/netns/$NETNS"
    exit "$status"
fi
PF_PORT_SAVED="$PF_PORT"
# shellcheck source=lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
PF_PORT="$PF_PORT_SAVED"
PF_ETC=/tmp/pfflood/etc PF_QUEUE=/var/spool/postfix-flood PF_DATA=/var/lib/postfix-flood PF_LOG=/tmp/pfflood/maillog
log() { echo "flood-drill: $*" >&2; }
for tool in smtp-source smtp-sink cc; do
    command -v "$tool" >/dev/null || { log "$tool missing (apt-get install postfix gcc)"; exit 1; }
done

LIMITS_PF="smtpd_client_connection_rate_limit = 30
smtpd_client_message_rate_limit = 100
anvil_rate_time_unit = 60s
relay_domains = example.net"
LIMITS_MR="smtpd_client_connection_rate_limit = 30
smtpd_client_message_rate_limit = 100
anvil_rate_time_unit = \"60s\"
relay_domains = [\"example.net\"]"
if [ -n "${FLOOD_RESTRICTIONS:-}" ]; then
    LIMITS_PF="$LIMITS_PF
smtpd_recipient_restrictions = $FLOOD_RESTRICTIONS"
    LIMITS_MR="$LIMITS_MR
smtpd_recipient_restrictions = \"$FLOOD_RESTRICTIONS\"
dns_nameservers = [\"127.0.0.1:53\"]"
fi

# The DNS list: unbound on 127.0.0.1:53 of the namespace, answering dnsbl.flood.test from
# local-data (127.0.0.2 is listed; anything else is NXDOMAIN, as a real list answers).
UNBOUND_PID=""
unbound_start() {
    mkdir -p "$DIR/unbound"
    cat > "$DIR/unbound/unbound.conf" <<EOF
server:
  interface: 127.0.0.1
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$DIR/unbound"
  pidfile: ""
  use-syslog: no
  logfile: "$DIR/unbound/unbound.log"
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  local-zone: "flood.test." static
  local-data: "2.0.0.127.dnsbl.flood.test. 300 IN A 127.0.0.2"
  local-data: "2.0.0.127.dnsbl.flood.test. 300 IN TXT \"listed by the flood drill\""
EOF
    unbound -d -c "$DIR/unbound/unbound.conf" >/dev/null 2>&1 &
    UNBOUND_PID=$!
    local i
    for i in $(seq 1 100); do
        port_listening 53 && return 0
        sleep 0.1
    done
    log "unbound did not answer: $(tail -3 "$DIR/unbound/unbound.log" 2>/dev/null)"; return 1
}
unbound_stop() { [ -n "$UNBOUND_PID" ] && kill "$UNBOUND_PID" 2>/dev/null; wait "$UNBOUND_PID" 2>/dev/null || true; UNBOUND_PID=""; }
export PF_MYNETWORKS=127.0.0.1/32 MR_MYNETWORKS=127.0.0.1/32
PF_EXTRA="$LIMITS_PF"
MR_EXTRA="$LIMITS_MR"

if [ "$DO_BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom >&2)
fi
mkdir -p "$DIR"
BIN="$DIR/mailroom.bin"
cp "${MR_BIN:-$ROOT/target/release/mailroom}" "$BIN"

# The source-address shim: bind every IPv4 socket to $BIND_SRC before connect().
cat > "$DIR/bindsrc.c" <<'EOF'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *to, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    const char *src = getenv("BIND_SRC");
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    if (src && to->sa_family == AF_INET) {
        struct sockaddr_in me = { .sin_family = AF_INET };
        inet_pton(AF_INET, src, &me.sin_addr);
        bind(fd, (struct sockaddr *)&me, sizeof me);
    }
    return real(fd, to, len);
}
EOF
cc -shared -fPIC -O2 -o "$DIR/bindsrc.so" "$DIR/bindsrc.c" -ldl

SINK_PID=""
sink_start() {
    port_free_or_die "$1"
    smtp-sink -c -u nobody "127.0.0.1:$1" 1000 >"$DIR/sink.out" 2>"$DIR/sink.err" &
    SINK_PID=$!
    local i
    for i in $(seq 1 100); do port_listening "$1" && return 0; sleep 0.05; done
    log "smtp-sink did not start: $(cat "$DIR/sink.err")"; return 1
}
sink_count() { tr '\r' '\n' < "$DIR/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2 || true; }
sink_stop() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""; }

cleanup() { sink_stop; mr_stop; [ "$DO_POSTFIX" = 1 ] && pf_stop; unbound_stop; true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# flood_round NAME PORT: one `smtp-source -s 20` from 127.0.0.2. smtp-source exits at the first
# 421 banner, so a flood is a loop of these rounds (each opens up to 20 sessions at once).
flood_round() {
    BIND_SRC=127.0.0.2 LD_PRELOAD="$DIR/bindsrc.so" \
        smtp-source -s 20 -m 20 -l 4096 -f spam@flood.example -t rcpt@example.net \
        "127.0.0.1:$2" >>"$DIR/$1-flood.out" 2>&1 || true
}
refused_count() { grep -c 'Connection rate limit exceeded' "$1" || true; }
rbl_count() { grep -c 'blocked using dnsbl.flood.test' "$1" || true; }

# drill NAME PORT PID LOGFILE QUEUE-COUNT-COMMAND
#   phase 1: the legitimate client's LEGIT messages while the flood runs (rounds until the
#            legitimate client is done, at least FLOOD_ROUNDS); the queue is sampled each round;
#   phase 2: CPU_ROUNDS more flood rounds alone, the flooder already over its limit: the MTA's
#            CPU over them divided by the connections it refused in them.
drill() {
    local name="$1" port="$2" pid="$3" logfile="$4" qcmd="$5"
    local max=0 q lpid rounds=0 t0 t1
    t0="$(now_ns)"
    smtp-source -s 2 -m "$LEGIT" -l 4096 -f friend@legit.example -t rcpt@example.net \
        "127.0.0.1:$port" >"$DIR/$name-legit.out" 2>&1 &
    lpid=$!
    while kill -0 "$lpid" 2>/dev/null || [ "$rounds" -lt "$FLOOD_ROUNDS" ]; do
        flood_round "$name" "$port"; rounds=$((rounds + 1))
        q="$($qcmd)"; [ "${q:-0}" -gt "$max" ] && max="$q"
    done
    wait "$lpid" || log "$name: the legitimate smtp-source failed: $(tail -2 "$DIR/$name-legit.out")"
    t1="$(now_ns)"
    local c0 c1 r0 r1 i
    r0="$(refused_count "$logfile")"; c0="$(tree_cpu_ticks "$pid")"
    for i in $(seq 1 "$CPU_ROUNDS"); do flood_round "$name" "$port"; done
    c1="$(tree_cpu_ticks "$pid")"; r1="$(refused_count "$logfile")"
    local flood_ok legit_ok accepted delivered=0 cpu_us
    flood_ok="$(grep -c 'client=[^ ]*\[127.0.0.2\]' "$logfile" || true)"
    legit_ok="$(grep -c 'client=[^ ]*\[127.0.0.1\]' "$logfile" || true)"
    accepted=$((flood_ok + legit_ok))
    for i in $(seq 1 240); do
        delivered="$(sink_count)"; [ "${delivered:-0}" -ge "$accepted" ] && break; sleep 0.5
    done
    cpu_us="$(fmt_div $(( (c1 - c0) * 1000000 )) $((CLK_TCK * (r1 - r0 > 0 ? r1 - r0 : 1))) 0)"
    local rbl all_through=no
    rbl="$(rbl_count "$logfile")"
    # Every legitimate message accepted, and the sink got at least that many (the flood's
    # admitted ones come on top).
    [ "$legit_ok" -ge "$LEGIT" ] && [ "${delivered:-0}" -ge "$legit_ok" ] && all_through=yes
    # client= is logged at the first accepted RCPT, so it also counts flood sessions that
    # smtp-source abandoned when it exited; what the sink got is what was really accepted.
    printf '%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rbl" "$flood_ok" "$(( ${delivered:-0} - legit_ok ))" "$r1" "$legit_ok" "$LEGIT" \
        "$all_through" "${delivered:-0}" "$max" "$((r1 - r0))" "$cpu_us" "$(fmt_div $((t1 - t0)) 1000000000 1)" >> "$DIR/results.tsv"
    log "$name: flood RCPTs refused by the DNS list $rbl; flood sessions to RCPT $flood_ok, refused $r1 connections in all; legit accepted $legit_ok/$LEGIT (all through: $all_through); sink got ${delivered:-0}; max queue $max; phase 2: $((r1 - r0)) refused, MTA CPU ${cpu_us} us per refused connection; phase 1 took $(fmt_div $((t1 - t0)) 1000000000 1)s"
}

: > "$DIR/results.tsv"
mr_queue() { mr_queue_count "$BIN"; }
pf_queue() { pf_queue_count; }

[ -n "$FLOOD_RESTRICTIONS" ] && unbound_start
port_free_or_die "$MR_PORT"
sink_start "$MR_SINK"
mr_setup "$DIR/data" relay "$MR_PORT" "$MR_SINK"
mr_start "$BIN" "$MR_PORT"
drill mailroom "$MR_PORT" "$MR_PID" "$MR_DIR/maillog" mr_queue
mr_stop; sink_stop

if [ "$DO_POSTFIX" = 1 ]; then
    port_free_or_die "$PF_PORT"
    sink_start "$PF_SINK"
    pf_setup relay "$PF_SINK"
    drill postfix "$PF_PORT" "$(pf_master_pid)" "$PF_LOG" pf_queue
    pf_stop; sink_stop
fi

echo "# flood-drill: $(date -u +%FT%TZ); flood from 127.0.0.2: rounds of smtp-source -s 20 (>= $FLOOD_ROUNDS during the legitimate run, then $CPU_ROUNDS measured alone); LEGIT=$LEGIT from 127.0.0.1 (2 sessions)"
machine_info
echo "# mailroom binary: ${MR_BIN:-target/release/mailroom}; restrictions: ${FLOOD_RESTRICTIONS:-none}"
printf 'mta\tflood RCPT refused by DNSBL\tflood sessions to RCPT\tflood delivered\tconnections refused\tlegit accepted\tlegit all through\tdelivered to sink\tmax queue\trefused in phase 2\tMTA CPU us/refused\tphase 1 s\n'
cat "$DIR/results.tsv"
