//! Overload: Postfix's stress-adaptive behaviour (STRESS_README) for a server that runs
//! every session in one process, plus the one thing a single process can do that Postfix's
//! master cannot: give the slot of a stalled session to a new client.
//!
//! * **Stress** is on while the open sessions are at least [`STRESS_PERCENT`] % of
//!   `smtpd_process_limit`. Postfix turns it on when every smtpd process is busy; new
//!   clients then wait in the kernel's listen queue. mailroom refuses a client over the limit
//!   with 421 instead of letting it wait, so it adapts before the limit is reached. Under
//!   stress every session (open ones included: the flag is watched) uses the `stress`
//!   values of `smtpd_timeout`, `smtpd_per_request_deadline`, `smtpd_hard_error_limit`,
//!   `smtpd_junk_command_limit` and `smtpd_session_deadline`.
//! * **Eviction**: when a client arrives while every slot is taken, the session that has
//!   waited longest for its client (an unfinished command line, or a stall in DATA) and
//!   for at least [`EVICT_AFTER`] is told to close (421 4.4.2), and the newcomer takes its
//!   slot. A client that trickles bytes is always waiting; a working client almost never
//!   is, so the trickler goes first. Each session is evicted at most once.
//!
//! The state is a handful of atomics and one registry map behind a mutex, touched at
//! connect, at close and at each read that has to wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// Stress begins at this share of `smtpd_process_limit`.
pub const STRESS_PERCENT: usize = 80;

/// A session must have waited this long for its client before it can be evicted.
pub const EVICT_AFTER: Duration = Duration::from_secs(2);

/// Whether the server is under stress, as every session sees it.
#[derive(Debug, Clone)]
pub struct StressFlag(watch::Receiver<bool>);

impl StressFlag {
    /// A flag with its own sender (tests, and sessions outside a listener).
    pub fn manual() -> (watch::Sender<bool>, StressFlag) {
        let (sender, receiver) = watch::channel(false);
        (sender, StressFlag(receiver))
    }

