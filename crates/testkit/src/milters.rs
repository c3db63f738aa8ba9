//! Real milters from Debian on loopback, for the milter client's end-to-end tests:
//! [`OpenDkim`] in signing mode (a key made by `opendkim-genkey`, its TXT record for a
//! [`crate::Dns`] zone), [`Rspamd`]'s proxy worker in milter mode, scanning itself, and
//! [`PyMilter`]: a test's own milter on Debian's pymilter (Sendmail's libmilter under it).
//! Both run from a per-test directory, reach nothing but loopback (rspamd's resolver points
//! at a closed local port, so no map download or DNS lookup leaves the machine), and are
//! stopped on drop.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::machine::{free_port, scaled_by_load};
use crate::wait::{poll_for, DEADLINE};

/// A running `opendkim -f` signing mail of one domain.
pub struct OpenDkim {
    child: Child,
    pub port: u16,
    /// The TXT record's value for `SELECTOR._domainkey.DOMAIN` (its strings joined).
    pub txt: String,
    pub log: PathBuf,
}

impl OpenDkim {
    /// Signs mail whose `From:` is in `domain` with a new 1024-bit RSA key under `selector`.
    pub fn start(dir: &Path, domain: &str, selector: &str) -> OpenDkim {
        let dir = dir.join("opendkim");
        fs::create_dir_all(&dir).expect("opendkim dir");
        let genkey = Command::new("opendkim-genkey")
            .args(["-b", "1024", "-d", domain, "-s", selector, "-D"])
            .arg(&dir)
            .output()
            .expect("opendkim-genkey is not installed (apt-get install opendkim-tools; scripts/test.sh does it)");
        assert!(genkey.status.success(), "opendkim-genkey: {genkey:?}");
        let record = fs::read_to_string(dir.join(format!("{selector}.txt"))).expect("key record");
        let txt: String = record.split('"').skip(1).step_by(2).collect();
        let key = dir.join(format!("{selector}.private"));
        let name = format!("{selector}._domainkey.{domain}");
        fs::write(
            dir.join("keytable"),
            format!("{name} {domain}:{selector}:{}\n", key.display()),
        )
        .unwrap();
        fs::write(dir.join("signingtable"), format!("{domain} {name}\n")).unwrap();
        let port = free_port();
        let conf = dir.join("opendkim.conf");
        let d = dir.display();
        fs::write(
            &conf,
            format!(
                "Syslog no\nBackground no\nMode s\nSocket inet:{port}@127.0.0.1\n\
                 KeyTable {d}/keytable\nSigningTable {d}/signingtable\n\
                 Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.1\n\
                 PidFile {d}/opendkim.pid\nRequireSafeKeys no\nLogWhy yes\n"
            ),
        )
        .unwrap();
        let log = dir.join("opendkim.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("opendkim")
            .args(["-f", "-l", "-x"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect(
                "opendkim is not installed (apt-get install opendkim; scripts/test.sh does it)",
            );
        let opendkim = OpenDkim {
            child,
            port,
            txt,
            log,
        };
        let up = poll_for(DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(
            up,
            "opendkim did not listen on {port}: {}",
            fs::read_to_string(&opendkim.log).unwrap_or_default()
        );
        opendkim
    }
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `rspamd -f` with only its proxy worker, in milter mode (`self_scan`).
pub struct Rspamd {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Rspamd {
    /// `local_d` holds extra `local.d/NAME.conf` files (name, content), such as
    /// `milter_headers.conf` or `actions.conf`.
    pub fn start(dir: &Path, local_d: &[(&str, &str)]) -> Rspamd {
        let dir = dir.join("rspamd");
        let local = dir.join("local.d");
        let run = dir.join("run");
        fs::create_dir_all(&local)
            .and_then(|_| fs::create_dir_all(&run))
            .expect("rspamd dirs");
        // Modules that would talk to the network are off; the rest load as shipped.
        for module in [
            "fuzzy_check",
            "rbl",
            "neural",
            "url_redirector",
            "metadata_exporter",
        ] {
            fs::write(local.join(format!("{module}.conf")), "enabled = false;\n").unwrap();
        }
        for (name, content) in local_d {
            fs::write(local.join(name), content).unwrap();
        }
        // A short public-suffix list: compiling the 9,600 real ones takes minutes on a
        // loaded machine. (Our options come before the stock ones: the first of a
        // duplicate key wins.)
        fs::write(
            dir.join("tld.dat"),
            "com\norg\nnet\nexample\ninvalid\ntest\n",
        )
        .unwrap();
        let port = free_port();
        let conf = dir.join("rspamd.conf");
        let d = dir.display();
        fs::write(
            &conf,
            format!(
                ".include \"$CONFDIR/common.conf\"\n\
             options {{\n  pidfile = \"{d}/run/rspamd.pid\";\n\
               url_tld = \"{d}/tld.dat\";\n  disable_hyperscan = true;\n\
               .include \"$CONFDIR/options.inc\"\n\
               dns {{ nameserver = [\"127.0.0.1:9\"]; timeout = 1s; retransmits = 1; }}\n}}\n\
             logging {{ type = \"file\"; filename = \"{d}/rspamd.log\"; level = \"info\"; }}\n\
             worker \"rspamd_proxy\" {{\n  bind_socket = \"127.0.0.1:{port}\";\n  milter = yes;\n\
               self_scan = yes;\n  count = 1;\n  timeout = 120s;\n\
               upstream \"local\" {{ default = yes; self_scan = yes; }}\n}}\n"
            ),
        )
        .unwrap();
        let out = fs::File::create(dir.join("stdout.log")).unwrap();
        let child = Command::new("rspamd")
            .args(["-f", "-i", "-c"])
            .arg(&conf)
            .arg(format!("--var=LOCAL_CONFDIR={d}"))
            .arg(format!("--var=DBDIR={d}/run"))
            .arg(format!("--var=RUNDIR={d}/run"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("rspamd is not installed (apt-get install rspamd; scripts/test.sh does it)");
        let rspamd = Rspamd {
            child,
            port,
            log: dir.join("rspamd.log"),
        };
        let startup = scaled_by_load(DEADLINE);
        let up = poll_for(startup, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(
            up,
            "rspamd did not listen on {port}: {}",
            crate::text::tail(&fs::read_to_string(&rspamd.log).unwrap_or_default(), 30)
        );
        rspamd
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its workers; then make sure it is gone.
        let _ = sys::kill(self.child.id(), sys::Signal::SIGTERM);
        let gone = poll_for(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !gone {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What every [`PyMilter`] script gets: `record(milter, event, **fields)` appends one JSON
/// line to the record file (opened, written and closed per event, so a line is complete
/// before the milter answers), and `Recording`, a `Milter.Base` with a connection number
/// and `macros(*names)`.
const PYMILTER_PRELUDE: &str = r#"
import json, sys, Milter
RECORD = sys.argv[2]
def record(milter, event, **fields):
    fields.update(event=event, conn=milter.conn_id)
    with open(RECORD, "a") as f:
        f.write(json.dumps(fields) + "\n")
class Recording(Milter.Base):
    def __init__(self):
        self.conn_id = Milter.uniqueID()
    def macros(self, *names):
        return {n: self.getsymval(n) for n in names}
"#;

/// A test's milter on Debian's `python3-milter` (pymilter, on Sendmail's libmilter),
/// listening on a loopback port; stopped on drop.
pub struct PyMilter {
    child: Child,
    pub port: u16,
    record: PathBuf,
    log: PathBuf,
}

impl PyMilter {
    /// `script` defines `class TestMilter(Recording)` with the callbacks it wants.
    pub fn start(dir: &Path, script: &str) -> PyMilter {
        let dir = dir.join("pymilter");
        fs::create_dir_all(&dir).expect("pymilter dir");
        // Not `milter.py`: that would shadow pymilter's own `milter` module.
        let program = dir.join("test_milter.py");
        let run = "Milter.factory = TestMilter\n\
                   Milter.set_flags(Milter.ADDHDRS)\n\
                   Milter.runmilter(\"test\", \"inet:%s@127.0.0.1\" % sys.argv[1], 60)\n";
        fs::write(&program, format!("{PYMILTER_PRELUDE}\n{script}\n{run}")).unwrap();
        let port = free_port();
        let record = dir.join("record.jsonl");
        let log = dir.join("milter.log");
        let out = fs::File::create(&log).unwrap();
        // Debian's python3: pymilter is a Debian package, not in another python's path.
        let child = Command::new("/usr/bin/python3")
            .arg(&program)
            .arg(port.to_string())
            .arg(&record)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("/usr/bin/python3 is missing");
        let mut milter = PyMilter {
            child,
            port,
            record,
            log,
        };
        // A script that died (pymilter missing, a syntax error) fails at once.
        let child = &mut milter.child;
        let up = poll_for(DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                || matches!(child.try_wait(), Ok(Some(_)))
        }) && TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(
            up,
            "the pymilter script did not listen on {port} (apt-get install python3-milter; \
             scripts/test.sh does it): {}",
            fs::read_to_string(&milter.log).unwrap_or_default()
        );
        milter
    }

    /// Whether Debian's pymilter can be imported.
    pub fn available() -> bool {
        Command::new("/usr/bin/python3")
            .args(["-c", "import Milter"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// The events recorded so far, complete lines only.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(&self.record).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until `ready` holds for the recorded events, then returns them.
    pub fn wait_events(
        &self,
        what: &str,
        ready: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let ok = poll_for(DEADLINE, || ready(&self.events()));
        assert!(
            ok,
            "timed out waiting for the milter to record {what}: {:?}\n{}",
            self.events(),
            fs::read_to_string(&self.log).unwrap_or_default()
        );
        self.events()
    }
}

impl Drop for PyMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
