//! Queue IDs: 16 characters of Crockford base32, time-sortable, never reused.
//!
//! Layout (80 bits): 52 bits of microseconds since the Unix epoch, then 28 bits mixing a
//! per-process counter with randomness. Postfix's short IDs can repeat, so `postsuper -d ID`
//! may hit the wrong message; ours cannot repeat within a process (the counter) and two
//! processes collide only if they pick the same 28 random-ish bits in the same microsecond.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 16;

/// A queue ID. Ordering follows creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(u128);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIdError(pub String);

impl fmt::Display for QueueIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a queue ID: {:?}", self.0)
    }
}
impl std::error::Error for QueueIdError {}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl QueueId {
    /// A fresh ID for a message created now.
    pub fn generate() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
            & ((1u64 << 52) - 1);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff;
        // 12 random bits over a 16-bit counter: unique in-process, unlikely to collide across.
        let low = ((fastrand::u32(..) & 0xfff) << 16) | count;
        QueueId(((micros as u128) << 28) | (low as u128 & 0x0fff_ffff))
    }

    /// Raw 80-bit value (used by the store's binary records).
    pub fn as_u128(self) -> u128 {
        self.0
    }

    pub fn from_u128(v: u128) -> Self {
        QueueId(v & ((1u128 << 80) - 1))
    }

    /// Creation time in microseconds since the Unix epoch.
    pub fn unix_micros(self) -> u64 {
        (self.0 >> 28) as u64
    }

    /// Creation time in seconds since the Unix epoch.
    pub fn unix_time(self) -> u64 {
        ((self.0 >> 28) as u64) / 1_000_000
    }

    pub fn parse(s: &str) -> Result<Self, QueueIdError> {
        if s.len() != LEN {
            return Err(QueueIdError(s.to_string()));
        }
        let mut v: u128 = 0;
        for b in s.bytes() {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == b)
                .ok_or_else(|| QueueIdError(s.to_string()))?;
            v = (v << 5) | digit as u128;
        }
        Ok(QueueId(v))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (LEN - 1 - i);
            *slot = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        f.write_str(std::str::from_utf8(&out).expect("ascii"))
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

impl std::str::FromStr for QueueId {
    type Err = QueueIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sorting() {
        let ids: Vec<QueueId> = (0..1000).map(|_| QueueId::generate()).collect();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let s = id.to_string();
            assert_eq!(s.len(), 16);
            assert_eq!(QueueId::parse(&s).unwrap(), *id);
            assert!(seen.insert(s));
        }
        let mut text: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        text.sort();
        let sorted_text: Vec<String> = sorted_ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(text, sorted_text, "string order must equal numeric order");
    }

    #[test]
    fn rejects_garbage() {
        assert!(QueueId::parse("short").is_err());
        assert!(QueueId::parse("IIIIIIIIIIIIIIII").is_err());
        assert!(QueueId::parse("../../etc/passwd").is_err());
    }

    #[test]
    fn time_is_recoverable() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = QueueId::generate().unix_time();
        assert!(t.abs_diff(now) <= 1);
    }
}
