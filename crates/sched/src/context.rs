//! The state the queue manager's parts share: the store and settings, the due-time
//! index, and the dispatch state machine. `deliver` and `carry` act through it; `manager`
//! drives them.

use crate::dispatch::Dispatch;
use crate::due::Due;
use crate::shared::Shared;
use crate::sync::lock;
use std::sync::{Arc, Mutex};

pub(crate) struct Context {
    pub shared: Arc<Shared>,
    pub due: Due,
    pub dispatch: Mutex<Dispatch>,
}

impl Context {
    /// True once a clean stop began: retries of durable steps give up.
    pub fn stopping(&self) -> bool {
        lock(&self.dispatch).stopping()
    }
}
