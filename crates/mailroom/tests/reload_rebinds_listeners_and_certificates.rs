//! `mailroom reload` (SIGHUP) makes the SMTP server follow the configuration: a listener
//! whose address was removed closes, a new one opens, and STARTTLS serves the certificate
//! now on disk — while a session opened before the reload finishes its mail. A broken new
//! certificate keeps the old one instead of turning STARTTLS off.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use testkit::*;

fn reload(env: &World, reloads_before: usize) {
    let out = env.env.run(&["reload"], b"");
    assert_success_stderr(&out);
    env.env
        .wait_log("reload -- TLS certificates re-read", reloads_before + 1);
}

fn assert_success_stderr(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reload_moves_the_listener_and_a_session_open_across_it_delivers() {
    let mut env = World::new("");
    env.start();
    let old_port = env.port;
    let mut open = env.client();
    open.expect(220, "");
    open.ok("EHLO before.test", 250);
    open.ok("MAIL FROM:<a@example.org>", 250);
    open.ok("RCPT TO:<root@test.example>", 250);

    let new_port = free_port();
    env.configure(&format!("smtpd_listen = [\"127.0.0.1:{new_port}\"]"));
    reload(&env, 0);
    env.env
        .wait_log(&format!("no longer listening on 127.0.0.1:{old_port}"), 1);
    env.env
        .wait_log(&format!("listening on 127.0.0.1:{new_port}"), 1);

    // The new port accepts, the removed one refuses.
    let mut fresh = Client::connect(new_port);
    fresh.expect(220, "");
    fresh.ok("QUIT", 221);
    assert!(
        TcpStream::connect(local(old_port)).is_err(),
        "the removed listener still accepts"
    );

    // The session from before the reload is untouched and its mail is queued.
    open.ok("DATA", 354);
    open.send(b"Subject: across the reload\r\n\r\nstill here\r\n.\r\n");
    open.expect(250, "queued as");
    open.ok("QUIT", 221);
    env.env.wait_mbox("root", 1);
    let messages = env.env.mbox_messages("root");
    assert_eq!(messages[0].subject.as_deref(), Some("across the reload"));
}

/// A self-signed pair for `name`, written over `dir/cert.pem` and `dir/key.pem`.
fn certificate(dir: &Path, name: &str) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The subject of the certificate the server presents after STARTTLS.
fn served_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate served:\n{text}"))
        .to_string()
}

#[test]
fn reload_serves_the_renewed_certificate_and_keeps_it_when_the_next_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "first.example");
    let tls = format!(
        "smtpd_tls_cert_file = \"{0}/cert.pem\"\nsmtpd_tls_key_file = \"{0}/key.pem\"\n",
        dir.path().display()
    );
    let env = World::started(&tls);
    assert!(served_subject(env.port).contains("first.example"));

    // certbot-style renewal: new files at the same paths, then a reload.
    certificate(dir.path(), "second.example");
    reload(&env, 0);
    assert!(
        served_subject(env.port).contains("second.example"),
        "the renewed certificate is not served"
    );
    // Mail still flows over STARTTLS with the new certificate.
    let sent = env.swaks(&["--to", "root@test.example", "--tls"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stdout)
    );
    env.env.wait_mbox("root", 1);

    // A half-written renewal: the old certificate stays in use, with a warning.
    fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    let out = env.env.run(&["reload"], b"");
    assert_success_stderr(&out);
    env.env
        .wait_log("cannot load the TLS certificates, keeping the old ones", 1);
    assert!(served_subject(env.port).contains("second.example"));
}

#[test]
fn reload_to_a_port_in_use_reports_it_and_keeps_the_unchanged_listener() {
    let env = World::started("");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let listen = format!("\"127.0.0.1:{}\", \"127.0.0.1:{busy}\"", env.port);
    env.configure(&format!("smtpd_listen = [{listen}]"));
    reload(&env, 0);
    let refused = env
        .env
        .wait_log(&format!("reload: cannot listen on 127.0.0.1:{busy}"), 1);
    assert!(
        refused[0].contains("this listener is disabled"),
        "{}",
        refused[0]
    );
    // The listener that did not change was never closed.
    assert!(env.env.log_lines("no longer listening").is_empty());
    let mut c = env.client();
    c.expect(220, "");
    c.ok("QUIT", 221);
}
