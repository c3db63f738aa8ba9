//! Admission of one delivery (the fleet's [`sched::fleet::FleetLink::admit`]).
//!
//! One delivery per destination at a time negotiates for the node (the others queue behind
//! it on a per-destination lock), so a rate-limited destination costs each node about one
//! Redis call per message slot, not one per waiting delivery. The negotiator asks Redis
//! (the `ADMIT` script: a lease and a message slot, atomically); told to wait, it sleeps
//! exactly until the next message slot, or with a short backoff (cut short when a local
//! permit comes back) for a connection slot. With Redis down it applies the local share.

use crate::link::Link;
use crate::local::Take;
use crate::scripts::{conn_key, rate_key, ADMIT};
use crate::Inner;
use sched::fleet::{Admission, Permit};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a lease lives unless renewed (the fleet's loop renews held ones well before).
pub const LEASE: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// A granted connection slot: given back (locally, and in Redis if it is there) on drop.
struct Held {
    inner: Arc<Inner>,
    destination: String,
    serial: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.inner.release(&self.destination, self.serial);
    }
}

/// Where one try ended.
enum Try {
    Granted { in_redis: bool },
    Full,
    Wait(Duration),
}

pub async fn admit(inner: &Arc<Inner>, destination: &str, limit: usize) -> Admission {
    let asker = inner.asker(destination);
    let _turn = asker.lock().await;
    let mut backoff = Duration::from_millis(5);
    loop {
        if let Some(reason) = inner.dead_reason(destination) {
            return Admission::Dead(reason);
        }
        let released = inner.local.released.notified();
        let serial = inner.serial.fetch_add(1, Ordering::Relaxed);
        let wait = match try_once(inner, destination, limit, serial).await {
            Try::Granted { in_redis } => {
                return Admission::Go(grant(inner, destination, serial, in_redis))
            }
            Try::Wait(d) => d,
            Try::Full => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff + Duration::from_millis(fastrand::u64(0..5))
            }
        };
        tokio::select! {
            _ = released => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn grant(inner: &Arc<Inner>, destination: &str, serial: u64, in_redis: bool) -> Permit {
    inner.hold(destination, serial, in_redis);
    Box::new(Held {
        inner: inner.clone(),
        destination: destination.to_string(),
        serial,
    })
}

/// Redis when it answers, else this node's share.
async fn try_once(inner: &Inner, destination: &str, limit: usize, serial: u64) -> Try {
    let interval = inner.settings.interval(destination);
    if let Some(link) = &inner.link {
        if let Some(answer) = ask_redis(inner, link, destination, limit, interval, serial).await {
            return answer;
        }
    }
    let n = inner.link.as_ref().map_or(1, Link::node_count);
    let share = (limit / n).max(1);
    let spacing = interval * n as u32;
    match inner
        .local
        .take(destination, share, spacing, Instant::now())
    {
        Take::Granted => Try::Granted { in_redis: false },
        Take::Full => Try::Full,
        Take::Wait(d) => Try::Wait(d),
    }
}

/// `None` when Redis cannot be asked (down, or this call failed: the link is then down).
async fn ask_redis(
    inner: &Inner,
    link: &Link,
    destination: &str,
    limit: usize,
    interval: Duration,
    serial: u64,
) -> Option<Try> {
    let mut conn = link.conn()?;
    let member = format!("{}:{serial}", inner.settings.node_name);
    let answer: redis::RedisResult<i64> = ADMIT
        .key(conn_key(destination))
        .key(rate_key(destination))
        .arg(limit)
        .arg(&member)
        .arg(LEASE.as_millis() as u64)
        .arg(millis(interval))
        .invoke_async(&mut conn)
        .await;
    match answer {
        Ok(0) => {
            inner.local.count(destination);
            Some(Try::Granted { in_redis: true })
        }
        Ok(-1) => Some(Try::Full),
        Ok(ms) => Some(Try::Wait(Duration::from_millis(ms.max(1) as u64))),
        Err(e) => {
            link.lost(&e);
            None
        }
    }
}

/// Milliseconds between messages as the script takes them: a rate above 1,000 a second
/// is one a millisecond; zero stays zero (no rate).
fn millis(interval: Duration) -> u64 {
    match interval.is_zero() {
        true => 0,
        false => (interval.as_millis() as u64).max(1),
    }
}
