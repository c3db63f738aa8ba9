# lib-postfix.sh: helpers shared by bench/smtp-intake-bench.sh and bench/relay-bench.sh
# (sourced, not run).
#
# A SEPARATE Postfix instance, never the default one: its own config directory ($PF_ETC),
# queue ($PF_QUEUE), data directory ($PF_DATA) and log file; smtpd listens on loopback only
# ($PF_PORT); the plain `smtp inet` line of Debian's master.cf is commented out and every
# service runs unchrooted. /etc/postfix and /var/spool/postfix are only read (master.cf is
# copied from /etc/postfix/master.cf, falling back to /usr/share/postfix/master.cf.dist).
#
# Also: CPU accounting from /proc for a process tree (used for both MTAs) and small utilities.
#
# Variables the caller sets before pf_setup:
#   PF_ETC (default /tmp/pfbench/etc)  PF_QUEUE (/var/spool/postfix-bench)
#   PF_DATA (/var/lib/postfix-bench)   PF_LOG  (/tmp/pfbench/maillog)  PF_PORT (2625)

PF_ETC="${PF_ETC:-/tmp/pfbench/etc}"
PF_QUEUE="${PF_QUEUE:-/var/spool/postfix-bench}"
PF_DATA="${PF_DATA:-/var/lib/postfix-bench}"
PF_LOG="${PF_LOG:-/tmp/pfbench/maillog}"
PF_PORT="${PF_PORT:-2625}"
PF_STARTED=0
CLK_TCK="$(getconf CLK_TCK)"

# pf_setup MODE [RELAYHOST_PORT]
#   MODE=discard: every recipient goes to Postfix's discard(8) transport
#                 (default_transport = discard; mydestination is empty so all mail is "remote").
#   MODE=relay:   every recipient is relayed to relayhost = [127.0.0.1]:RELAYHOST_PORT.
#   MODE=mx:      no relayhost: MX lookups through the resolver of /etc/resolv.conf (the caller
#                 may run Postfix in its own mount namespace with another one: PF_WRAP).
# Writes main.cf/master.cf, empties this instance's queue, `postfix check`, `postfix start`
# (prefixed with $PF_WRAP, a command that runs its arguments, when set).
pf_setup() {
    local mode="$1" relayport="${2:-}"
    command -v postfix >/dev/null || { echo "lib-postfix: postfix is not installed (apt-get install postfix)" >&2; return 1; }
    [ "$(id -u)" = 0 ] || { echo "lib-postfix: the Postfix part needs root" >&2; return 1; }
    case "$PF_QUEUE" in /var/spool/postfix|/var/spool/postfix/) echo "lib-postfix: refusing to use the default queue" >&2; return 1 ;; esac
    case "$PF_ETC" in /etc/postfix|/etc/postfix/) echo "lib-postfix: refusing to use the default config" >&2; return 1 ;; esac
    pf_stop
    mkdir -p "$PF_ETC" "$(dirname "$PF_LOG")" "$PF_DATA"
    local src=/etc/postfix/master.cf
    [ -f "$src" ] || src=/usr/share/postfix/master.cf.dist
    # Loopback smtpd on our port; the plain `smtp inet` line commented out; chroot column -> n.
    awk -v port="$PF_PORT" '
        /^smtp[ \t]+inet[ \t]/ { print "#" $0; print "127.0.0.1:" port " inet n - n - - smtpd"; next }
        /^[a-z0-9.:-]+[ \t]+(inet|unix|unix-dgram|fifo|pass)[ \t]/ {
            n = split($0, f, /[ \t]+/)
            if (n >= 8 && f[5] == "y") { f[5] = "n"; line = f[1]; for (i = 2; i <= n; i++) line = line " " f[i]; print line; next }
        }
        { print }
    ' "$src" > "$PF_ETC/master.cf"
    grep -q '^postlog[ \t]' "$PF_ETC/master.cf" || echo 'postlog unix-dgram n - n - 1 postlogd' >> "$PF_ETC/master.cf"
    {
        echo "# written by bench/lib-postfix.sh ($mode)"
        echo "compatibility_level = 3.6"
        echo "queue_directory = $PF_QUEUE"
        echo "data_directory = $PF_DATA"
        echo "inet_interfaces = 127.0.0.1"
        echo "inet_protocols = ipv4"
        echo "myhostname = bench.local"
        echo "mydestination ="
        echo "mynetworks = ${PF_MYNETWORKS:-127.0.0.0/8}"
        echo "maillog_file = $PF_LOG"
        echo "maillog_file_prefixes = /var, /dev/stdout, $(dirname "$PF_LOG")"
        echo "smtputf8_enable = no"
        echo "biff = no"
        echo "alias_maps ="
        echo "alias_database ="
        echo "local_recipient_maps ="
        echo "smtpd_tls_security_level ="
        echo "smtp_tls_security_level ="
        case "$mode" in
            discard)
                echo "default_transport = discard"
                echo "relayhost =" ;;
            relay)
                echo "relayhost = [127.0.0.1]:$relayport" ;;
            mx)
                echo "relayhost =" ;;
            *) echo "lib-postfix: unknown mode $mode" >&2; return 1 ;;
        esac
        # Extra main.cf lines of the calling script (flood-drill.sh: limits, restrictions).
        [ -z "${PF_EXTRA:-}" ] || printf '%s\n' "$PF_EXTRA"
    } > "$PF_ETC/main.cf"
    # Fresh queue for this instance only.
    rm -rf "$PF_QUEUE" "$PF_DATA"
    mkdir -p "$PF_QUEUE" "$PF_DATA"
    chown postfix "$PF_DATA"
    : > "$PF_LOG"
    # Postfix reports early errors only to syslog or a terminal: rerun under script(1) to show them.
    postfix -c "$PF_ETC" check >&2 || { script -qec "postfix -c $PF_ETC check" /dev/null >&2; return 1; }
    ${PF_WRAP:-} postfix -c "$PF_ETC" start >&2 || { script -qec "postfix -c $PF_ETC start" /dev/null >&2; return 1; }
    PF_STARTED=1
    local i
    for i in $(seq 1 100); do
        pf_master_pid >/dev/null && port_listening "$PF_PORT" && return 0
        sleep 0.1
    done
    echo "lib-postfix: Postfix instance did not come up (see $PF_LOG)" >&2
    return 1
}

