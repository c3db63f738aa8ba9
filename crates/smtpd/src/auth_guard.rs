//! What keeps failed AUTH attempts cheap: a password check is argon2id with 19 MiB of
//! memory, so checks run on [`VERIFY_THREADS`] dedicated threads (never on tokio's blocking
//! pool, whose hundreds of threads each kept a glibc arena full of freed hash buffers: 95
//! clients guessing took the daemon to 9 GB), at most that many at once; a session waits
//! up to [`VERIFY_WAIT`] for its turn, then gets `454 4.7.0`.
//!
//! Failures are counted per client network (the anvil's key: the address under
//! `smtpd_client_ipv4_prefix_length`/`smtpd_client_ipv6_prefix_length`) and per user name in fixed windows of
//! `anvil_rate_time_unit`. Past `smtpd_client_auth_failure_limit` in a window, AUTH from
//! that IP is refused at once (`450 4.7.1`), and a user name is refused without a check
//! (`454 4.7.0`), so guessing from many addresses is slow too. The counters are bounded
//! ([`MAX_TRACKED`] keys each); an attacker who floods them only loses the tracking of
//! new keys, never the bound on concurrent checks.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

/// Password checks at once (each holds ~19 MiB while it runs).
pub const VERIFY_THREADS: usize = 2;

/// How long a session waits for a free password checker.
pub const VERIFY_WAIT: Duration = Duration::from_secs(10);

/// The same wait under stress: a session queued for a checker holds a slot that nobody can
/// evict (it waits on the server, not on its client), so 100 clients guessing passwords
/// held every slot and a normal client got 421. Under stress they get `454 4.7.0` soon,
/// which (with the stress `smtpd_hard_error_limit` of 1) ends their session.
pub const VERIFY_WAIT_UNDER_STRESS: Duration = Duration::from_millis(500);

/// Keys each failure table tracks at most.
pub const MAX_TRACKED: usize = 100_000;

type Job = Box<dyn FnOnce() + Send>;

/// Why a check did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// Every checker stayed busy for the whole wait.
    Timeout,
    /// The checker threads are gone (they are never shut down; a bug).
    Gone,
}

pub struct AuthGuard {
    permits: Semaphore,
    jobs: mpsc::Sender<Job>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_ip: Windows<IpAddr>,
    by_user: Windows<String>,
}

/// glibc serves a freed allocation's size from the arena heaps from then on (its mmap
/// threshold adapts upwards), so every thread that ran or met a 19 MiB hash buffer kept
/// up to 64 MiB of heap: measured 290 MB after 50 sequential failed AUTHs. A fixed
/// threshold keeps such buffers in their own mappings, returned to the system on free.
/// Process-wide, and harmless for everything else (few allocations are this big).
pub fn return_large_buffers() {
    sys::set_mmap_threshold(LARGE_BUFFER);
}

/// Allocations from this size up get their own mapping.
const LARGE_BUFFER: usize = 1 << 20;

