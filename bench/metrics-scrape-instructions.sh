#!/usr/bin/env bash
#! metrics-scrape-instructions.sh: the instructions one /metrics scrape costs, by queue size
#! (issue 14: a scrape must not walk the queue). For each N: a fresh queue of N deferred
#! messages (bench/src/bin/queue_fill.rs, as queue-tools-bench.sh), the daemon started on it
#! under valgrind's callgrind collecting only inside `web::metrics::render` (the whole
#! scrape: counters, the store's running totals, maildrop listing, statvfs, encoding), S
#! scrapes, then the daemon stopped; prints Ir per scrape. Repeatable on a loaded machine.
#!
#! Usage: bench/metrics-scrape-instructions.sh [-s SCRAPES] [--dir DIR] N...
#!   defaults S=10, DIR=/var/tmp/mailroom-scrape-bench; needs target/release/{mailroom,queue_fill}
#!   (BIN=target/debug to use a debug build).
set -euo pipefail
S=10
DIR=/var/tmp/mailroom-scrape-bench
SIZES=()
while [ $# -gt 0 ]; do
    case "$1" in
        -s) S="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) SIZES+=("$1"); shift ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
HTTP=19166
for n in "${SIZES[@]}"; do
    rm -rf "$DIR"; mkdir -p "$DIR"
    cat > "$DIR/mailroom.toml" <<CONF
queue_directory = "$DIR/queue"
mail_spool_directory = "$DIR/mail"
alias_maps = ["$DIR/aliases"]
maillog_file = "$DIR/mail.log"
myhostname = "bench.example"
mydestination = ["localhost"]
smtpd_listen = []
relayhost = "[127.0.0.1]:9"
http_listen = ["127.0.0.1:$HTTP"]
CONF
    touch "$DIR/aliases"
    "$BIN/queue_fill" "$DIR/queue" "$n" > /dev/null
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='web::metrics::render*' \
        --callgrind-out-file="$DIR/callgrind.out" "$BIN/mailroom" -c "$DIR/mailroom.toml" serve \
        > "$DIR/serve.out" 2>&1 &
    pid=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$HTTP/api/v1/health"; do sleep 0.5; done
    depth=""
    for _ in $(seq 1 "$S"); do
        depth="$(curl -sf "http://127.0.0.1:$HTTP/metrics" | grep '^postfix_showq_queue_depth{queue="deferred"}')"
    done
    kill -TERM "$pid"; wait "$pid" || true
    ir="$(awk '/^summary:/ {print $2}' "$DIR/callgrind.out")"
    awk -v n="$n" -v ir="$ir" -v s="$S" -v d="$depth" \
        'BEGIN { printf "%9d queued: %12.0f Ir per scrape (%d scrapes; %s)\n", n, ir / s, s, d }'
done
rm -rf "$DIR"
