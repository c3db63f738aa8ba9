//! `postcat`: one queued message as Postfix's postcat prints it — envelope records, then the
//! message with the header/body split marked:
//!
//! ```text
//! *** ENVELOPE RECORDS deferred/0H5X9R3T6W2K4M8A ***
//! message_size:            1234
//! message_arrival_time: Tue Mar  5 07:08:09 2024
//! sender: alice@example.org
//! content_filter: smtp:[127.0.0.1]:10026     (only when a FILTER action chose one)
//! recipient: bob@example.net
//! *** MESSAGE CONTENTS deferred/0H5X9R3T6W2K4M8A ***
//! Subject: …
//!
//! body
//! *** HEADER EXTRACTED deferred/0H5X9R3T6W2K4M8A ***
//! *** MESSAGE FILE END deferred/0H5X9R3T6W2K4M8A ***
//! ```
//! `-e` envelope, `-h` header, `-b` body (any mix; none = all). With only `-h`/`-b` the
//! `***` markers are left out, so `postcat -hb -q ID > msg.eml` gives the message itself.
//! `-v` adds our extra envelope facts: every recipient's state, retry state, origin, and
//! where the record lives. Formatting, plus the one view of a maildrop file ([`maildrop_view`],
//! for the engine's `postcat -q ID` and for a file named on the command line, [`read_file`]);
//! queued messages come from [`crate::engine`].

use crate::protocol::Envelope;
use crate::row::{Row, State};
use crate::showq::display_sender;
use envelope::QueueId;
use std::io::{self, Write};
use std::path::Path;
use submit::MaildropFile;

/// A maildrop file as postcat shows it: every recipient `pending`, the submitting user as
/// its origin, `location` as where it lives.
pub fn maildrop_view(id: QueueId, file: &MaildropFile, location: String) -> Envelope {
    let row = Row::of_maildrop_file(id, file);
    Envelope {
        recipients: row
            .recipients
            .iter()
            .map(|r| (r.address.clone(), "pending".into()))
            .collect(),
        row,
        origin: format!("maildrop (uid {} {})", file.uid, file.username),
        envid: file.dsn.envid.clone(),
        ret: file.dsn.ret.clone(),
        filter: None,
        location,
    }
}

/// `postcat FILE`: a maildrop file (named by its queue ID) with its envelope, else any file
/// shown as a plain message. Returns the envelope and the message bytes.
pub fn read_file(name: &str) -> Result<(Envelope, Vec<u8>), String> {
    let path = Path::new(name);
    let id = path
        .file_name()
        .and_then(|n| QueueId::parse(&n.to_string_lossy()).ok());
    let maildrop = id.and_then(|id| submit::maildrop::read(path).ok().map(|file| (id, file)));
    if let Some((id, file)) = maildrop {
        return Ok((maildrop_view(id, &file, name.to_string()), file.message));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let row = Row {
        queue_name: State::Incoming,
        queue_id: name.to_string(),
        arrival_time: 0,
        message_size: bytes.len() as u64,
        forced_expire: false,
        sender: String::new(),
        recipients: Vec::new(),
        next_attempt: 0,
        attempts: 0,
    };
    let envelope = Envelope {
        row,
        recipients: Vec::new(),
        origin: "file".into(),
        envid: None,
        ret: None,
        filter: None,
        location: name.to_string(),
    };
    Ok((envelope, bytes))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Sections {
    pub envelope: bool,
    pub header: bool,
    pub body: bool,
    pub verbose: bool,
}

impl Sections {
    fn all(self) -> Sections {
        if self.envelope || self.header || self.body {
            self
        } else {
            Sections {
                envelope: true,
                header: true,
                body: true,
                verbose: self.verbose,
            }
        }
    }
}

fn asctime(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%a %b %e %H:%M:%S %Y")
                .to_string()
        })
        .unwrap_or_default()
}

/// Writes the message; `message` is the stored bytes (headers, empty line, body).
pub fn write(
    out: &mut impl Write,
    env: &Envelope,
    message: &[u8],
    sections: Sections,
) -> io::Result<()> {
    let s = sections.all();
    let name = format!("{}/{}", env.row.queue_name.as_str(), env.row.queue_id);
    let markers = s.envelope;
    if s.envelope {
        writeln!(out, "*** ENVELOPE RECORDS {name} ***")?;
        writeln!(out, "message_size: {:>15}", env.row.message_size)?;
        writeln!(
            out,
            "message_arrival_time: {}",
            asctime(env.row.arrival_time)
        )?;
        writeln!(out, "sender: {}", display_sender(&env.row.sender))?;
        if let Some(filter) = &env.filter {
            // Postfix's queue file record for it is named `content_filter`.
            writeln!(out, "content_filter: {filter}")?;
        }
        for (address, state) in &env.recipients {
            if s.verbose || state == "pending" || state.starts_with("deferred") {
                writeln!(out, "recipient: {address}")?;
            }
        }
        if s.verbose {
            write_verbose(out, env)?;
        }
    }
    let split = header_end(message);
    let (header, body) = message.split_at(split);
    if markers && (s.header || s.body) {
        writeln!(out, "*** MESSAGE CONTENTS {name} ***")?;
    }
    if s.header {
        out.write_all(header)?;
    }
    if s.body {
        out.write_all(body)?;
        if !body.is_empty() && !body.ends_with(b"\n") {
            writeln!(out)?;
        }
    }
    if markers {
        writeln!(out, "*** HEADER EXTRACTED {name} ***")?;
        writeln!(out, "*** MESSAGE FILE END {name} ***")?;
    }
    Ok(())
}