    pub fn get(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the flag may have changed; never, once the sender is gone.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One session as the load registry sees it.
#[derive(Debug)]
pub struct Presence {
    epoch: Instant,
    /// Milliseconds after `epoch` + 1 since the session began waiting; 0 = not waiting.
    waiting_since: AtomicU64,
    /// Waiting on the server under stress: evictable at once ([`Presence::begin_server_wait`]).
    server_wait: AtomicBool,
    evicted: AtomicBool,
    evict: Notify,
}

impl Presence {
    fn new(epoch: Instant) -> Presence {
        Presence {
            epoch,
            waiting_since: AtomicU64::new(0),
            server_wait: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    /// The session waits for its client (kept if it was already waiting).
    pub fn begin_wait(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let _ = self
            .waiting_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The session waits on the server for something a flood makes scarce (a password
    /// checker): under stress it may be evicted at once, before the sessions that wait for
    /// their clients. Such a session holds a slot and no client data; 100 password guessers
    /// queued for the two checkers otherwise held every slot, and a normal client got 421.
    pub fn begin_server_wait(&self) {
        self.server_wait.store(true, Ordering::Relaxed);
    }

    /// The client delivered what the session waited for (or the server's wait is over).
    pub fn end_wait(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
        self.server_wait.store(false, Ordering::Relaxed);
    }

    fn waited(&self) -> Option<Duration> {
        if self.server_wait.load(Ordering::Relaxed) {
            return Some(Duration::MAX);
        }
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.epoch.elapsed().as_millis() as u64 + 1;
                Some(Duration::from_millis(now.saturating_sub(since)))
            }
        }
    }

    /// Resolves once the session has been chosen for eviction.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// The server's load: open sessions, the stress flag, and who is waiting.
pub struct Load {
    limit: usize,
    epoch: Instant,
    active: AtomicUsize,
    stress: watch::Sender<bool>,
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<Presence>>>,
}

/// A session's place in the registry; leaving it updates the load.
pub struct Registration {
    load: Arc<Load>,
    id: u64,
    pub presence: Arc<Presence>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.load.lock().remove(&self.id);
        let active = self.load.active.fetch_sub(1, Ordering::Relaxed) - 1;
        self.load.update(active);
    }
}

impl Load {
    pub fn new(limit: usize) -> Arc<Load> {
        let (stress, _) = watch::channel(false);
        Arc::new(Load {
            limit,
            epoch: Instant::now(),
            active: AtomicUsize::new(0),
            stress,
            next_id: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn flag(&self) -> StressFlag {
        StressFlag(self.stress.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Presence>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session that holds a slot.
    pub fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let presence = Arc::new(Presence::new(self.epoch));
        self.lock().insert(id, presence.clone());
        let active = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.update(active);
        Registration {
            load: self.clone(),
            id,
            presence,
        }
    }

    fn update(&self, active: usize) {
        let stressed = is_stressed(active, self.limit);
        let changed = self.stress.send_if_modified(|current| {
            let changed = *current != stressed;
            *current = stressed;
            changed
        });
        match (changed, stressed) {
            (true, true) => {
                warn!(target: "smtpd", "{active} of smtpd_process_limit {} SMTP sessions in use: stress-adaptive limits on (see STRESS_README)", self.limit)
            }
            (true, false) => {
                info!(target: "smtpd", "{active} of smtpd_process_limit {} SMTP sessions in use: stress-adaptive limits off", self.limit)
            }
            _ => {}
        }
    }

    /// Tells the session that has waited longest (at least [`EVICT_AFTER`]) to close;
    /// false when no session qualifies.
    pub fn evict_stalest(&self) -> bool {
        let sessions = self.lock();
        let stalest = sessions
            .values()
            .filter(|p| !p.evicted.load(Ordering::Relaxed))
            .filter_map(|p| p.waited().map(|waited| (waited, p)))
            .filter(|(waited, _)| *waited >= EVICT_AFTER)
            .max_by_key(|(waited, _)| *waited);
        match stalest {
            Some((_, presence)) => {
                presence.evicted.store(true, Ordering::Relaxed);
                presence.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The stress rule: at least [`STRESS_PERCENT`] % of the limit in use.
pub fn is_stressed(active: usize, limit: usize) -> bool {
    active * 100 >= limit * STRESS_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_starts_at_eighty_percent() {
        let table = [
            (0, 100, false),
            (79, 100, false),
            (80, 100, true),
            (100, 100, true),
            (3, 5, false),
            (4, 5, true),
            (1, 1, true),
        ];
        for (active, limit, expected) in table {
            assert_eq!(is_stressed(active, limit), expected, "{active}/{limit}");
        }
    }

    #[tokio::test]
    async fn the_longest_waiting_session_is_evicted_once() {
        let load = Load::new(10);
        let flag = load.flag();
        let sessions: Vec<Registration> = (0..8).map(|_| load.register()).collect();
        assert!(flag.get(), "8 of 10 is stress");
        assert!(!load.evict_stalest(), "nobody has waited yet");
        sessions[3].presence.begin_wait();
        std::thread::sleep(Duration::from_millis(100));
        sessions[5].presence.begin_wait();
        sessions[5].presence.begin_wait(); // a wait already begun keeps its start
        std::thread::sleep(EVICT_AFTER);
        assert!(load.evict_stalest());
        tokio::time::timeout(Duration::from_secs(1), sessions[3].presence.evicted())
            .await
            .expect("session 3 told to close");
        assert!(load.evict_stalest(), "session 5 qualifies now");
        assert!(!load.evict_stalest(), "no session is evicted twice");
        drop(sessions);
        assert!(!flag.get(), "all closed: no stress");
    }

    #[tokio::test]
    async fn a_session_waiting_for_a_password_checker_goes_first() {
        let load = Load::new(10);
        let sessions: Vec<Registration> = (0..10).map(|_| load.register()).collect();
        sessions[2].presence.begin_wait();
        std::thread::sleep(Duration::from_millis(50));
        sessions[7].presence.begin_server_wait();
        assert!(load.evict_stalest(), "at once, without EVICT_AFTER");
        tokio::time::timeout(Duration::from_secs(1), sessions[7].presence.evicted())
            .await
            .expect("the session waiting on the server told to close");
        sessions[4].presence.begin_server_wait();
        sessions[4].presence.end_wait();
        assert!(!load.evict_stalest(), "a finished check is not a wait");
    }
}
