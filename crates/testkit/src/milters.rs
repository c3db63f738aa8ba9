//! Real milters from Debian on loopback, for the milter client's end-to-end tests:
//! [`OpenDkim`] in signing mode (a key made by `opendkim-genkey`, its TXT record for a
//! [`crate::Dns`] zone) and [`Rspamd`]'s proxy worker in milter mode, scanning itself.
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
