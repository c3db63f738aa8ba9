//! What the SMTP client writes: commands with their ESMTP parameters and the message body in
//! transparent form. No I/O.
//!
//! Inputs → outputs: envelope addresses, DSN fields and server capabilities → command lines
//! (`MAIL FROM:<a> SIZE=… BODY=8BITMIME …`); a message with LF line ends → its DATA form
//! (CR LF line ends, leading dots doubled, RFC 5321 4.5.2, lines longer than
//! `smtp_line_length_limit` broken as Postfix breaks them), without the final dot.
//! Invariants: a command never contains CR, LF or NUL except its own terminating CR LF (the
//! callers refuse unsafe addresses with [`is_safe_address`]; DSN values are checked or
//! xtext-encoded here); the body never contains a lone `.` line.
//! Security stance: addresses and DSN values come from other mail systems and are untrusted:
//! nothing from them can end a command early or start a new one.

use super::reply::Capabilities;

/// True when `address` can go between angle brackets without changing the command: no
/// control characters, no brackets, at most 998 bytes (RFC 5321 line length).
pub(crate) fn is_safe_address(address: &str) -> bool {
    address.len() <= 998
        && !address
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
}

/// True when the address needs SMTPUTF8 (RFC 6531): any byte outside ASCII.
pub(crate) fn needs_smtputf8(address: &str) -> bool {
    !address.is_ascii()
}

/// True when the message has 8-bit bytes (BODY=8BITMIME, RFC 6152).
pub(crate) fn has_8bit(message: &[u8]) -> bool {
    !message.is_ascii()
}

/// The message's size on the wire as announced in SIZE= (RFC 1870): exactly the length of
/// [`wire_text`] — LF becomes CR LF, a last line without one is ended, and each break of a
/// line longer than `line_limit` adds its CR LF SPACE — counted without building the text.
/// The client takes SIZE= from the DATA form it builds anyway ([`data_body`] less its
/// dots); this count is the tests' independent check of that.
#[cfg(test)]
pub(crate) fn wire_size(message: &[u8], line_limit: usize) -> u64 {
    if message.is_empty() {
        return 0;
    }
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    let mut size = 0;
    for line in lines(body) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        size += line.len() + 2;
        if line_limit != 0 && line.len() > line_limit {
            size += 3 * (pieces(line, line_limit).count() - 1);
        }
    }
    size as u64
}

/// xtext (RFC 3461 4): printable ASCII except `+` and `=` as is, everything else `+HH`.
pub(crate) fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// What the MAIL FROM command says besides the address.
#[derive(Clone, Debug, Default)]
pub(crate) struct MailParams<'a> {
    pub size: u64,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