pf_stop() {
    if [ -f "$PF_ETC/main.cf" ] && pf_master_pid >/dev/null 2>&1; then
        postfix -c "$PF_ETC" stop >&2 || true
        local i
        for i in $(seq 1 100); do pf_master_pid >/dev/null 2>&1 || break; sleep 0.1; done
    fi
    PF_STARTED=0
}

pf_master_pid() {
    local f="$PF_QUEUE/pid/master.pid" p
    [ -f "$f" ] || return 1
    p="$(tr -d ' \n' < "$f")"
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
    echo "$p"
}

# Messages still in this instance's queue (incoming, active, deferred, maildrop, hold).
pf_queue_count() {
    local n=0 d
    for d in incoming active deferred maildrop hold; do
        [ -d "$PF_QUEUE/$d" ] && n=$((n + $(find "$PF_QUEUE/$d" -type f | wc -l)))
    done
    echo "$n"
}

# CPU ticks of a process tree rooted at PID, counting processes that already exited:
#   utime+stime+cutime+cstime of the root and of each live descendant.
# A child's time moves into its parent's cutime/cstime when the parent reaps it, so a
# before/after difference counts every process of the tree that ran in between (Postfix's
# master reaps smtpd/cleanup/... as they exit; their descendants do not fork further).
tree_cpu_ticks() {
    local root="$1" pids p total=0 stat
    pids="$(ps -e -o pid=,ppid= | awk -v root="$root" '
        { parent[$1] = $2; order[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) { changed = 0
                for (i = 1; i <= NR; i++) { p = order[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
            for (p in keep) print p
        }')"
    for p in $pids; do
        stat="$(cat /proc/"$p"/stat 2>/dev/null)" || continue
        # fields after "(comm) ": state=1 ... utime=12 stime=13 cutime=14 cstime=15
        stat="${stat##*) }"
        set -- $stat
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    echo "$total"
}

port_listening() {
    local port="$1"
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
    # fallback without ss
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

port_free_or_die() {
    local port="$1"
    if port_listening "$port"; then
        echo "bench: port $port is already in use; pick others with the --*-port options" >&2
        exit 1
    fi
}

now_ns() { date +%s%N; }

# fmt_div A B [SCALE]: A/B with SCALE decimals (awk)
fmt_div() { awk -v a="$1" -v b="$2" -v s="${3:-1}" 'BEGIN { if (b == 0) print "n/a"; else printf "%.*f", s, a / b }'; }

machine_info() {
    echo "nproc: $(nproc); kernel: $(uname -r); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "postfix: $(postconf -c "$PF_ETC" -h mail_version 2>/dev/null || echo '?'); rustc: $(rustc --version 2>/dev/null || echo '?')"
    if [ -n "${ROOT:-}" ] && [ -d "$ROOT/.git" ]; then
        echo "mailroom: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) + $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -c .) uncommitted paths; binary sha256 $(sha256sum "${BIN:-$ROOT/target/release/mailroom}" 2>/dev/null | cut -c1-12)"
    fi
    echo "disk: $(df -h --output=source,fstype,size,avail "${DIR:-/var/tmp}" "$(dirname "$PF_QUEUE")" 2>/dev/null | tail -n +2 | sort -u | tr -s ' ' | paste -sd ';')"
}

# ---- mailroom side, configured the same way ------------------------------------------------
# mr_setup DIR MODE PORT [RELAYHOST_PORT]: a fresh data directory DIR with DIR/mailroom.toml.
#   MODE=discard: transport_maps = DIR/transport containing `*  discard:` (every recipient is
#                 discarded by the queue manager after it has been durably queued).
#   MODE=relay:   relayhost = "[127.0.0.1]:RELAYHOST_PORT".
#   MODE=mx:      no relayhost (MX lookups; the caller sets dns_nameservers in MR_EXTRA).
# mydestination is empty (nothing is local), mynetworks = 127.0.0.0/8 (smtp-source may relay),
# log to DIR/maillog. Durability is not configurable: 250 only after the store's fdatasync.
mr_setup() {
    local dir="$1" mode="$2" port="$3" relayport="${4:-}"
    case "$dir" in /|"") echo "mr_setup: bad dir" >&2; return 1 ;; esac
    rm -rf "$dir"
    mkdir -p "$dir"
    MR_DIR="$dir"
    MR_CFG="$dir/mailroom.toml"
    {
        echo "# written by bench/lib-postfix.sh ($mode)"
        echo "data_directory = \"$dir\""
        echo "queue_directory = \"$dir/queue\""
        echo "mail_spool_directory = \"$dir/mail\""
        echo "myhostname = \"bench.local\""
        echo "mydestination = \"\""
        echo "mynetworks = \"${MR_MYNETWORKS:-127.0.0.0/8}\""
        echo "alias_maps = \"\""
        echo "inet_protocols = \"ipv4\""   # as the Postfix side (pf_setup) has it
        echo "smtpd_listen = [\"127.0.0.1:$port\"]"
        echo "maillog_file = \"$dir/maillog\""
        case "$mode" in
            discard)
                printf '*\tdiscard:\n' > "$dir/transport"
                echo "transport_maps = [\"$dir/transport\"]" ;;
            relay)
                echo "relayhost = \"[127.0.0.1]:$relayport\"" ;;
            mx) ;;
            *) echo "mr_setup: unknown mode $mode" >&2; return 1 ;;
        esac
        # Extra TOML lines of the calling script (flood-drill.sh: limits, restrictions).
        [ -z "${MR_EXTRA:-}" ] || printf '%s\n' "$MR_EXTRA"
    } > "$MR_CFG"
}

