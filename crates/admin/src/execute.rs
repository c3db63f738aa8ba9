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

/// The lock-free snapshot for a listing. A full listing tells the handler how the scan goes
/// ([`Event::Scanning`]); the handler's error (its reader went away) stops the scan and is
/// the inner `Err`.
fn scan(
    queue_directory: &Path,
    request: &Request,
    handler: &mut crate::engine::Emit<'_>,
) -> Result<io::Result<queue::Snapshot>, String> {
    let Request::List { selector, .. } = request else {
        return queue::Snapshot::scan(queue_directory)
            .map(Ok)
            .map_err(|e| e.to_string());
    };
    // Only a listing of everything lists every live message the log holds.
    let everything = *selector == crate::Selector::default();
    let mut stopped = None;
    let scanned = queue::Snapshot::scan_with(queue_directory, |p| {
        let event = Event::Scanning {
            not_empty: everything && p.not_empty,
        };
        handler(event).map_err(|e| {
            let kind = e.kind();
            stopped = Some(e);
            io::Error::from(kind)
        })
    });
    match (stopped, scanned) {
        (Some(e), _) => Ok(Err(e)),
        (None, scanned) => scanned.map(Ok).map_err(|e| e.to_string()),
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
    if let Request::Qshape { .. } = request {
        // qshape needs only queue, arrival time, sender and recipients: the census reads
        // the log several times faster than a snapshot (see `queue::Census`).
        let census = queue::Census::scan(queue_directory).map_err(|e| e.to_string())?;
        let ctx = Context {
            backend: Backend::Census(&census),
            scheduler: &offline,
            maildrop,
            now,
        };
        return Ok(ctx.run(request, None, handler));
    }
    if let Request::List { .. } | Request::Stats = request {
        let snapshot = match scan(queue_directory, request, handler)? {
            Ok(snapshot) => snapshot,
            Err(stopped) => return Ok(Err(stopped)),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selector;
    use envelope::{Envelope, QueueId};

    fn queue_of(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = queue::Store::open(dir.path(), Default::default()).unwrap();
        for _ in 0..n {
            let env = Envelope::new("a@host", vec!["b@example.com".into()], 1_700_000_000);
            store
                .enqueue(QueueId::generate(), env, b"Subject: t\n\n")
                .unwrap();
        }
        dir
    }

    fn list_all() -> Request {
        Request::List {
            selector: Selector::default(),
            compact_rows: true,
        }
    }

    /// `mailq | head -1` with the daemon down: the heading must not wait for the whole log.
    #[test]
    fn a_listing_with_the_daemon_down_knows_it_is_not_empty_before_the_first_row() {
        let dir = queue_of(3);
        let mut events = Vec::new();
        let count = execute(dir.path(), &list_all(), None, |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 3);
        assert_eq!(events[0], Event::Scanning { not_empty: true });
        let first_row = events.iter().position(|e| matches!(e, Event::Row(_)));
        assert!(first_row.is_some_and(|r| r > 0), "{events:?}");
    }

    /// The reader went away while the log was being read: the listing stops there, quietly.
    #[test]
    fn a_listing_whose_reader_has_gone_stops_while_reading_the_log() {
        let dir = queue_of(3);
        let mut rows = 0;
        let outcome = execute(dir.path(), &list_all(), None, |e| match e {
            Event::Scanning { .. } => Err(io::ErrorKind::BrokenPipe.into()),
            Event::Row(_) => {
                rows += 1;
                Ok(())
            }
            _ => Ok(()),
        });
        assert_eq!(outcome, Ok(0));
        assert_eq!(rows, 0, "nothing listed after the reader left");
    }

    /// With the daemon down qshape reads a census of the log, not the store's index: the
    /// matrix must be the one the store itself gives, whatever the recipients' states.
    #[test]
    fn qshape_with_the_daemon_down_counts_what_the_open_store_counts() {
        use crate::engine::{Backend, Context, NoScheduler};
        use crate::row::State;
        use envelope::RecipientState;
        let dir = tempfile::tempdir().unwrap();
        let now = crate::duration::unix_now();
        {
            let (store, _) = queue::Store::open(dir.path(), Default::default()).unwrap();
            for i in 0..40u64 {
                let rcpts = vec![
                    format!("u@d{}.example", i % 3),
                    format!("v@mx{}.e{}.example", i % 5, i % 2),
                ];
                let env = Envelope::new(format!("s@s{}.example", i % 4), rcpts, now - i * 400);
                let id = QueueId::generate();
                store.enqueue(id, env, b"Subject: t\n\n").unwrap();
                let update = queue::Update {
                    recipients: vec![(usize::from(i % 2 == 0), RecipientState::Sent)],
                    queue: [queue::QueueName::Deferred, queue::QueueName::Hold][i as usize % 2],
                    ..queue::Update::keep(&store.get(id).unwrap().meta)
                };
                store.update(id, update).unwrap();
            }
        }
        for queues in [
            vec![State::Deferred],
            vec![State::Hold],
            State::ALL.to_vec(),
        ] {
            for (senders, parents) in [(false, false), (true, false), (false, true)] {
                let options = crate::qshape::Options {
                    senders,
                    parents,
                    min_subdomains: 2,
                    ..Default::default()
                };
                let request = Request::Qshape {
                    options,
                    queues: queues.clone(),
                };
                let mut offline = Vec::new();
                execute(dir.path(), &request, None, |e| {
                    offline.push(e);
                    Ok(())
                })
                .unwrap();
                let (store, _) = queue::Store::open(dir.path(), Default::default()).unwrap();
                let ctx = Context {
                    backend: Backend::Store(&store),
                    scheduler: &NoScheduler,
                    maildrop: dir.path().join("maildrop"),
                    now,
                };
                let mut online = Vec::new();
                ctx.run(&request, None, &mut |e| {
                    online.push(e);
                    Ok(())
                })
                .unwrap();
                online.retain(|e| !matches!(e, Event::End { .. }));
                assert_eq!(
                    offline, online,
                    "{queues:?}, senders {senders}, parents {parents}"
                );
                assert!(matches!(&offline[..], [Event::Shape(s)] if s.rows.len() >= 2));
            }
        }
    }

    #[test]
    fn an_empty_queue_is_not_announced_as_holding_mail() {
        let dir = queue_of(0);
        let mut events = Vec::new();
        execute(dir.path(), &list_all(), None, |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
        assert!(
            !events.contains(&Event::Scanning { not_empty: true }),
            "{events:?}"
        );
    }
}
