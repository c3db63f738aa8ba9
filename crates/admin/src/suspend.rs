//! Suspending and resuming destinations (`postqueue -S/-U`, `mailroom suspend|resume`, and
//! the HTTP API): the three calls a front end makes ([`suspend`], [`resume`], [`list`]), the
//! one answer to those requests ([`answer`], run by the engine for the daemon and here when
//! it is down), and [`Offline`], the scheduler stand-in that keeps the table in the file.
//!
//! Daemon up: the request goes over the control socket and the queue manager writes the file
//! and applies it at once. Daemon down: this process changes the file (under its lock) and
//! the daemon reads it when it starts (or on SIGHUP). Either way the file is the truth.

use crate::engine::{Emit, Scheduler};
use crate::protocol::{Event, Request};
use envelope::{split_address, QueueId};
use queue::{Entry, Layout, Suspension, Suspensions};
use std::io;
use std::path::Path;

/// Suspends deliveries to `destination` for `seconds` (or until resumed).
pub fn suspend(
    queue_directory: &Path,
    destination: &str,
    seconds: Option<u64>,
    reason: &str,
) -> Result<Suspension, String> {
    let request = Request::Suspend {
        destination: destination.to_string(),
        seconds,
        reason: reason.to_string(),
    };
    let mut made = None;
    crate::execute(queue_directory, &request, None, |e| {
        if let Event::Suspension(s) = e {
            made = Some(s);
        }
        Ok(())
    })?;
    made.ok_or_else(|| "the daemon did not confirm the suspension".to_string())
}

/// Ends the suspension of `destination`; false if none was in force.
pub fn resume(queue_directory: &Path, destination: &str) -> Result<bool, String> {
    let request = Request::Resume {
        destination: destination.to_string(),
    };
    crate::execute(queue_directory, &request, None, |_| Ok(())).map(|n| n > 0)
}

/// The suspensions in force.
pub fn list(queue_directory: &Path) -> Result<Vec<Suspension>, String> {
    let mut all = Vec::new();
    crate::execute(queue_directory, &Request::Suspensions, None, |e| {
        if let Event::Suspension(s) = e {
            all.push(s);
        }
        Ok(())
    })?;
    Ok(all)
}

/// Answers a suspension request through `scheduler`; `None` for any other request.
pub fn answer(
    scheduler: &dyn Scheduler,
    request: &Request,
    emit: &mut Emit<'_>,
) -> Option<Result<io::Result<u64>, String>> {
    let result = match request {
        Request::Suspend {
            destination,
            seconds,
            reason,
        } => scheduler
            .suspend(destination, *seconds, reason)
            .map(|s| emit(Event::Suspension(s)).map(|()| 1)),
        Request::Resume { destination } => {
            scheduler.resume(destination).map(|was| Ok(u64::from(was)))
        }
        Request::Suspensions => scheduler.suspensions().map(|all| {
            let n = all.len() as u64;
            all.into_iter()
                .try_for_each(|s| emit(Event::Suspension(s)))
                .map(|()| n)
        }),
        _ => return None,
    };
    Some(result)
}

/// No daemon: the table lives in the file; a recipient is matched by its domain only (the
/// routing that names a next hop is the daemon's).
pub struct Offline {
    layout: Layout,
    table: Suspensions,
}

impl Offline {
    /// Reads the table once (an unreadable file is an empty table for listings; changes
    /// read it again under the lock and fail on it).
    pub fn new(queue_directory: &Path) -> Offline {
        let layout = Layout::new(queue_directory);
        let table = Suspensions::load(&layout).unwrap_or_default();
        Offline { layout, table }
    }
}

impl Scheduler for Offline {
    fn is_active(&self, _: QueueId) -> bool {
        false
    }

    fn schedule(&self, _: QueueId, _: u64) {}

    fn suspend(
        &self,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<Suspension, String> {
        let destination = queue::suspend::normalize(destination)?;
        let now = crate::duration::unix_now();
        let s = Suspension {
            destination,
            reason: reason.to_string(),
            since: now,
            until: seconds.map(|n| now.saturating_add(n)),
        };
        Suspensions::update(&self.layout, |t| {
            t.prune(now);
            t.insert(s.clone());
            Ok(())
        })?;
        Ok(s)
    }

    fn resume(&self, destination: &str) -> Result<bool, String> {
        let destination = queue::suspend::normalize(destination)?;
        let now = crate::duration::unix_now();
        let (_, was) = Suspensions::update(&self.layout, |t| {
            let was = t.remove(&destination, now);
            t.prune(now);
            Ok(was)
        })?;
        Ok(was)
    }

    fn suspensions(&self) -> Result<Vec<Suspension>, String> {
        let now = crate::duration::unix_now();
        let table = Suspensions::load(&self.layout).map_err(|e| e.to_string())?;
        Ok(table.list.into_iter().filter(|s| s.in_force(now)).collect())
    }

    fn suspension_reason(&self, entry: &Entry, i: usize) -> Option<String> {
        let r = entry.meta.envelope.recipients.get(i)?;
        let domain = split_address(&r.address).1;
        let now = crate::duration::unix_now();
        self.table.matching(&domain, None, now).map(|s| s.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_changes_land_in_the_file_the_daemon_reads() {
        let dir = tempfile::tempdir().unwrap();
        let offline = Offline::new(dir.path());
        let s = offline
            .suspend("Example.NET", Some(3600), "their MX is rate-limiting us")
            .unwrap();
        assert_eq!(s.destination, "example.net");
        let read = Suspensions::load(&Layout::new(dir.path())).unwrap();
        assert_eq!(read.list, vec![s]);
        assert!(offline.resume("example.net.").unwrap());
        assert!(!offline.resume("example.net").unwrap());
        assert!(offline.suspensions().unwrap().is_empty());
        assert!(offline.suspend("not a domain", None, "").is_err());
    }
}
