//! Content inspection as Postfix's cleanup does it (header_checks(5)): `header_checks` on
//! each primary header, `mime_header_checks` on MIME headers (`Content-*`, `MIME-Version`,
//! at the top and in each body part), `nested_header_checks` on the headers of an attached
//! `message/rfc822`, `body_checks` on each other body line. Each logical header is one
//! line (continuation lines joined); tables are `regexp:`/`pcre:` (any map type works).
//!
//! Actions, first match in a table decides (Postfix's words):
//! - `REJECT [text]`: the message is refused (`5.7.1 message content rejected` by default,
//!   or `[4|5].x.y text`); inspection stops.
//! - `DISCARD [text]`: accepted and dropped; inspection stops.
//! - `HOLD [text]`: into the hold queue; inspection goes on.
//! - `REDIRECT user@domain`: every recipient replaced by that one; inspection stops.
//! - `BCC user@domain`: that address added as a recipient (NOTIFY=NONE, once).
//! - `PASS [text]`: no more header, body or milter inspection for this message.
//! - `WARN [text]`, `INFO [text]`: a log line only. `IGNORE`: the line is removed;
//!   `STRIP [text]`: removed with a log line.
//! - `PREPEND text`: a line inserted before this one (for headers, text must be a header).
//! - `REPLACE text`: the line replaced by the text (for headers, text must be a header).
//! - `DUNNO`, `OK`: nothing.
//! - `FILTER transport:destination`: this message goes to that content filter (e.g.
//!   `smtp:[127.0.0.1]:10026`) instead of `content_filter` or its own route; the last FILTER
//!   wins; inspection goes on. The queue record keeps it ([`envelope::Envelope::filter`]).
//!
//! A malformed argument (REDIRECT or BCC without `@`, a PREPEND or REPLACE header that is
//! not `name: value`, a FILTER that is not `transport:destination` mailroom can deliver
//! to) is a warning naming the table's value, and the line is inspected
//! as if the table had said DUNNO (Postfix's cleanup_act).
//!
//! Pure: bytes in, an [`Inspection`] out; the callers (smtpd intake and pickup) act on it
//! and write the log lines ([`Finding::log_line`], Postfix's cleanup format).

use maps::{MapError, Maps};

/// The tables, opened from the configuration.
#[derive(Debug, Default)]
pub struct ContentChecks {
    header: Maps,
    mime: Maps,
    nested: Maps,
    body: Maps,
}

/// What the message as a whole comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    /// `status` is `5.7.1` or the table's own `4.x.y`/`5.x.y`.
    Reject {
        status: String,
        text: String,
    },
    Discard,
}

/// One match worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `reject`, `warning`, `info`, `hold`, `discard`, `redirect`, `bcc`, `pass`,
    /// `prepend`, `replace`, `strip`, `filter`.
    pub action: &'static str,
    /// `header` or `body`.
    pub class: &'static str,
    /// The line that matched (at most 200 bytes, as Postfix logs it).
    pub content: String,
    pub text: String,
}

/// The result of inspecting one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub outcome: Outcome,
    /// `HOLD`'s text, when a table said HOLD.
    pub hold: Option<String>,
    /// `REDIRECT`'s address.
    pub redirect: Option<String>,
    /// `BCC` addresses, in table order.
    pub bcc: Vec<String>,
    /// `FILTER`'s `transport:destination` (the last one wins).
    pub filter: Option<String>,
    /// `PASS`: the milters are not asked about this message either.
    pub pass: bool,
    /// Table values that could not be carried out (`bad BCC address ...`), for a warning.
    pub warnings: Vec<String>,
    /// The message with IGNOREd lines removed and PREPENDed ones added (`None`: unchanged).
    pub message: Option<Vec<u8>>,
    pub findings: Vec<Finding>,
}

/// Where the message came from, for [`Finding::log_line`].
pub struct LogContext<'a> {
    pub queue_id: &'a str,
    /// `unknown[192.0.2.1]` for SMTP, `local` for pickup.
    pub origin: &'a str,
    pub sender: &'a str,
    pub recipient: Option<&'a str>,
    /// SMTP only: the protocol name and HELO.
    pub smtp: Option<(&'a str, &'a str)>,
}

impl Finding {
    /// `ID: reject: header Subject: x from unknown[1.2.3.4]; from=<a> to=<b> proto=ESMTP
    /// helo=<h>: 5.7.1 text` (Postfix's cleanup_act_log). Control characters (the
    /// sender's bytes) become `?`, as Postfix's printable() makes them, so one finding is
    /// one log line.
    pub fn log_line(&self, cx: &LogContext<'_>) -> String {
        let line = self.raw_log_line(cx);
        line.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    }

