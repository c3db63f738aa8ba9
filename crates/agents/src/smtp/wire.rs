//! What the SMTP client writes: commands with their ESMTP parameters and the message body in
//! transparent form. No I/O.
//!
//! Inputs → outputs: envelope addresses, DSN fields and server capabilities → command lines
//! (`MAIL FROM:<a> SIZE=… BODY=8BITMIME …`); a message with LF line ends → its DATA form
//! (CR LF line ends, leading dots doubled, RFC 5321 4.5.2), without the final dot.
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
    message.iter().any(|&b| b >= 0x80)
}

/// The message's size on the wire as announced in SIZE= (RFC 1870): LF becomes CR LF.
pub(crate) fn wire_size(message: &[u8]) -> u64 {
    let bare_lf = message
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || message[i - 1] != b'\r'))
        .count();
    (message.len() + bare_lf) as u64
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
/// The final `.` CR LF is not included.
pub(crate) fn data_body(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    if message.is_empty() {
        return out;
    }
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_caps() -> Capabilities {
        Capabilities {
            pipelining: true,
            size: true,
            size_limit: Some(1000),
            eight_bit_mime: true,
            smtputf8: true,
            dsn: true,
            starttls: true,
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
                data_body(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn sizes_and_flags() {
        assert_eq!(wire_size(b"ab\ncd\n"), 8);
        assert_eq!(wire_size(b"ab\r\ncd"), 6);
        assert_eq!(wire_size(b"\n"), 2);
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
