#!/usr/bin/env bash
#! metrics-cost-bench.sh: what /metrics costs the relay (issue 14: "metrics cost nothing
#! measurable on the relay benchmark"). The same relay run twice, smtp-source -> mailroom ->
#! smtp-sink (bench/lib-postfix.sh's mr_setup relay), the daemon under valgrind's callgrind:
#!   off:     no http_listen;
#!   scraped: http_listen on, /metrics scraped once a second for the whole run.
#! The figure is the daemon's instruction count (callgrind "summary" Ir, start to stop,
#! all threads), repeatable on a loaded machine where CPU seconds are not; the difference
#! per message is the metrics' cost, with the scrapes counted and the cost per scrape shown.
#!
#! Usage: bench/metrics-cost-bench.sh [-m N] [-s SESSIONS] [--no-build] [--dir DIR]
#!   defaults N=2000, SESSIONS=10, DIR=/var/tmp/mailroom-metrics-bench. Needs valgrind,
#!   smtp-source and smtp-sink (Debian: valgrind, postfix).
set -euo pipefail

N=2000
SESS=10
DO_BUILD=1
DIR=/var/tmp/mailroom-metrics-bench
while [ $# -gt 0 ]; do
    case "$1" in
        -m) N="$2"; shift 2 ;;
        -s) SESS="$2"; shift 2 ;;
        --no-build) DO_BUILD=0; shift ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "metrics-cost-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/mailroom"
[ "$DO_BUILD" = 1 ] && (cd "$ROOT" && cargo build --release -p mailroom --bin mailroom)
# shellcheck source=bench/lib-postfix.sh
. "$ROOT/bench/lib-postfix.sh"
PORT=12535 SINK=12536 HTTP=12537
mkdir -p "$DIR"

run() {
    local name="$1" http="$2" sink_pid pid scrapes=0 sent=0 out
    MR_EXTRA=""
    [ "$http" = 1 ] && MR_EXTRA="http_listen = [\"127.0.0.1:$HTTP\"]"
    mr_setup "$DIR/$name" relay "$PORT" "$SINK"
    smtp-sink -u nobody "127.0.0.1:$SINK" 1000 >/dev/null 2>&1 &
    sink_pid=$!
    out="$DIR/$name/callgrind.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" -c "$MR_CFG" serve \
        >"$DIR/$name/serve.out" 2>&1 &
    pid=$!
    until port_listening "$PORT"; do sleep 0.2; done
    smtp-source -s "$SESS" -m "$N" -l 4096 -f bench@example.org -t rcpt@example.net \
        "127.0.0.1:$PORT" >"$DIR/$name/source.out" 2>&1 &
    until [ "$sent" -ge "$N" ]; do
        if [ "$http" = 1 ]; then
            curl -sf -o /dev/null "http://127.0.0.1:$HTTP/metrics" && scrapes=$((scrapes + 1))
        fi
        sleep 1
        sent="$(grep -c 'status=sent' "$DIR/$name/maillog" || true)"
    done
    kill -TERM "$pid"; wait "$pid" || true
    kill "$sink_pid" 2>/dev/null || true
    local ir
    ir="$(awk '/^summary:/ {print $2}' "$out")"
    echo "$name $ir $scrapes"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
off="$(run off 0)"; echo "$off"
on="$(run scraped 1)"; echo "$on"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r _ ir_off _ <<<"$off"
read -r _ ir_on scrapes <<<"$on"
awk -v a="$ir_off" -v b="$ir_on" -v n="$N" -v s="$scrapes" 'BEGIN {
    printf "Ir per message: off %.0f, scraped %.0f (+%.2f%%); %d scrapes, %.0f Ir per scrape if all of the difference is theirs\n",
        a / n, b / n, 100 * (b - a) / a, s, (s > 0 ? (b - a) / s : 0) }'
