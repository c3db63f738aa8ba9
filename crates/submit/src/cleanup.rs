//! Cleanup for locally submitted mail (Postfix's cleanup(8) as pickup uses it): turns a
//! [`MaildropFile`] into the envelope and message the queue stores, or a rejection the daemon
//! bounces to the sender.
//!
//! * Limits: `message_size_limit` (5.3.4), `header_size_limit` per logical header (5.3.4;
//!   Postfix truncates, we refuse rather than deliver a silently cut header), and
//!   `hopcount_limit` over `Received:` plus `Delivered-To:` headers (5.4.6, a mail loop).
//! * Envelope: unqualified addresses get `@myorigin` (Postfix's `append_at_myorigin`),
//!   duplicate recipients are dropped, origin is `pickup`.
//! * Headers: prepends `Received: by MYHOSTNAME (mailroom, from userid UID)`, adds `Date:`,
//!   `Message-ID: <QUEUEID@myhostname>` and `From:` when missing, removes `Bcc:`,
//!   `Resent-Bcc:`, `Return-Path:` and `Content-Length:` (cleanup(8) does the same), keeps every
//!   other header as it was.
//! * Output: LF line ends, the header block, one empty line, the body.

use chrono::{Datelike, Local, TimeZone, Utc};
use config::Config;
use envelope::{Envelope, Recipient};

use crate::headers::{self, Header};
use crate::maildrop::MaildropFile;

/// What cleanup takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSettings {
    /// 0 = no limit.
    pub message_size_limit: u64,
    /// Per logical header; 0 = no limit.
    pub header_size_limit: u64,
    pub hopcount_limit: u32,
    /// Appended to unqualified addresses.
    pub myorigin: String,
    /// In the `Received:` and `Message-ID:` headers cleanup adds.
    pub myhostname: String,
}

impl CleanupSettings {
    pub fn from_config(cfg: &Config) -> CleanupSettings {
        CleanupSettings {
            message_size_limit: cfg.message_size_limit,
            header_size_limit: cfg.header_size_limit,
            hopcount_limit: cfg.hopcount_limit,
            myorigin: cfg.myorigin.clone(),
            myhostname: cfg.myhostname.clone(),
        }
    }
}

/// A message ready for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub envelope: Envelope,
    pub message: Vec<u8>,
}

/// A permanent refusal: the daemon bounces it to the sender (unless that is `<>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dsn} {reason}")]
pub struct Rejected {
    /// RFC 3463 status, e.g. `5.3.4`.
    pub dsn: String,
    pub reason: String,
}

fn rejected(dsn: &str, reason: &str) -> Rejected {
    Rejected {
        dsn: dsn.to_string(),
        reason: reason.to_string(),
    }
}

/// Headers cleanup removes from every local submission.
const REMOVED: [&str; 4] = ["Bcc", "Resent-Bcc", "Return-Path", "Content-Length"];

pub fn cleanup(settings: &CleanupSettings, drop: &MaildropFile) -> Result<Cleaned, Rejected> {
    let limit = settings.message_size_limit;
    if limit > 0 && drop.message.len() as u64 > limit {
        return Err(rejected("5.3.4", "message size exceeds fixed limit"));
    }
    let split = headers::split(&drop.message);
    check_headers(settings, &split.headers)?;
    let envelope = envelope_of(settings, drop);
    let message = rewrite(settings, drop, &split, &envelope.sender);
    Ok(Cleaned { envelope, message })
}

