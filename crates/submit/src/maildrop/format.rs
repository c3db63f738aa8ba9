//! The bytes of one maildrop file: a short text envelope, then the message, then `END`.
//!
//! ```text
//! MAILROOM-MAILDROP 1
//! T <arrival time, unix seconds>
//! U <uid> <username>
//! F <full name>                 (optional)
//! S <sender>                    (empty value = the null sender <>)
//! R <recipient>                 (one or more)
//! N <notify>                    (optional, RFC 3461 NOTIFY for every recipient)
//! V <envid>                     (optional, RFC 3461 ENVID)
//! W <ret>                       (optional, RFC 3461 RET: FULL or HDRS)
//! B <message length in bytes> <crc32 of the message, lower-case hex>
//! <exactly that many message bytes>END
//! ```
//!
//! The envelope lines may come in any order before `B`; `T`, `U`, `S` and `B` appear once, `R`
//! at least once. The message is length-delimited, so it may hold any bytes; the final `END\n`
//! must follow it and nothing may follow `END\n`. Like Postfix's END record, it is what proves
//! the writer finished: a reader that does not find it rejects the file as corrupt.

use envelope::QueueId;

use super::{DsnOptions, MaildropError, MaildropFile};

/// First line of every maildrop file. A future format bumps the number; readers reject others.
pub const MAGIC: &str = "MAILROOM-MAILDROP 1";
const END: &[u8] = b"END\n";

/// Serializes `drop` (its `id` is not stored: the file name carries it).
///
/// Fails with [`MaildropError::InvalidField`] when a field would break the line format
/// (CR, LF or NUL inside it) or a required field is empty.
pub fn encode(drop: &MaildropFile) -> Result<Vec<u8>, MaildropError> {
    validate(drop)?;
    let mut out = Vec::with_capacity(drop.message.len() + 256);
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b'\n');
    let mut line = |key: &str, value: &str| {
        out.extend_from_slice(format!("{key} {value}\n").as_bytes());
    };
    line("T", &drop.arrival_time.to_string());
    line("U", &format!("{} {}", drop.uid, drop.username));
    if let Some(name) = &drop.fullname {
        line("F", name);
    }
    line("S", &drop.sender);
    for recipient in &drop.recipients {
        line("R", recipient);
    }
    for (key, value) in dsn_lines(&drop.dsn) {
        line(key, value);
    }
    let crc = crc32fast::hash(&drop.message);
    line("B", &format!("{} {crc:08x}", drop.message.len()));
    out.extend_from_slice(&drop.message);
    out.extend_from_slice(END);
    Ok(out)
}

fn dsn_lines(dsn: &DsnOptions) -> impl Iterator<Item = (&'static str, &String)> {
    [("N", &dsn.notify), ("V", &dsn.envid), ("W", &dsn.ret)]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
}

fn validate(drop: &MaildropFile) -> Result<(), MaildropError> {
    let invalid = |field: &'static str, reason: &str| MaildropError::InvalidField {
        field,
        reason: reason.to_string(),
    };
    if drop.username.is_empty() {
        return Err(invalid("username", "empty"));
    }
    if drop.recipients.is_empty() {
        return Err(invalid("recipient", "no recipients"));
    }
    if drop.recipients.iter().any(|r| r.is_empty()) {
        return Err(invalid("recipient", "empty address"));
    }
    let mut fields: Vec<(&'static str, &str)> =
        vec![("username", &drop.username), ("sender", &drop.sender)];
    fields.extend(drop.fullname.as_deref().map(|f| ("full name", f)));
    fields.extend(drop.recipients.iter().map(|r| ("recipient", r.as_str())));
    fields.extend(dsn_lines(&drop.dsn).map(|(_, v)| ("DSN option", v.as_str())));
    match fields.iter().find(|(_, value)| has_line_break(value)) {
        Some((field, _)) => Err(invalid(field, "contains a line break or NUL")),
        None => Ok(()),
    }
}

fn has_line_break(value: &str) -> bool {
    value.bytes().any(|b| matches!(b, b'\n' | b'\r' | 0))
}

