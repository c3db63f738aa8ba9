//! A real Postfix (Debian's) as a smarthost on loopback ([`Smarthost`]): its own config,
//! queue and data directories under a temp dir, Cyrus SASL with a sasldb of one user
//! (`saslpasswd2 -f`), STARTTLS with a certificate the test gives, AUTH only over TLS, relay
//! only for authenticated clients, and everything it accepts relayed on to a port the test
//! listens on (a [`crate::Peer`]). A second listener offers neither STARTTLS nor AUTH.
//! Stopped (`postfix stop`, then the master killed if it lingers) on drop.
//!
//! Needs root (Postfix's master runs as root and its daemons as `postfix`) and the packages
//! postfix and sasl2-bin; [`Smarthost::available`] says whether the test can run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ca::ServerCert;
use crate::machine::{free_port, is_root};
use crate::wait::{poll_for, DEADLINE};

const POSTFIX: &str = "/usr/sbin/postfix";
const SASLPASSWD2: &str = "/usr/sbin/saslpasswd2";

/// A running Postfix smarthost.
pub struct Smarthost {
    dir: tempfile::TempDir,
    /// STARTTLS and AUTH (PLAIN, LOGIN; only after STARTTLS).
    pub port: u16,
    /// Neither STARTTLS nor AUTH.
    pub plain_port: u16,
}

impl Smarthost {
    /// Whether Postfix and saslpasswd2 are installed and we are root; else the reason.
    pub fn available() -> Result<(), String> {
        if !is_root() {
            return Err("needs root (Postfix's master)".into());
        }
        for tool in [POSTFIX, SASLPASSWD2] {
            if !Path::new(tool).exists() {
                return Err(format!(
                    "{tool} not installed (apt-get install postfix sasl2-bin)"
                ));
            }
        }
        Ok(())
    }

    /// Starts Postfix for `myhostname` with `cert`, accepting `user@myhostname` with
    /// `password`, relaying to `[127.0.0.1]:relay_port`.
    pub fn start(
        myhostname: &str,
        cert: &ServerCert,
        user: &str,
        password: &str,
        relay_port: u16,
    ) -> Smarthost {
        let dir = tempfile::tempdir().expect("smarthost dir");
        let host = Smarthost {
            port: free_port(),
            plain_port: free_port(),
            dir,
        };
        host.write_config(myhostname, cert, relay_port);
        host.add_user(myhostname, user, password);
        host.postfix(&["start"]);
        for port in [host.port, host.plain_port] {
            let listening = poll_for(DEADLINE, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            assert!(
                listening,
                "Postfix never listened on {port}:\n{}",
                host.log()
            );
        }
        host
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Postfix's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    fn write_config(&self, myhostname: &str, cert: &ServerCert, relay_port: u16) {
        let d = self.dir.path();
        for sub in ["etc/sasl", "queue", "data"] {
            std::fs::create_dir_all(d.join(sub)).expect("smarthost dirs");
        }
        chown_postfix(&d.join("data"));
        let (port, plain) = (self.port, self.plain_port);
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             127.0.0.1:{plain} inet n - n - - smtpd -o smtpd_tls_security_level=none -o smtpd_sasl_auth_enable=no\n{POSTFIX_SERVICES}"
        );
        let d = d.display();
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\nmyhostname = {myhostname}\nmydestination =\nmynetworks =\n\
             alias_maps =\nalias_database =\nrelayhost = [127.0.0.1]:{relay_port}\n\
             smtp_tls_security_level = none\nmaillog_file = {d}/postfix.log\n\
             maillog_file_prefixes = {d}\nsmtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = cyrus\n\
             smtpd_sasl_path = smtpd\ncyrus_sasl_config_path = {d}/etc/sasl\n\
             smtpd_tls_auth_only = yes\nsmtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
            cert.cert.display(),
            cert.key.display()
        );
        // Debian's Postfix reads $config_directory/sasl/smtpd.conf.
        let sasl = format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {d}/sasldb2\n"
        );
        let etc = self.etc();
        std::fs::write(etc.join("master.cf"), master).expect("master.cf");
        std::fs::write(etc.join("main.cf"), main).expect("main.cf");
        std::fs::write(etc.join("sasl/smtpd.conf"), sasl).expect("smtpd.conf");
    }

    /// `saslpasswd2 -p -c -f sasldb2 -u realm user`, readable by Postfix's smtpd.
    fn add_user(&self, realm: &str, user: &str, password: &str) {
        let db = self.dir.path().join("sasldb2");
        let mut child = Command::new(SASLPASSWD2)
            .args(["-p", "-c", "-f"])
            .arg(&db)
            .args(["-u", realm, user])
            .stdin(Stdio::piped())
            .spawn()
            .expect("saslpasswd2");
        use std::io::Write;
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(password.as_bytes()).expect("password");
        drop(child.stdin.take());
        assert!(
            child.wait().expect("saslpasswd2").success(),
            "saslpasswd2 failed"
        );
        chown_postfix(&db);
    }

    fn postfix(&self, args: &[&str]) -> bool {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(self.etc())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The master's pid, while its pid file names one.
    fn master_pid(&self) -> Option<i32> {
        let file = self.dir.path().join("queue/pid/master.pid");
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        let pid = self.master_pid();
        self.postfix(&["stop"]);
        let Some(pid) = pid else { return };
        let gone = poll_for(Duration::from_secs(10), || !sys::process_exists(pid));
        if !gone {
            // The master this helper started (its own pid file) ignored `postfix stop`.
            let _ = sys::kill(pid as u32, sys::Signal::SIGKILL);
        }
    }
}

fn chown_postfix(path: &Path) {
    let status = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postfix {}", path.display());
}

/// The services Postfix needs besides the smtpd listeners (Debian's master.cf, no chroot;
/// no inet service, so a master.cf of only these listens nowhere).
pub const POSTFIX_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";
