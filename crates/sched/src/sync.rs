//! A mutex guard that survives a panicked holder: an agent panic is contained (DESIGN
//! invariant 4), so the scheduler's state must stay usable after one.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
