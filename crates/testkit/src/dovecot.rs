//! A real Dovecot (Debian's `dovecot-core` + `dovecot-lmtpd`) for the LMTP tests: its own
//! `dovecot.conf` under a temp dir (passwd-file userdb, Maildirs under the temp dir, the quota
//! plugin), an LMTP listener on a unix socket in that dir and one on a loopback TCP port;
//! `dovecot -c CONF -F` started by the test and stopped on drop. No system service is used.
//! Mail is read back with `doveadm -c CONF` (search, fetch).
//!
//! Users (each a line of the passwd-file, all with the `dovecot` account's ids, which the
//! Debian package creates): [`Dovecot::start`] takes `(name, extra userdb fields)` pairs,
//! e.g. `("full", "userdb_quota_rule=*:storage=1K")` for a user over quota after one message.
//! [`BROKEN_MAIL`] gives a user whose Maildir cannot be made (Dovecot answers 451 4.2.0).
//!
//! Root only (Dovecot switches to the mail user): callers skip with one line otherwise.

use crate::*;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Extra userdb fields for a user whose mail location is under a regular file, so every
/// delivery to it fails temporarily.
/// (`$ROOT` is the instance's directory.)
pub const BROKEN_MAIL: &str = "userdb_mail=maildir:$ROOT/not-a-directory/Maildir";

/// One Dovecot instance and its files.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The LMTP unix socket.
    pub socket: PathBuf,
    /// The LMTP TCP port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

/// True (after one line on stderr) when Dovecot cannot run here: the test then returns.
pub fn skip_unless_dovecot() -> bool {
    if !is_root() {
        eprintln!("skipped: the Dovecot tests need root");
        return true;
    }
    if Command::new("dovecot").arg("--version").output().is_err() {
        eprintln!("skipped: dovecot is not installed (apt-get install dovecot-core dovecot-lmtpd)");
        return true;
    }
    false
}

impl Dovecot {
    /// Writes the configuration for `users` and starts Dovecot; returns once both LMTP
    /// listeners accept connections.
    pub fn start(users: &[(&str, &str)]) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("mailroom-dovecot-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        open_up(&root);
        let (uid, gid) = privsep::ensure_account("dovecot").expect("the dovecot account");
        let mail = root.join("mail");
        fs::create_dir(&mail).expect("mail dir");
        privsep::chown(&mail, (uid, gid));
        fs::write(root.join("not-a-directory"), "").expect("a file");
        let line = |(name, extra): &(&str, &str)| {
            let extra = extra.replace("$ROOT", &root.display().to_string());
            format!(
                "{name}:{{PLAIN}}x:{uid}:{gid}::{}/{name}::{extra}\n",
                mail.display()
            )
        };
        let lines: String = users.iter().map(line).collect();
        fs::write(root.join("users"), lines).expect("passwd-file");
        let port = free_port();
        let config = root.join("dovecot.conf");
        fs::write(&config, config_text(&root, port)).expect("dovecot.conf");
        let mut dovecot = Dovecot {
            socket: root.join("lmtp"),
            dir,
            config,
            port,
            child: None,
        };
        dovecot.resume();
        dovecot
    }

    /// Starts (again) and waits until both listeners answer.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "Dovecot is already running");
        let out = fs::File::create(self.dir.path().join("dovecot.out")).expect("output file");
        let child = Command::new("dovecot")
            .arg("-c")
            .arg(&self.config)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let (socket, port) = (self.socket.clone(), self.port);
        wait_until("Dovecot's LMTP listeners", || {
            UnixStream::connect(&socket).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops Dovecot (SIGTERM) and waits until the master has exited; its socket file
    /// stays, so clients get "Connection refused".
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Our own child, not reaped yet: its pid cannot have been reused.
        let _ = sys::kill(child.id(), sys::Signal::SIGTERM);
        let exited = poll_for(DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `doveadm -c CONF ARGS`, its standard output (the test fails if it fails).
    pub fn doveadm(&self, args: &[&str]) -> String {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run doveadm");
        assert_success(&out, &format!("doveadm {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many messages `user`'s INBOX holds (`doveadm search`).
    pub fn count(&self, user: &str) -> usize {
        self.doveadm(&["search", "-u", user, "mailbox", "INBOX", "all"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Waits until `user`'s INBOX holds `n` messages, then returns their text
    /// (`doveadm fetch … text mailbox INBOX all`).
    pub fn wait_messages(&self, user: &str, n: usize) -> String {
        let ok = poll_every(Duration::from_millis(200), DEADLINE, || {
            self.count(user) >= n
        });
        assert!(
            ok,
            "timed out waiting for {n} messages in {user}'s INBOX; log:\n{}",
            self.log()
        );
        self.doveadm(&["fetch", "-u", user, "text", "mailbox", "INBOX", "all"])
    }

    /// Dovecot's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config_text(root: &std::path::Path, port: u16) -> String {
    let root = root.display();
    format!(
        r#"# A Dovecot of mailroom's tests: LMTP only, everything under {root}
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailroom-test-{port}
protocols = lmtp
listen = 127.0.0.1
log_path = {root}/dovecot.log
ssl = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_plugins = quota
plugin {{
  quota = count:User quota
  quota_vsizes = yes
}}
passdb {{
  driver = passwd-file
  args = username_format=%n {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {root}/users
}}
service lmtp {{
  unix_listener {root}/lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"#
    )
}
