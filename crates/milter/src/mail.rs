//! The message as milters see and change it: envelope, headers one by one (their raw text,
//! LF line ends as the queue stores them), and the body. The end-of-message changes
//! (`SMFIR_ADDHEADER`, `INSHEADER`, `CHGHEADER`, `CHGFROM`, `ADDRCPT`, `DELRCPT`,
//! `REPLBODY`) are applied here, in the order the milter sent them. Pure, no I/O.

use crate::codec::Response;

/// A message under milter control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Without `<>`; empty for the null sender.
    pub sender: String,
    /// `MAIL FROM` parameters (`SIZE=…`, `BODY=8BITMIME`), as `SMFIC_MAIL` sends them.
    pub sender_args: Vec<String>,
    pub recipients: Vec<String>,
    /// Each logical header with its continuation lines, ending in `\n`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Mail {
    /// Splits `message` (LF line ends) into headers and body.
    pub fn new(sender: &str, recipients: Vec<String>, message: &[u8]) -> Mail {
        let mut headers: Vec<String> = Vec::new();
        let mut at = 0;
        while at < message.len() {
            let end = message[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(message.len(), |p| at + p + 1);
            let line = &message[at..end];
            if line == b"\n" || line == b"\r\n" {
                at = end;
                break;
            }
            let continues = matches!(line.first(), Some(b' ' | b'\t'));
            match headers.last_mut() {
                Some(last) if continues => last.push_str(&String::from_utf8_lossy(line)),
                _ if !continues && line.contains(&b':') => {
                    headers.push(String::from_utf8_lossy(line).into_owned())
                }
                // Not a header: the body starts here (there was no empty line).
                _ => break,
            }
            at = end;
        }
        for header in &mut headers {
            if !header.ends_with('\n') {
                header.push('\n');
            }
        }
        Mail {
            sender: sender.to_string(),
            sender_args: Vec::new(),
            recipients,
            headers,
            body: message[at..].to_vec(),
        }
    }

    /// The message again: headers, the empty line, the body.
    pub fn message(&self) -> Vec<u8> {
        let size = self.headers.iter().map(String::len).sum::<usize>() + 1 + self.body.len();
        let mut out = Vec::with_capacity(size);
        self.headers
            .iter()
            .for_each(|h| out.extend_from_slice(h.as_bytes()));
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    /// A header as `SMFIC_HEADER` sends it: its name, and its value after the colon
    /// (leading blanks removed unless the milter asked for them, no final line end).
    pub fn header_fields(header: &str, leading_space: bool) -> (String, String) {
        let header = header.strip_suffix('\n').unwrap_or(header);
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let value = if leading_space {
            value
        } else {
            value.trim_start_matches([' ', '\t'])
        };
        (name.trim_end().to_string(), value.to_string())
    }

    /// The body with CRLF line ends, as milters expect it.
    pub fn body_crlf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + self.body.len() / 32);
        for &b in &self.body {
            if b == b'\n' && out.last() != Some(&b'\r') {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }

    /// Applies one end-of-message change; `false` for a reply that is not a change.
    /// `leading_space`: the milter negotiated `SMFIP_HDR_LEADSPC` (values keep their blank).
    pub fn apply(
        &mut self,
        change: &Response,
        leading_space: bool,
        new_body: &mut Option<Vec<u8>>,
    ) -> bool {
        let header = |name: &str, value: &str| format_header(name, value, leading_space);
        match change {
            Response::AddHeader { name, value } => self.headers.push(header(name, value)),
            Response::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(self.headers.len());
                self.headers.insert(at, header(name, value));
            }
            Response::ChangeHeader { index, name, value } => {
                self.change_header(*index, name, value, leading_space)
            }
            Response::ChangeFrom(from, args) => {
                self.sender = strip_angles(from);
                self.sender_args = args.split_whitespace().map(String::from).collect();
            }
            Response::AddRecipient(rcpt) | Response::AddRecipientWithArgs(rcpt, _) => {
                self.recipients.push(strip_angles(rcpt))
            }
            Response::DeleteRecipient(rcpt) => {
                let gone = strip_angles(rcpt);
                self.recipients.retain(|r| !r.eq_ignore_ascii_case(&gone));
            }
            Response::ReplaceBody(chunk) => new_body
                .get_or_insert_with(Vec::new)
                .extend_from_slice(chunk),
            _ => return false,
        }
        true
    }

    /// `SMFIR_CHGHEADER`: the `index`-th (from 1) header called `name`; an empty value
    /// deletes it, and a change of a header that is not there adds it (as Sendmail does).
    fn change_header(&mut self, index: u32, name: &str, value: &str, leading_space: bool) {
        let index = index.max(1) as usize;
        let found = self
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| Mail::header_fields(h, false).0.eq_ignore_ascii_case(name))
            .nth(index - 1)
            .map(|(at, _)| at);
        match (found, value.is_empty()) {
            (Some(at), true) => {
                self.headers.remove(at);
            }
            (Some(at), false) => self.headers[at] = format_header(name, value, leading_space),
            (None, true) => {}
            (None, false) => self.headers.push(format_header(name, value, leading_space)),
        }
    }
}

/// Carries the milters' envelope changes into a queue envelope: the new sender; the
/// recipients still there keep their DSN parameters, added ones come new.
pub fn update_envelope(mail: &Mail, envelope: &mut envelope::Envelope) {
    envelope.sender = mail.sender.clone();
    let mut old = std::mem::take(&mut envelope.recipients);
    for address in &mail.recipients {
        let kept = old
            .iter()
            .position(|r| r.address.eq_ignore_ascii_case(address));
        let recipient = match kept {
            Some(at) => old.remove(at),
            None => envelope::Recipient::new(address.clone()),
        };
        envelope.recipients.push(recipient);
    }
}

