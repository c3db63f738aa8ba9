#!/usr/bin/env bash
#! sendmail-bench.sh: `sendmail` submissions per second, one after another, mailroom against
#! Postfix's /usr/sbin/sendmail (which spawns the setgid postdrop for every message).
#!
#! Why: a cron job or script that mails calls sendmail once per message, serially; the cost
#! is process start-up plus making one maildrop file durable. Postfix measured ~85/s here;
#! mailroom's goal is >= 3x that.
#!
#! What is measured: N submissions of the same ~4 KiB message, `sendmail -i user@localhost <
#! msg`, one after another from a bash loop, wall clock from the first to the last exit (the
#! loop's fork+exec is paid equally by both). A few untimed warm-up submissions come first.
#! Rounds alternate mailroom / Postfix so drift on a shared machine hits both; each round
#! starts with both maildrops emptied of this script's earlier submissions, so a round
#! measures maildrop growing from 0 to N files on both sides.
#!
#! Headline (fair) mode: both daemons stopped. Submission alone is measured: mailroom's
#! sendmail never needs its daemon, and Postfix's postdrop leaves the file in maildrop/ with
#! a warning that pickup is not reachable. Informational extra: Postfix with its daemon
#! running (pickup/cleanup/qmgr then consume maildrop concurrently, delivery is `discard`),
#! skipped with --no-running.
#!
#! Postfix is installed if missing, configured minimally on loopback only with the smtp
#! listener commented out (nothing listens on any TCP port), and always stopped at the end,
#! with /etc/postfix/{main,master}.cf restored. Needs root for the Postfix part.
#!
#! Noise-free extra (--counts): one submission of each side under callgrind (instructions;
#! for Postfix its sendmail only: valgrind cannot run the set-gid postdrop, which runs
#! natively), strace -f -c (system calls, postdrop included) and GNU time (minor page
#! faults, the reaped children included). Needs valgrind and strace.
#!
#! Where the time goes (--breakdown): each round also times, in the same loop, `/bin/true`
#! (the loop's own fork+exec), an empty Rust program (`fn main() {}`, built with rustc into
#! the scratch directory: a Rust program's start-up with libc and libgcc_s) and
#! mailroom-sendmail with its queue on tmpfs (/dev/shm: the same submission without device
#! I/O). Printed as medians per call and as differences: start-up, submission work, device
#! I/O, against the budget a 5x ratio leaves (Postfix's time per submission / 5).
#!
#! Usage: bench/sendmail-bench.sh [-n N] [--rounds R] [--no-postfix] [--no-running]
#!        [--no-build] [--counts] [--breakdown]   (defaults: N=500, R=3). Run from anywhere; unless --no-build it
#!        first runs `cargo build --release -p mailroom -p submit` in the workspace it lives in.
#!        Measures `mailroom-sendmail` (the small binary); MAILROOM_SENDMAIL_MULTI=1 measures
#!        `mailroom sendmail` instead.
set -euo pipefail

N=500
ROUNDS=3
DO_POSTFIX=1
DO_RUNNING=1
DO_BUILD=1
DO_COUNTS=0
DO_BREAKDOWN=0
WARMUP=10
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-postfix) DO_POSTFIX=0; shift ;;
        --no-running) DO_RUNNING=0; shift ;;
        --no-build) DO_BUILD=0; shift ;;
        --counts) DO_COUNTS=1; shift ;;
        --breakdown) DO_BREAKDOWN=1; shift ;;
        -h|--help) sed -n 's/^#! \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "sendmail-bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MAILROOM="$ROOT/target/release/mailroom"
# The small submission-only binary users install as `sendmail` (crates/submit); set
# MAILROOM_SENDMAIL_MULTI=1 to measure `mailroom sendmail` (the multi-call binary) instead.
MAILROOM_SENDMAIL="$ROOT/target/release/mailroom-sendmail"
PF_SENDMAIL=/usr/sbin/sendmail
PF_SPOOL=/var/spool/postfix
mkdir -p "$ROOT/target/bench-tmp"
TMP="$(mktemp -d "$ROOT/target/bench-tmp/sendmail-bench.XXXXXX")"
PF_TOUCHED=0

log() { echo "sendmail-bench: $*" >&2; }

# Removes our submissions from Postfix's maildrop; whatever was there before the run stays.
postfix_clear_maildrop() {
    if [ -f "$TMP/maildrop.before" ]; then
        find "$PF_SPOOL/maildrop" -type f -printf '%f\n' | sort \
            | comm -13 "$TMP/maildrop.before" - \
            | while read -r f; do rm -f "$PF_SPOOL/maildrop/$f"; done
    fi
}

