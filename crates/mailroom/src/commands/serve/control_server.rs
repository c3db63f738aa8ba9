//! The daemon's side of the control socket (the protocol is `admin::protocol`'s [`Command`]).
//!
//! Job: answer one request per connection. The short commands (`flush`, `flush-site D`,
//! `flush-id ID`, `reload`, `ping`) get one line back. An `admin <json>` request (listing,
//! qshape, statistics, postsuper, postcat, suspend/resume a destination) is handed, with the connection, to a blocking
//! thread that runs [`admin::engine`] against the daemon's own store — the daemon owns the
//! store lock, so this is how the tools reach a live queue — and streams its events back.
//!
//! The public socket `showq.sock` (mode 0666) serves the same code with [`Access::Public`]:
//! `ping` and the listings ([`Request::is_public`]: `mailq`/`postqueue -p`/`-j`, `qshape`)
//! only, for any local user, as Postfix's showq does.
//!
//! Invariants: a slow reader (`mailq | less`) only blocks its own thread, never the store
//! (the engine copies index chunks before writing); a reader that goes away stops the work;
//! released and requeued messages are handed to the queue manager at once.
//!
//! Security stance: the control socket is mode 0600, owned by the queue owner; requests are
//! length capped and parsed strictly. The public socket accepts nothing that changes the
//! queue or shows message contents; at most [`PUBLIC_MAX`] of its listings run at once and a
//! client that stops sending or reading is dropped after [`PUBLIC_WRITE_TIMEOUT`], so other
//! users cannot tie up the daemon's threads.

use admin::engine::{Backend, Context, Scheduler};
use admin::protocol::{self, Command, Event, Refusal, Reply, Request};
use config::Config;
use envelope::QueueId;
use sched::{QueueManager, Shared};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Who a socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `control.sock`: the queue owner and root, every command.
    Owner,
    /// `showq.sock`: any local user, listings only.
    Public,
}

/// Public listings running at once, at most.
pub const PUBLIC_MAX: usize = 4;
/// A public client that sends no request, or takes no bytes of its answer, for this long
/// is dropped.
pub const PUBLIC_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

static PUBLIC_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// One of the [`PUBLIC_MAX`] public listing slots, freed on drop.
struct PublicSlot;

