//! Waiting for something to become true: one polling loop ([`poll_for`]) under every wait
//! of the kit, and [`wait_until`], which fails the test with what it waited for. A test
//! never sleeps blindly and calls it an assertion.

use std::thread;
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails (generous: 2 cores, many tests).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Polling interval of the waits.
const POLL: Duration = Duration::from_millis(50);

/// Polls `done` every 50 ms for at most `limit`; false if it never became true.
pub fn poll_for(limit: Duration, done: impl FnMut() -> bool) -> bool {
    poll_every(POLL, limit, done)
}

/// [`poll_for`] with another interval (for checks that start a process, say).
pub fn poll_every(interval: Duration, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(interval);
    }
}

/// Polls `done` until it is true; fails the test after [`DEADLINE`], naming `what`.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    assert!(
        poll_for(DEADLINE, done),
        "timed out after {DEADLINE:?} waiting for {what}"
    );
}
