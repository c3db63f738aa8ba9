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

pub use layer::{init, Format, InitError, LogHandle, Options};
pub use sink::{facility_code, SYSLOG_SEND_TIMEOUT};

/// Upper bound on warning and error lines written per second.
pub const MAX_WARNINGS_PER_SEC: u32 = 50;

/// Escapes control characters (CR, LF, NUL, ESC…) so one event is always one line.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32 & 0xff));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sanitize_escapes_newlines() {
        assert_eq!(super::sanitize("a\r\nb"), "a\\x0d\\x0ab");
        assert_eq!(super::sanitize("plain é"), "plain é");
    }
}
