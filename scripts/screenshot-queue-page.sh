#!/usr/bin/env bash
# Makes docs/queue-page.png, the README's picture of the queue page, from a real daemon
# with a real deferred queue: four destinations that answer 421 / 451 / 452 or are down
# (small python3 SMTP servers on loopback, reached through transport_maps), a few hundred
# messages submitted over two and a half minutes (so the age buckets and the history
# chart have something to show), a suspended destination and a few messages on hold.
# Needs what the browser test needs: node, npm, chromium (scripts/test.sh installs them).
# Takes about three minutes; leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/queue-page.png}
cargo build -q -p mailroom
bin=$PWD/target/debug/mailroom
pw=target/browser-test
if ! cmp -s crates/mailroom/tests/browser/package.json "$pw/package.json" ||
    [ ! -d "$pw/node_modules/playwright-core" ]; then
    mkdir -p "$pw"
    cp crates/mailroom/tests/browser/package.json "$pw/"
    npm install --no-audit --no-fund --prefix "$pw"
fi

dir=$(mktemp -d /tmp/mailroom-screenshot.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=$(port) http=$(port) p421=$(port) p451=$(port) p452=$(port) down=$(port)
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin.token"
token=$(cat "$dir/admin.token")

# The remote servers: one python3 process, one thread per port, each with its refusal.
cat >"$dir/peers.py" <<'PY'
import socketserver, sys, threading
class Peer(socketserver.StreamRequestHandler):
    def handle(self):
        mode, text = self.server.mode, self.server.text
        if mode == "connect":
            self.wfile.write(f"{text}\r\n".encode()); return
        self.wfile.write(b"220 peer ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb in (b"HELO", b"EHLO"): self.wfile.write(b"250 peer\r\n")
            elif verb == b"RCPT": self.wfile.write(f"{text}\r\n".encode())
            elif verb == b"QUIT": self.wfile.write(b"221 bye\r\n"); return
            else: self.wfile.write(b"250 ok\r\n")
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = daemon_threads = True
for spec in sys.argv[1:]:
    port, mode, text = spec.split(":", 2)
    s = Server(("127.0.0.1", int(port)), Peer); s.mode, s.text = mode, text
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Event().wait()
PY
python3 "$dir/peers.py" \
    "$p421:connect:421 4.7.0 mx1.big-isp.example Too many connections from your IP, try again later" \
    "$p451:rcpt:451 4.7.1 Greylisted, please try again in 5 minutes" \
    "$p452:rcpt:452 4.2.2 Mailbox over quota, try again later" &
pids+=($!)
for p in $p421 $p451 $p452; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.2
    done
done

cat >"$dir/transport" <<TR
big-isp.example smtp:[127.0.0.1]:$p421
mail.big-isp.example smtp:[127.0.0.1]:$p421
retail.example smtp:[127.0.0.1]:$p451
members.example smtp:[127.0.0.1]:$p452
down.example smtp:[127.0.0.1]:$down
partner.example smtp:[127.0.0.1]:$p451
TR
mkdir -p "$dir/queue" "$dir/mail"
: >"$dir/aliases"
cat >"$dir/mailroom.toml" <<CF
queue_directory = "$dir/queue"
data_directory = "$dir"
mail_spool_directory = "$dir/mail"
alias_maps = ["$dir/aliases"]
maillog_file = "$dir/mail.log"
myhostname = "mx.mailroom.example"
mydestination = ["localhost"]
postdrop_path = "$dir/no-such-postdrop"
smtpd_listen = ["127.0.0.1:$smtp"]
mynetworks = ["127.0.0.1/32"]
transport_maps = ["$dir/transport"]
minimal_backoff_time = "1h"
maximal_backoff_time = "2h"
doctor_history_interval = "5s"
http_listen = ["127.0.0.1:$http"]
http_admin_token_file = "$dir/admin.token"
CF
export MAILROOM_CONFIG=$dir/mailroom.toml
"$bin" serve >/dev/null 2>"$dir/serve.err" &
pids+=($!)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/api/v1/health" >/dev/null && break
    sleep 0.2
done

# Six waves, 25 s apart: newsletters, shop orders, alerts and bounces to the destinations.
send() { smtp-source -c -m "$1" -s 4 -l 2000 -f "$2" -t "$3" -S "$4" "127.0.0.1:$smtp" >/dev/null; }
for wave in 1 2 3 4 5 6; do
    send $((20 + wave * 6)) news@letters.shop.example "reader$wave@big-isp.example" "Our autumn sale"
    send $((8 + wave * 3)) orders@shop.example "buyer$wave@retail.example" "Your order has shipped"
    send 9 news@letters.shop.example "member$wave@members.example" "Members' newsletter"
    send 6 alerts@monitoring.example "oncall$wave@down.example" "disk almost full on db$wave"
    send 5 billing@shop.example "accounts$wave@partner.example" "Invoice $wave"
    send 3 "" "postmaster$wave@mail.big-isp.example" "Undelivered Mail Returned to Sender"
    [ "$wave" = 6 ] || sleep 25
done
api() { curl -sf -H "Authorization: Bearer $token" -X POST "http://127.0.0.1:$http$1" -d "$2" >/dev/null; }
api /api/v1/destinations/partner.example/suspend '{"reason":"their MX is being migrated tonight","for_seconds":7200}'
api /api/v1/actions/hold '{"from":"alerts@monitoring.example","older_than":"100s"}'
sleep 6 # one more history sample after the last wave and the changes

mkdir -p "$(dirname "$out")"
NODE_PATH=$pw/node_modules CHROMIUM=/usr/bin/chromium PAGE_URL="http://127.0.0.1:$http/" \
    TOKEN=$token DOMAIN=retail.example OUT=$out node crates/mailroom/tests/browser/screenshot.js
