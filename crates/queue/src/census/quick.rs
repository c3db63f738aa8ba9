//! A quick reading of the JSON the store itself writes, for the census.
//!
//! serde_json was about 70 % of a census's instructions: structural parsing, matching field
//! names, skipping delay reasons. But every record the store writes has one shape:
//! `serde_json::to_vec` of `record::MessageMeta` or `record::Update`, keys in declaration
//! order, no white space, absent options left out. These functions read that shape alone,
//! byte by byte with literal key matches, and give up (`None`) at anything else: a string
//! with an escape or a control character, a follow-up, no recipients, a field they do not
//! know, a number that does not fit. The caller then decodes the payload with serde as
//! before.
//!
//! Invariant (tested in `census::tests` against serde on the store's records and on mutated
//! ones): whatever they accept, serde accepts too, with the same result. So the census
//! reads the same records, and skips the same damage, whichever path read a payload.

use crate::QueueName;

/// What the census keeps of a message record read quickly.
pub(super) struct QuickMeta<'a> {
    pub sender: &'a str,
    pub arrival_time: u64,
    pub queue: QueueName,
}

/// Reads a message meta of the store's shape without a follow-up; `recipient(address,
/// open)` is called for each recipient in order (at least one). On `None` some recipients
/// may have been reported already: the caller drops them.
pub(super) fn message<'a>(
    json: &'a str,
    mut recipient: impl FnMut(&'a str, bool),
) -> Option<QuickMeta<'a>> {
    let mut c = Cursor::new(json);
    c.lit(b"{\"envelope\":{\"sender\":")?;
    let sender = c.string()?;
    c.lit(b",\"recipients\":[")?;
    loop {
        c.lit(b"{\"address\":")?;
        let address = c.string()?;
        if c.lit(b",\"orcpt\":").is_some() {
            c.string()?;
        }
        if c.lit(b",\"notify\":").is_some() {
            c.string()?;
        }
        c.lit(b",\"state\":")?;
        let open = c.state()?;
        c.lit(b"}")?;
        recipient(address, open);
        if c.lit(b",").is_none() {
            break;
        }
    }
    c.lit(b"],\"arrival_time\":")?;
    let arrival_time = c.number()?;
    for optional in [&b",\"envid\":"[..], b",\"ret\":"] {
        if c.lit(optional).is_some() {
            c.string()?;
        }
    }
    c.lit(b",\"origin\":")?;
    c.string()?;
    if c.lit(b",\"filter\":").is_some() {
        c.string()?;
    }
    c.lit(b"},")?;
    let queue = c.retry_part()?;
    Some(QuickMeta {
        sender,
        arrival_time,
        queue,
    })
}

/// Reads an update of the store's shape; `state(index, open)` is called for each recipient
/// state in order. Returns the queue. On `None` some states may have been reported already.
pub(super) fn update(json: &str, mut state: impl FnMut(usize, bool)) -> Option<QueueName> {
    let mut c = Cursor::new(json);
    c.lit(b"{\"recipients\":[")?;
    if c.lit(b"]").is_none() {
        loop {
            c.lit(b"[")?;
            let index = usize::try_from(c.number()?).ok()?;
            c.lit(b",")?;
            let open = c.state()?;
            c.lit(b"]")?;
            state(index, open);
            if c.lit(b",").is_none() {
                break;
            }
        }
        c.lit(b"]")?;
    }
    c.lit(b",")?;
    c.retry_part()
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    /// Takes exactly `bytes`, or nothing.
    fn lit(&mut self, bytes: &[u8]) -> Option<()> {
        self.rest()
            .starts_with(bytes)
            .then(|| self.at += bytes.len())
    }

    /// `"queue":"NAME","next_attempt":N,"attempts":N` with an optional `,"delay_warned":true`,
    /// then `}` and the end of the text: the tail both records share.
    fn retry_part(&mut self) -> Option<QueueName> {
        self.lit(b"\"queue\":")?;
        let queue = match self.string()? {
            "incoming" => QueueName::Incoming,
            "deferred" => QueueName::Deferred,
            "hold" => QueueName::Hold,
            _ => return None,
        };
        self.lit(b",\"next_attempt\":")?;
        self.number()?;
        self.lit(b",\"attempts\":")?;
        self.number()?;
        // Written only when true.
        let _ = self.lit(b",\"delay_warned\":true");
        self.lit(b"}")?;
        (self.at == self.text.len()).then_some(queue)
    }

    /// A JSON unsigned integer as serde writes it (no sign, fraction, exponent or leading
    /// zero) that fits in a u64.
    fn number(&mut self) -> Option<u64> {
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.rest()[..digits];
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        // A fraction or exponent would make it a float: give up, serde decides.
        if matches!(self.rest().get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n: u64 = 0;
        for &d in text {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += digits;
        Some(n)
    }

    /// A string without escapes or control characters, borrowed from the text (which is
    /// UTF-8, and quotes are ASCII, so the slice is on character boundaries).
    fn string(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        let start = self.at;
        let len = plain_len(self.rest());
        if self.rest().get(len) != Some(&b'"') {
            return None; // an escape, a control character, or no end
        }
        self.at += len + 1;
        self.text.get(start..start + len)
    }

    /// A recipient state as serde writes `envelope::RecipientState`; whether it is open.
    fn state(&mut self) -> Option<bool> {
        if self.lit(b"\"Pending\"").is_some() {
            return Some(true);
        }
        if self.lit(b"\"Sent\"").is_some() {
            return Some(false);
        }
        if self.lit(b"{\"Deferred\":{\"reason\":").is_some() {
            self.string()?;
            self.lit(b"}}")?;
            return Some(true);
        }
        self.lit(b"{\"Bounced\":{\"status\":")?;
        self.string()?;
        self.lit(b",\"reason\":")?;
        self.string()?;
        self.lit(b"}}")?;
        Some(false)
    }
}

/// The length of the run of bytes at the start of `bytes` that may stand in a JSON string
/// as they are: not `"`, not `\`, not a control character. Eight bytes at a time.
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().unwrap());
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
        if below_space || has_zero(x ^ (ONES * u64::from(b'"'))) || has_zero(x ^ (ONES * 0x5c)) {
            break;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .take_while(|&&b| b >= 0x20 && b != b'"' && b != b'\\')
        .count()
}
