//! Logging as Debian admins expect: with `syslog_name = "postfix"` the daemon logs to the
//! syslog socket (facility mail, RFC 3164 as glibc writes it) and the lines, filed the way
//! rsyslog files them in /var/log/mail.log, are read unchanged by fail2ban's own postfix
//! filter (`fail2ban-regex` with Debian's /etc/fail2ban/filter.d/postfix.conf) and by plain
//! `pflogsumm` (no `--syslog-name`).
//!
//! The socket is the test's own datagram socket (`syslog_socket`, a mailroom-only knob:
//! Postfix always uses /dev/log), standing in for /dev/log.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::*;

/// A stand-in syslog daemon: keeps every datagram.
struct Syslog {
    received: Arc<Mutex<Vec<String>>>,
    path: PathBuf,
}

impl Syslog {
    fn bind(path: PathBuf) -> Syslog {
        let socket = UnixDatagram::bind(&path).expect("bind the syslog socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    keep.lock().unwrap().push(text);
                }
                if Arc::strong_count(&keep) == 1 {
                    return;
                }
            }
        });
        Syslog { received, path }
    }

    fn lines(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn wait(&self, needle: &str, n: usize) {
        wait_until(&format!("{n} syslog lines with {needle:?}"), || {
            self.lines().iter().filter(|l| l.contains(needle)).count() >= n
        });
    }

    /// The lines as rsyslog writes them to /var/log/mail.log: `<PRI>` dropped, the host
    /// name put after the time stamp.
    fn write_mail_log(&self, path: &Path) {
        let mut text = String::new();
        for datagram in self.lines() {
            let rest = datagram.split_once('>').map_or(&*datagram, |(_, r)| r);
            let (stamp, tag_and_message) = rest.split_at(15);
            text += &format!("{stamp} testhost{tag_and_message}\n");
        }
        fs::write(path, text).unwrap();
    }
}

/// An SMTP test world whose log goes only to `syslog_socket`.
fn syslog_env(socket: &Path) -> World {
    World::new(&format!(
        "syslog_name = \"postfix\"\nsyslog_socket = \"{}\"\nmaillog_file = \"\"\n",
        socket.display()
    ))
}

#[test]
fn syslog_name_postfix_feeds_fail2ban_and_pflogsumm_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let syslog = Syslog::bind(dir.path().join("dev-log"));
    let mut smtp = syslog_env(&syslog.path);
    start_logging_elsewhere(&mut smtp, &syslog);

    for i in 0..2 {
        let mut c = smtp.client();
        c.start_transaction("counted@example.org", &["root@test.example"]);
        c.ok("DATA", 354);
        c.send(format!("Subject: {i}\r\n\r\nbody\r\n.\r\n").as_bytes());
        c.expect(250, "queued as");
        c.ok("QUIT", 221);
    }
    let mut stranger = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), smtp.port);
    stranger.start_transaction("spam@example.org", &[]);
    stranger.ok("RCPT TO:<victim@elsewhere.example>", 454);
    stranger.ok("QUIT", 221);
    smtp.env.wait_mbox("root", 2);
    syslog.wait("status=sent", 2);
    syslog.wait("disconnect from", 3);

    let lines = syslog.lines();
    assert!(!smtp.env.log_file().exists(), "maillog_file was written");
    // facility mail (2): info is <22>, warning <20>; the tag is postfix/SERVICE[PID].
    let sent = lines.iter().find(|l| l.contains("status=sent")).unwrap();
    assert!(sent.starts_with("<22>"), "{sent}");
    assert!(sent.contains(" postfix/local["), "{sent}");

    let mail_log = dir.path().join("mail.log");
    syslog.write_mail_log(&mail_log);
    fail2ban_finds(&mail_log, "127.0.0.2");
    pflogsumm_counts(&mail_log);
}

/// `World::start` waits for "listening on" in maillog_file; here the log is syslog.
fn start_logging_elsewhere(world: &mut World, syslog: &Syslog) {
    world.daemon = Some(world.env.start());
    syslog.wait("listening on", 1);
}

fn fail2ban_finds(mail_log: &Path, ip: &str) {
    let filter = Path::new("/etc/fail2ban/filter.d/postfix.conf");
    if !filter.exists() {
        panic!("fail2ban is not installed (scripts/test.sh installs it)");
    }
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(mail_log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    let matched = report
        .lines()
        .find(|l| l.starts_with("Failregex: "))
        .unwrap_or_else(|| panic!("no Failregex summary:\n{report}"));
    assert!(matched.starts_with("Failregex: 1 total"), "{report}");
    assert!(
        // Postfix 3's default smtpd_relay_restrictions defer (454); the filter counts both.
        report.contains(&format!("[{ip}]: 454 4.7.1")),
        "the relay attempt from {ip} is not what matched:\n{report}"
    );
}

fn pflogsumm_counts(mail_log: &Path) {
    let out = Command::new("pflogsumm")
        .arg(mail_log)
        .output()
        .expect("pflogsumm");
    assert_success(&out, "pflogsumm");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |label: &str| -> u64 {
        let line = report
            .lines()
            .find(|l| {
                let mut words = l.split_whitespace();
                words.next().is_some() && words.next() == Some(label)
            })
            .unwrap_or_else(|| panic!("no {label:?} line:\n{report}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(count("received"), 2, "{report}");
    assert_eq!(count("delivered"), 2, "{report}");
    assert_eq!(count("rejected"), 1, "{report}");
}

#[test]
fn a_missing_syslog_socket_is_reported_and_the_log_goes_to_standard_error() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = dir.path().join("no-syslog-here");
    let env = syslog_env(&nobody).env;
    let daemon = env.start();
    wait_until("the log on standard error", || {
        daemon.output().contains("postfix/master[")
    });
    let output = daemon.output();
    assert!(
        output.contains(&format!(
            "warning: cannot log to syslog_socket {}",
            nobody.display()
        )),
        "{output}"
    );
}
