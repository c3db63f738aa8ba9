//! Property checks for the cargo-fuzz targets `maildrop` and `sendmail_bs` (`fuzz/` at the
//! repository root), also run on random inputs in every `cargo test`.
//!
//! - [`check_maildrop`]: a maildrop file is data from any local user. Decoding never
//!   panics; what decodes can be written back (the reader is no looser than the writer) and
//!   reads back the same; what we write reads back the same and any truncation of it is
//!   refused; cleanup of a decoded file keeps the body and drops the headers it must drop.
//! - [`check_sendmail_bs`]: a `sendmail -bs` session on any input: every reply is a
//!   well-formed SMTP reply line, the outcome does not depend on how the input arrives in
//!   reads, and each message queued is the DATA text, dot-unstuffed with CRLF turned to LF,
//!   never over `message_size_limit`.

use std::io::{BufRead, BufReader};
use std::sync::OnceLock;

use config::Config;
use envelope::QueueId;

use crate::headers;
use crate::maildrop::{self, DsnOptions, MaildropError, MaildropFile};
use crate::sendmail::smtp::session_with;

fn base_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut cfg = Config::embedded_default();
        cfg.myhostname = "host.example".into();
        cfg.myorigin = "example.org".into();
        cfg
    })
}

/// See the module doc. The first byte picks the mode: raw file bytes; envelope lines from
/// the input around a message with a correct `B` line (a CRC in hex is not something
/// mutation finds); or a file built from the input (what the writer produces).
pub fn check_maildrop(data: &[u8]) {
    let id = QueueId::from_u128(0x0123_4567_89ab_cdef);
    let Some((mode, rest)) = data.split_first() else {
        return check_decoded(id, data);
    };
    match mode % 3 {
        0 => check_decoded(id, rest),
        1 => check_decoded(id, &with_b_line(rest)),
        _ => check_written(&built(id, rest)),
    }
}

fn with_b_line(data: &[u8]) -> Vec<u8> {
    let mut b = envelope::fuzzing::Bytes::new(data);
    let lines = b.slice(255);
    let message = b.rest();
    let mut file = format!("{}\n", maildrop::MAGIC).into_bytes();
    file.extend_from_slice(lines);
    if !file.ends_with(b"\n") {
        file.push(b'\n');
    }
    let crc = crc32fast::hash(message);
    file.extend_from_slice(format!("B {} {crc:08x}\n", message.len()).as_bytes());
    file.extend_from_slice(message);
    file.extend_from_slice(b"END\n");
    file
}

fn check_decoded(id: QueueId, data: &[u8]) {
    let Ok(drop) = maildrop::decode(id, data) else {
        return;
    };
    assert_eq!(drop.id, id);
    let bytes = match maildrop::encode(&drop) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a file that decodes cannot be written back ({e}): {drop:?}"),
    };
    assert_eq!(maildrop::decode(id, &bytes).expect("re-read"), drop);
    check_cleanup(&drop);
}

fn check_written(drop: &MaildropFile) {
    let Ok(bytes) = maildrop::encode(drop) else {
        return;
    };
    assert_eq!(
        maildrop::decode(drop.id, &bytes).expect("our own file"),
        *drop
    );
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 4, bytes.len() - 1] {
        assert!(
            matches!(
                maildrop::decode(drop.id, &bytes[..cut]),
                Err(MaildropError::Corrupt(_))
            ),
            "a {cut}-byte prefix was accepted"
        );
    }
    check_cleanup(drop);
}

/// A maildrop file from fuzzer bytes.
fn built(id: QueueId, data: &[u8]) -> MaildropFile {
    let mut b = envelope::fuzzing::Bytes::new(data);
    let count = usize::from(b.u8() % 4);
    MaildropFile {
        id,
        arrival_time: b.u64(),
        uid: b.u32(),
        username: b.string(),
        fullname: b.optional_string(),
        sender: b.string(),
        recipients: (0..count).map(|_| b.string()).collect(),
        dsn: DsnOptions {
            notify: b.optional_string(),
            envid: b.optional_string(),
            ret: b.optional_string(),
        },
        message: b.rest().to_vec(),
    }
}

/// Cleanup keeps the body, drops the headers it removes, and adds the ones it must.
fn check_cleanup(drop: &MaildropFile) {
    let settings = crate::CleanupSettings::from_config(base_config());
    let Ok(cleaned) = crate::cleanup(&settings, drop) else {
        return;
    };
    let before = headers::split(&drop.message);
    let after = headers::split(&cleaned.message);
    assert!(after.has_separator, "no blank line after the headers");
    for name in ["Received", "Date", "Message-ID", "From"] {
        assert!(after.headers.iter().any(|h| h.is(name)), "no {name}:");
    }
    for name in ["Bcc", "Resent-Bcc", "Return-Path", "Content-Length"] {
        assert!(!after.headers.iter().any(|h| h.is(name)), "{name}: kept");
    }
    let body = lf_lines(&drop.message[before.body_start..]);
    assert_eq!(
        &cleaned.message[after.body_start..],
        body.as_slice(),
        "body changed"
    );
    assert!(!cleaned.envelope.recipients.is_empty());
}

