//! Retry timing as pure functions of (attempts, now, parameters, randomness).
//!
//! The delay after the n-th failed attempt doubles from `minimal_backoff_time` and is capped
//! at `maximal_backoff_time` (Postfix's rule), then spread by ±10% random jitter so that a
//! destination that comes back is not hit by the whole deferred queue in the same second
//! (Postfix has no jitter). Expiry: a message older than its lifetime bounces at its next
//! failure; a lifetime of 0 means "bounce at the first failure", as in Postfix.

use std::time::Duration;

/// The un-jittered delay after `attempts` failed attempts (1 = the first failure).
pub fn backoff(attempts: u32, minimal: Duration, maximal: Duration) -> Duration {
    let min = minimal.as_secs().max(1);
    let max = maximal.as_secs().max(min);
    let doublings = attempts.saturating_sub(1).min(40);
    let delay = min.saturating_mul(1u64 << doublings).min(max);
    Duration::from_secs(delay)
}

/// Unix time of the next attempt. `jitter` is a random number in `[0, 1)`.
pub fn next_attempt(
    now: u64,
    attempts: u32,
    minimal: Duration,
    maximal: Duration,
    jitter: f64,
) -> u64 {
    let base = backoff(attempts, minimal, maximal).as_secs() as f64;
    let spread = base * 0.2 * (jitter.clamp(0.0, 1.0) - 0.5); // ±10%
    now + (base + spread).round().max(1.0) as u64
}

/// How long to wait before retrying a durable step (recording an outcome, removing a
/// delivered message, queueing a notice) that failed `failures` times in a row: 1 s,
/// doubling, at most 30 s. Quicker than a delivery retry: the delivery is done, only its
/// record is missing, and the message holds a delivery slot until the record is written.
pub fn durable_step_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(5);
    Duration::from_secs((1u64 << doublings).min(DURABLE_STEP_MAX_DELAY))
}

const DURABLE_STEP_MAX_DELAY: u64 = 30;

/// True when a message that arrived at `arrival` has outlived `lifetime` at `now`.
pub fn expired(arrival: u64, now: u64, lifetime: Duration) -> bool {
    now.saturating_sub(arrival) >= lifetime.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(300);
    const MAX: Duration = Duration::from_secs(4000);

    #[test]
    fn a_failed_durable_step_is_retried_after_a_doubling_delay_of_at_most_30_seconds() {
        let got: Vec<u64> = (1..=7).map(|n| durable_step_delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(durable_step_delay(0).as_secs(), 1);
        assert_eq!(durable_step_delay(u32::MAX).as_secs(), 30);
    }

    #[test]
    fn doubles_from_min_and_caps_at_max() {
        let got: Vec<u64> = (1..=6).map(|n| backoff(n, MIN, MAX).as_secs()).collect();
        assert_eq!(got, vec![300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(backoff(u32::MAX, MIN, MAX).as_secs(), 4000);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let j = i as f64 / 1000.0;
            for n in 1..8 {
                let base = backoff(n, MIN, MAX).as_secs();
                let next = next_attempt(1000, n, MIN, MAX, j) - 1000;
                assert!(
                    next * 10 >= base * 9 && next * 10 <= base * 11,
                    "{n} {j} {next}"
                );
            }
            seen.insert(next_attempt(0, 1, MIN, MAX, j));
        }
        assert!(
            seen.len() > 50,
            "a deferred crowd is spread over many seconds"
        );
    }

    #[test]
    fn next_attempt_is_always_in_the_future() {
        for n in [0, 1, 2, 100] {
            assert!(next_attempt(5, n, Duration::ZERO, Duration::ZERO, 0.0) > 5);
        }
    }

    #[test]
    fn expiry() {
        let five_days = Duration::from_secs(5 * 86400);
        assert!(!expired(0, 5 * 86400 - 1, five_days));
        assert!(expired(0, 5 * 86400, five_days));
        assert!(
            expired(100, 100, Duration::ZERO),
            "0 = bounce at first failure"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the parameters, the next attempt is in the future, within ±10% (and
            /// a second of rounding) of the backoff, and the backoff stays within
            /// [minimal, maximal] (minimal at least 1 s).
            #[test]
            fn next_attempt_is_bounded(now in 0u64..4_000_000_000, attempts in 0u32..10_000,
                                       min in 0u64..100_000, extra in 0u64..1_000_000, jitter in 0.0f64..1.0) {
                let (minimal, maximal) = (Duration::from_secs(min), Duration::from_secs(min + extra));
                let base = backoff(attempts, minimal, maximal).as_secs();
                prop_assert!(base >= min.max(1) && base <= (min + extra).max(min.max(1)));
                let next = next_attempt(now, attempts, minimal, maximal, jitter);
                prop_assert!(next > now);
                let delay = (next - now) as f64;
                prop_assert!(delay >= base as f64 * 0.9 - 1.0 && delay <= base as f64 * 1.1 + 1.0, "{delay} vs {base}");
            }

            /// More failures never mean an earlier retry (before jitter).
            #[test]
            fn backoff_never_shrinks(attempts in 0u32..1_000, min in 1u64..10_000, extra in 0u64..100_000) {
                let (minimal, maximal) = (Duration::from_secs(min), Duration::from_secs(min + extra));
                prop_assert!(backoff(attempts + 1, minimal, maximal) >= backoff(attempts, minimal, maximal));
            }

            /// Expiry is exactly "age reached the lifetime", with a fake clock.
            #[test]
            fn expiry_matches_age(arrival in 0u64..4_000_000_000, age in 0u64..1_000_000, lifetime in 0u64..1_000_000) {
                prop_assert_eq!(expired(arrival, arrival + age, Duration::from_secs(lifetime)), age >= lifetime);
            }
        }
    }
}