mailroom_clear_maildrop() {
    find "$TMP/queue/maildrop" -type f -delete 2>/dev/null || true
}

cleanup() {
    set +e
    if [ "$PF_TOUCHED" = 1 ]; then
        /usr/sbin/postfix stop >/dev/null 2>&1
        postfix_clear_maildrop
        for f in main.cf master.cf; do
            if [ -f "$TMP/pf-backup/$f" ]; then
                cp -p "$TMP/pf-backup/$f" "/etc/postfix/$f"
            elif [ -f "$TMP/pf-backup/$f.absent" ]; then
                rm -f "/etc/postfix/$f"
            fi
        done
        if /usr/sbin/postfix status >/dev/null 2>&1; then
            log "WARNING: postfix still running after 'postfix stop'"
        fi
    fi
    rm -rf "$TMP"
    if [ -n "$SHM" ]; then rm -rf "$SHM"; fi
}
SHM=""
trap cleanup EXIT
trap 'exit 130' INT TERM

# The message: headers plus a body padding it to about 4 KiB, the store benchmark's size.
{
    printf 'From: bench@localhost\nTo: user@localhost\nSubject: sendmail-bench\n\n'
    for _ in $(seq 1 56); do
        printf '%s\n' "The quick brown fox jumps over the lazy dog, again and again."
    done
} >"$TMP/msg"

now_ns() { date +%s%N; }

# submit LABEL COUNT CMD...: runs CMD COUNT times with the message on stdin, prints elapsed ns.
submit() {
    local label="$1" count="$2"
    shift 2
    local i start end
    start=$(now_ns)
    for ((i = 0; i < count; i++)); do
        if ! "$@" <"$TMP/msg" >/dev/null 2>>"$TMP/$label.stderr"; then
            log "$label: submission $i failed:"
            tail -n 5 "$TMP/$label.stderr" >&2
            return 1
        fi
    done
    end=$(now_ns)
    echo $((end - start))
}

rate() { awk -v n="$1" -v ns="$2" 'BEGIN { printf "%.1f", n * 1e9 / ns }'; }

# --- mailroom ---------------------------------------------------------------------------
if [ "$DO_BUILD" = 1 ]; then
    log "building mailroom (cargo build --release -p mailroom)"
    (cd "$ROOT" && cargo build --release -p mailroom -p submit) >&2
fi
mkdir -p "$TMP/queue" "$TMP/mail"
cat >"$TMP/mailroom.toml" <<EOF
queue_directory = "$TMP/queue"
mail_spool_directory = "$TMP/mail"
EOF
export MAILROOM_CONFIG="$TMP/mailroom.toml"
if [ "${MAILROOM_SENDMAIL_MULTI:-0}" = 1 ]; then
    mailroom_sendmail() { "$MAILROOM" sendmail -i user@localhost; }
else
    mailroom_sendmail() { "$MAILROOM_SENDMAIL" -i user@localhost; }
fi
if ! printf 'Subject: probe\n\nprobe\n' | mailroom_sendmail; then
    log "mailroom sendmail does not work yet; not measured"
    exit 1
fi
submit mailroom-warmup "$WARMUP" mailroom_sendmail >/dev/null

# --breakdown: the same submission with the queue on tmpfs, an empty Rust program.
BREAKDOWN_LABELS=()
if [ "$DO_BREAKDOWN" = 1 ]; then
    SHM="$(mktemp -d /dev/shm/sendmail-bench.XXXXXX)"
    mkdir -p "$SHM/queue" "$SHM/mail"
    printf 'queue_directory = "%s/queue"\nmail_spool_directory = "%s/mail"\n' "$SHM" "$SHM" \
        >"$TMP/mailroom-tmpfs.toml"
    mailroom_sendmail_tmpfs() { MAILROOM_CONFIG="$TMP/mailroom-tmpfs.toml" mailroom_sendmail; }
    bin_true() { /bin/true; }
    BREAKDOWN_LABELS=(true)
    if command -v rustc >/dev/null && printf 'fn main() {}\n' >"$TMP/empty.rs" \
        && rustc -O -o "$TMP/empty-rust" "$TMP/empty.rs" 2>"$TMP/rustc.log"; then
        empty_rust() { "$TMP/empty-rust"; }
        BREAKDOWN_LABELS+=(empty_rust)
    else
        log "breakdown: no rustc here, the empty Rust program is not measured"
    fi
    BREAKDOWN_LABELS+=(tmpfs)
    submit tmpfs-warmup "$WARMUP" mailroom_sendmail_tmpfs >/dev/null