/// `MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] [RET=…] [ENVID=…]\r\n`, each
/// parameter only when the server offered the extension.
pub(crate) fn mail_from(sender: &str, params: &MailParams, caps: &Capabilities) -> Vec<u8> {
    let mut line = format!("MAIL FROM:<{sender}>");
    if caps.size {
        line.push_str(&format!(" SIZE={}", params.size));
    }
    if params.eight_bit && caps.eight_bit_mime {
        line.push_str(" BODY=8BITMIME");
    }
    if params.smtputf8 && caps.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        if let Some(ret) = params.ret.and_then(dsn_ret) {
            line.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = params.envid.filter(|e| !e.is_empty()) {
            line.push_str(&format!(" ENVID={}", xtext(envid)));
        }
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// `RCPT TO:<address> [NOTIFY=…] [ORCPT=…]\r\n`; DSN parameters only when offered.
pub(crate) fn rcpt_to(
    address: &str,
    notify: Option<&str>,
    orcpt: Option<&str>,
    caps: &Capabilities,
) -> Vec<u8> {
    let mut line = format!("RCPT TO:<{address}>");
    if caps.dsn {
        if let Some(notify) = notify.and_then(dsn_notify) {
            line.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = orcpt.and_then(dsn_orcpt) {
            line.push_str(&format!(" ORCPT={orcpt}"));
        }
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// RET is `FULL` or `HDRS`; anything else is dropped.
fn dsn_ret(ret: &str) -> Option<&'static str> {
    match ret.trim().to_ascii_uppercase().as_str() {
        "FULL" => Some("FULL"),
        "HDRS" => Some("HDRS"),
        _ => None,
    }
}

/// NOTIFY is `NEVER` or a list of `SUCCESS`, `FAILURE`, `DELAY`; anything else is dropped.
fn dsn_notify(notify: &str) -> Option<String> {
    let words: Vec<String> = notify
        .split(',')
        .map(|w| w.trim().to_ascii_uppercase())
        .collect();
    let known = |w: &String| matches!(w.as_str(), "SUCCESS" | "FAILURE" | "DELAY");
    let valid = (words.len() == 1 && words[0] == "NEVER") || words.iter().all(known);
    (valid && !words.is_empty()).then(|| words.join(","))
}

/// ORCPT as stored (`type;address`, decoded; a bare address means `rfc822`) → wire form
/// `type;xtext(address)`.
fn dsn_orcpt(orcpt: &str) -> Option<String> {
    let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
    let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (kind_ok && !address.is_empty()).then(|| format!("{kind};{}", xtext(address)))
}

/// The message in DATA form: every line ends in CR LF (an existing CR LF is kept, not
/// doubled), a line starting with `.` gets one more, and a last line without LF is ended.
/// Lines longer than `line_limit` bytes (0 = no limit) are broken with [`fold_line`]. The
/// final `.` CR LF is not included. Also returns whether any line was broken.
/// Also returns whether a line was broken and how many transparency dots were added (the
/// body less those is [`wire_text`], whose length SIZE= announces).
pub(crate) fn data_body(message: &[u8], line_limit: usize) -> (Vec<u8>, bool, usize) {
    encode(message, line_limit, true)
}

/// The message as the receiver will have it after undoing the transparency dots: CR LF
/// line ends and lines broken as [`data_body`] breaks them. What a DKIM signature covers.
pub(crate) fn wire_text(message: &[u8], line_limit: usize) -> Vec<u8> {
    encode(message, line_limit, false).0
}

fn encode(message: &[u8], line_limit: usize, stuff_dots: bool) -> (Vec<u8>, bool, usize) {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    let (mut broken, mut stuffed) = (false, 0);
    if message.is_empty() {
        return (out, broken, stuffed);
    }
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    for line in lines(body) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if stuff_dots && line.first() == Some(&b'.') {
            out.push(b'.');
            stuffed += 1;
        }
        broken |= fold_line(line, line_limit, &mut out);
        out.extend_from_slice(b"\r\n");
    }
    (out, broken, stuffed)
}

/// The lines of `body` without their LF, as `split(|&b| b == b'\n')` gives them, found with
/// memchr (the byte-by-byte split cost more than the rest of a relayed message's encoding).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let line = &body[start..end];
        start = end + 1;
        Some(line)
    })
}

/// Postfix's `smtp_line_length_limit` (smtp_proto.c, `smtp_text_out`): a line of more than
/// `limit` bytes goes out as its first `limit` bytes, then pieces of at most `limit - 1`
/// bytes, each on a new line after CR LF SPACE — so every wire line is at most `limit`
/// bytes, a broken header stays one (folded) header, and MIME parts survive. The receiver
/// gets the line back by removing each CR LF SPACE. Like Postfix, the transparency dot is
/// not counted. Unlike Postfix, a break is moved back (at most 3 bytes) to the start of a
/// UTF-8 character, so a multi-byte character is never split across lines. Returns whether
/// the line was broken.
pub(crate) fn fold_line(line: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
    if limit == 0 || line.len() <= limit {
        out.extend_from_slice(line);
        return false;
    }
    for (i, piece) in pieces(line, limit).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n ");
        }
        out.extend_from_slice(piece);
    }
    true
}

/// The pieces [`fold_line`] sends a line in (`limit` > 0): the first at most `limit` bytes,
/// the others at most `limit - 1` (the space opening a continuation line counts towards its
/// length), each cut moved back to a UTF-8 character's start. [`wire_size`] counts them.
fn pieces(line: &[u8], limit: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = line;
    let mut room = limit;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if rest.len() <= room {
            done = true;
            return Some(rest);
        }
        let cut = char_boundary(rest, room);
        let (piece, after) = rest.split_at(cut);
        rest = after;
        room = limit.saturating_sub(1).max(1);
        Some(piece)
    })
}

