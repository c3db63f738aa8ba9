//! This node's own count of its connections per destination and its own message spacing:
//! the whole limit for a node alone (a rate limit without a fleet), its share of the limit
//! (divided by the node count) while Redis cannot be reached. Every permit, however it was
//! granted, counts here, so a node that loses Redis with more connections open than its
//! share opens no new one until it is back under it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Default)]
struct Dest {
    in_use: usize,
    /// When the next message may go (GCRA without burst, as the Redis script).
    next: Option<Instant>,
}

#[derive(Default)]
pub struct Local {
    dests: Mutex<HashMap<String, Dest>>,
    /// Woken when a permit is given back: a waiting delivery tries again at once.
    pub released: Notify,
}

/// What [`Local::take`] says.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Granted,
    /// No connection slot: wait for a release.
    Full,
    /// The next message slot is this far away.
    Wait(Duration),
}

impl Local {
    /// Counts a permit granted by Redis.
    pub fn count(&self, destination: &str) {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        dests.entry(destination.to_string()).or_default().in_use += 1;
    }

    /// Grants a permit if fewer than `limit` are in use and `interval` has passed since the
    /// last message (zero: no rate).
    pub fn take(&self, destination: &str, limit: usize, interval: Duration, now: Instant) -> Take {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let dest = dests.entry(destination.to_string()).or_default();
        if dest.in_use >= limit.max(1) {
            return Take::Full;
        }
        if !interval.is_zero() {
            match dest.next {
                Some(next) if next > now => return Take::Wait(next - now),
                _ => dest.next = Some(now + interval),
            }
        }
        dest.in_use += 1;
        Take::Granted
    }

    /// A permit is given back; an idle destination with no rate pending is forgotten.
    pub fn release(&self, destination: &str) {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dest) = dests.get_mut(destination) {
            dest.in_use = dest.in_use.saturating_sub(1);
            let idle = dest.in_use == 0 && dest.next.is_none_or(|n| n <= Instant::now());
            if idle {
                dests.remove(destination);
            }
        }
        drop(dests);
        self.released.notify_waiters();
    }

    #[cfg(test)]
    pub fn in_use(&self, destination: &str) -> usize {
        let dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        dests.get(destination).map_or(0, |d| d.in_use)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_alone_holds_its_limit_and_spaces_messages() {
        let local = Local::default();
        let now = Instant::now();
        let gap = Duration::from_millis(100);
        assert_eq!(local.take("d", 2, gap, now), Take::Granted);
        assert_eq!(local.take("d", 2, gap, now), Take::Wait(gap));
        let later = now + gap;
        assert_eq!(local.take("d", 2, gap, later), Take::Granted);
        assert_eq!(local.take("d", 2, Duration::ZERO, later), Take::Full);
        local.release("d");
        assert_eq!(local.in_use("d"), 1);
        assert_eq!(local.take("d", 2, Duration::ZERO, later), Take::Granted);
    }

    #[test]
    fn permits_from_redis_count_against_the_fallback_share() {
        let local = Local::default();
        (0..4).for_each(|_| local.count("d"));
        let now = Instant::now();
        assert_eq!(local.take("d", 3, Duration::ZERO, now), Take::Full);
        local.release("d");
        local.release("d");
        assert_eq!(local.take("d", 3, Duration::ZERO, now), Take::Granted);
    }
}
