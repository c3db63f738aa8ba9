//! Where a queue request runs: if the daemon answers on its control socket, there (it owns
//! the store lock and streams from its in-memory index, so no log is re-read); a user other
//! than the queue owner lists through the daemon's public socket. Otherwise, in this
//! process: listings read a lock-free snapshot of the log, changes open the store under its
//! lock. Either way the caller sees the same [`Event`] stream.

use crate::engine::{Backend, Context};
use crate::protocol::{self, ClientError, Event, Request};
use queue::Layout;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Runs `request` through the daemon or in-process; `on_event` sees every event but `End`
/// and `Error`. Returns the request's count, or one line saying what went wrong.
pub fn execute(
    queue_directory: &Path,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    mut on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, String> {
    if let Some(stream) = connect(queue_directory, request) {
        return protocol::call_on(stream, request, ids, on_event).map_err(|e| match e {
            ClientError::NoDaemon(e) => e.to_string(),
            ClientError::Broken(why) => why,
        });
    }
    let mut result = Ok(0);
    let mut handler = |event: Event| -> io::Result<()> {
        match event {
            Event::End { count } => result = Ok(count),
            Event::Error(why) => result = Err(why),
            other => on_event(other)?,
        }
        Ok(())
    };
    match in_process(queue_directory, request, ids, &mut handler)? {
        Ok(()) => result,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

/// The daemon's control socket; for a listing asked by someone else than the queue owner,
/// its public socket. `None` when no daemon answers.
fn connect(queue_directory: &Path, request: &Request) -> Option<UnixStream> {
    match UnixStream::connect(Layout::new(queue_directory).control_socket()) {
        Ok(stream) => Some(stream),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && request.is_public() => {
            UnixStream::connect(Layout::new(queue_directory).showq_socket()).ok()
        }
        Err(_) => None,
    }
}

/// Runs the engine here: the outer `Err` is why it could not start, the inner the result.
fn in_process(
    queue_directory: &Path,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    handler: &mut crate::engine::Emit<'_>,
) -> Result<io::Result<()>, String> {
    let maildrop = Layout::new(queue_directory).maildrop();
    let now = crate::duration::unix_now();
    let offline = crate::suspend::Offline::new(queue_directory);
    if let Some(answer) = crate::suspend::answer(&offline, request, handler) {
        return Ok(match answer {
            Ok(Ok(count)) => handler(Event::End { count }),
            Ok(Err(e)) => Err(e),
            Err(why) => handler(Event::Error(why)),
        });
    }
    if let Request::List { .. } | Request::Qshape { .. } | Request::Stats = request {
        let snapshot = queue::Snapshot::scan(queue_directory).map_err(|e| e.to_string())?;
        let ctx = Context {
            backend: Backend::Snapshot(&snapshot),
            scheduler: &offline,
            maildrop,
            now,
        };
        return Ok(ctx.run(request, None, handler));
    }
    let (store, _) =
        queue::Store::open(queue_directory, Default::default()).map_err(|e| {
            match e {
        queue::StoreError::Locked(_) => {
            "the daemon holds the queue store but does not answer on its control socket; try again"
                .to_string()
        }
        e => e.to_string(),
    }
        })?;
    let ctx = Context {
        backend: Backend::Store(&store),
        scheduler: &offline,
        maildrop,
        now,
    };
    let mut reader = ids.map(BufReader::new);
    let ids = reader.as_mut().map(|r| r as &mut dyn BufRead);
    Ok(ctx.run(request, ids, handler))
}
