#!/usr/bin/env bash
#! queue-tools-bench.sh: the operator's tools at a million queued messages (DESIGN invariant 8,
#! issue 5), mailroom against Postfix, in one run.
#!
#! mailroom: a fresh queue is filled with N deferred ~1 KiB messages by bench/src/bin/queue_fill.rs,
#! which writes through the queue crate (group-committed enqueues, then the deferral records:
#! the same records pickup and the scheduler write; sendmail would take an hour for 1M). The
#! daemon is started on it (timed: that is "restart with that queue"), then, with the daemon
#! up, are timed: `mailq | head -1`, `postqueue -p > /dev/null`, `postqueue -j > /dev/null`,
#! `qshape deferred`, the HTTP API's first page (`GET /api/v1/queue?limit=100`), a page from a
#! cursor half-way down, one `/metrics` scrape, `postsuper -d ALL deferred`; the daemon's RSS
#! is read before the delete.
#!
#! Postfix: installed if missing, loopback only, `defer_transports = smtp` so mail to remote
#! domains is deferred without any network; filled with P messages over SMTP (a Python
#! client, 8 parallel connections); the same commands are timed once all P are in deferred/.
#! P defaults to N/10 (filling Postfix is slow): compare per message. Postfix is stopped and
#! its main.cf restored at the end.
#!
#! Usage: bench/queue-tools-bench.sh [-n N] [-p P] [--no-postfix] [--no-mailroom] [--no-build] [--dir DIR]
#!        defaults N=1000000, P=N/10, DIR=/var/tmp/mailroom-queue-bench. Needs root for Postfix.
set -euo pipefail

N=1000000
P=""
DO_POSTFIX=1
DO_MAILROOM=1
DO_BUILD=1
DIR=/var/tmp/mailroom-queue-bench
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        -p) P="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-mailroom) DO_MAILROOM=0; shift ;;
        --no-build) DO_BUILD=0; shift ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "queue-tools-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
