#!/usr/bin/env bash
#! fleet-bench.sh: relay throughput of a mailroom fleet (issue 16) on this machine, with 1, 2
#! and 3 nodes sharing one Redis, against a single node without a fleet, in one run; and the
#! Redis operations each message costs (INFO commandstats, reset before each round).
#!
#! Every node relays to one shared smtp-sink (relayhost), listens on its own loopback address
#! (127.0.0.2, .3, .4) and gets MESSAGES/NODES messages from `smtp-source -s 10`; a round
#! ends when the sink counted all of them. trips/msg: requests a message costs on its path
#! (the ADMIT script and the lease's removal); cmds/msg: every command Redis ran in the round
#! (commandstats counts those inside scripts too, and the heartbeats and state polls, about
#! 5 requests a second per node), per message. Rounds: `single` (1 node, no fleet_redis_url),
#! `fleet-1`, `fleet-2`, `fleet-3`. All nodes run on this machine's cores (note its count
#! and load, printed first and last): more nodes on the same 2 cores measure the fleet's
#! overhead and fairness, not a scale-out.
#!
#! Usage: bench/fleet-bench.sh [--messages N] [--rate RATE] [--bin PATH] [--dir DIR]
#!   defaults: MESSAGES=3000, no rate limit (RATE e.g. 100000/m adds smtp_destination_rate_limit,
#!   so the GCRA script runs per message), BIN=target/release/mailroom (built if missing),
#!   DIR=/var/tmp/mailroom-fleet-bench; ports 16379 (Redis), 12636 (sink), 12640 (nodes).
#!   Needs redis-server, redis-cli, smtp-source and smtp-sink (Debian's redis-server, postfix).
set -euo pipefail

MESSAGES=3000
RATE=""
DIR=/var/tmp/mailroom-fleet-bench
REDIS_PORT=16379
SINK_PORT=12636
NODE_PORT=12640
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/mailroom"
while [ $# -gt 0 ]; do
    case "$1" in
        --messages) MESSAGES="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "fleet-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p mailroom)

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$DIR" && mkdir -p "$DIR"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
    >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
sink_user=(); [ "$(id -u)" = 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$SINK_PORT" 256 >"$DIR/sink.out" 2>/dev/null &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1; do sleep 0.1; done

sink_messages() { tr '\r' '\n' <"$DIR/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }

# node_config N ROUND FLEET: node N's configuration for a round (FLEET=1: in the fleet).
node_config() {
    local n=$1 round=$2 fleet=$3 d="$DIR/$2/node$1"
    mkdir -p "$d"
    cat <<CONF
queue_directory = "$d/queue"
data_directory = "$d"
mail_spool_directory = "$d/mail"
maillog_file = "$d/mail.log"
myhostname = "node$n.bench.example"
mydestination = ["localhost"]
smtpd_listen = ["127.0.0.$((n + 1)):$NODE_PORT"]
mynetworks = ["127.0.0.0/8"]
relayhost = "[127.0.0.1]:$SINK_PORT"
CONF
    [ "$fleet" = 1 ] && printf 'fleet_redis_url = "redis://127.0.0.1:%s/0"\nfleet_node_name = "node%s"\n' "$REDIS_PORT" "$n"
    [ -n "$RATE" ] && printf 'smtp_destination_rate_limit = { "[127.0.0.1]:%s" = "%s" }\n' "$SINK_PORT" "$RATE"
    return 0
}

# round NAME NODES FLEET: prints "NAME NODES MESSAGES SECONDS MSG/S REDIS-OPS/MSG".
round() {
    local name=$1 nodes=$2 fleet=$3 node_pids=() per=$((MESSAGES / $2))
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    for n in $(seq 1 "$nodes"); do
        node_config "$n" "$name" "$fleet" >"$DIR/$name-node$n.toml"
        "$BIN" -c "$DIR/$name-node$n.toml" serve >"$DIR/$name-node$n.out" 2>&1 &
        node_pids+=($!)
    done
    for n in $(seq 1 "$nodes"); do
        until (exec 3<>"/dev/tcp/127.0.0.$((n + 1))/$NODE_PORT") 2>/dev/null; do sleep 0.1; done
    done
    redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
    local before; before=$(sink_messages); before=${before:-0}
    local start; start=$(date +%s.%N)
    for n in $(seq 1 "$nodes"); do
        smtp-source -s 10 -m "$per" -f bench@bench.example -t someone@example.net \
            "127.0.0.$((n + 1)):$NODE_PORT" &
    done
    wait_for=$((before + per * nodes))
    until [ "$(sink_messages)" -ge "$wait_for" ] 2>/dev/null; do sleep 0.05; done
    local end; end=$(date +%s.%N)
    local ops; ops=$(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\).*/\1=\2/p' | tr '\n' ' ')
    local total; total=$(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_[a-z|]*:calls=\([0-9]*\).*/\1/p' | paste -sd+ | bc)
    # Requests on the message path: the ADMIT script (EVALSHA) and the lease's ZREM.
    local trips; trips=$(printf '%s\n' $ops | sed -n 's/^\(evalsha\|zrem\)=//p' | paste -sd+ | bc)
    kill "${node_pids[@]}" 2>/dev/null || true
    wait "${node_pids[@]}" 2>/dev/null || true
    awk -v name="$name" -v n="$nodes" -v m="$((per * nodes))" -v s="$start" -v e="$end" \
        -v t="${total:-0}" -v r="${trips:-0}" -v ops="$ops" 'BEGIN {
            secs = e - s; printf "%-8s %5d %8d %8.2f %8.0f %10.2f %10.2f   %s\n",
            name, n, m, secs, m / secs, (name == "single" ? 0 : r / m),
            (name == "single" ? 0 : t / m), ops }'
}

echo "fleet-bench: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg); binary $BIN"
printf '%-8s %5s %8s %8s %8s %10s %10s   %s\n' round nodes messages seconds msg/s trips/msg cmds/msg "commandstats (calls; scripts' inner commands included)"
round single 1 0
round fleet-1 1 1
round fleet-2 2 1
round fleet-3 3 1
echo "fleet-bench: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