/// A milter's header as the queue stores it: `Name: value`, CRLF folded to LF. It stays
/// one header whatever the milter sent: empty lines are dropped and a line that does not
/// start with a blank is indented, so a value cannot end the headers or forge another
/// one; a name is kept to printable ASCII without a colon.
fn format_header(name: &str, value: &str, leading_space: bool) -> String {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .collect();
    let name = if name.is_empty() {
        "X-Milter"
    } else {
        name.as_str()
    };
    let separator = if leading_space { ":" } else { ": " };
    let mut text = format!("{name}{separator}");
    let lines = value.split('\n').map(|l| l.trim_end_matches('\r'));
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        if i > 0 {
            text.push('\n');
            if !line.starts_with([' ', '\t']) {
                text.push('\t');
            }
        }
        text.push_str(line);
    }
    text.push('\n');
    text
}

/// `<a@b>` → `a@b`.
pub fn strip_angles(address: &str) -> String {
    let address = address.trim();
    address
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(address)
        .to_string()
}

/// A replaced body from the milter's CRLF text to the queue's LF.
pub fn body_from_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for (i, &b) in body.iter().enumerate() {
        if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        let text = b"Received: from x\n\tby y\nSubject: one\nX-A: 1\nx-a: 2\n\nbody\nline\n";
        Mail::new("s@a", vec!["r@b".into()], text)
    }

    #[test]
    fn split_and_joined_again_unchanged() {
        let m = mail();
        assert_eq!(
            m.headers,
            [
                "Received: from x\n\tby y\n",
                "Subject: one\n",
                "X-A: 1\n",
                "x-a: 2\n"
            ]
        );
        assert_eq!(m.body, b"body\nline\n");
        assert_eq!(
            m.message(),
            b"Received: from x\n\tby y\nSubject: one\nX-A: 1\nx-a: 2\n\nbody\nline\n"
        );
        assert_eq!(
            Mail::header_fields(&m.headers[0], false),
            ("Received".into(), "from x\n\tby y".into())
        );
        assert_eq!(
            Mail::header_fields("Subject:  hi\n", true),
            ("Subject".into(), "  hi".into())
        );
        assert_eq!(m.body_crlf(), b"body\r\nline\r\n");
    }

    #[test]
    fn header_changes_follow_the_milter_rules() {
        let mut m = mail();
        let mut body = None;
        let changes = [
            Response::InsertHeader {
                index: 0,
                name: "DKIM-Signature".into(),
                value: "v=1;\r\n\tb=x".into(),
            },
            Response::AddHeader {
                name: "X-Spam".into(),
                value: "Yes".into(),
            },
            Response::ChangeHeader {
                index: 2,
                name: "X-A".into(),
                value: String::new(),
            },
            Response::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: "*** SPAM *** one".into(),
            },
            Response::ChangeHeader {
                index: 1,
                name: "X-New".into(),
                value: "added".into(),
            },
        ];
        for change in &changes {
            assert!(m.apply(change, false, &mut body));
        }
        assert_eq!(
            m.headers,
            [
                "DKIM-Signature: v=1;\n\tb=x\n",
                "Received: from x\n\tby y\n",
                "Subject: *** SPAM *** one\n",
                "X-A: 1\n",
                "X-Spam: Yes\n",
                "X-New: added\n"
            ]
        );
    }

    #[test]
    fn envelope_and_body_changes() {
        let mut m = mail();
        let mut body = None;
        for change in [
            Response::ChangeFrom("<bounce@a>".into(), "SIZE=5".into()),
            Response::AddRecipient("<new@c>".into()),
            Response::AddRecipientWithArgs("<par@c>".into(), "NOTIFY=NEVER".into()),
            Response::DeleteRecipient("<R@b>".into()),
            Response::ReplaceBody(b"new\r\n".to_vec()),
            Response::ReplaceBody(b"body\r\n".to_vec()),
        ] {
            assert!(m.apply(&change, false, &mut body));
        }
        assert!(!m.apply(&Response::Continue, false, &mut body));
        assert_eq!(
            (m.sender.as_str(), m.sender_args.as_slice()),
            ("bounce@a", &["SIZE=5".to_string()][..])
        );
        assert_eq!(m.recipients, ["new@c", "par@c"]);
        assert_eq!(body_from_crlf(&body.unwrap()), b"new\nbody\n");
    }

    #[test]
    fn a_milter_header_cannot_end_the_headers_or_forge_another() {
        let mut m = mail();
        let change = Response::AddHeader {
            name: "X-Bad:\n".into(),
            value: "a\r\n\r\nInjected: yes\nbody".into(),
        };
        assert!(m.apply(&change, false, &mut None));
        assert_eq!(
            m.headers.last().unwrap(),
            "X-Bad: a\n\tInjected: yes\n\tbody\n"
        );
        assert_eq!(Mail::new("", vec![], &m.message()).headers, m.headers);
    }

    #[test]
    fn a_message_without_an_empty_line_keeps_its_body() {
        let m = Mail::new("", vec![], b"Subject: x\nnot a header\n");
        assert_eq!(m.headers, ["Subject: x\n"]);
        assert_eq!(m.body, b"not a header\n");
    }
}