fi
declare -A BD_US=()
# breakdown_round: one timed loop of N for each breakdown command, µs per call appended.
breakdown_round() {
    local label ns
    for label in "${BREAKDOWN_LABELS[@]}"; do
        case "$label" in
            true) ns=$(submit true "$N" bin_true) ;;
            empty_rust) ns=$(submit empty-rust "$N" empty_rust) ;;
            tmpfs)
                find "$SHM/queue/maildrop" -type f -delete 2>/dev/null || true
                ns=$(submit tmpfs "$N" mailroom_sendmail_tmpfs)
                ;;
        esac
        BD_US[$label]+="$(awk -v n="$N" -v ns="$ns" 'BEGIN { printf "%.0f", ns / n / 1000 }') "
    done
}

# --- Postfix ----------------------------------------------------------------------------
postfix_setup() {
    if [ "$(id -u)" != 0 ]; then
        log "the Postfix part needs root (install, /etc/postfix, start/stop)"
        return 1
    fi
    if [ ! -x /usr/sbin/postfix ]; then
        log "installing postfix"
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >&2 \
            || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >&2; }
    fi
    PF_TOUCHED=1
    /usr/sbin/postfix stop >/dev/null 2>&1 || true
    mkdir -p "$TMP/pf-backup"
    for f in main.cf master.cf; do
        if [ -f "/etc/postfix/$f" ]; then
            cp -p "/etc/postfix/$f" "$TMP/pf-backup/$f"
        else
            touch "$TMP/pf-backup/$f.absent"
        fi
    done
    if [ ! -f /etc/postfix/master.cf ]; then
        cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
    fi
    # No TCP listener at all: comment out every `inet` service (smtp first of all).
    sed -i -E 's/^([^#[:space:]]+[[:space:]]+inet[[:space:]])/#&/' /etc/postfix/master.cf
    cat >/etc/postfix/main.cf <<'EOF'
# Written by mailroom bench/sendmail-bench.sh for the duration of the benchmark only.
compatibility_level = 3.6
myhostname = localhost
mydomain = localdomain
myorigin = $myhostname
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
# Deliveries (only when the daemon runs) are thrown away: submission is what is measured.
local_transport = discard
default_transport = discard
EOF
    /usr/sbin/postfix check >&2 || true
    mkdir -p "$PF_SPOOL/maildrop"
    find "$PF_SPOOL/maildrop" -type f -printf '%f\n' | sort >"$TMP/maildrop.before"
}

postfix_sendmail() { "$PF_SENDMAIL" -i user@localhost; }

postfix_drain() {
    # Wait (up to 60 s) until the running Postfix has consumed maildrop and delivered.
    local i
    for ((i = 0; i < 600; i++)); do
        if [ -z "$(find "$PF_SPOOL/maildrop" "$PF_SPOOL/incoming" "$PF_SPOOL/active" \
            -type f -newer "$TMP/maildrop.before" -print -quit 2>/dev/null)" ]; then
            return 0
        fi
        sleep 0.1
    done
    log "Postfix did not drain its queue within 60 s"
}

postfix_pending() {
    find "$PF_SPOOL/maildrop" "$PF_SPOOL/incoming" "$PF_SPOOL/active" "$PF_SPOOL/deferred" \
        -type f -newer "$TMP/maildrop.before" 2>/dev/null | wc -l
}

if [ "$DO_POSTFIX" = 1 ]; then
    postfix_setup
    submit postfix-warmup "$WARMUP" postfix_sendmail >/dev/null
fi

# counts LABEL CMD...: instructions, system calls and minor faults of one submission.
counts() {
    local label="$1"
    shift
    local dir="$TMP/counts-$label" instructions calls faults
    mkdir -p "$dir"
    # valgrind cannot run a set-gid program (postdrop): that child runs natively, uncounted.
    if ! valgrind --tool=callgrind --trace-children=yes --trace-children-skip='*/postdrop' \
        --callgrind-out-file="$dir/cg.%p" \
        "$@" <"$TMP/msg" >/dev/null 2>"$dir/valgrind.log"; then
        log "$label under callgrind failed:"
        grep -v '^==' "$dir/valgrind.log" | tail -n 3 >&2
    fi
    instructions=$(cat "$dir"/cg.* | awk '/^summary:/ { n += $2 } END { print n }')
    strace -f -c -o "$dir/strace" "$@" <"$TMP/msg" >/dev/null 2>&1
    calls=$(awk '$NF == "total" { print $4 }' "$dir/strace")
    faults=$(/usr/bin/time -f '%R' "$@" <"$TMP/msg" 2>&1 >/dev/null | tail -n 1)
    echo "$label, one submission: $instructions instructions, $calls system calls, $faults minor faults"
}

