//! Logging for mailroom: Postfix-style `mail.log` lines (so `grep`, `pflogsumm` and old habits
//! keep working) or one JSON object per line, written to standard error, `maillog_file`
//! (reopened on request, for logrotate) or syslog (`/dev/log`, facility `mail`, ident
//! `syslog_name/service[pid]` as Postfix writes it), see `sink.rs`.
//!
//! Inputs → outputs: `tracing` events whose target is the program name (`qmgr`, `pickup`,
//! `local`, `cleanup`, `bounce`, `smtpd`) → lines like
//! `Nov 23 15:20:45 host mailroom/qmgr[1234]: 3F..: from=<a@b>, size=120, nrcpt=1 (queue active)`
//! (`mailroom` is `syslog_name`).
//!
//! Invariants (DESIGN invariant 6): a warning identical to one already written within the
//! repeat window is not written again; it is counted and reported as `(repeated N times)`
//! when the window ends — except events with the field `audit = true` (failed logins): tools
//! such as fail2ban count those lines, so each one is written. Warnings and errors together are capped at [`MAX_WARNINGS_PER_SEC`]
//! lines per second; the excess is counted and reported in one line. Info lines (one per
//! message event) are not rate-limited: their volume follows the mail volume.
//!
//! Security stance: log text may contain addresses from the network; control characters are
//! escaped so a client cannot forge log lines.

#![forbid(unsafe_code)]

mod layer;
mod sink;

use std::fmt::Write as _;

pub use layer::{init, Format, InitError, LogHandle, Options};
pub use sink::{facility_code, SYSLOG_SEND_TIMEOUT};

/// Upper bound on warning and error lines written per second.
pub const MAX_WARNINGS_PER_SEC: u32 = 50;

/// Escapes control characters (CR, LF, NUL, ESC…) so one event is always one line.
pub fn sanitize(text: &str) -> String {
    sanitized(text).into_owned()
}

/// [`sanitize`] without a copy when there is nothing to escape (nearly every line): only
/// bytes below 0x20, DEL and the lead byte of U+0080..U+00BF (the C1 controls) can start a
/// control character, so one byte scan decides.
pub(crate) fn sanitized(text: &str) -> std::borrow::Cow<'_, str> {
    // A fold, not `any`: without the early exit the scan compiles to vector compares.
    let suspect = text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    if !suspect {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32 & 0xff);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sanitize_escapes_newlines() {
        assert_eq!(super::sanitize("a\r\nb"), "a\\x0d\\x0ab");
        assert_eq!(super::sanitize("plain é"), "plain é");
    }

    #[test]
    fn c1_controls_and_del_are_escaped_other_two_byte_characters_kept() {
        // U+0085 (NEL) and U+009B (CSI) are controls; U+00A0 and U+00E9 are not.
        assert_eq!(super::sanitize("a\u{85}b\u{9b}c\x7f"), "a\\x85b\\x9bc\\x7f");
        assert_eq!(super::sanitize("\u{a0}é¢"), "\u{a0}é¢");
        assert!(matches!(
            super::sanitized("no controls here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
