//! Turning fuzzer bytes into structured values, for the `fuzzing` modules of the crates that
//! take envelopes (queue records, DSNs) and the cargo-fuzz targets in `fuzz/`.
//!
//! A fuzzer mutates bytes; most byte strings are not a valid JSON meta or a sane envelope,
//! so random input would die at the first check. [`Bytes`] reads the input as a stream of
//! choices instead (a count here, a string there), so every input is *some* envelope and
//! the fuzzer's mutations move through envelopes, not through parse errors. Running out of
//! input reads zeros: every input is complete.

use crate::{Envelope, Recipient, RecipientState};

/// Strings the envelope fields are drawn from besides raw bytes: what real mail and real
/// attackers put there (quotes, routes, CR/LF, NUL, non-ASCII, long text).
const WORDS: &[&str] = &[
    "",
    "a@b",
    "postmaster",
    "MAILER-DAEMON",
    "\"x y\"@example.org",
    "@relay:user@host",
    "user@[127.0.0.1]",
    "rfc822;a@b",
    "utf-8;δ@例え.jp",
    "SUCCESS,FAILURE,DELAY",
    "NEVER",
    "HDRS",
    "FULL",
    "5.1.1",
    "4.4.1",
    "host mx.example[192.0.2.1] said: 550 5.1.1 <a@b>: unknown (in reply to RCPT TO command)",
    "line\nBcc: injected@evil",
    "cr\rcr",
    "nul\0nul",
    "--boundary",
    "\n\n",
    ".",
    "\u{feff}",
];

/// A cursor over fuzzer input that never fails: past the end it reads zeros.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let byte = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        byte
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `max` raw bytes (the length is the next byte).
    pub fn slice(&mut self, max: usize) -> &'a [u8] {
        let len = usize::from(self.u8()).min(max);
        let start = self.pos.min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.pos = start + len;
        &self.data[start..end]
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }

    /// A string: one of [`WORDS`], or raw bytes (lossy UTF-8), or both joined.
    pub fn string(&mut self) -> String {
        let choice = self.u8();
        let word = WORDS[usize::from(choice >> 2) % WORDS.len()];
        match choice & 3 {
            0 => word.to_string(),
            1 => String::from_utf8_lossy(self.slice(64)).into_owned(),
            2 => format!("{word}{}", String::from_utf8_lossy(self.slice(64))),
            _ => word.repeat(usize::from(self.u8() % 8) + 1),
        }
    }

    pub fn optional_string(&mut self) -> Option<String> {
        self.bool().then(|| self.string())
    }

    pub fn state(&mut self) -> RecipientState {
        match self.u8() % 4 {
            0 => RecipientState::Pending,
            1 => RecipientState::Sent,
            2 => RecipientState::Deferred {
                reason: self.string(),
            },
            _ => RecipientState::Bounced {
                status: self.string(),
                reason: self.string(),
            },
        }
    }

    pub fn recipient(&mut self) -> Recipient {
        Recipient {
            address: self.string(),
            orcpt: self.optional_string(),
            notify: self.optional_string(),
            state: self.state(),
        }
    }

    /// An envelope with up to `max_recipients` recipients (at least one).
    pub fn envelope(&mut self, max_recipients: usize) -> Envelope {
        let sender = self.string();
        let count = usize::from(self.u8()) % max_recipients.max(1) + 1;
        let recipients = (0..count).map(|_| self.recipient()).collect();
        let arrival_time = match self.u8() % 3 {
            0 => 1_700_000_000,
            1 => u64::MAX - u64::from(self.u8()),
            _ => self.u64(),
        };
        Envelope {
            sender,
            recipients,
            arrival_time,
            envid: self.optional_string(),
            ret: self.optional_string(),
            origin: self.string(),
            filter: self.optional_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_as_zeros() {
        let mut bytes = Bytes::new(&[7]);
        assert_eq!(bytes.u8(), 7);
        assert_eq!(bytes.u32(), 0);
        assert!(bytes.slice(10).is_empty());
        assert!(bytes.rest().is_empty());
        assert_eq!(bytes.envelope(4).recipients.len(), 1);
    }
}
