//! Wall-clock time in the queue's unit (Unix seconds): due times and retry times are stored
//! in it. Deciding code never reads the clock itself; it is handed `now`.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
