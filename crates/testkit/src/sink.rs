//! Postfix's `smtp-sink` as a destination ([`Sink`]): a real, fast, independent SMTP
//! server that counts what it received (`-c`), or dumps each transaction to a file (`-d`).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::machine::{free_port, is_root};
use crate::wait::{poll_for, wait_until, DEADLINE};

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running `smtp-sink -c`, killed (by its own handle) when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
    counters: PathBuf,
}

impl Sink {
    /// `smtp-sink -c [extra] 127.0.0.1:PORT 256` on a free port; its counters go to a file
    /// in `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Sink {
        Sink::start_on(dir, free_port(), extra)
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Sink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is not installed (apt-get install postfix; scripts/test.sh does it)"
        );
        let counters = dir.join(format!("smtp-sink-{port}.out"));
        let out = fs::File::create(&counters).expect("sink output file");
        let mut command = Command::new(SMTP_SINK);
        if is_root() {
            command.args(["-u", "nobody"]); // as root, smtp-sink insists on dropping privileges
        }
        let child = command
            .arg("-c")
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let sink = Sink {
            child,
            port,
            counters,
        };
        let up = poll_for(DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "smtp-sink did not start on port {port}");
        // That probe was a session: once it is counted, [`Sink::sessions`] starts at 0.
        wait_until("smtp-sink to count its readiness probe", || {
            sink.counter("sess=") >= 1
        });
        sink
    }

    /// A second view of the sink on `port` whose counters are in `dir` (for a thread that
    /// samples it while the test holds the sink); it does not own the process.
    pub fn watch(dir: &Path, port: u16) -> SinkView {
        SinkView {
            port,
            counters: dir.join(format!("smtp-sink-{port}.out")),
        }
    }

    /// Waits until the sink holds no connection on its port (none established, none closed
    /// by the client but not yet by the sink, none waiting to be accepted): it has read all
    /// its clients sent, so every transaction they finished is on disk and every one they
    /// broke off is discarded. A test that kills the daemon waits for this before counting.
    pub fn wait_sessions_closed(&self) {
        wait_until(
            &format!("smtp-sink on {} to close its sessions", self.port),
            || sessions_on(self.port) == 0,
        );
    }

    /// Messages received so far (the last `mesg=N` of `-c`'s running counters).
    pub fn messages(&self) -> usize {
        self.counter("mesg=")
    }

    /// Sessions so far: those ended (the last `sess=N`, less the readiness probe of
    /// [`Sink::start_on`]) plus those open now. A test that must prove no connection was
    /// made asserts this is 0.
    pub fn sessions(&self) -> usize {
        self.counter("sess=").saturating_sub(1) + sessions_on(self.port)
    }

    /// Connections open to the sink as its clients see them: established sockets whose
    /// remote end is 127.0.0.1:PORT. A client's socket leaves this state the moment it
    /// closes, so this is what a client-side connection limit bounds (the sink's own end
    /// may linger a moment longer).
    pub fn client_connections(&self) -> usize {
        client_connections(self.port)
    }

    fn counter(&self, name: &str) -> usize {
        counter(&self.counters, name)
    }
}

fn client_connections(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    // By local address: a socket can be listed twice when the table changes while it is
    // read (the kernel writes it in pieces), so lines are not sockets.
    let open: std::collections::HashSet<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() > 3 && cols[2] == remote && cols[3] == "01").then(|| cols[1])
        })
        .collect();
    open.len()
}

/// The last value of counter `name` in smtp-sink's `-c` output file.
fn counter(path: &Path, name: &str) -> usize {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.rsplit(name)
        .next()
        .filter(|_| text.contains(name))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What [`Sink::watch`] gives: the counters and connections of a sink, read-only.
pub struct SinkView {
    port: u16,
    counters: PathBuf,
}

impl SinkView {
    pub fn messages(&self) -> usize {
        counter(&self.counters, "mesg=")
    }

    pub fn client_connections(&self) -> usize {
        client_connections(self.port)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connections whose local end is 127.0.0.1:`port`, other than the listener itself:
/// established (01), waiting to be accepted (03), or closed by the peer only (08), from
/// `/proc/net/tcp` (hex `0100007F:PORT`, state in the fourth column).
fn sessions_on(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && cols[1] == local && matches!(cols[3], "01" | "03" | "08")
        })
        .count()
}
