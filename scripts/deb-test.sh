#!/usr/bin/env bash
# Builds the Debian package (cargo deb) and tests it in a clean Debian chroot (issue 10,
# part 7): dpkg -i, `mailroom check`, a second install changes nothing, an ordinary user's
# sendmail reaches root's mailbox through the setgid helper (daemon started with `mailroom
# start`, no systemd), purge, and nothing left behind. Then the same for a plain
# `mailroom install` from the build next to a fake packaged MTA: refused without
# --replace-mta, diverted with it, put back by `uninstall --purge`.
#
# Needs root (chroot). One-time costs: `cargo install cargo-deb` and a debootstrap of
# bookworm minbase, cached as a tarball in $MAILROOM_DEB_CACHE; afterwards a run takes
# about a minute. Environment: MAILROOM_DEB_PROFILE (cargo profile, default dev: the
# packaged code is the same and the warm debug build is reused), MAILROOM_DEB_CACHE
# (default /var/cache/mailroom-deb-test), MAILROOM_DEB_MIRROR (default deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "deb-test.sh: skipped: needs root (debootstrap and chroot)"
    exit 0
fi
profile=${MAILROOM_DEB_PROFILE:-dev}
cache=${MAILROOM_DEB_CACHE:-/var/cache/mailroom-deb-test}
mirror=${MAILROOM_DEB_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
CARGO_DEB_VERSION=3.8.0 # builds with rustc 1.95 (its rust-version is 1.85)

fail() { echo "deb-test.sh: FAIL: $*" >&2; exit 1; }
step() { echo "deb-test.sh: $*"; }

command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked

# --- build ---------------------------------------------------------------------------
step "building ($profile profile)"
deb=$(scripts/deb-build.sh "$profile")
case "$profile" in dev) out=target/debug ;; *) out=target/$profile ;; esac
step "built $deb"
relations=$(dpkg-deb -f "$deb" Provides Conflicts Replaces)
[ "$(grep -c ': mail-transport-agent$' <<<"$relations")" = 3 ] || fail "mail-transport-agent relations: $relations"

# --- a clean chroot ------------------------------------------------------------------
base=$cache/$suite-minbase.tar
if [ ! -f "$base" ]; then
    step "debootstrap $suite (one time; cached in $base)"
    mkdir -p "$cache"
    rm -rf "$cache/root.tmp"
    debootstrap --variant=minbase "$suite" "$cache/root.tmp" "$mirror" >/dev/null
    tar -C "$cache/root.tmp" -cf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf "$cache/root.tmp"