# mr_start BIN PORT: `BIN serve` in the background; MR_PID set once PORT listens.
mr_start() {
    local bin="$1" port="$2" i
    "$bin" -c "$MR_CFG" serve >>"$MR_DIR/serve.out" 2>&1 &
    MR_PID=$!
    for i in $(seq 1 200); do
        port_listening "$port" && return 0
        kill -0 "$MR_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: mailroom did not start listening on $port; $MR_DIR/serve.out:" >&2
    tail -5 "$MR_DIR/serve.out" >&2 || true
    return 1
}

mr_stop() {
    if [ -n "${MR_PID:-}" ] && kill -0 "$MR_PID" 2>/dev/null; then
        kill -TERM "$MR_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 200); do kill -0 "$MR_PID" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$MR_PID" 2>/dev/null && kill -KILL "$MR_PID" 2>/dev/null || true
        wait "$MR_PID" 2>/dev/null || true
    fi
    MR_PID=""
}

# Messages still queued (through the daemon's control socket).
mr_queue_count() {
    "$1" -c "$MR_CFG" postqueue -j 2>/dev/null | grep -c . || true
}

# ---- machine load (the machine is shared: say how busy it was) -----------------------------
# Busy ticks of the whole machine (user+nice+system+irq+softirq+steal, all CPUs) from /proc/stat.
sys_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# CPU ticks of this shell and every child it has reaped (smtp-source, polling tools, ...).
self_ticks() { tree_cpu_ticks_one "$$"; }
tree_cpu_ticks_one() {
    local stat
    stat="$(cat /proc/"$1"/stat 2>/dev/null)" || { echo 0; return; }
    stat="${stat##*) }"
    set -- $stat
    echo $((${12} + ${13} + ${14} + ${15}))
}

# wait_quiet MAX_SECONDS: wait until the machine was less than 25% busy (of all CPUs) over one
# second, at most MAX_SECONDS; prints the last busy percentage.
wait_quiet() {
    local max="$1" start b0 b1 pct ncpu
    ncpu="$(nproc)"
    start="$(date +%s)"
    while :; do
        b0="$(sys_busy_ticks)"; sleep 1; b1="$(sys_busy_ticks)"
        pct=$(( (b1 - b0) * 100 / (CLK_TCK * ncpu) ))
        if [ "$pct" -lt 25 ] || [ $(( $(date +%s) - start )) -ge "$max" ]; then
            echo "$pct"
            return 0
        fi
    done
}