/// Parses the bytes of a maildrop file named `id`. Anything unexpected is
/// [`MaildropError::Corrupt`]: a partial file must never pass for a complete one.
pub fn decode(id: QueueId, bytes: &[u8]) -> Result<MaildropFile, MaildropError> {
    let mut cursor = Cursor { bytes, pos: 0 };
    if cursor.line()? != MAGIC {
        return Err(corrupt("missing MAILROOM-MAILDROP 1 header"));
    }
    let mut fields = Fields::default();
    loop {
        let line = cursor.line()?;
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if key == "B" {
            let message = cursor.message(value)?;
            return fields.finish(id, message);
        }
        fields.set(key, value)?;
    }
}

fn corrupt(reason: impl Into<String>) -> MaildropError {
    MaildropError::Corrupt(reason.into())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next envelope line without its `\n`; must be UTF-8 and `\n`-terminated, and hold
    /// no CR or NUL: [`encode`] never writes one, so neither may a reader accept one.
    fn line(&mut self) -> Result<&'a str, MaildropError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("truncated envelope"))?;
        self.pos += end + 1;
        let line =
            std::str::from_utf8(&rest[..end]).map_err(|_| corrupt("envelope line is not UTF-8"))?;
        match has_line_break(line) {
            true => Err(corrupt("CR or NUL in an envelope line")),
            false => Ok(line),
        }
    }

    /// Takes the message announced by a `B <len> <crc>` line and checks the `END\n` trailer.
    fn message(&mut self, b_value: &str) -> Result<Vec<u8>, MaildropError> {
        let (len, crc) = b_value
            .split_once(' ')
            .ok_or_else(|| corrupt("malformed B line"))?;
        let len: usize = len.parse().map_err(|_| corrupt("bad message length"))?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| corrupt("bad crc"))?;
        let rest = &self.bytes[self.pos..];
        if rest.len() < len {
            return Err(corrupt("truncated message"));
        }
        let (message, trailer) = rest.split_at(len);
        if crc32fast::hash(message) != crc {
            return Err(corrupt("message crc mismatch"));
        }
        if trailer != END {
            return Err(corrupt("missing END record"));
        }
        Ok(message.to_vec())
    }
}

/// Envelope fields seen so far; each single-valued key may appear once.
#[derive(Default)]
struct Fields {
    arrival_time: Option<u64>,
    user: Option<(u32, String)>,
    fullname: Option<String>,
    sender: Option<String>,
    recipients: Vec<String>,
    dsn: DsnOptions,
}

impl Fields {
    fn set(&mut self, key: &str, value: &str) -> Result<(), MaildropError> {
        let value_string = || Some(value.to_string());
        match key {
            "T" => {
                let time = value.parse().map_err(|_| corrupt("bad T line"))?;
                once(&mut self.arrival_time, Some(time), key)
            }
            "U" => once(&mut self.user, Some(parse_user(value)?), key),
            "F" => once(&mut self.fullname, value_string(), key),
            "S" => once(&mut self.sender, value_string(), key),
            "N" => once(&mut self.dsn.notify, value_string(), key),
            "V" => once(&mut self.dsn.envid, value_string(), key),
            "W" => once(&mut self.dsn.ret, value_string(), key),
            "R" if !value.is_empty() => {
                self.recipients.push(value.to_string());
                Ok(())
            }
            _ => Err(corrupt(format!("unexpected envelope line {key:?}"))),
        }
    }

    fn finish(self, id: QueueId, message: Vec<u8>) -> Result<MaildropFile, MaildropError> {
        let missing = |what: &str| corrupt(format!("missing {what} line"));
        let (uid, username) = self.user.ok_or_else(|| missing("U"))?;
        if self.recipients.is_empty() {
            return Err(missing("R"));
        }
        Ok(MaildropFile {
            id,
            arrival_time: self.arrival_time.ok_or_else(|| missing("T"))?,
            uid,
            username,
            fullname: self.fullname,
            sender: self.sender.ok_or_else(|| missing("S"))?,
            recipients: self.recipients,
            dsn: self.dsn,
            message,
        })
    }
}

fn once<T>(slot: &mut Option<T>, value: Option<T>, key: &str) -> Result<(), MaildropError> {
    if slot.is_some() {
        return Err(corrupt(format!("duplicate {key} line")));
    }
    *slot = value;
    Ok(())
}