impl AuthGuard {
    /// Starts the checker threads.
    pub fn new() -> Arc<AuthGuard> {
        return_large_buffers();
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..VERIFY_THREADS {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("smtpd-auth-{n}"))
                .spawn(move || checker(&receiver));
            if let Err(e) = spawned {
                tracing::error!(target: "smtpd", "cannot start a password checker thread: {e}");
            }
        }
        Arc::new(AuthGuard {
            permits: Semaphore::new(VERIFY_THREADS),
            jobs: sender,
            failures: Mutex::default(),
        })
    }

    /// Runs `check` on a checker thread once one is free.
    pub async fn verify<T: Send + 'static>(
        &self,
        wait: Duration,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(wait, self.permits.acquire())
            .await
            .map_err(|_| Busy::Timeout)?
            .map_err(|_| Busy::Gone)?;
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = sender.send(check());
        });
        self.jobs.send(job).map_err(|_| Busy::Gone)?;
        let result = receiver.await.map_err(|_| Busy::Gone);
        drop(permit);
        result
    }

    /// Failures from `ip` in the current window.
    pub fn ip_failures(&self, ip: IpAddr, window: Duration) -> usize {
        self.lock().by_ip.count(&ip, window)
    }

    /// Failures for `user` in the current window.
    pub fn user_failures(&self, user: &str, window: Duration) -> usize {
        self.lock().by_user.count(&user.to_string(), window)
    }

    /// Counts one failure for `ip` and, when given, for `user`.
    pub fn failed(&self, ip: IpAddr, user: Option<&str>, window: Duration) {
        let mut failures = self.lock();
        failures.by_ip.add(ip, window);
        if let Some(user) = user {
            failures.by_user.add(user.to_string(), window);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One checker thread: runs jobs until the sender is dropped. A panic in a job is contained
/// (the session sees [`Busy::Gone`] and answers 454).
fn checker(receiver: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            receiver.recv()
        };
        match job {
            Ok(job) => {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Checker threads run at a lower CPU priority (nice +10): a flood of wrong passwords
/// keeps them busy all the time, and on a small machine they would otherwise take the
/// cores that the SMTP sessions (a normal client among them) need to answer promptly.
fn lower_priority() {
    sys::lower_thread_priority(10);
}

/// Counts per key in fixed windows (Postfix's anvil does the same per time unit).
struct Windows<K> {
    map: HashMap<K, (Instant, usize)>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows {
            map: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> Windows<K> {
    fn count(&self, key: &K, window: Duration) -> usize {
        match self.map.get(key) {
            Some((started, count)) if started.elapsed() < window => *count,
            _ => 0,
        }
    }

    fn add(&mut self, key: K, window: Duration) {
        if self.map.len() >= MAX_TRACKED && !self.map.contains_key(&key) {
            self.map
                .retain(|_, (started, _)| started.elapsed() < window);
            if self.map.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = self.map.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn failures_are_counted_per_window() {
        let guard = AuthGuard::new();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let minute = Duration::from_secs(60);
        for _ in 0..3 {
            guard.failed(ip, Some("bob"), minute);
        }
        guard.failed(other, None, minute);
        assert_eq!(guard.ip_failures(ip, minute), 3);
        assert_eq!(guard.ip_failures(other, minute), 1);
        assert_eq!(guard.user_failures("bob", minute), 3);
        assert_eq!(guard.user_failures("alice", minute), 0);
        // A window that has passed counts nothing, and the next failure starts a new one.
        let short = Duration::from_millis(20);
        std::thread::sleep(short * 2);
        assert_eq!(guard.ip_failures(ip, short), 0);
        guard.failed(ip, None, short);
        assert_eq!(guard.ip_failures(ip, minute), 1);
    }

    #[tokio::test]
    async fn checks_run_at_most_verify_threads_at_once() {
        let guard = AuthGuard::new();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let guard = guard.clone();
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                guard
                    .verify(VERIFY_WAIT, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        true
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(true));
        }
        assert!(peak.load(Ordering::SeqCst) <= VERIFY_THREADS);
        let panicked = guard
            .verify(VERIFY_WAIT, || -> bool { panic!("a bug in a check") })
            .await;
        assert_eq!(panicked, Err(Busy::Gone));
        assert_eq!(
            guard.verify(VERIFY_WAIT, || 7).await,
            Ok(7),
            "the thread survives"
        );
    }

    #[tokio::test]
    async fn a_short_wait_gives_up_while_every_checker_is_busy() {
        let guard = AuthGuard::new();
        // Every checker is held until the test lets go (a fixed 800 ms check and a 100 ms
        // head start raced a loaded box: the refused check could find a checker free).
        let (running, release) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut busy = Vec::new();
        for _ in 0..VERIFY_THREADS {
            let guard = guard.clone();
            let (running, release) = (running.clone(), release.clone());
            busy.push(tokio::spawn(async move {
                guard
                    .verify(VERIFY_WAIT, move || {
                        running.fetch_add(1, Ordering::SeqCst);
                        let deadline = std::time::Instant::now() + Duration::from_secs(120);
                        while !release.load(Ordering::SeqCst)
                            && std::time::Instant::now() < deadline
                        {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    })
                    .await
            }));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while running.load(Ordering::SeqCst) < VERIFY_THREADS
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = std::time::Instant::now();
        let refused = guard.verify(VERIFY_WAIT_UNDER_STRESS, || 1).await;
        assert_eq!(refused, Err(Busy::Timeout));
        // It gave up after the short wait, not the normal one (the margin is for a slow box).
        assert!(
            started.elapsed() < VERIFY_WAIT / 2,
            "{:?}",
            started.elapsed()
        );
        release.store(true, Ordering::SeqCst);
        for task in busy {
            assert_eq!(task.await.unwrap(), Ok(()));
        }
    }
}
