//! SMTP replies (RFC 5321 section 4.2) with RFC 3463 enhanced status codes, and the fixed
//! replies the server sends, in one place so the texts match Postfix's where a habit or a
//! log parser depends on them.
//!
//! A reply is a three-digit code, an optional enhanced code and one or more text lines; it
//! renders as `250-first\r\n250 last\r\n`. Text never contains CR or LF (callers pass text
//! built from parsed, line-free input), so a client cannot inject reply lines.

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 status such as `5.7.1`; empty for replies that carry none (220, 334, EHLO).
    pub status: &'static str,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply without enhanced codes (the EHLO response).
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: "",
            lines,
        }
    }

    /// 4xx and 5xx replies count as client errors (Postfix's error count).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The first line as the log shows it: `554 5.7.1 <a@b>: Relay access denied`.
    pub fn summary(&self) -> String {
        let text = self.lines.first().map(String::as_str).unwrap_or("");
        match self.status {
            "" => format!("{} {text}", self.code),
            status => format!("{} {status} {text}", self.code),
        }
    }

    /// Appends the wire form (CRLF line ends) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Byte by byte, not through `write!`: smtpd sends one of these for every command.
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            push_code(out, self.code);
            out.push(if i == last { b' ' } else { b'-' });
            if !self.status.is_empty() {
                out.extend_from_slice(self.status.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.lines.is_empty() {
            push_code(out, self.code);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// The reply code's digits (three for every code a reply can carry; any other value as
/// its decimal digits, as `write!` would give).
fn push_code(out: &mut Vec<u8>, code: u16) {
    if (100..1000).contains(&code) {
        out.extend_from_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(code.to_string().as_bytes());
    }
}

/// The fixed replies. Functions, not constants, because [`Reply`] owns its text.
pub mod fixed {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0", "Ok")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5", "Ok")
    }
    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
    }
    pub fn start_tls() -> Reply {
        Reply::new(220, "2.0.0", "Ready to start TLS")
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
    }
    pub fn chunk_ok(bytes: u64) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: {bytes} bytes"))
    }
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            "2.0.0",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    pub fn help() -> Reply {
        Reply::new(
            214,
            "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
        )
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, "5.5.2", "Error: command not recognized")
    }
    pub fn not_implemented() -> Reply {
        Reply::new(502, "5.5.1", "Error: command not implemented")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Error: line too long")
    }
    pub fn nul_in_command() -> Reply {
        Reply::new(500, "5.5.2", "Error: NUL character in command")
    }
    pub fn bare_newline(what: &str) -> Reply {
        Reply::new(550, "5.5.2", format!("Error: bare <{what}> received"))
    }
    pub fn need_helo() -> Reply {
        Reply::new(503, "5.5.1", "Error: send HELO/EHLO first")
    }
    pub fn nested_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: nested MAIL command")
    }
    pub fn need_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: need MAIL command")
    }
    pub fn need_rcpt() -> Reply {
        Reply::new(503, "5.5.1", "Error: need RCPT command")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1", "Error: no valid recipients")
    }
    pub fn mixed_bdat_data() -> Reply {
        Reply::new(503, "5.5.1", "Error: mixing BDAT and DATA is not allowed")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Error: too many recipients")
    }
    pub fn relay_denied(address: &str) -> Reply {
        Reply::new(554, "5.7.1", format!("<{address}>: Relay access denied"))
    }
    /// Postfix's wording for `local_recipient_maps` (RFC 3463 5.1.1: bad destination mailbox).
    pub fn unknown_local_user(address: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!(
                "<{address}>: Recipient address rejected: User unknown in local recipient table"
            ),
        )
    }
    /// Postfix's `reject_unlisted_recipient` for a virtual mailbox domain.
    pub fn unknown_virtual_user(address: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!(
                "<{address}>: Recipient address rejected: User unknown in virtual mailbox table"
            ),
        )
    }
    pub fn size_exceeded() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
    }
    pub fn message_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Error: message file too big")
    }
    pub fn header_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Error: message header size exceeds limit")
    }
    pub fn too_many_hops() -> Reply {
        Reply::new(554, "5.4.6", "Error: too many hops")
    }
    pub fn nul_in_message() -> Reply {
        Reply::new(550, "5.6.0", "Error: NUL character in message")
    }
    pub fn insufficient_storage() -> Reply {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    }
    pub fn queue_write_error() -> Reply {
        Reply::new(451, "4.3.0", "Error: queue file write error")
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "Authentication required")
    }
    pub fn starttls_required() -> Reply {
        Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
    }
    pub fn tls_already_active() -> Reply {
        Reply::new(554, "5.5.1", "Error: TLS already active")
    }
    pub fn auth_not_enabled() -> Reply {
        Reply::new(503, "5.5.1", "Error: authentication not enabled")
    }
    pub fn auth_needs_tls() -> Reply {
        Reply::new(
            538,
            "5.7.11",
            "Encryption required for requested authentication mechanism",
        )
    }
    pub fn already_authenticated() -> Reply {
        Reply::new(503, "5.5.1", "Error: already authenticated")
    }
    pub fn auth_in_transaction() -> Reply {
        Reply::new(503, "5.5.1", "Error: MAIL transaction in progress")
    }
    pub fn auth_mechanism_unsupported() -> Reply {
        Reply::new(504, "5.5.4", "Unsupported authentication mechanism")
    }
    pub fn auth_ok() -> Reply {
        Reply::new(235, "2.7.0", "Authentication successful")
    }
    pub fn auth_failed() -> Reply {
        Reply::new(
            535,
            "5.7.8",
            "Error: authentication failed: authentication failure",
        )
    }
    pub fn auth_aborted() -> Reply {
        Reply::new(501, "5.7.0", "Authentication aborted")
    }
    pub fn auth_bad_response() -> Reply {
        Reply::new(501, "5.5.2", "Error: cannot decode authentication response")
    }
    pub fn auth_unavailable() -> Reply {
        Reply::new(454, "4.7.0", "Temporary authentication failure")
    }
    pub fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }
    pub fn too_many_errors(hostname: &str) -> Reply {
        Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
    }
    pub fn shutting_down(hostname: &str) -> Reply {
        Reply::new(421, "4.3.2", format!("{hostname} Service shutting down"))
    }
    pub fn too_many_connections_from(hostname: &str, ip: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Error: too many connections from {ip}"),
        )
    }
    pub fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Error: too many connections; try again later"),
        )
    }
    /// `smtpd_forbid_unauth_pipelining` (Postfix's exact text).
    pub fn pipelining_violation() -> Reply {
        Reply::new(554, "5.5.0", "Error: SMTP protocol synchronization")
    }
    pub fn too_many_auth_failures(ip: &str) -> Reply {
        Reply::new(
            450,
            "4.7.1",
            format!("Error: too many failed AUTH attempts from {ip}"),
        )
    }
    pub fn tls_unavailable() -> Reply {
        Reply::new(454, "4.7.0", "TLS not available due to local problem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line_replies() {
        assert_eq!(fixed::ok().to_wire(), b"250 2.0.0 Ok\r\n");
        let ehlo = Reply::multi(250, vec!["host".into(), "PIPELINING".into()]);
        assert_eq!(ehlo.to_wire(), b"250-host\r\n250 PIPELINING\r\n");
        assert_eq!(
            fixed::start_data().to_wire(),
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        assert_eq!(
            Reply::multi(334, vec![String::new()]).to_wire(),
            b"334 \r\n"
        );
    }

    #[test]
    fn summary_and_error_class() {
        let r = fixed::relay_denied("x@y");
        assert_eq!(r.summary(), "554 5.7.1 <x@y>: Relay access denied");
        assert!(r.is_error());
        assert!(!fixed::ok().is_error());
    }
}