/// CRLF → LF, and a final LF (what cleanup promises for the body).
fn lf_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// See the module doc. The first byte picks the size limit and whether the input is a raw
/// session or one DATA body after a fixed envelope; the rest is mapped onto SMTP-shaped
/// tokens when its high bit is set.
pub fn check_sendmail_bs(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let mut cfg = base_config().clone();
    cfg.message_size_limit = match knobs & 0x30 {
        0x00 => 10 << 20,
        _ => u64::from(knobs & 0x0f) * 16 + 1,
    };
    let text = match knobs & 0x40 != 0 {
        true => smtpd_alphabet(rest),
        false => rest.to_vec(),
    };
    if knobs & 0x80 != 0 {
        let mut session = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
        session.extend_from_slice(&text);
        session.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let outcome = check_session(&cfg, &session);
        check_data_model(&cfg, &text, &outcome);
    } else {
        check_session(&cfg, &text);
    }
}

/// Maps bytes onto tokens of the `-bs` dialect (as `proto::fuzzing::smtp_alphabet` does
/// for smtpd's), so random input reaches DATA and the size limit.
fn smtpd_alphabet(data: &[u8]) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"HELO x",
        b"EHLO x",
        b"MAIL FROM:<a@b>",
        b"MAIL FROM:<>",
        b"RCPT TO:<c@d>",
        b"RCPT TO:<@r:e@f>",
        b"DATA",
        b"RSET",
        b"NOOP",
        b"QUIT",
        b" SIZE=",
        b"99999999999",
        b"<",
        b">",
        b" ",
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"..",
        b"\r\n.\r\n",
        b"\n.\n",
        b"\0",
        b"a",
        b"\xce\xb4",
        b"\xff",
    ];
    let mut out = Vec::with_capacity(data.len() * 4);
    for &byte in data {
        match byte & 0x80 {
            0 => out.extend_from_slice(TOKENS[usize::from(byte) % TOKENS.len()]),
            _ => out.push(byte & 0x7f),
        }
    }
    out
}

/// Replies, whether the session ended cleanly, and the (sender, recipients, message) queued.
type Outcome = (Vec<u8>, bool, Vec<(String, Vec<String>, Vec<u8>)>);

/// Submissions get queue IDs 1, 2, …; every third one fails as a full disk would.
fn run(cfg: &Config, input: &mut dyn BufRead) -> Outcome {
    let mut files = Vec::new();
    let mut submit = |f: &MaildropFile| {
        files.push((f.sender.clone(), f.recipients.clone(), f.message.clone()));
        match files.len() % 3 {
            0 => Err(proto::fixed::insufficient_storage()),
            _ => Ok(QueueId::from_u128(files.len() as u128)),
        }
    };
    let settings = crate::submission::SubmitSettings::from_config(cfg);
    let (replies, ended) = session_with(&settings, input, &mut submit);
    (replies, ended.is_ok(), files)
}

fn check_session(cfg: &Config, input: &[u8]) -> Outcome {
    let whole = run(cfg, &mut &input[..]);
    for capacity in [1, 7] {
        let mut reader = BufReader::with_capacity(capacity, input);
        assert_eq!(
            run(cfg, &mut reader),
            whole,
            "reads of {capacity} bytes changed the session"
        );
    }
    check_replies(&whole.0);
    for (sender, recipients, message) in &whole.2 {
        assert!(!recipients.is_empty());
        assert!(
            message.len() as u64 <= cfg.message_size_limit,
            "over the size limit"
        );
        let fields = recipients.iter().chain([sender]);
        assert!(
            fields.clone().all(|a| !a.chars().any(char::is_control)),
            "{fields:?}"
        );
    }
    whole
}

/// Every reply line is `NNN text` or `NNN-text` ending in CRLF, starting with the 220.
fn check_replies(replies: &[u8]) {
    assert!(replies.starts_with(b"220 "), "no greeting");
    for line in replies.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .expect("a reply line without CRLF");
        assert!(
            line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit),
            "{line:?}"
        );
        assert!(matches!(line[0], b'2'..=b'5') && matches!(line[3], b' ' | b'-'));
        assert!(!line.contains(&b'\r') && !line.contains(&0));
    }
}

/// The one DATA body: queued as `model` if that fits the limit, else refused with 552.
fn check_data_model(cfg: &Config, body: &[u8], (replies, _, queued): &Outcome) {
    let expected = unstuff(body);
    let Some(expected) = expected else {
        return; // the body holds its own end-of-data line: the rest are commands
    };
    let replies = String::from_utf8_lossy(replies);
    if expected.len() as u64 <= cfg.message_size_limit {
        assert_eq!(queued.len(), 1, "{replies}");
        assert_eq!(
            queued[0].2, expected,
            "queued message differs from the DATA text"
        );
    } else {
        assert!(
            queued.is_empty() && replies.contains("\r\n552 "),
            "{replies}"
        );
    }
}

/// RFC 5321 section 4.5.2 by the book, line by line: `None` if `body` ends DATA itself.
fn unstuff(body: &[u8]) -> Option<Vec<u8>> {
    let mut text = body.to_vec();
    text.extend_from_slice(b"\r\n");
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if line == b".\r\n" || line == b".\n" {
            return None;
        }
        let line = line.strip_prefix(b".").unwrap_or(line);
        match line.strip_suffix(b"\r\n") {
            Some(content) => {
                out.extend_from_slice(content);
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_inputs(seed: u64, rounds: usize, mut check: impl FnMut(&[u8])) {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..rounds {
            let len = next() as usize % 300;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check(&data);
        }
    }

    /// A few thousand random inputs on every run (the fuzz targets go further).
    #[test]
    fn random_maildrop_files_keep_the_invariants() {
        random_inputs(0x3a11_d309, 3_000, check_maildrop);
    }

    #[test]
    fn random_sendmail_bs_sessions_keep_the_invariants() {
        random_inputs(0x5e4d_3a11, 1_000, check_sendmail_bs);
    }
}
