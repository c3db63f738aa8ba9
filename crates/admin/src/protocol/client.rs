//! The client side of the control socket: [`send`] for the one-line commands, [`call`] for
//! queue requests and their event streams.

use super::command::{self, Command, Reply};
use super::{Event, Request};
use crate::rowline;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends one short command and reads the daemon's one-line answer.
pub fn send(socket: &Path, command: &Command) -> io::Result<Reply> {
    let line = command.encode().map_err(io::Error::other)?;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(Reply::decode(&answer))
}

/// Why a request could not go through the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// Nobody listens: the daemon is down (the caller may work on the store directly).
    NoDaemon(io::Error),
    /// The daemon answered badly or went away.
    Broken(String),
}

/// Sends `request` to the daemon and calls `on_event` for each event until `End`, which is
/// not passed on; `Error` becomes `Err(Broken)`. `ids`, if any, are copied to the daemon from
/// a separate thread, so a long ID list and a long answer cannot block each other.
pub fn call(
    socket: &Path,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let stream = UnixStream::connect(socket).map_err(ClientError::NoDaemon)?;
    call_on(stream, request, ids, on_event)
}

/// [`call`] on a stream already connected (so the caller keeps `ids` if nobody listens).
pub fn call_on(
    mut stream: UnixStream,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    mut on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let broken = |e: io::Error| ClientError::Broken(e.to_string());
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .map_err(broken)?;
    let line = command::admin_line(request).map_err(ClientError::Broken)?;
    stream.write_all(line.as_bytes()).map_err(broken)?;
    let writer = match ids {
        Some(mut ids) => {
            let mut w = stream.try_clone().map_err(broken)?;
            Some(std::thread::spawn(move || {
                let _ = io::copy(&mut ids, &mut w);
                let _ = w.shutdown(std::net::Shutdown::Write);
            }))
        }
        None => {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            None
        }
    };
    let result = read_events(BufReader::new(stream), &mut on_event);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result
}

fn read_events(
    mut reader: impl BufRead,
    on_event: &mut impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ClientError::Broken(e.to_string()))?;
        if n == 0 {
            break;
        }
        let bad = |why: String| ClientError::Broken(format!("bad answer from the daemon: {why}"));
        let event = if line.starts_with(rowline::PREFIX) {
            Event::Row(rowline::decode(&line).ok_or_else(|| bad("a bad row line".into()))?)
        } else {
            serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?
        };
        match event {
            Event::End { count } => return Ok(count),
            Event::Error(e) => return Err(ClientError::Broken(e)),
            other => {
                if let Err(e) = on_event(other) {
                    // The reader went away (`mailq | head -1`): stop quietly.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(0);
                    }
                    return Err(ClientError::Broken(e.to_string()));
                }
            }
        }
    }
    Err(ClientError::Broken(
        "the daemon closed the connection before the end of its answer".into(),
    ))
}