    fn raw_log_line(&self, cx: &LogContext<'_>) -> String {
        let mut line = format!(
            "{}: {}: {} {} from {};",
            cx.queue_id, self.action, self.class, self.content, cx.origin
        );
        line.push_str(&format!(" from=<{}>", cx.sender));
        if let Some(to) = cx.recipient {
            line.push_str(&format!(" to=<{to}>"));
        }
        if let Some((proto, helo)) = cx.smtp {
            line.push_str(&format!(" proto={proto} helo=<{helo}>"));
        }
        if !self.text.is_empty() {
            line.push_str(&format!(": {}", self.text));
        }
        line
    }
}

/// Which table a line goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Header,
    Mime,
    Nested,
    Body,
}

impl ContentChecks {
    pub fn from_config(cfg: &config::Config) -> Result<ContentChecks, MapError> {
        Ok(ContentChecks {
            header: Maps::open(&cfg.header_checks)?,
            mime: Maps::open(&cfg.mime_header_checks)?,
            nested: Maps::open(&cfg.nested_header_checks)?,
            body: Maps::open(&cfg.body_checks)?,
        })
    }

    /// True when no table is configured: intake skips the walk.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
            && self.mime.is_empty()
            && self.nested.is_empty()
            && self.body.is_empty()
    }

    fn table(&self, part: Part) -> &Maps {
        match part {
            Part::Header => &self.header,
            Part::Mime => &self.mime,
            Part::Nested => &self.nested,
            Part::Body => &self.body,
        }
    }

    /// Inspects `message` (LF line ends, headers, an empty line, the body).
    pub fn inspect(&self, message: &[u8]) -> Inspection {
        let mut walk = Walk::new(self);
        for (part, line) in crate::mime::logical_lines(message) {
            if !walk.line(part, line) {
                break;
            }
        }
        walk.finish()
    }
}

/// The inspection in progress.
struct Walk<'c> {
    checks: &'c ContentChecks,
    out: Vec<u8>,
    changed: bool,
    inspection: Inspection,
    /// After REJECT, DISCARD or REDIRECT: the rest is copied, not inspected.
    stopped: bool,
}

impl<'c> Walk<'c> {
    fn new(checks: &'c ContentChecks) -> Walk<'c> {
        Walk {
            checks,
            out: Vec::new(),
            changed: false,
            inspection: Inspection {
                outcome: Outcome::Accept,
                hold: None,
                redirect: None,
                bcc: Vec::new(),
                filter: None,
                pass: false,
                warnings: Vec::new(),
                message: None,
                findings: Vec::new(),
            },
            stopped: false,
        }
    }

    /// One logical line (with its LF and continuation lines); false once nothing more
    /// needs reading (a rejected message is not rebuilt).
    fn line(&mut self, part: crate::mime::Part, raw: &[u8]) -> bool {
        let part = match part {
            crate::mime::Part::Header => Part::Header,
            crate::mime::Part::Mime => Part::Mime,
            crate::mime::Part::Nested => Part::Nested,
            crate::mime::Part::Body => Part::Body,
            crate::mime::Part::Separator => {
                self.out.extend_from_slice(raw);
                return true;
            }
        };
        let table = self.checks.table(part);
        let key = unfold(raw);
        let found = match (self.stopped, table.is_empty()) {
            (false, false) => table.lookup(&key),
            _ => None,
        };
        let keep = match found {
            Some(value) => self.act(part, &key, &value),
            None => true,
        };
        if keep {
            self.out.extend_from_slice(raw);
        } else {
            self.changed = true;
        }
        !matches!(self.inspection.outcome, Outcome::Reject { .. })
    }

    /// Carries out one table result; false when the line is to be removed (or was
    /// replaced: the replacement is in the output already).
    fn act(&mut self, part: Part, key: &str, value: &str) -> bool {
        let value = value.trim();
        let (command, text) = match value.split_once([' ', '\t']) {
            Some((c, t)) => (c, t.trim()),
            None => (value, ""),
        };
        let class = if part == Part::Body { "body" } else { "header" };
        let command = command.to_ascii_uppercase();
        if let Some(problem) = bad_argument(&command, text, class) {
            self.inspection
                .warnings
                .push(format!("{problem} in {class}_checks: {value}"));
            return true;
        }
        let keep = !matches!(command.as_str(), "IGNORE" | "STRIP" | "REPLACE");
        if let Some(action) = self.decide(&command, text) {
            self.inspection.findings.push(Finding {
                action,
                class,
                content: clip(key),
                text: match action {
                    "reject" => self.reject_log_text(),
                    _ => text.to_string(),
                },
            });
        }
        if matches!(command.as_str(), "PREPEND" | "REPLACE") {
            self.out.extend_from_slice(text.as_bytes());
            self.out.push(b'\n');
            self.changed = true;
        }
        keep
    }

    /// Records what `command` decides; the finding's action word, when it is logged.
    fn decide(&mut self, command: &str, text: &str) -> Option<&'static str> {
        let found = &mut self.inspection;
        let action = match command {
            "REJECT" => {
                let (status, text) = reject_status(text);
                found.outcome = Outcome::Reject { status, text };
                "reject"
            }
            "DISCARD" => {
                found.outcome = Outcome::Discard;
                "discard"
            }
            "HOLD" if found.hold.is_none() => {
                found.hold = Some(text.to_string());
                "hold"
            }
            "REDIRECT" => {
                found.redirect = Some(text.to_string());
                "redirect"
            }
            "PASS" => {
                found.pass = true;
                "pass"
            }
            "BCC" => {
                found.bcc.push(text.to_string());
                "bcc"
            }
            "WARN" => "warning",
            "INFO" => "info",
            "STRIP" => "strip",
            "PREPEND" => "prepend",
            "REPLACE" => "replace",
            "FILTER" => {
                found.filter = Some(text.to_string());
                "filter"
            }
            _ => return None, // DUNNO, OK, IGNORE, a second HOLD
        };
        // Postfix turns off all further inspection (CLEANUP_FLAG_FILTER_ALL).
        self.stopped |= matches!(command, "REJECT" | "DISCARD" | "REDIRECT" | "PASS");
        Some(action)
    }

