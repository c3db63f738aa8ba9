//! The state the queue manager's parts share: the store and settings, the due-time
//! index, the dispatch state machine, and the suspended destinations. `deliver` and `carry` act through it; `manager`
//! drives them.

use crate::dispatch::Dispatch;
use crate::due::Due;
use crate::shared::Shared;
use crate::suspend::Suspended;
use crate::sync::lock;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub(crate) struct Context {
    pub shared: Arc<Shared>,
    pub due: Due,
    pub dispatch: Mutex<Dispatch>,
    /// The suspended destinations and the messages they park.
    pub suspended: Mutex<Suspended>,
    /// Held while the suspension file is read, changed and written (fsyncs included), so
    /// writers take turns without holding `suspended`, which every dispatch takes.
    pub suspend_writes: Mutex<()>,
    /// Recipients delivered and bounced since start (doctor's history samples them).
    pub delivered: AtomicU64,
    pub bounced: AtomicU64,
}

impl Context {
    /// True once a clean stop began: retries of durable steps give up.
    pub fn stopping(&self) -> bool {
        lock(&self.dispatch).stopping()
    }
}
