//! Postfix's `smtp-sink` as a destination ([`Sink`]): a real, fast, independent SMTP
//! server that counts what it received (`-c`), or dumps each transaction to a file (`-d`).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::machine::{free_port, is_root, list_dir, open_up};
use crate::wait::{poll_for, wait_until, DEADLINE};

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running `smtp-sink -c`, killed (by its own handle) when dropped.
pub struct Sink {
    child: Child,
    pub host: Ipv4Addr,
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
        Sink::start_at(dir, Ipv4Addr::LOCALHOST, port, extra)
    }

    /// `smtp-sink -c [extra] HOST:PORT 256` (a fleet's sink listens on the address its
    /// nodes reach, [`crate::fleet::Hosts`]).
    pub fn start_at(dir: &Path, host: Ipv4Addr, port: u16, extra: &[&str]) -> Sink {
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
            .arg(format!("{host}:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let sink = Sink {
            child,
            host,
            port,
            counters,
        };
        let up = poll_for(DEADLINE, || TcpStream::connect((host, port)).is_ok());
        assert!(up, "smtp-sink did not start on port {port}");
        // That probe was a session: once it is counted, [`Sink::sessions`] starts at 0.
        wait_until("smtp-sink to count its readiness probe", || {
            sink.counter("sess=") >= 1
        });
        sink
    }

    /// `smtp-sink -c -d DIR/m. [extra]` on `host:port` and the directory `DIR` (made
    /// in `dir`) where it writes each transaction it receives, in one file of its own (as
    /// root the sink runs as `nobody`: `dir` is opened up for it).
    pub fn start_dumping(dir: &Path, host: Ipv4Addr, port: u16, extra: &[&str]) -> (Sink, PathBuf) {
        let dumps = dir.join(format!("sink-{port}"));
        fs::create_dir_all(&dumps).expect("sink dump dir");
        open_up(dir);
        fs::set_permissions(&dumps, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod sink dir");
        let template = format!("{}/m.", dumps.display());
        let args: Vec<&str> = ["-d", &template]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        (Sink::start_at(dir, host, port, &args), dumps)
    }

    /// A second view of the sink (for a thread that samples it while the test holds the
    /// sink; it does not own the process) that counts its clients' connections in this
    /// network namespace.
    pub fn view(&self) -> SinkView {
        self.view_from(vec![PathBuf::from("/proc/net/tcp")])
    }

    /// [`Sink::view`] counting its clients' connections in the TCP tables `tables`
    /// (`/proc/PID/net/tcp` of a process in each client's network namespace).
    pub fn view_from(&self, tables: Vec<PathBuf>) -> SinkView {
        SinkView {
            remote: table_address(self.host, self.port),
            counters: self.counters.clone(),
            tables,
        }
    }

    /// Waits until the sink holds no connection on its port (none established, none closed
    /// by the client but not yet by the sink, none waiting to be accepted): it has read all
    /// its clients sent, so every transaction they finished is on disk and every one they
    /// broke off is discarded. A test that kills the daemon waits for this before counting.
    pub fn wait_sessions_closed(&self) {
        wait_until(
            &format!("smtp-sink on {} to close its sessions", self.port),
            || self.sessions_open() == 0,
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
        self.counter("sess=").saturating_sub(1) + self.sessions_open()
    }

    fn sessions_open(&self) -> usize {
        sessions_on(&table_address(self.host, self.port))
    }

    /// Connections open to the sink as its clients in this network namespace see them:
    /// established sockets whose remote end is HOST:PORT. A client's socket leaves this
    /// state the moment it closes, so this is what a client-side connection limit bounds
    /// (the sink's own end may linger a moment longer).
    pub fn client_connections(&self) -> usize {
        self.view().client_connections()
    }

    fn counter(&self, name: &str) -> usize {
        counter(&self.counters, name)
    }
}

/// `HOST:PORT` as `/proc/net/tcp` writes it (the address's bytes as a native-endian word,
/// both in hex: 127.0.0.1:25 is `0100007F:0019` here).
fn table_address(host: Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(host.octets()))
}

/// Established sockets in `table` whose remote end is `remote`: their inodes (or local
/// addresses). A socket can be listed twice when the table changes while it is read (the
/// kernel writes it in pieces), so lines are not sockets.
fn client_sockets(table: &Path, remote: &str) -> HashSet<String> {
    let table = fs::read_to_string(table).unwrap_or_default();
    let sockets = table.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let open = cols.len() > 9 && cols[2] == remote && cols[3] == "01";
        open.then(|| match cols[9] {
            "0" => cols[1].to_string(),
            inode => inode.to_string(),
        })
    });
    sockets.collect()
}

/// Messages per client address in the dumps of [`Sink::start_dumping`]: each file starts
/// with the sink's `X-Client-Addr: ADDRESS` line (`(none)` counts files without one).
pub fn messages_by_client(dumps: &Path) -> BTreeMap<String, usize> {
    count_by_line(dumps, "X-Client-Addr: ", Some("(none)"))
}

/// Messages in the dumps of [`Sink::start_dumping`] per the rest of their first line that
/// starts with `prefix` (`"Subject: "`: per subject); files without such a line are left out.
pub fn messages_by_line(dumps: &Path, prefix: &str) -> BTreeMap<String, usize> {
    count_by_line(dumps, prefix, None)
}

fn count_by_line(dumps: &Path, prefix: &str, missing: Option<&str>) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for name in list_dir(dumps) {
        let text = fs::read(dumps.join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .or(missing);
        if let Some(value) = value {
            *by.entry(value.trim().to_string()).or_insert(0) += 1;
        }
    }
    by
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

/// What [`Sink::view`] gives: the counters and connections of a sink, read-only.
pub struct SinkView {
    /// The sink's address as the TCP tables write it.
    remote: String,
    counters: PathBuf,
    tables: Vec<PathBuf>,
}

impl SinkView {
    pub fn messages(&self) -> usize {
        counter(&self.counters, "mesg=")
    }

    /// Connections its clients hold open to it, summed over the tables (read one after
    /// the other: a connection that closes meanwhile and one that opens can both be in).
    pub fn client_connections(&self) -> usize {
        let tables = self.tables.iter();
        tables.map(|t| client_sockets(t, &self.remote).len()).sum()
    }

    /// The connections its clients hold open to it, table by table: when the table's read
    /// began and ended, and a name for each socket (its inode, unique on the machine).
    pub fn client_sockets(&self) -> Vec<(Instant, Instant, HashSet<String>)> {
        let read = |t: &PathBuf| {
            let began = Instant::now();
            let sockets = client_sockets(t, &self.remote);
            (began, Instant::now(), sockets)
        };
        self.tables.iter().map(read).collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connections whose local end is `local` (as [`table_address`] writes it), other than
/// the listener itself: established (01), waiting to be accepted (03), or closed by the
/// peer only (08), from `/proc/net/tcp` (state in the fourth column).
fn sessions_on(local: &str) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && cols[1] == local && matches!(cols[3], "01" | "03" | "08")
        })
        .count()
}