    /// `5.7.1 text` of the REJECT just recorded.
    fn reject_log_text(&self) -> String {
        match &self.inspection.outcome {
            Outcome::Reject { status, text } => format!("{status} {text}"),
            _ => String::new(),
        }
    }

    fn finish(mut self) -> Inspection {
        if self.changed && !matches!(self.inspection.outcome, Outcome::Reject { .. }) {
            self.inspection.message = Some(self.out);
        }
        self.inspection
    }
}

impl Inspection {
    /// Applies what changes the message itself: the edited text (IGNORE, STRIP, PREPEND,
    /// REPLACE), REDIRECT (every recipient replaced by that address), BCC (each address
    /// added with NOTIFY=NONE, unless it is a recipient already) and FILTER (it replaces a
    /// FILTER an access table said: Postfix's cleanup sees smtpd's first).
    pub fn apply(&mut self, env: &mut envelope::Envelope, message: &mut Vec<u8>) {
        if let Some(filter) = self.filter.take() {
            env.filter = Some(filter);
        }
        if let Some(edited) = self.message.take() {
            *message = edited;
        }
        if let Some(address) = &self.redirect {
            env.recipients = vec![envelope::Recipient::new(address.as_str())];
        }
        for address in &self.bcc {
            let known = env.recipients.iter().any(|r| r.address == *address);
            if !known {
                let mut bcc = envelope::Recipient::new(address.as_str());
                bcc.notify = Some("NEVER".to_string());
                env.recipients.push(bcc);
            }
        }
    }
}

/// Why a table value cannot be carried out (Postfix's warnings), if it cannot.
fn bad_argument(command: &str, text: &str, class: &str) -> Option<&'static str> {
    let is_header = || {
        text.split_once(':')
            .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
    };
    match command {
        "REDIRECT" if !text.contains('@') => Some("bad REDIRECT target (need user@domain)"),
        "BCC" if !text.contains('@') => Some("bad BCC address (need user@domain)"),
        "PREPEND" | "REPLACE" if text.is_empty() => Some("action without text"),
        "FILTER" if text.is_empty() => Some("missing FILTER command argument"),
        "FILTER" if envelope::parse_filter(text).is_err() => {
            Some("bad FILTER command (need transport:destination)")
        }
        "PREPEND" | "REPLACE" if class == "header" && !is_header() => {
            Some("bad header text (need \"headername: headervalue\")")
        }
        _ => None,
    }
}

/// `REJECT 4.7.0 try later` → (`4.7.0`, `try later`); no or a bad status → `5.7.1`.
fn reject_status(text: &str) -> (String, String) {
    if text.is_empty() {
        return ("5.7.1".into(), "message content rejected".into());
    }
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let is_status = first.split('.').count() == 3
        && first
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(first.as_bytes()[0], b'4' | b'5');
    match is_status {
        true => (first.to_string(), rest.trim().to_string()),
        false => ("5.7.1".into(), text.to_string()),
    }
}

/// A logical line as the tables see it: continuation line breaks removed, no final LF.
fn unfold(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.replace("\r\n", "\n").replace('\n', "")
}

/// At most 200 bytes (on a character boundary), as Postfix's `%.200s`.
fn clip(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests;
