//! The journaled-file-system levers of the commit path, kept beside `store.rs`: preparing
//! the next pre-zeroed segment (see `spare.rs`) and the bounded group commit delay.
//!
//! Why a delay helps at all: each writer has one record in flight, so a batch can hold at
//! most as many records as there are writers. A leader that starts writing the moment the
//! previous batch is done often catches only the writers that were quick to come back; the
//! others then wait one whole flush more. Waiting a little (bounded, and only while fewer
//! records are pending than the last batch held) lets the batch fill up.

use super::{Commit, Store};
use crate::segment;
use std::sync::MutexGuard;
use std::time::Instant;

impl Store {
    /// Starts zeroing the segment after the active one, if preallocation is on and space
    /// is not short (two more segments' worth must fit above `min_free`).
    pub(super) fn prepare_spare(&self, state: &mut Commit) {
        let o = &self.inner.options;
        if !o.preallocate {
            return;
        }
        let room = segment::free_bytes(&self.inner.dir)
            .is_ok_and(|f| f >= o.segment_size.saturating_mul(2).saturating_add(o.min_free));
        if room {
            let next = state.active.number + 1;
            state
                .spare
                .start(&self.inner.dir, next, o.segment_size, o.dsync_writes);
        }
    }

    /// The commit delay (see [`StoreOptions::commit_delay`]): holds the leader until as many
    /// records are pending as the last batch held, or the delay is over.
    pub(super) fn wait_for_writers<'a>(
        &self,
        mut state: MutexGuard<'a, Commit>,
    ) -> MutexGuard<'a, Commit> {
        let delay = self.inner.options.commit_delay;
        if delay.is_zero() || state.last_batch < 2 || state.pending.is_empty() {
            return state;
        }
        let deadline = Instant::now() + delay;
        state.delaying = true;
        while state.pending.len() < state.last_batch {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .inner
                .arrived
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.delaying = false;
        state
    }
}
