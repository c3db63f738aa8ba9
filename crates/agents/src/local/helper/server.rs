//! The helper's side: read requests from the daemon, check each, deliver with the local
//! agent on a bounded set of threads, write each reply whole. Returns when the daemon closes
//! its end, after the deliveries in flight have finished (a half-written mbox record is
//! never left behind by an exit).

use super::frame::{self, Frame, Incoming};
use super::wire::{Request, Response};
use crate::local::{Delivery, LocalAgent};
use envelope::{Envelope, Outcome, QueueId};
use std::collections::HashSet;
use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use tracing::{error, info, warn};

/// Room for the envelope and the JSON around a message: a request may be this much larger
/// than `message_size_limit`.
pub const ENVELOPE_ALLOWANCE: usize = 16 << 20;

/// How the helper re-reads its configuration on a reload request.
pub type Reloader = Box<dyn Fn() -> Result<(LocalAgent, Limits), String> + Send>;

/// The helper's own bounds, from its own configuration (never from the daemon).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deliveries at once (`local_destination_concurrency_limit`).
    pub concurrency: usize,
    /// Largest request body read (`message_size_limit` plus [`ENVELOPE_ALLOWANCE`]).
    pub max_request: usize,
}

impl Limits {
    pub fn from_config(cfg: &config::Config) -> Limits {
        let message = match cfg.message_size_limit {
            0 => u32::MAX as usize,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Limits {
            concurrency: cfg.local_destination_concurrency_limit.max(1),
            max_request: message.saturating_add(ENVELOPE_ALLOWANCE),
        }
    }
}

/// Counts deliveries in flight; `acquire` waits for a free slot.
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self, limit: usize) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= limit {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
    }

    fn release(&self) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.freed.notify_all();
    }

    fn wait_idle(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy > 0 {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct Helper {
    agent: RwLock<(Arc<LocalAgent>, Limits)>,
    writer: Mutex<UnixStream>,
    slots: Slots,
}

impl Helper {
    fn reply(&self, id: u64, response: Response) {
        let frame = response.into_frame(id);
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = frame::write_frame(&mut *writer, &frame) {
            // The daemon is gone or stopping: it defers what it did not hear back about.
            warn!(target: "local", "cannot send a delivery result to the daemon: {e}");
        }
    }

    fn current(&self) -> (Arc<LocalAgent>, Limits) {
        self.agent.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Serves the daemon on `stream` until it closes its end (or breaks the protocol).
pub fn serve(
    stream: UnixStream,
    agent: LocalAgent,
    limits: Limits,
    reload: Reloader,
) -> io::Result<()> {
    let helper = Arc::new(Helper {
        agent: RwLock::new((Arc::new(agent), limits)),
        writer: Mutex::new(stream.try_clone()?),
        slots: Slots {
            busy: Mutex::new(0),
            freed: Condvar::new(),
        },
    });
    let mut reader = BufReader::new(stream);
    loop {
        let cap = helper.current().1.max_request;
        match frame::read_frame(&mut reader, cap) {
            Ok(None) => break,
            Ok(Some(Incoming::Oversized { id, len })) => helper.reply(id, too_large(len)),
            Ok(Some(Incoming::Frame(frame))) => {
                if !handle(&helper, frame, &reload) {
                    break;
                }
            }
            Err(e) => {
                error!(target: "local", "bad request from the daemon: {e}; closing the connection");
                break;
            }
        }
    }
    helper.slots.wait_idle();
    Ok(())
}

fn too_large(len: u64) -> Response {
    Response::Refused {
        dsn: "5.3.4".into(),
        text: format!("message too large for local delivery ({len} bytes)"),
    }
}

/// One request; false when it breaks the protocol (the connection is then closed).
fn handle(helper: &Arc<Helper>, frame: Frame, reload: &Reloader) -> bool {
    let id = frame.id;
    match Request::from_frame(frame) {
        Err(e) => {
            error!(target: "local", "bad request from the daemon: {e}; closing the connection");
            false
        }
        Ok(Request::Reload) => {
            let error = match reload() {
                Ok(fresh) => {
                    *helper.agent.write().unwrap_or_else(|p| p.into_inner()) =
                        (Arc::new(fresh.0), fresh.1);
                    info!(target: "local", "local delivery helper reloaded -- configuration and aliases re-read");
                    None
                }
                Err(e) => Some(e),
            };
            helper.reply(id, Response::Reloaded { error });
            true
        }
        Ok(Request::Deliver {
            queue_id,
            envelope,
            recipients,
            message,
        }) => {
            let (agent, limits) = helper.current();
            helper.slots.acquire(limits.concurrency);
            let worker = helper.clone();
            let job = move || {
                let response = deliver(&agent, queue_id, &envelope, &recipients, &message);
                worker.reply(id, response);
                worker.slots.release();
            };
            if let Err(e) = std::thread::Builder::new().name("local".into()).spawn(job) {
                error!(target: "local", "{queue_id}: cannot start a delivery thread: {e}");
                helper.slots.release();
                let text = format!("cannot start a local delivery thread: {e}");
                helper.reply(
                    id,
                    Response::Refused {
                        dsn: "4.3.0".into(),
                        text,
                    },
                );
            }
            true
        }
    }
}

/// Checks the request against the helper's own view, then delivers what passes.
///
/// The daemon is not trusted more than Postfix's local(8) trusts qmgr: indexes must name
/// distinct recipients of the envelope, and a recipient whose domain is not local by the
/// helper's own `mydestination` (nor in its `virtual_mailbox_domains`) is deferred, not delivered (the two configurations differ
/// only for the moment between a reload of one and of the other). Everything else — which
/// alias, which user, whose rights — is the agent's own resolution, as in-process.
fn deliver(
    agent: &LocalAgent,
    id: QueueId,
    envelope: &Envelope,
    recipients: &[usize],
    message: &[u8],
) -> Response {
    if let Err(why) = check_indexes(envelope, recipients) {
        warn!(target: "local", "{id}: refused a delivery request from the daemon: {why}");
        return Response::Refused {
            dsn: "4.3.0".into(),
            text: format!("local delivery helper refused the request: {why}"),
        };
    }
    let (local, foreign): (Vec<usize>, Vec<usize>) = recipients.iter().partition(|&&i| {
        let (_, domain) = envelope::split_address(&envelope.recipients[i].address);
        agent.is_local_domain(&domain) || agent.is_virtual_domain(&domain)
    });
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        agent.deliver(id, envelope, &local, message)
    }));
    let mut delivery = match attempt {
        Ok(delivery) => delivery,
        Err(_) => {
            error!(target: "local", "{id}: the local delivery agent panicked; message deferred");
            let text = "internal error in the local delivery agent";
            Delivery {
                outcomes: defer(&local, text),
                resubmit: Vec::new(),
            }
        }
    };
    let text = "recipient domain is not local for the local delivery helper";
    delivery.outcomes.extend(defer(&foreign, text));
    delivery
        .outcomes
        .sort_by_key(|o| recipients.iter().position(|&r| r == o.recipient));
    Response::Delivered(delivery)
}

fn check_indexes(envelope: &Envelope, recipients: &[usize]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for &index in recipients {
        if index >= envelope.recipients.len() {
            return Err(format!("no recipient #{index}"));
        }
        if !seen.insert(index) {
            return Err(format!("recipient #{index} named twice"));
        }
    }
    Ok(())
}

fn defer(recipients: &[usize], text: &str) -> Vec<Outcome> {
    recipients
        .iter()
        .map(|&i| Outcome::deferred(i, "4.3.0", "local", text))
        .collect()
}