impl PublicSlot {
    fn take() -> Option<PublicSlot> {
        if PUBLIC_RUNNING.fetch_add(1, Ordering::SeqCst) >= PUBLIC_MAX {
            PUBLIC_RUNNING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(PublicSlot)
    }
}

impl Drop for PublicSlot {
    fn drop(&mut self) {
        PUBLIC_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds a socket (`control.sock` 0600 or `showq.sock` 0666). Only called while holding
/// the store lock, so a leftover socket file can only be a crashed daemon's and is safe to
/// replace.
pub fn bind(cfg: &Config, access: Access) -> std::io::Result<UnixListener> {
    let (path, mode) = match access {
        Access::Owner => (
            queue::Layout::new(&cfg.queue_directory).control_socket(),
            admin::check::layout::CONTROL_SOCKET_MODE,
        ),
        Access::Public => (
            queue::Layout::new(&cfg.queue_directory).showq_socket(),
            admin::check::layout::SHOWQ_SOCKET_MODE,
        ),
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

pub async fn run(
    listener: UnixListener,
    access: Access,
    shared: Arc<Shared>,
    qmgr: Arc<QueueManager>,
    reload: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = conn else { continue };
        let (shared, qmgr, reload) = (shared.clone(), qmgr.clone(), reload.clone());
        tokio::spawn(handle(stream, access, shared, qmgr, reload));
    }
}

async fn handle(
    stream: UnixStream,
    access: Access,
    shared: Arc<Shared>,
    qmgr: Arc<QueueManager>,
    reload: mpsc::Sender<()>,
) {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    let mut limited = AsyncReadExt::take(&mut reader, protocol::MAX_REQUEST);
    let read = limited.read_line(&mut line);
    let read = match access {
        Access::Owner => read.await,
        Access::Public => match tokio::time::timeout(PUBLIC_WRITE_TIMEOUT, read).await {
            Ok(r) => r,
            Err(_) => return, // a silent client does not keep its connection
        },
    };
    if read.is_err() {
        return;
    }
    let answer = match (Command::decode(&line), access) {
        (Ok(Command::Admin(request)), Access::Public) if !request.is_public() => {
            let why = "only listings are served on this socket (run as the queue owner or root)";
            event_line(&Event::Error(why.into()))
        }
        (Ok(Command::Admin(request)), _) => {
            return admin(reader, request, access, shared, qmgr).await;
        }
        (Err(Refusal::Admin(why)), _) => event_line(&Event::Error(why)),
        (Ok(command), Access::Public) if !command.is_public() => not_public(),
        (Err(Refusal::Command(_)), Access::Public) => not_public(),
        (Ok(command), _) => run_command(command, &qmgr, &reload).await.encode(),
        (Err(Refusal::Command(why)), Access::Owner) => Reply::Error(why).encode(),
    };
    let _ = reader.get_mut().write_all(answer.as_bytes()).await;
}

/// A short command on the public socket.
fn not_public() -> String {
    Reply::Error("only listings are served on this socket".into()).encode()
}

fn event_line(event: &Event) -> String {
    let mut line = Vec::new();
    let _ = protocol::write_event(&mut line, event);
    String::from_utf8_lossy(&line).into_owned()
}

/// Hands an admin request, with the connection, to a blocking thread (see the module doc).
async fn admin(
    mut reader: tokio::io::BufReader<UnixStream>,
    request: Request,
    access: Access,
    shared: Arc<Shared>,
    qmgr: Arc<QueueManager>,
) {
    let slot = match access {
        Access::Owner => None,
        Access::Public => match PublicSlot::take() {
            Some(slot) => Some(slot),
            None => {
                let busy = event_line(&Event::Error("too many listings running; try again".into()));
                let _ = reader.get_mut().write_all(busy.as_bytes()).await;
                return;
            }
        },
    };
    // Bytes the client sent after the request line (queue IDs) are already buffered.
    let leftover = reader.buffer().to_vec();
    let Ok(stream) = reader.into_inner().into_std() else {
        return;
    };
    let work = move || {
        admin_request(&shared, &qmgr, request, leftover, stream, access);
        drop(slot);
    };
    if let Err(e) = tokio::task::spawn_blocking(work).await {
        warn!(target: "postsuper", "admin request failed: {e}");
    }
}

async fn run_command(command: Command, qmgr: &QueueManager, reload: &mpsc::Sender<()>) -> Reply {
    match command {
        Command::Flush => {
            let n = qmgr.flush();
            info!(target: "qmgr", "flush requested: {n} deferred messages due now");
            Reply::Ok(Some(n as u64))
        }
        Command::FlushSite(site) => Reply::Ok(Some(qmgr.flush_site(&site) as u64)),
        Command::FlushId(id) => Reply::Ok(Some(u64::from(qmgr.flush_id(id)))),
        Command::Reload => {
            let _ = reload.send(()).await;
            Reply::Ok(None)
        }
        Command::Ping | Command::Admin(_) => Reply::Ok(None),
    }
}

/// The scheduler as the admin engine sees it.
pub(super) struct Manager<'a>(pub &'a QueueManager);

impl Scheduler for Manager<'_> {
    fn is_active(&self, id: QueueId) -> bool {
        self.0.is_active(id)
    }
    fn schedule(&self, id: QueueId, when: u64) {
        self.0.schedule(id, when);
    }
    fn suspend(
        &self,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<queue::Suspension, String> {
        (self.0.suspend(destination, seconds, reason)).map_err(|e| e.to_string())
    }
    fn resume(&self, destination: &str) -> Result<bool, String> {
        self.0.resume(destination).map_err(|e| e.to_string())
    }
    fn suspensions(&self) -> Result<Vec<queue::Suspension>, String> {
        Ok(self.0.suspensions())
    }
    fn suspension_reason(&self, entry: &queue::Entry, i: usize) -> Option<String> {
        self.0.suspension_reason(entry, i)
    }
}

/// Runs one admin request on a blocking thread, streaming events to the client.
fn admin_request(
    shared: &Shared,
    qmgr: &QueueManager,
    request: Request,
    leftover: Vec<u8>,
    stream: std::os::unix::net::UnixStream,
    access: Access,
) {
    let Some(read_half) = blocking(&stream, access) else {
        return;
    };
    let mut out = BufWriter::with_capacity(64 << 10, stream);
    let ctx = Context {
        backend: Backend::Store(&shared.store),
        scheduler: &Manager(qmgr),
        maildrop: shared.settings().layout.maildrop(),
        now: admin::duration::unix_now(),
    };
    let mut ids = BufReader::new(Read::chain(io::Cursor::new(leftover), read_half));
    let wants_ids = matches!(&request, Request::Super(s) if s.ids_follow);
    let ids: Option<&mut dyn BufRead> = if wants_ids { Some(&mut ids) } else { None };
    let (result, summary) = stream_events(&ctx, &request, ids, &mut out);
    let _ = out.flush();
    if let (Some(line), Request::Super(s)) = (summary, &request) {
        if !s.dry_run {
            info!(target: "postsuper", "{line}");
        }
    }
    if let Err(e) = result {
        if e.kind() != io::ErrorKind::BrokenPipe {
            warn!(target: "postsuper", "admin request stopped: {e}");
        }
    }
}

/// The connection made blocking (with the public socket's write timeout), and a second
/// handle on it to read the queue IDs that may follow the request.
fn blocking(
    stream: &std::os::unix::net::UnixStream,
    access: Access,
) -> Option<std::os::unix::net::UnixStream> {
    stream.set_nonblocking(false).ok()?;
    if access == Access::Public {
        stream.set_write_timeout(Some(PUBLIC_WRITE_TIMEOUT)).ok()?;
    }
    stream.try_clone().ok()
}

/// Runs the engine, writing its events to `out` (listing rows as compact lines when asked);
/// returns the result and a postsuper summary line for the log.
fn stream_events(
    ctx: &Context<'_>,
    request: &Request,
    ids: Option<&mut dyn BufRead>,
    out: &mut impl Write,
) -> (io::Result<()>, Option<String>) {
    let mut summary = None;
    let compact_rows = matches!(
        request,
        Request::List {
            compact_rows: true,
            ..
        }
    );
    let mut line = Vec::with_capacity(512);
    let result = ctx.run(request, ids, &mut |event| {
        if let (true, Event::Row(row)) = (compact_rows, &event) {
            line.clear();
            admin::rowline::encode(row, &mut line);
            return out.write_all(&line);
        }
        if let Event::Summary(s) = &event {
            summary = s.line();
        }
        // Row streams flush when the buffer fills; everything else at once.
        let flush_now = !matches!(event, Event::Row(_));
        protocol::write_event(out, &event)?;
        if flush_now {
            out.flush()?;
        }
        Ok(())
    });
    (result, summary)
}