fn check_headers(settings: &CleanupSettings, headers: &[Header<'_>]) -> Result<(), Rejected> {
    let size_limit = settings.header_size_limit;
    if size_limit > 0 && headers.iter().any(|h| h.raw.len() as u64 > size_limit) {
        return Err(rejected("5.3.4", "message header size exceeds limit"));
    }
    let hops = headers
        .iter()
        .filter(|h| h.is("Received") || h.is("Delivered-To"))
        .count();
    // Our own Received: header makes one more, so reaching the limit already exceeds it.
    let hop_limit = settings.hopcount_limit as usize;
    if hop_limit > 0 && hops >= hop_limit {
        return Err(rejected("5.4.6", "too many hops"));
    }
    Ok(())
}

/// `user` → `user@myorigin`; addresses with a domain and the null sender are left alone.
/// An `@` inside a quoted local part is not a domain separator: `"user@evil"` has no domain
/// and becomes `"user@evil"@myorigin` (a local part no mailbox has), not mail for `evil"`.
pub fn qualify(address: &str, myorigin: &str) -> String {
    let domain_at = address
        .rfind('@')
        .filter(|&at| !address[at..].contains('"'));
    match domain_at {
        _ if address.is_empty() => String::new(),
        Some(at) if at + 1 < address.len() => address.to_string(),
        Some(_) => format!("{address}{myorigin}"),
        None => format!("{address}@{myorigin}"),
    }
}

fn envelope_of(settings: &CleanupSettings, drop: &MaildropFile) -> Envelope {
    let mut recipients: Vec<Recipient> = Vec::with_capacity(drop.recipients.len());
    for address in &drop.recipients {
        let address = qualify(address, &settings.myorigin);
        if recipients.iter().any(|r| r.address == address) {
            continue;
        }
        let mut recipient = Recipient::new(address);
        recipient.notify = drop.dsn.notify.clone();
        recipients.push(recipient);
    }
    Envelope {
        sender: qualify(&drop.sender, &settings.myorigin),
        recipients,
        arrival_time: drop.arrival_time,
        envid: drop.dsn.envid.clone(),
        ret: drop.dsn.ret.clone(),
        origin: "pickup".to_string(),
        filter: None,
    }
}

fn rewrite(
    settings: &CleanupSettings,
    drop: &MaildropFile,
    split: &headers::Split<'_>,
    sender: &str,
) -> Vec<u8> {
    let date = rfc5322_date(drop.arrival_time);
    let host = &settings.myhostname;
    let mut out = Vec::with_capacity(drop.message.len() + 512);
    let received = format!(
        "Received: by {host} (mailroom, from userid {})\n\tid {}; {date}\n",
        drop.uid, drop.id
    );
    out.extend_from_slice(received.as_bytes());
    let has = |name: &str| split.headers.iter().any(|h| h.is(name));
    for header in &split.headers {
        if !REMOVED.iter().any(|name| header.is(name)) {
            push_lines(&mut out, header.raw);
        }
    }
    if !has("Date") {
        out.extend_from_slice(format!("Date: {date}\n").as_bytes());
    }
    if !has("Message-ID") {
        out.extend_from_slice(format!("Message-ID: <{}@{host}>\n", drop.id).as_bytes());
    }
    if !has("From") {
        let from = from_header(drop.fullname.as_deref(), sender, &settings.myorigin);
        out.extend_from_slice(format!("From: {from}\n").as_bytes());
    }
    out.push(b'\n');
    push_lines(&mut out, &drop.message[split.body_start..]);
    out
}

/// Appends `bytes` with CRLF turned into LF and a final LF if it lacks one.
fn push_lines(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut rest = bytes;
    while let Some(cr) = rest.windows(2).position(|w| w == b"\r\n") {
        out.extend_from_slice(&rest[..cr]);
        out.push(b'\n');
        rest = &rest[cr + 2..];
    }
    out.extend_from_slice(rest);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
}

/// RFC 5322 section 3.3 date in local time, e.g. `Tue, 1 Jul 2003 10:52:37 +0200`. A time
/// the format cannot show (after the year 9999: a maildrop file's `T` line is any number)
/// is the epoch, as one that does not exist is: chrono's `to_rfc2822` panics on it.
pub fn rfc5322_date(unix_secs: u64) -> String {
    let secs = i64::try_from(unix_secs).unwrap_or(0);
    let four_digit_year = |year: i32| (0..=9999).contains(&year);
    let local = Local.timestamp_opt(secs, 0).single();
    match local.filter(|d| four_digit_year(d.year())) {
        Some(local) => local.to_rfc2822(),
        None => Utc
            .timestamp_opt(secs, 0)
            .single()
            .filter(|d| four_digit_year(d.year()))
            .map_or_else(
                || "Thu, 1 Jan 1970 00:00:00 +0000".to_string(),
                |utc| utc.to_rfc2822(),
            ),
    }
}

/// `Full Name <user@myorigin>`, or the bare address without a name. The null sender shows
/// as `MAILER-DAEMON`, as in Postfix.
fn from_header(fullname: Option<&str>, sender: &str, myorigin: &str) -> String {
    let address = match sender {
        "" => format!("MAILER-DAEMON@{myorigin}"),
        sender => sender.to_string(),
    };
    match fullname {
        Some(name) => format!("{} <{address}>", display_name(name)),
        None => address,
    }
}

/// A display name as an RFC 5322 phrase: atoms as they are, other ASCII quoted, anything
/// else as RFC 2047 encoded words.
fn display_name(name: &str) -> String {
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(|c| is_atext(c) || c == ' ') {
        return name.to_string();
    }
    if name.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("\"{escaped}\"");
    }
    encoded_words(name)
}

/// RFC 2047 `=?UTF-8?B?...?=` words of at most 45 input bytes (75 characters encoded),
/// split on character boundaries.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join(" ")
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
