#!/usr/bin/env bash
# The one test command (README.md "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need if it is missing, then checks formatting, lints, and runs
# every unit and end-to-end test. Safe to run again; needs network only for installs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# smtpd end-to-end tests (crates/mailroom/tests/smtp_*.rs): swaks with TLS, pflogsumm.
command -v swaks >/dev/null || need_apt+=(swaks)
perl -MNet::SSLeay -e1 2>/dev/null || need_apt+=(libnet-ssleay-perl)
command -v pflogsumm >/dev/null || need_apt+=(pflogsumm)
# Logging end-to-end tests (syslog_*, logrotate_*): Debian's fail2ban filters, logrotate;
# the unit file test uses systemd-analyze when present (skips otherwise).
[ -f /etc/fail2ban/filter.d/postfix.conf ] || need_apt+=(fail2ban)
command -v logrotate >/dev/null || need_apt+=(logrotate)
# SMTP client end-to-end tests (crates/agents/src/smtp/tests/sink.rs): Postfix's smtp-sink.
[ -x /usr/sbin/smtp-sink ] || need_apt+=(postfix)
# The smarthost tests (relay_through_an_authenticated_smarthost_*): a real Postfix requiring
# AUTH, its Cyrus sasldb written with saslpasswd2.
[ -x /usr/sbin/saslpasswd2 ] || need_apt+=(sasl2-bin)
# LMTP end-to-end tests (crates/mailroom/tests/lmtp_delivery_to_real_dovecot.rs): a real
# Dovecot (started by the test with its own dovecot.conf; no system service is used).
command -v dovecot >/dev/null || need_apt+=(dovecot-core)
[ -x /usr/lib/dovecot/lmtp ] || need_apt+=(dovecot-lmtpd)
# Local delivery to procmail (crates/mailroom/tests/procmail_files_by_subject_*.rs).
command -v procmail >/dev/null || need_apt+=(procmail)
# Milter end-to-end tests (crates/mailroom/tests/{rspamd,opendkim}_milter_*.rs): real rspamd
# (its milter proxy) and OpenDKIM with opendkim-genkey, started by the tests on loopback
# with their own configuration (no system service is used).
command -v rspamd >/dev/null || need_apt+=(rspamd)
command -v opendkim >/dev/null || need_apt+=(opendkim)
command -v opendkim-genkey >/dev/null || need_apt+=(opendkim-tools)
# smtpd_milters at each SMTP stage (crates/mailroom/tests/milters_judge_each_smtp_command_when_it_comes.rs,
# header_checks_replace_strip_bcc_info_and_pass.rs): test milters on Debian's pymilter (Sendmail's
# libmilter), run with /usr/bin/python3.
/usr/bin/python3 -c 'import Milter' 2>/dev/null || need_apt+=(python3-milter)
# Manual pages formatted without warnings (crates/mailroom/tests/man_pages_render_cleanly.rs).
command -v groff >/dev/null || need_apt+=(groff-base)
command -v man >/dev/null || need_apt+=(man-db)
# DKIM end-to-end test (crates/mailroom/tests/dkim_signed_mail_verifies_outside.rs): dkimpy
# from PyPI verifies mailroom's signatures (it brings dnspython; PyNaCl for ed25519-sha256);
# RSA keys are made with openssl, as opendkim-genkey makes them.
command -v openssl >/dev/null || need_apt+=(openssl)
# DANE end-to-end test (crates/mailroom/tests/dane_checks_the_mx_certificate_against_signed_tlsa_records.rs):
# a real DNSSEC-validating resolver (unbound) serving zones signed with ldns-signzone (ldnsutils).
command -v unbound >/dev/null || need_apt+=(unbound)
command -v ldns-signzone >/dev/null || need_apt+=(ldnsutils)
if ! python3 -c 'import dkim, dns.message, nacl.signing' 2>/dev/null || ! command -v schemathesis >/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
fi
# Policy delegation end-to-end test (crates/mailroom/tests/policy_service_greylists_with_real_postgrey.rs):
# Debian's postgrey, started by the test on a loopback port (no system service is used).
[ -x /usr/sbin/postgrey ] || need_apt+=(postgrey)
# The queue page's browser test (crates/mailroom/tests/queue_page_in_a_browser_*.rs): Debian's
# chromium driven by Playwright from npm (playwright-core only: no browser download).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# Fleet end-to-end tests (crates/mailroom/tests/fleet_*.rs): a real redis-server (with
# redis-cli from redis-tools), started by the tests (no system service); as root the nodes
# run in network namespaces the tests make with iproute2's ip (netns, veth, bridge).
[ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v ip >/dev/null || need_apt+=(iproute2)
# A mirror that fails for a moment (a 404 during a sync, a reset connection) must not fail
# the run: apt retries each download, and the update + install is tried three times.
apt_install() {
    local attempt
    for attempt in 1 2 3; do
        if apt-get -o Acquire::Retries=3 update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -qq "$@"; then
            return 0
        fi
        echo "test.sh: apt-get failed (attempt $attempt of 3)" >&2
        ((attempt < 3)) && sleep 20
    done
    echo "test.sh: cannot install $* with apt-get" >&2
    return 1
}
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        # postfix asks what kind of mail server to configure: none (we only want smtp-sink).
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
        apt_install "${need_apt[@]}"
    else
        echo "test.sh: missing ${need_apt[*]} and cannot apt-get them (not root?)" >&2
        exit 1
    fi
fi
if ! python3 -c 'import dkim, dns.message, nacl.signing' 2>/dev/null || ! command -v schemathesis >/dev/null; then
    # Debian's own python3 refuses system-wide pip installs (PEP 668) unless told.
    python3 -m pip install --quiet dkimpy dnspython pynacl schemathesis ||
        python3 -m pip install --quiet --break-system-packages dkimpy dnspython pynacl schemathesis
fi
# playwright-core at the version of crates/mailroom/tests/browser/package.json, into
# target/browser-test (the test installs it itself when run alone; three tries here).
pw=target/browser-test
if ! cmp -s crates/mailroom/tests/browser/package.json "$pw/package.json" ||
    [ ! -d "$pw/node_modules/playwright-core" ]; then
    mkdir -p "$pw"
    cp crates/mailroom/tests/browser/package.json "$pw/"
    for attempt in 1 2 3; do
        npm install --no-audit --no-fund --prefix "$pw" && break
        echo "test.sh: npm install playwright-core failed (attempt $attempt of 3)" >&2
        ((attempt < 3)) && sleep 20
    done
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# The Debian package in a clean chroot (scripts/deb-test.sh: dpkg -i, check, delivery from
# an ordinary user, purge leaves nothing; a plain install beside another MTA). About a
# minute once its one-time setup exists (cargo-deb installed, the debootstrap tarball
# cached); that setup takes several minutes, so it is opt-in: MAILROOM_DEB_TEST=1 runs it
# (and sets it up), MAILROOM_DEB_TEST=0 skips it, unset runs it only when set up already.
deb_cache=${MAILROOM_DEB_CACHE:-/var/cache/mailroom-deb-test}
if [ "${MAILROOM_DEB_TEST:-}" = 1 ] || { [ -z "${MAILROOM_DEB_TEST:-}" ] &&
    cargo deb --version >/dev/null 2>&1 && [ -f "$deb_cache/bookworm-minbase.tar" ]; }; then
    scripts/deb-test.sh
else
    echo "test.sh: skipped scripts/deb-test.sh (one-time setup missing; MAILROOM_DEB_TEST=1 runs it)"
fi

# Fuzzing (README.md "Fuzzing"): build every cargo-fuzz target in fuzz/ and run each for
# 15 s (11 targets; the whole run stays near 25 minutes on 2 cores); fuzz.sh skips with one line when there is no nightly toolchain, and so does this
# script when cargo-fuzz cannot be installed (three tries: crates.io may fail for a moment).
# A crash fails the run, naming the target, the input and the panic.
fuzz_tool=yes
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    fuzz_tool=no
    for attempt in 1 2 3; do
        if cargo install cargo-fuzz --locked; then
            fuzz_tool=yes
            break
        fi
        echo "test.sh: cargo install cargo-fuzz failed (attempt $attempt of 3)" >&2
        ((attempt < 3)) && sleep 20
    done
fi
if [ "$fuzz_tool" = yes ]; then
    scripts/fuzz.sh 15
else
    echo "test.sh: FUZZING SKIPPED: cargo-fuzz could not be installed (see above)"
fi
