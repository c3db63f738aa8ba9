//! The daemon's side: one connection to the helper shared by every local delivery. Each
//! request gets an id; a reader task hands each reply to the delivery waiting for that id,
//! so deliveries run concurrently on one socket (the queue manager bounds how many, by
//! `local_destination_concurrency_limit`). Whole frames go through one writer task, so a
//! delivery that is cancelled halfway can never leave half a frame on the socket.
//!
//! A dead helper (end of stream, a broken frame, a write error) fails every waiting and
//! every later request as deferred 4.3.0, never as sent or bounced: the message stays
//! queued and is tried again once a helper is back.

use super::frame::{self, Frame};
use super::wire::{Request, Response};
use crate::local::Delivery;
use envelope::{Envelope, Outcome, QueueId};
use std::collections::HashMap;
use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, warn};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// The connection to the local delivery helper.
pub struct HelperClient {
    outgoing: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    pending: Pending,
    next_id: AtomicU64,
    dead: watch::Receiver<Option<String>>,
}

impl HelperClient {
    /// Takes the daemon's end of the socketpair; call inside the runtime.
    pub fn start(stream: StdUnixStream) -> io::Result<Arc<HelperClient>> {
        stream.set_nonblocking(true)?;
        let (read, write) = UnixStream::from_std(stream)?.into_split();
        let (dead_tx, dead) = watch::channel(None);
        let dead_tx = Arc::new(dead_tx);
        let pending: Pending = Arc::default();
        let (outgoing, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_frames(write, queue, dead_tx.clone()));
        tokio::spawn(read_replies(read, pending.clone(), dead_tx));
        Ok(Arc::new(HelperClient {
            outgoing: Mutex::new(Some(outgoing)),
            pending,
            next_id: AtomicU64::new(1),
            dead,
        }))
    }

    /// Delivers through the helper; every failure to hear back is a deferral.
    pub async fn deliver(
        &self,
        queue_id: QueueId,
        envelope: Envelope,
        recipients: &[usize],
        message: Vec<u8>,
    ) -> Delivery {
        let request = Request::Deliver {
            queue_id,
            envelope,
            recipients: recipients.to_vec(),
            message,
        };
        match self.call(request).await {
            Ok(Response::Delivered(delivery)) => delivery,
            Ok(Response::Refused { dsn, text }) => refused(recipients, &dsn, &text),
            Ok(other) => {
                error!(target: "local", "{queue_id}: unexpected reply from the local delivery helper: {other:?}");
                refused(
                    recipients,
                    "4.3.0",
                    "unexpected reply from the local delivery helper",
                )
            }
            Err(why) => refused(recipients, "4.3.0", &why),
        }
    }

    /// Asks the helper to re-read its configuration and aliases; `Err` says why it did not.
    pub async fn reload(&self) -> Result<(), String> {
        match self.call(Request::Reload).await? {
            Response::Reloaded { error: None } => Ok(()),
            Response::Reloaded { error: Some(e) } => Err(e),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Becomes `Some(reason)` once the helper is gone.
    pub fn dead(&self) -> watch::Receiver<Option<String>> {
        self.dead.clone()
    }

    /// Closes the daemon's end (after the stop): the helper finishes what it has and exits.
    pub fn close(&self) {
        self.outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    async fn call(&self, request: Request) -> Result<Response, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = request
            .into_frame(id)
            .encode()
            .map_err(|e| format!("cannot send to the local delivery helper: {e}"))?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        // The reader marks the helper dead before it drops the waiting senders: a request
        // registered after that sees the mark here.
        let sent = match &*self.outgoing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(queue) if self.dead.borrow().is_none() => queue.send(bytes).is_ok(),
            _ => false,
        };
        if !sent {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(self.why_dead());
        }
        rx.await.map_err(|_| self.why_dead())
    }

    fn why_dead(&self) -> String {
        match &*self.dead.borrow() {
            Some(reason) => format!("local delivery helper is not running ({reason})"),
            None => "local delivery helper connection is closed".to_string(),
        }
    }
}

fn refused(recipients: &[usize], dsn: &str, text: &str) -> Delivery {
    let outcome = |i| match dsn.starts_with('5') {
        true => Outcome::bounced(i, dsn, "local", text),
        false => Outcome::deferred(i, dsn, "local", text),
    };
    Delivery {
        outcomes: recipients.iter().map(|&i| outcome(i)).collect(),
        resubmit: Vec::new(),
    }
}

fn mark_dead(dead: &watch::Sender<Option<String>>, reason: String) {
    dead.send_if_modified(|current| {
        let first = current.is_none();
        if first {
            *current = Some(reason);
        }
        first
    });
}

async fn write_frames(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    dead: Arc<watch::Sender<Option<String>>>,
) {
    while let Some(bytes) = queue.recv().await {
        if let Err(e) = write.write_all(&bytes).await {
            mark_dead(&dead, format!("cannot write to it: {e}"));
            return;
        }
    }
    // Closed by the daemon: the helper reads the end of the stream and exits.
    let _ = write.shutdown().await;
}

async fn read_replies(
    mut read: OwnedReadHalf,
    pending: Pending,
    dead: Arc<watch::Sender<Option<String>>>,
) {
    let reason = loop {
        match frame::read_frame_async(&mut read).await {
            Ok(Some(frame)) => deliver_reply(&pending, frame),
            Ok(None) => break "it closed the connection".to_string(),
            Err(e) => break format!("bad reply: {e}"),
        }
    };
    mark_dead(&dead, reason);
    // Dropping the senders wakes every waiting delivery with an error: deferred.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

fn deliver_reply(pending: &Pending, frame: Frame) {
    let id = frame.id;
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    match (Response::from_frame(frame), waiter) {
        (Ok(response), Some(waiter)) => {
            let _ = waiter.send(response);
        }
        (Ok(_), None) => {
            warn!(target: "local", "reply from the local delivery helper for unknown request {id}")
        }
        (Err(e), _) => error!(target: "local", "bad reply from the local delivery helper: {e}"),
    }
}