fn parse_user(value: &str) -> Result<(u32, String), MaildropError> {
    let (uid, name) = value
        .split_once(' ')
        .ok_or_else(|| corrupt("malformed U line"))?;
    let uid = uid.parse().map_err(|_| corrupt("bad uid in U line"))?;
    if name.is_empty() {
        return Err(corrupt("empty username in U line"));
    }
    Ok((uid, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> MaildropFile {
        MaildropFile {
            id: QueueId::generate(),
            arrival_time: 1_700_000_000,
            uid: 1000,
            username: "alice".into(),
            fullname: Some("Alice Liddell".into()),
            sender: "alice".into(),
            recipients: vec!["bob@example.org".into(), "carol".into()],
            dsn: DsnOptions::default(),
            message: b"Subject: hi\n\nbody\nEND\nmore\n".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let mut drop = sample();
        drop.dsn.notify = Some("NEVER".into());
        drop.dsn.envid = Some("abc".into());
        let bytes = encode(&drop).unwrap();
        assert!(bytes.starts_with(b"MAILROOM-MAILDROP 1\nT 1700000000\nU 1000 alice\n"));
        assert!(bytes.ends_with(b"more\nEND\n"));
        assert_eq!(decode(drop.id, &bytes).unwrap(), drop);
    }

    #[test]
    fn null_sender_and_binary_body_round_trip() {
        let mut drop = sample();
        drop.sender = String::new();
        drop.fullname = None;
        drop.message = vec![0, 255, b'\n', b'\r', 0x80];
        let bytes = encode(&drop).unwrap();
        assert_eq!(decode(drop.id, &bytes).unwrap(), drop);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let drop = sample();
        let bytes = encode(&drop).unwrap();
        for len in 0..bytes.len() {
            let result = decode(drop.id, &bytes[..len]);
            assert!(
                matches!(result, Err(MaildropError::Corrupt(_))),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn corruptions_are_rejected() {
        let drop = sample();
        let good = String::from_utf8(encode(&drop).unwrap()).unwrap();
        let cases = [
            good.replace("MAILROOM-MAILDROP 1", "MAILROOM-MAILDROP 2"),
            good.replace("body", "bodx"),                // crc mismatch
            good.replace("more\nEND\n", "more\nEND\nx"), // trailing garbage
            good.replace("more\nEND\n", "more\nEDN\n"),  // no END
            good.replace("T 1700000000\n", ""),          // missing T
            good.replace("U 1000 alice\n", "U x alice\n"), // bad uid
            good.replace("S alice\n", "S alice\nS bob\n"), // duplicate S
            good.replace("R carol\n", "Q carol\n"),      // unknown key
            good.replace("R bob@example.org\nR carol\n", ""),
            "garbage\n".to_string(),
            String::new(),
        ];
        for (i, case) in cases.iter().enumerate() {
            let result = decode(drop.id, case.as_bytes());
            assert!(
                matches!(result, Err(MaildropError::Corrupt(_))),
                "case {i} accepted"
            );
        }
    }

    #[test]
    fn cr_or_nul_in_an_envelope_line_is_refused_as_the_writer_refuses_it() {
        // A file placed in maildrop/ by hand: `R a\rb` used to be queued as a recipient
        // that `encode` (and so sendmail and postdrop) would never have written.
        let good = String::from_utf8(encode(&sample()).unwrap()).unwrap();
        for (from, to) in [
            ("R carol\n", "R ca\rrol\n"),
            ("R carol\n", "R ca\0rol\n"),
            ("S alice\n", "S alice\r\n"),
            ("F Alice Liddell\n", "F Alice\0\n"),
        ] {
            let bad = good.replace(from, to);
            assert!(
                matches!(
                    decode(QueueId::generate(), bad.as_bytes()),
                    Err(MaildropError::Corrupt(_))
                ),
                "{to:?} accepted"
            );
        }
    }

    #[test]
    fn wrong_length_is_rejected() {
        let drop = sample();
        let good = String::from_utf8(encode(&drop).unwrap()).unwrap();
        let len = drop.message.len();
        let bad = good.replace(&format!("B {len} "), &format!("B {} ", len - 1));
        assert!(decode(drop.id, bad.as_bytes()).is_err());
    }

    #[test]
    fn fields_with_line_breaks_are_refused() {
        let mut drop = sample();
        drop.recipients.push("evil\nR root".into());
        assert!(matches!(
            encode(&drop),
            Err(MaildropError::InvalidField { .. })
        ));
        let mut drop = sample();
        drop.recipients.clear();
        assert!(encode(&drop).is_err());
    }
}