P="${P:-$((N / 10))}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
if [ "$DO_BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p mailroom -p mailroom-bench --bin mailroom --bin queue_fill)
fi

now() { date +%s.%N; }
# timed NAME CMD...: runs CMD, prints "NAME seconds".
timed() {
    local name="$1"; shift
    local t0 t1
    t0=$(now); "$@"; t1=$(now)
    printf '%-32s %8.2f s\n' "$name" "$(echo "$t1 - $t0" | bc -l)"
}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

mailroom_part() {
    rm -rf "$DIR"; mkdir -p "$DIR"
    cat > "$DIR/mailroom.toml" <<EOF
queue_directory = "$DIR/queue"
mail_spool_directory = "$DIR/mail"
alias_maps = ["$DIR/aliases"]
maillog_file = "$DIR/mail.log"
myhostname = "bench.example"
mydestination = ["localhost"]
smtpd_listen = []
relayhost = "[127.0.0.1]:9"
http_listen = ["127.0.0.1:19155"]
EOF
    touch "$DIR/aliases"
    export MAILROOM_CONFIG="$DIR/mailroom.toml"
    echo "== mailroom, $N deferred messages"
    timed "fill (queue_fill, direct)" "$BIN/queue_fill" "$DIR/queue" "$N"
    du -sh "$DIR/queue/store" | awk '{print "store size: " $1}'
    local t0 t1 pid
    t0=$(now)
    "$BIN/mailroom" serve > "$DIR/serve.out" 2>&1 &
    pid=$!
    # Ready when the control socket answers a ping (a tool run here would scan the log itself).
    until python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"ping\n"); sys.exit(0 if s.recv(16).startswith(b"ok") else 1)' "$DIR/queue/control.sock" 2>/dev/null; do sleep 0.05; done
    t1=$(now)
    printf '%-32s %8.2f s\n' "daemon start with the queue" "$(echo "$t1 - $t0" | bc -l)"
    echo "daemon RSS after start: $(rss_mib $pid) MiB"
    timed "mailq | head -1" sh -c "'$BIN/mailroom' mailq | head -1 > /dev/null"
    timed "postqueue -p (full)" sh -c "'$BIN/mailroom' postqueue -p > /dev/null"
    timed "postqueue -j (full)" sh -c "'$BIN/mailroom' postqueue -j > /dev/null"
    timed "qshape deferred" sh -c "'$BIN/mailroom' qshape deferred > /dev/null"
    "$BIN/mailroom" qshape deferred | head -4 || true
    timed "API first page (100)" curl -sf -o /dev/null 'http://127.0.0.1:19155/api/v1/queue?limit=100'
    local middle
    middle=$("$BIN/mailroom" postqueue -j | sed -n "$((N / 2))p" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queue_id"])')
    timed "API page at the middle (100)" curl -sf -o /dev/null "http://127.0.0.1:19155/api/v1/queue?limit=100&cursor=$middle"
    timed "API first page, domain filter" curl -sf -o /dev/null 'http://127.0.0.1:19155/api/v1/queue?limit=100&domain=example.net'
    timed "/metrics scrape" curl -sf -o /dev/null 'http://127.0.0.1:19155/metrics'
    echo "daemon RSS: $(rss_mib $pid) MiB"
    timed "postsuper -d ALL deferred" "$BIN/mailroom" postsuper -d ALL deferred
    "$BIN/mailroom" mailq | tail -1
    echo "daemon RSS after delete: $(rss_mib $pid) MiB"
    kill -TERM "$pid"; wait "$pid" || true
}

postfix_part() {
    echo "== Postfix, $P deferred messages"
    if ! command -v postconf >/dev/null; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >/dev/null
    fi
    if [ -f /etc/postfix/main.cf ]; then
        cp /etc/postfix/main.cf /tmp/queue-bench-main.cf.orig
    else
        : > /tmp/queue-bench-main.cf.orig   # "No configuration" installs none
        touch /etc/postfix/main.cf
    fi
    [ -f /etc/postfix/master.cf ] || cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
    postconf -e "inet_interfaces = loopback-only" "mydestination = localhost" \
        "defer_transports = smtp" "relayhost =" "maillog_file = /var/log/postfix-bench.log" \
        "smtpd_recipient_restrictions = permit_mynetworks, reject" "mynetworks = 127.0.0.0/8"
    postfix stop >/dev/null 2>&1 || true
    postsuper -d ALL >/dev/null 2>&1 || true
    postfix start >/dev/null 2>&1
    sleep 1
    local t0 t1
    t0=$(now)
    python3 - "$P" <<'PY'
import smtplib, sys, threading
total = int(sys.argv[1]); conns = 8
body = ("Subject: Cron <root@host> report\nFrom: cron@host.example\n\n" + "report line: everything is fine, nothing to see here.\n" * 18)[:1024]
def worker(k):
    s = smtplib.SMTP("127.0.0.1", 25)
    for i in range(k, total, conns):
        s.sendmail("cron@host%d.example" % (i % 50), ["root@d%d.example" % ((i * 7919) % 1000)], body)
    s.quit()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
    until [ "$(find /var/spool/postfix/deferred -type f | wc -l)" -ge "$P" ]; do sleep 1; done
    t1=$(now)
    printf '%-32s %8.2f s\n' "fill (SMTP, 8 connections)" "$(echo "$t1 - $t0" | bc -l)"
    timed "postfix restart with the queue" sh -c "postfix stop >/dev/null 2>&1; postfix start >/dev/null 2>&1; until postqueue -p >/dev/null 2>&1; do sleep 0.05; done"
    timed "mailq | head -1" sh -c "mailq | head -1 > /dev/null"
    timed "postqueue -p (full)" sh -c "postqueue -p > /dev/null"
    timed "postqueue -j (full)" sh -c "postqueue -j > /dev/null"
    timed "qshape deferred" sh -c "qshape deferred > /dev/null"
    qshape deferred | head -4 || true
    timed "postsuper -d ALL deferred" sh -c "postsuper -d ALL deferred"
    postfix stop >/dev/null 2>&1 || true
    [ -f /tmp/queue-bench-main.cf.orig ] && cp /tmp/queue-bench-main.cf.orig /etc/postfix/main.cf
}

if [ "$DO_MAILROOM" = 1 ]; then mailroom_part; fi
if [ "$DO_POSTFIX" = 1 ]; then postfix_part; fi