/// `at`, or up to 3 bytes before it when `at` falls inside a UTF-8 sequence (the byte there
/// is a continuation byte `10xxxxxx`); never 0, so every piece holds at least one byte.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let is_continuation = |i: usize| bytes.get(i).is_some_and(|&b| b & 0xc0 == 0x80);
    let mut cut = at;
    while cut > 1 && at - cut < 3 && is_continuation(cut) {
        cut -= 1;
    }
    if is_continuation(cut) {
        at
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_the_lf_split_of_any_text() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let len = rng.usize(0..40);
            let text: Vec<u8> = (0..len).map(|_| *rng.choice(b"a\n\r.").unwrap()).collect();
            let split: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            assert_eq!(lines(&text).collect::<Vec<_>>(), split, "{text:?}");
            for limit in [0, 1, 2, 3, 7] {
                let sent = wire_text(&text, limit).len() as u64;
                assert_eq!(wire_size(&text, limit), sent, "{text:?} limit {limit}");
            }
        }
    }

    /// README's old gap: SIZE= was computed before long lines were broken, 3 bytes short
    /// per break, so a server enforcing its limit exactly could take a message too big.
    #[test]
    fn size_counts_every_line_break_as_sent_utf8_included() {
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet = ["a", "b", ".", "\n", "\r\n", "é", "€", "😀", " "];
        for _ in 0..3000 {
            let n = rng.usize(0..300);
            let text: String = (0..n).map(|_| *rng.choice(&alphabet).unwrap()).collect();
            for limit in [0, 1, 2, 5, 13, 78, 998] {
                let sent = wire_text(text.as_bytes(), limit).len() as u64;
                assert_eq!(
                    wire_size(text.as_bytes(), limit),
                    sent,
                    "{text:?} limit {limit}"
                );
            }
        }
        let long = vec![b'x'; 2500];
        // 998, then 997 + 3, then 505 + 3 (CR LF SPACE), then CR LF.
        assert_eq!(wire_size(&long, 998), 2500 + 3 * 2 + 2);
    }

    fn all_caps() -> Capabilities {
        Capabilities {
            pipelining: true,
            size: true,
            size_limit: Some(1000),
            eight_bit_mime: true,
            smtputf8: true,
            dsn: true,
            starttls: true,
            auth: Vec::new(),
        }
    }

    #[test]
    fn body_transparency() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"a\n", b"a\r\n"),
            (b"a", b"a\r\n"),
            (b".\n", b"..\r\n"),
            (b"a\n.b\n..c\n", b"a\r\n..b\r\n...c\r\n"),
            (b"a\r\nb\n", b"a\r\nb\r\n"),
            (b"\n\n", b"\r\n\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(
                data_body(input, 998),
                (
                    want.to_vec(),
                    false,
                    want.len() - wire_text(input, 998).len()
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The wire lines of a DATA body, CR LF removed.
    fn wire_lines(body: &[u8]) -> Vec<&[u8]> {
        let body = body.strip_suffix(b"\r\n").unwrap_or(body);
        body.split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect()
    }

    /// What the receiver restores: CR LF SPACE removed, CR LF back to LF, dots unstuffed.
    fn unfold(body: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        for line in wire_lines(body) {
            match line.strip_prefix(b" ") {
                Some(rest) if !text.is_empty() => {
                    text.pop();
                    text.extend_from_slice(rest);
                }
                _ => text.extend_from_slice(line.strip_prefix(b".").unwrap_or(line)),
            }
            text.push(b'\n');
        }
        text
    }

    /// Issue 8 defect 13: Postfix's smtp_line_length_limit = 998 — the first 998 bytes, then
    /// CR LF SPACE and pieces of 997; a line of exactly 998 bytes is not touched.
    #[test]
    fn long_lines_are_broken_as_postfix_breaks_them() {
        let exact = vec![b'a'; 998];
        let (body, broken, _) = data_body(&[&exact[..], b"\n"].concat(), 998);
        assert_eq!((wire_lines(&body), broken), (vec![&exact[..]], false));

        let line: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let message = [b"Subject: x\n\n", &line[..], b"\nend\n"].concat();
        let (body, broken, _) = data_body(&message, 998);
        assert!(broken);
        let lengths: Vec<usize> = wire_lines(&body).iter().map(|l| l.len()).collect();
        assert_eq!(lengths, [10, 0, 998, 998, 998, 9, 3]);
        let lines = wire_lines(&body);
        assert!(
            lines[3].starts_with(b" ") && lines[4].starts_with(b" ") && lines[5].starts_with(b" ")
        );
        assert_eq!(unfold(&body), message);

        let (body, broken, _) = data_body(&message, 0);
        assert!(!broken, "0 disables the limit");
        assert_eq!(wire_lines(&body)[2], &line[..]);
    }

    #[test]
    fn broken_lines_keep_dots_headers_and_characters_intact() {
        // A long header stays one header: its continuation lines start with a space.
        let header = format!("Subject: {}\n\nbody\n", "w".repeat(2500));
        let (body, _, _) = data_body(header.as_bytes(), 998);
        let lines = wire_lines(&body);
        assert!(lines[1].starts_with(b" ") && lines[2].starts_with(b" "));
        assert_eq!(lines[3], b"");
        // A leading dot is doubled once; continuation lines start with a space, never a dot.
        let dotted = [b".", &vec![b'.'; 2000][..], b"\n"].concat();
        let (body, _, _) = data_body(&dotted, 998);
        let lines = wire_lines(&body);
        assert_eq!(lines[0].len(), 999);
        assert!(lines[1..].iter().all(|l| l.starts_with(b" ")));
        assert_eq!(unfold(&body), dotted);
        // No multi-byte character is split, and every wire line still fits.
        let text = "é".repeat(1500) + "\n";
        let (body, _, _) = data_body(text.as_bytes(), 998);
        for line in wire_lines(&body) {
            let content = line.strip_prefix(b" ").unwrap_or(line);
            assert!(std::str::from_utf8(content).is_ok() && line.len() <= 998);
        }
        assert_eq!(unfold(&body), text.as_bytes());
    }

    #[test]
    fn any_line_survives_folding_under_any_limit() {
        let mut seed = 7u32;
        for _ in 0..300 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (seed >> 8) as usize % 5000;
            let limit = [0, 1, 2, 3, 76, 998][(seed >> 4) as usize % 6];
            let line: Vec<u8> = (0..len)
                .map(|i| [b'x', b'.', 0xc3, 0xa9, b' ', 0xff][(i * 7 + len) % 6])
                .collect();
            let message = [&line[..], b"\n"].concat();
            let (body, _, _) = data_body(&message, limit);
            assert_eq!(unfold(&body), message, "len {len} limit {limit}");
            if limit >= 2 {
                for l in wire_lines(&body).iter().skip(1) {
                    assert!(l.len() <= limit, "len {len} limit {limit}: {}", l.len());
                }
            }
        }
    }

    #[test]
    fn sizes_and_flags() {
        assert_eq!(wire_size(b"ab\ncd\n", 0), 8);
        assert_eq!(
            wire_size(b"ab\r\ncd", 0),
            8,
            "the last line is ended on the wire"
        );
        assert_eq!(wire_size(b"\n", 0), 2);
        assert_eq!(wire_size(b"", 0), 0);
        assert!(has_8bit("é".as_bytes()) && !has_8bit(b"plain"));
        assert!(needs_smtputf8("jö@example.com") && !needs_smtputf8("jo@example.com"));
    }

    #[test]
    fn unsafe_addresses() {
        assert!(is_safe_address("a@b.example") && is_safe_address(""));
        for bad in ["a\r\nRSET@b", "a>@b", "<a@b", "a\0b", "x\x7f"] {
            assert!(!is_safe_address(bad), "{bad:?}");
        }
        assert!(!is_safe_address(&"a".repeat(999)));
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("é"), "+C3+A9");
    }

    #[test]
    fn mail_from_parameters_follow_capabilities() {
        let params = MailParams {
            size: 42,
            eight_bit: true,
            smtputf8: true,
            ret: Some("hdrs"),
            envid: Some("id 1"),
        };
        let line = mail_from("s@x", &params, &all_caps());
        assert_eq!(
            line,
            b"MAIL FROM:<s@x> SIZE=42 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+201\r\n"
        );
        let bare = mail_from("", &params, &Capabilities::default());
        assert_eq!(bare, b"MAIL FROM:<>\r\n");
        let bad_ret = MailParams {
            ret: Some("FULL\r\nRSET"),
            ..MailParams::default()
        };
        let line = String::from_utf8(mail_from("s@x", &bad_ret, &all_caps())).unwrap();
        assert_eq!(line, "MAIL FROM:<s@x> SIZE=0\r\n");
    }

    #[test]
    fn rcpt_to_parameters() {
        let caps = all_caps();
        let line = rcpt_to("r@x", Some("success, failure"), Some("rfc822;R@x"), &caps);
        assert_eq!(
            line,
            b"RCPT TO:<r@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;R@x\r\n"
        );
        let line = rcpt_to("r@x", Some("NEVER"), Some("a b@x"), &caps);
        assert_eq!(line, b"RCPT TO:<r@x> NOTIFY=NEVER ORCPT=rfc822;a+20b@x\r\n");
        let line = rcpt_to("r@x", Some("NEVER,DELAY"), Some("bad type;x"), &caps);
        assert_eq!(line, b"RCPT TO:<r@x>\r\n");
        let line = rcpt_to("r@x", Some("DELAY"), None, &Capabilities::default());
        assert_eq!(line, b"RCPT TO:<r@x>\r\n");
    }
}
