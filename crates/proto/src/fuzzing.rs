//! Property checks shared by the cargo-fuzz targets `smtp_command` and `smtp_data` (`fuzz/`
//! at the repository root) and the randomised unit test below, so the invariants are
//! exercised on stable Rust in every test run and by libFuzzer when someone runs it. Both
//! dialects go through them; the `sendmail_bs` target drives this codec through a whole
//! `sendmail -bs` session (`submit::fuzzing`).
//!
//! [`smtp_alphabet`] maps arbitrary bytes onto SMTP-shaped tokens (verbs, brackets, CR, LF,
//! dots, parameters), as smtp-proto's fuzz target does, so random input reaches deep states
//! instead of dying at the first byte.

use crate::command::{parse_with, Command};
use crate::data::{BareNewline, DataError, Decoder, Mode};
use crate::dialect::Dialect;

const TOKENS: &[&[u8]] = &[
    b"EHLO ",
    b"HELO ",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"DATA",
    b"BDAT ",
    b" LAST",
    b"RSET",
    b"QUIT",
    b"AUTH ",
    b"STARTTLS",
    b"<",
    b">",
    b"@",
    b"\"",
    b"\\",
    b".",
    b"..",
    b" ",
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"a",
    b"example.org",
    b"[127.0.0.1]",
    b"[IPv6:::1]",
    b" SIZE=",
    b" BODY=8BITMIME",
    b" SMTPUTF8",
    b" RET=HDRS",
    b" ENVID=",
    b" NOTIFY=",
    b"SUCCESS,FAILURE",
    b" ORCPT=rfc822;",
    b"+2B",
    b"=",
    b"123",
    b"\xce\xb4",
    b"\xff",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r\n",
];

/// Each input byte picks a token (high bit set: the byte itself, for raw coverage).
pub fn smtp_alphabet(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &byte in data {
        if byte & 0x80 != 0 {
            out.push(byte & 0x7f);
        } else {
            out.extend_from_slice(TOKENS[usize::from(byte) % TOKENS.len()]);
        }
    }
    out
}

/// Every line of `input` through the parser in both dialects: no panic, and what parses is
/// well formed.
pub fn check_commands(input: &[u8]) {
    for line in input.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        check_strict(line);
        check_lenient(line);
    }
}

fn check_strict(line: &[u8]) {
    match parse_with(line, &Dialect::SMTPD) {
        Ok(Command::Mail { sender, .. }) => check_address(&sender),
        Ok(Command::Rcpt { recipient, .. }) => {
            assert!(!recipient.is_empty());
            check_address(&recipient);
        }
        Ok(command) => assert!(!command.verb().is_empty()),
        Err(error) => assert!(error.reply.code >= 500),
    }
}

/// The lenient dialect: only the basic verbs, SIZE the only parameter kept, and addresses
/// without a control character or a space (they become envelope lines).
fn check_lenient(line: &[u8]) {
    let clean = |a: &str| !a.chars().any(|c| c.is_control() || c.is_whitespace());
    match parse_with(line, &Dialect::SENDMAIL_BS) {
        Ok(Command::Mail { sender, params }) => {
            assert!(clean(&sender), "{sender:?}");
            assert_eq!(params.size.is_some(), !params.is_empty(), "{params:?}");
        }
        Ok(Command::Rcpt { recipient, params }) => {
            assert!(!recipient.is_empty() && clean(&recipient), "{recipient:?}");
            assert!(params.is_empty());
        }
        Ok(command) => assert!(
            matches!(
                command.verb(),
                "ehlo" | "helo" | "data" | "rset" | "noop" | "quit"
            ),
            "{command:?}"
        ),
        Err(error) => assert!(error.reply.code >= 500),
    }
}

/// A parsed address has no control characters and parses again to itself (what we store
/// and log is what a later hop will read).
fn check_address(address: &str) {
    assert!(!address.chars().any(char::is_control), "{address:?}");
    let path = format!("<{address}>");
    let again = crate::address::parse_path(&path);
    assert_eq!(
        again.map(|(a, rest)| (a, rest.is_empty())),
        Ok((address.to_string(), true))
    );
}