fn write_verbose(out: &mut impl Write, env: &Envelope) -> io::Result<()> {
    for (address, state) in &env.recipients {
        writeln!(out, "recipient_state: {address} {state}")?;
    }
    writeln!(out, "attempts: {}", env.row.attempts)?;
    if env.row.next_attempt > 0 {
        writeln!(out, "next_attempt: {}", asctime(env.row.next_attempt))?;
    }
    writeln!(out, "origin: {}", env.origin)?;
    if let Some(e) = &env.envid {
        writeln!(out, "envid: {e}")?;
    }
    if let Some(r) = &env.ret {
        writeln!(out, "ret: {r}")?;
    }
    writeln!(out, "location: {}", env.location)
}

/// Offset where the body starts: after the first empty line (the empty line belongs to the
/// header part, as Postfix prints it), or the end when there is none.
pub fn header_end(message: &[u8]) -> usize {
    if message.starts_with(b"\n") {
        return 1;
    }
    message
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .unwrap_or(message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_file_is_shown_as_maildrop_when_it_is_one_else_as_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let drop = MaildropFile {
            id: QueueId::generate(),
            arrival_time: 1_700_000_000,
            uid: 1000,
            username: "alice".into(),
            fullname: None,
            sender: "alice".into(),
            recipients: vec!["bob@example.org".into()],
            dsn: Default::default(),
            message: b"Subject: hi\n\nbody\n".to_vec(),
        };
        let id = submit::maildrop::write(dir.path(), &drop).unwrap();
        let name = dir.path().join(id.to_string()).display().to_string();
        let (env, body) = read_file(&name).unwrap();
        assert_eq!(body, drop.message);
        assert_eq!(env.row.queue_name, State::Maildrop);
        assert_eq!(env.row.sender, "alice");
        assert_eq!(
            env.recipients,
            vec![("bob@example.org".into(), "pending".into())]
        );
        assert_eq!(env.origin, "maildrop (uid 1000 alice)");
        assert_eq!(env.location, name);

        let plain = dir.path().join("note.eml");
        std::fs::write(&plain, b"Subject: plain\n\nx\n").unwrap();
        let (env, body) = read_file(&plain.display().to_string()).unwrap();
        assert_eq!(
            (env.origin.as_str(), body.len() as u64),
            ("file", env.row.message_size)
        );
        assert!(read_file("/nonexistent/postcat-file").is_err());
    }

    fn env() -> Envelope {
        Envelope {
            row: Row {
                queue_name: State::Deferred,
                queue_id: "0H5X9R3T6W2K4M8A".into(),
                arrival_time: 1_709_622_489,
                message_size: 30,
                forced_expire: false,
                sender: "a@b".into(),
                recipients: vec![],
                next_attempt: 0,
                attempts: 1,
            },
            recipients: vec![
                ("c@d".into(), "deferred (refused)".into()),
                ("e@f".into(), "sent".into()),
            ],
            origin: "smtpd".into(),
            envid: None,
            ret: None,
            filter: None,
            location: "store/000000000001.seg@0+100".into(),
        }
    }

    fn render(s: Sections) -> String {
        let mut out = Vec::new();
        write(&mut out, &env(), b"Subject: x\nTo: c@d\n\nbody\n", s).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn full_output_has_postfix_markers() {
        let t = render(Sections::default());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "*** ENVELOPE RECORDS deferred/0H5X9R3T6W2K4M8A ***"
        );
        assert_eq!(lines[1], "message_size:              30");
        assert!(lines[2].starts_with("message_arrival_time: "));
        assert_eq!(lines[3], "sender: a@b");
        assert_eq!(lines[4], "recipient: c@d");
        assert_eq!(
            lines[5],
            "*** MESSAGE CONTENTS deferred/0H5X9R3T6W2K4M8A ***"
        );
        assert_eq!(lines[6], "Subject: x");
        assert_eq!(lines[9], "body");
        assert_eq!(
            lines[11],
            "*** MESSAGE FILE END deferred/0H5X9R3T6W2K4M8A ***"
        );
    }

    #[test]
    fn a_messages_filter_is_shown_as_postfixs_content_filter_record() {
        let mut filtered = env();
        filtered.filter = Some("smtp:[127.0.0.1]:10026".into());
        let mut out = Vec::new();
        write(&mut out, &filtered, b"\nbody\n", Sections::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3..5],
            ["sender: a@b", "content_filter: smtp:[127.0.0.1]:10026"]
        );
        assert!(!render(Sections::default()).contains("content_filter"));
    }

    #[test]
    fn header_and_body_alone_are_the_message() {
        let both = render(Sections {
            header: true,
            body: true,
            ..Default::default()
        });
        assert_eq!(both, "Subject: x\nTo: c@d\n\nbody\n");
        let body = render(Sections {
            body: true,
            ..Default::default()
        });
        assert_eq!(body, "body\n");
        let v = render(Sections {
            envelope: true,
            verbose: true,
            ..Default::default()
        });
        assert!(v.contains("recipient_state: e@f sent"), "{v}");
        assert!(!v.contains("Subject"), "{v}");
    }
}
