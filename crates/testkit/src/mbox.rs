//! Mailboxes as a mail reader sees them: Python's `mailbox` and `email` modules parse the
//! mbox files the daemon wrote (an independent reader, not our own parser), and a cheap
//! separator count for the waits.
//!
//! Every read holds an fcntl read lock on the mailbox, as a mail reader does: the agent
//! appends a message in more than one write (separator, then the record) and cuts a failed
//! append back, all under its write lock, so an unlocked reader can see half a message —
//! a count that has reached N while the Nth message has no body yet.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::machine::run_with_input;
use crate::text::{find, from_hex, header_value, unfold};

/// A message as Python's `mailbox.mbox` returns it.
#[derive(Debug, Clone)]
pub struct MboxMessage {
    /// `get_from()`: the separator line without `From `.
    pub from_line: String,
    /// `get_bytes()`: headers and body as stored (mbox quoting is not undone).
    pub raw: Vec<u8>,
    /// `msg["Subject"]` as Python's email package decodes it.
    pub subject: Option<String>,
}

impl MboxMessage {
    /// The header block (without the empty line that ends it).
    pub fn headers(&self) -> String {
        let end = find(&self.raw, b"\n\n").unwrap_or(self.raw.len());
        String::from_utf8_lossy(&self.raw[..end]).into_owned()
    }

    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers(), name)
    }

    /// Every header named `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        unfold(&self.headers())
            .into_iter()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .collect()
    }

    /// The body bytes after the empty line.
    pub fn body(&self) -> &[u8] {
        match find(&self.raw, b"\n\n") {
            Some(p) => &self.raw[p + 2..],
            None => &[],
        }
    }
}

const READ_MBOX_PY: &str = r#"
import json, mailbox, os, sys
from email.header import Header, decode_header
boxes = []
for path in sys.argv[1:]:
    out = []
    if os.path.exists(path):
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            msg = box.get_message(key)
            subject = msg["Subject"]
            if isinstance(subject, Header):
                # Raw 8-bit header bytes come back as an unknown-8bit Header: show them as UTF-8.
                subject = "".join(
                    p.decode("utf-8" if c in (None, "unknown-8bit") else c, "replace")
                    if isinstance(p, bytes) else p
                    for p, c in decode_header(subject))
            out.append({
                "from": msg.get_from(),
                "raw": box.get_bytes(key).hex(),
                "subject": None if subject is None else str(subject),
            })
    boxes.append(out)
json.dump(boxes, sys.stdout)
"#;

/// Reads mboxes with Python's `mailbox.mbox` (one process for all) while holding their
/// read locks ([`lock_for_reading`]); a missing file reads as an empty mailbox.
pub fn read_mboxes_with_python(paths: &[PathBuf]) -> Vec<Vec<MboxMessage>> {
    let args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    let locks: Vec<Option<File>> = paths.iter().map(|p| lock_for_reading(p)).collect();
    let out = python(READ_MBOX_PY, &args, b"");
    drop(locks);
    let boxes: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out).expect("python JSON");
    boxes
        .into_iter()
        .map(|list| {
            list.into_iter()
                .map(|v| MboxMessage {
                    from_line: v["from"].as_str().unwrap_or_default().to_string(),
                    raw: from_hex(v["raw"].as_str().unwrap_or_default()),
                    subject: v["subject"].as_str().map(str::to_string),
                })
                .collect()
        })
        .collect()
}

/// Runs `python3 -c script args...` with `input`; fails the test on a non-zero exit.
pub fn python(script: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = run_with_input(
        Command::new("python3").arg("-c").arg(script).args(args),
        input,
    );
    assert!(
        out.status.success(),
        "python3 failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `path` opened and read-locked (an open-file-description lock on the whole file, which
/// conflicts with the agent's write lock; waits while a delivery holds it); None if there
/// is no such file. The lock goes with the returned file.
pub fn lock_for_reading(path: &Path) -> Option<File> {
    let file = File::open(path).ok()?;
    let locked = sys::read_lock_record_wait(&file);
    assert!(
        locked.is_ok(),
        "read lock on {}: {locked:?}",
        path.display()
    );
    Some(file)
}

/// The whole of the mailbox at `path`, read under its read lock (empty if missing).
pub fn read_locked(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut file) = lock_for_reading(path) {
        file.read_to_end(&mut bytes).expect("read mailbox");
    }
    bytes
}

/// Number of mbox separator lines (`From ` at the start of a line).
pub fn count_separators(mbox: &[u8]) -> usize {
    let mut n = usize::from(mbox.starts_with(b"From "));
    n += mbox.windows(6).filter(|w| w == b"\nFrom ").count();
    n
}
