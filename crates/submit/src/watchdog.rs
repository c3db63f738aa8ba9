//! Bounds the time a submission spends after its input is read (DESIGN invariant 2: never
//! hang). A stuck fsync, NFS server or postdrop child must not leave a cron-spawned sendmail
//! behind: seed 000 is a screen full of such processes.
//!
//! States: `Armed` → `Committed` (the file is durable; the watchdog can no longer fire) or
//! `Armed` → `Fired` (time is up). Transitions happen only under the lock, so exactly one of
//! "the writer reports success" and "the watchdog removes the files" happens.
//!
//! A timeout can still leave an empty `tmp.*` behind when the create itself races the exit;
//! the daemon's stale temp cleanup removes it. It never leaves a partial file under a queue ID.
//!
//! When it fires it removes every file the write had registered, kills the registered helper
//! process, and then either exits the process with 75 after printing one line (production), or
//! only marks itself fired so the writer's next checkpoint fails (tests).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::maildrop::{MaildropError, Stage, WriteHooks};
use envelope::sysexits::EX_TEMPFAIL;

/// What happens when the time is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnTimeout {
    /// Print this line on standard error and exit the process with 75.
    Exit(String),
    /// Only fail the write (for tests: the process must survive).
    FailWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Armed,
    Committed,
    Fired,
}

struct State {
    phase: Phase,
    /// Files to remove if the watchdog fires: the temp name, then the final name.
    files: Vec<PathBuf>,
    /// A mailroom-postdrop child to kill if the watchdog fires.
    child: Option<u32>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

pub struct Watchdog {
    shared: Arc<Shared>,
}

impl Watchdog {
    /// Starts the clock: `timeout` from now the watchdog fires unless committed first.
    pub fn arm(timeout: Duration, on_timeout: OnTimeout) -> Watchdog {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Armed,
                files: Vec::new(),
                child: None,
            }),
            wake: Condvar::new(),
        });
        let watched = Arc::clone(&shared);
        let deadline = Instant::now() + timeout;
        thread::spawn(move || watch(&watched, deadline, on_timeout));
        Watchdog { shared }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// True once the time is up.
    pub fn fired(&self) -> bool {
        self.lock().phase == Phase::Fired
    }

    /// Records a helper process to kill on timeout; false if the watchdog already fired.
    pub fn watch_child(&self, pid: u32) -> bool {
        let mut state = self.lock();
        state.child = Some(pid);
        state.phase == Phase::Armed
    }

    /// The helper exited (not yet reaped): from now on its pid is not ours to kill.
    pub fn forget_child(&self) {
        self.lock().child = None;
    }

    /// The work finished (or failed) by itself: stop the clock.
    pub fn commit(&self) -> Result<(), MaildropError> {
        let mut state = self.lock();
        if state.phase == Phase::Fired {
            return Err(timed_out());
        }
        state.phase = Phase::Committed;
        state.files.clear();
        state.child = None;
        self.shared.wake.notify_all();
        Ok(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // An early return is also the end of the work: never fire after the caller moved on.
        let _ = self.commit();
    }
}

impl WriteHooks for Watchdog {
    fn checkpoint(&self, stage: Stage<'_>) -> Result<(), MaildropError> {
        match stage {
            Stage::Temp(path) | Stage::Linked(path) => {
                let mut state = self.lock();
                if state.phase == Phase::Fired {
                    return Err(timed_out());
                }
                state.files.push(path.to_path_buf());
                Ok(())
            }
            Stage::Durable => self.commit(),
        }
    }
}

fn timed_out() -> MaildropError {
    MaildropError::Interrupted("submit_timeout expired".into())
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic elsewhere must not disable the watchdog: the state stays meaningful.
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn watch(shared: &Shared, deadline: Instant, on_timeout: OnTimeout) {
    let mut state = lock(shared);
    while state.phase == Phase::Armed {
        let now = Instant::now();
        if now >= deadline {
            fire(&mut state, &on_timeout);
            return;
        }
        state = match shared.wake.wait_timeout(state, deadline - now) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Runs under the lock, so the writer cannot commit halfway through the cleanup.
fn fire(state: &mut State, on_timeout: &OnTimeout) {
    state.phase = Phase::Fired;
    if let Some(pid) = state.child.take() {
        // The pid is our own child and not yet reaped: the writer calls forget_child (under
        // this lock) before it reaps, so it cannot name another process.
        let _ = sys::kill(pid, sys::Signal::SIGKILL);
    }
    for path in state.files.drain(..) {
        let _ = std::fs::remove_file(path);
    }
    if let OnTimeout::Exit(line) = on_timeout {
        eprintln!("{line}");
        std::process::exit(i32::from(EX_TEMPFAIL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_and_removes_registered_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tmp.1");
        std::fs::write(&file, b"x").unwrap();
        let watchdog = Watchdog::arm(Duration::from_millis(20), OnTimeout::FailWrite);
        watchdog.checkpoint(Stage::Temp(&file)).unwrap();
        thread::sleep(Duration::from_millis(200));
        assert!(watchdog.fired());
        assert!(!file.exists());
        assert!(watchdog.checkpoint(Stage::Durable).is_err());
    }

    #[test]
    fn commit_wins_over_a_later_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ready");
        std::fs::write(&file, b"x").unwrap();
        let watchdog = Watchdog::arm(Duration::from_millis(50), OnTimeout::FailWrite);
        watchdog.checkpoint(Stage::Linked(&file)).unwrap();
        watchdog.checkpoint(Stage::Durable).unwrap();
        thread::sleep(Duration::from_millis(150));
        assert!(!watchdog.fired());
        assert!(file.exists());
    }
}
