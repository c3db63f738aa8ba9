//! A minimal system has no CA certificates (Debian's ca-certificates is not installed): the
//! daemon must still start and deliver. It did not once the DKIM crate turned on hickory's
//! DNS-over-TLS support, whose default TLS configuration loads the system's CA store when
//! the resolver is built ("cannot start the DNS resolver: … No CA certificates were loaded
//! from the system"; found by scripts/deb-test.sh in a bookworm chroot). Here the store is
//! emptied for the daemon with rustls-native-certs' own variables.

use testkit::*;

#[test]
fn the_daemon_starts_and_delivers_with_no_ca_certificates() {
    let env = TestEnv::new();
    let empty_dir = env.root.join("no-certs");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let empty_file = env.root.join("no-certs.pem");
    std::fs::write(&empty_file, "").unwrap();
    let no_certs = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .args(args);
        run_with_input(&mut cmd, b"")
    };
    let started = no_certs(&["start"]);
    assert_success(&started, "mailroom start without CA certificates");
    env.send_ok(&["-i", "alice@localhost"], b"Subject: no certs\n\nx\n");
    env.wait_mbox("alice", 1);
    let stopped = no_certs(&["stop"]);
    assert_success(&stopped, "mailroom stop");
}
