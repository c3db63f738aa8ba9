//! `async` forms of the writing calls, for tokio tasks (SMTP sessions, the scheduler).
//!
//! A task pushes its record and awaits a oneshot answered by whichever thread writes the
//! batch; no blocking-pool thread is held per message. Only when no batch is being written
//! does the caller start one writer on the blocking pool, which then keeps writing batches
//! while records keep arriving (group commit across all sessions).

use crate::{FollowUp, Store, StoreError, Update};
use envelope::{Envelope, QueueId, RecipientState};
use tokio::sync::oneshot;

/// Runs a driver on the blocking pool (it writes and fsyncs), if one was handed back.
fn start(driver: Option<crate::Driver>) {
    if let Some(driver) = driver {
        tokio::task::spawn_blocking(move || driver.run());
    }
}

async fn answer(rx: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
    rx.await
        .unwrap_or_else(|_| Err(StoreError::Corrupt("store writer stopped".into())))
}

impl Store {
    /// [`Store::enqueue_with`] without blocking the task: returns once durable.
    pub async fn enqueue_async(
        &self,
        id: QueueId,
        envelope: Envelope,
        message: &[u8],
        follow_up: Option<FollowUp>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        start(
            self.enqueue_then(id, envelope, message, follow_up, move |r| {
                let _ = tx.send(r);
            }),
        );
        answer(rx).await
    }

    /// [`Store::update`] without blocking the task: returns once durable.
    pub async fn update_async(&self, id: QueueId, update: Update) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        start(self.update_then(id, update, move |r| {
            let _ = tx.send(r);
        }));
        answer(rx).await
    }

    /// [`Store::set_recipients_then`] without blocking the task: returns once durable.
    pub async fn set_recipients_async(
        &self,
        id: QueueId,
        states: Vec<(usize, RecipientState)>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        start(self.set_recipients_then(id, states, move |r| {
            let _ = tx.send(r);
        }));
        answer(rx).await
    }

    /// [`Store::remove`] without blocking the task: returns once durable.
    pub async fn remove_async(&self, id: QueueId, reason: &str) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        start(self.remove_then(id, reason, move |r| {
            let _ = tx.send(r);
        }));
        answer(rx).await
    }
}