if [ "$DO_COUNTS" = 1 ]; then
    mailroom_clear_maildrop
    counts mailroom "$MAILROOM_SENDMAIL" -i user@localhost
    if [ "$DO_POSTFIX" = 1 ]; then
        postfix_clear_maildrop
        counts postfix "$PF_SENDMAIL" -i user@localhost
    fi
fi

# --- measurement ------------------------------------------------------------------------
log "N=$N submissions per measurement, $ROUNDS round(s), daemons stopped"
MR_RATES=()
PF_RATES=()
for ((r = 1; r <= ROUNDS; r++)); do
    # Each round starts from an empty maildrop (both sides): with no daemon nothing drains it,
    # and mailroom's sendmail stats every maildrop file for its size/count caps.
    mailroom_clear_maildrop
    ns=$(submit mailroom "$N" mailroom_sendmail)
    MR_RATES+=("$(rate "$N" "$ns")")
    line="round $r: mailroom ${MR_RATES[-1]}/s"
    if [ "$DO_POSTFIX" = 1 ]; then
        postfix_clear_maildrop
        ns=$(submit postfix "$N" postfix_sendmail)
        PF_RATES+=("$(rate "$N" "$ns")")
        line="$line, postfix ${PF_RATES[-1]}/s"
    fi
    if [ "$DO_BREAKDOWN" = 1 ]; then
        breakdown_round
    fi
    echo "$line"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
MR=$(median "${MR_RATES[@]}")
queued=$(find "$TMP/queue/maildrop" -type f ! -name 'tmp.*' 2>/dev/null | wc -l)
echo "mailroom sendmail (daemon stopped): $MR msgs/s (median of $ROUNDS x $N; maildrop holds $queued of the last round's $N)"
if [ "$DO_POSTFIX" = 1 ]; then
    PF=$(median "${PF_RATES[@]}")
    echo "postfix sendmail  (daemon stopped): $PF msgs/s (median of $ROUNDS x $N; maildrop holds $(postfix_pending) of the last round's $N)"
    echo "ratio mailroom/postfix: $(awk -v a="$MR" -v b="$PF" 'BEGIN { printf "%.2f", a / b }')x"
fi

if [ "$DO_BREAKDOWN" = 1 ]; then
    us_of_rate() { awk -v r="$1" 'BEGIN { printf "%.0f", 1e6 / r }'; }
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    T=$(median ${BD_US[true]})
    # shellcheck disable=SC2086
    FS=$(median ${BD_US[tmpfs]})
    DISK=$(us_of_rate "$MR")
    echo "breakdown, median us per call of $N ($ROUNDS rounds): /bin/true $T; tmpfs submission $FS; disk submission $DISK"
    if [ -n "${BD_US[empty_rust]:-}" ]; then
        # shellcheck disable=SC2086
        E=$(median ${BD_US[empty_rust]})
        echo "  empty Rust program $E: Rust start-up over /bin/true $((E - T)) us, submission work without device I/O $((FS - E)) us"
    else
        echo "  mailroom-sendmail over /bin/true without device I/O: $((FS - T)) us"
    fi
    echo "  device I/O (maildrop file and its syncs on the disk): $((DISK - FS)) us"
    if [ "$DO_POSTFIX" = 1 ]; then
        P=$(us_of_rate "$PF")
        echo "  Postfix $P us a submission; 5x Postfix leaves $((P / 5)) us, $((P / 5 - T)) us over /bin/true"
    fi
fi

if [ "$DO_POSTFIX" = 1 ]; then
    if [ "$DO_RUNNING" = 1 ]; then
        # Informational: Postfix as normally deployed, pickup consuming maildrop meanwhile.
        postfix_clear_maildrop
        /usr/sbin/postfix start >&2
        sleep 1
        /usr/sbin/postfix status >&2 || { log "postfix did not start"; exit 1; }
        if command -v ss >/dev/null && ss -ltnpH | grep -q '"master"'; then
            log "postfix listens on a TCP port; refusing to measure"
            exit 1
        fi
        ns=$(submit postfix-running "$N" postfix_sendmail)
        PFR=$(rate "$N" "$ns")
        postfix_drain
        /usr/sbin/postfix stop >&2
        echo "postfix sendmail  (daemon running, informational): $PFR msgs/s (1 x $N; $(postfix_pending) left undelivered)"
        echo "ratio mailroom(stopped)/postfix(running): $(awk -v a="$MR" -v b="$PFR" 'BEGIN { printf "%.2f", a / b }')x"
    fi
fi