fi
root=$(mktemp -d /var/tmp/mailroom-deb-test.XXXXXX)
cleanup() {
    chroot "$root" /usr/sbin/mailroom stop >/dev/null 2>&1 || true
    umount "$root/proc" 2>/dev/null || true
    # Only ever remove the chroot itself, never through a mount into the host.
    mountpoint -q "$root/proc" || rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/mailroom.deb"
# Each command in its own network namespace: port 25 of the host is not ours to take.
in_root() { unshare --net chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C "$@"; }
snapshot() {
    in_root find / -xdev \( -path /proc -o -path /tmp -o -path /var/lib/dpkg -o -path /var/log \
        -o -path /var/cache -o -path /dev \) -prune -o -printf '%y %m %u:%g %p\n' | sort
}
snapshot >"$root/tmp/before.txt"

# --- the package -----------------------------------------------------------------------
step "dpkg -i"
in_root dpkg -i /tmp/mailroom.deb >"$root/tmp/dpkg-i.log" 2>&1 || { cat "$root/tmp/dpkg-i.log"; fail "dpkg -i"; }
in_root dpkg -S /usr/sbin/sendmail | grep -q '^mailroom:' || fail "/usr/sbin/sendmail is not the package's"
[ "$(in_root stat -c '%a %U:%G' /usr/sbin/mailroom-postdrop)" = "2755 root:mailroom-drop" ] ||
    fail "postdrop helper: $(in_root stat -c '%a %U:%G' /usr/sbin/mailroom-postdrop)"
in_root mailroom check || fail "mailroom check after dpkg -i"
[ -L "$root/etc/systemd/system/multi-user.target.wants/mailroom.service" ] || fail "the unit is not enabled"
in_root mailroom install --from-package | grep -q "nothing to change" || fail "second install changed something"
for command in install uninstall; do
    set +e
    in_root mailroom "$command" >/dev/null 2>"$root/tmp/packaged.log"
    code=$?
    set -e
    [ "$code" = 73 ] && grep -q "Debian package mailroom" "$root/tmp/packaged.log" ||
        fail "plain mailroom $command over the package: exit $code, $(cat "$root/tmp/packaged.log")"
done
in_root dpkg -L mailroom >"$root/tmp/files.txt"
if "$out/mailroom" man --help >/dev/null 2>&1; then
    for page in man8/mailroom.8 man1/sendmail.1 man5/mailroom.toml.5; do
        grep -qx "/usr/share/man/$page.gz" "$root/tmp/files.txt" || fail "the package lacks $page"
    done
fi

step "mailroom start; sendmail as nobody"
in_root mailroom start >"$root/tmp/start.log" 2>&1 || { cat "$root/tmp/start.log"; fail "mailroom start"; }
printf 'Subject: deb-test %s\n\nsubmitted by nobody\n' "$$" |
    in_root runuser -u nobody -- /usr/sbin/sendmail root || fail "sendmail as nobody"
for _ in $(seq 1 120); do
    grep -q "Subject: deb-test $$" "$root/var/mail/root" 2>/dev/null && break
    sleep 0.5
done
grep -q "Subject: deb-test $$" "$root/var/mail/root" 2>/dev/null || {
    in_root mailroom mailq || true
    fail "the message did not reach /var/mail/root"
}
in_root mailroom stop >/dev/null 2>&1 || fail "mailroom stop"
rm -f "$root/var/mail/root" # root's mail, made by the test: not the package's

step "dpkg --purge"
in_root dpkg --purge mailroom >/dev/null || fail "dpkg --purge"
in_root dpkg -s mailroom >/dev/null 2>&1 && fail "still installed"
while read -r path; do
    [ -d "$root$path" ] && continue # shared directories (/usr/sbin, …) stay
    [ -e "$root$path" ] || [ -L "$root$path" ] && fail "left after purge: $path"
done <"$root/tmp/files.txt"
in_root getent passwd mailroom >/dev/null && fail "user mailroom left after purge"
in_root getent group mailroom-drop >/dev/null && fail "group mailroom-drop left after purge"
[ -e "$root/var/spool/mailroom" ] && fail "/var/spool/mailroom left after purge"
snapshot >"$root/tmp/after.txt"
# /etc/aliases is the system's (written because there was none; kept, as postfix keeps
# it); the shadow tools' backups (passwd- …) record the user's removal.
leftover=$(diff "$root/tmp/before.txt" "$root/tmp/after.txt" |
    grep '^[<>]' | grep -v -E ' /etc/aliases$| /etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$' || true)
[ -z "$leftover" ] || fail "the purge left the chroot changed:
$leftover"
step "package: installed, checked, delivered, purged, nothing left"

# --- a plain install next to another packaged MTA ----------------------------------------
step "plain mailroom install next to a packaged MTA"
fake=$root/tmp/fake-mta
mkdir -p "$fake/DEBIAN" "$fake/usr/sbin" "$fake/usr/bin"
printf 'Package: fake-mta\nVersion: 1\nArchitecture: all\nMaintainer: test <t@example>\nProvides: mail-transport-agent\nDescription: a stand-in MTA\n' >"$fake/DEBIAN/control"
for f in usr/sbin/sendmail usr/bin/mailq usr/bin/newaliases; do
    printf '#!/bin/sh\necho fake %s\n' "$f" >"$fake/$f" && chmod 755 "$fake/$f"
done
in_root dpkg-deb -b /tmp/fake-mta /tmp/fake-mta.deb >/dev/null
in_root dpkg -i /tmp/fake-mta.deb >/dev/null
snapshot >"$root/tmp/before.txt"
mkdir -p "$root/tmp/build"
cp "$out/mailroom" "$out/mailroom-sendmail" "$out/mailroom-postdrop" "$root/tmp/build/"
set +e
in_root /tmp/build/mailroom install >"$root/tmp/refused.log" 2>&1
code=$?
set -e
[ "$code" = 73 ] || { cat "$root/tmp/refused.log"; fail "install over fake-mta: exit $code, expected 73"; }
grep -q "belongs to package fake-mta" "$root/tmp/refused.log" || fail "refusal does not name the package"
grep -q -- "--replace-mta" "$root/tmp/refused.log" || fail "refusal does not say how to proceed"
snapshot >"$root/tmp/refused.txt"
diff -q "$root/tmp/before.txt" "$root/tmp/refused.txt" >/dev/null || fail "a refused install changed something:
$(diff "$root/tmp/before.txt" "$root/tmp/refused.txt")"
in_root /tmp/build/mailroom install --replace-mta >/dev/null || fail "install --replace-mta"
in_root dpkg-divert --listpackage /usr/sbin/sendmail | grep -qx mailroom || fail "sendmail not diverted"
in_root mailroom check || fail "mailroom check after a plain install"
in_root /tmp/build/mailroom install | grep -q "nothing to change" || fail "second plain install changed something"
in_root mailroom uninstall --purge >/dev/null || fail "uninstall --purge"
[ "$(in_root /usr/sbin/sendmail)" = "fake usr/sbin/sendmail" ] || fail "fake-mta's sendmail not put back"
snapshot >"$root/tmp/after.txt"
leftover=$(diff "$root/tmp/before.txt" "$root/tmp/after.txt" |
    grep '^[<>]' | grep -v -E ' /etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$' || true)
[ -z "$leftover" ] || fail "uninstall --purge left the chroot changed:
$leftover"
step "plain install: refused, diverted, checked, idempotent, put back, nothing left"
step "ok"