/// The decoder in every mode and policy, fed whole and in pieces of `step` bytes: the
/// outcome must not depend on how the input was split, and the invariants of `data.rs` hold.
pub fn check_data(input: &[u8], step: usize, limit: u64) {
    let policies = [
        BareNewline::Reject,
        BareNewline::Normalize,
        BareNewline::Local,
    ];
    for mode in [Mode::Dot, Mode::Chunk] {
        for policy in policies {
            let whole = run(input, input.len().max(1), mode, policy, limit);
            let split = run(input, step.max(1), mode, policy, limit);
            assert_eq!(
                whole, split,
                "split changed the outcome ({mode:?}, {policy:?})"
            );
            check_outcome(input, &whole, mode, policy, limit);
        }
    }
}

type Outcome = (usize, bool, Result<Vec<u8>, DataError>);

fn run(input: &[u8], step: usize, mode: Mode, policy: BareNewline, limit: u64) -> Outcome {
    let mut decoder = Decoder::new(mode, policy, limit);
    let mut used = 0;
    for piece in input.chunks(step) {
        if decoder.is_done() {
            break;
        }
        used += decoder.feed(piece).0;
    }
    let done = decoder.is_done();
    (used, done, decoder.finish())
}

fn check_outcome(
    input: &[u8],
    (used, done, result): &Outcome,
    mode: Mode,
    policy: BareNewline,
    limit: u64,
) {
    let consumed = &input[..*used];
    let body = match *done {
        true => check_end(consumed, mode, policy),
        false => {
            assert_eq!(*used, input.len());
            consumed
        }
    };
    let Ok(message) = result else { return };
    assert!(limit == 0 || message.len() as u64 <= limit);
    assert!(message.is_empty() || message.ends_with(b"\n"));
    if policy == BareNewline::Local {
        if *done {
            assert_eq!(*message, unix_text(body), "not the text read the Unix way");
        }
        return;
    }
    assert!(!message.contains(&0));
    assert!(!message.contains(&b'\r'), "a CR was stored: {message:?}");
    if policy == BareNewline::Reject {
        assert!(!has_bare_line_end(body), "bare line end accepted: {body:?}");
    }
}

/// Only `<CRLF>.<CRLF>` (or a leading `.<CRLF>`) ends the data; under `Local` a `.` line
/// after any LF, ended by LF or CRLF. Returns the data before the end line.
fn check_end(consumed: &[u8], mode: Mode, policy: BareNewline) -> &[u8] {
    assert_eq!(mode, Mode::Dot);
    let ends = |end: &[u8]| {
        let mut line = b"\n".to_vec();
        line.extend_from_slice(end);
        consumed == end || consumed.ends_with(&line)
    };
    if policy == BareNewline::Local && ends(b".\n") {
        return &consumed[..consumed.len() - 2];
    }
    let ended = match policy {
        BareNewline::Local => ends(b".\r\n"),
        _ => consumed == b".\r\n" || consumed.ends_with(b"\r\n.\r\n"),
    };
    assert!(ended, "ended early: {consumed:?}");
    &consumed[..consumed.len() - 3]
}

/// What `Local` stores, by the book: lines end at LF, a leading dot is dropped, a CR right
/// before the LF goes; every other byte stays.
fn unix_text(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_prefix(b".").unwrap_or(line);
        match line.strip_suffix(b"\n") {
            Some(text) => {
                out.extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

fn has_bare_line_end(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few thousand random SMTP-shaped inputs on every run (the fuzz targets go further).
    #[test]
    fn random_smtp_shaped_input_keeps_the_invariants() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_5afe);
        for round in 0..20_000 {
            let len = rng.usize(0..64);
            let raw: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let input = smtp_alphabet(&raw);
            check_commands(&input);
            let limit = if round % 3 == 0 { rng.u64(1..200) } else { 0 };
            check_data(&input, rng.usize(1..8), limit);
        }
    }

    #[test]
    fn bare_line_end_detection() {
        assert!(has_bare_line_end(b"a\nb"));
        assert!(has_bare_line_end(b"a\rb"));
        assert!(has_bare_line_end(b"a\r"));
        assert!(!has_bare_line_end(b"a\r\nb\r\n"));
    }
}
