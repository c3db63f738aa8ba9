//! Where log lines go: standard error, `maillog_file`, or syslog.
//!
//! * The file is opened in append mode and can be reopened by path ([`Sink::reopen`],
//!   the daemon's SIGUSR1 and `mailroom logrotate`): after logrotate renamed it, the lines
//!   written before the reopen are in the renamed file and every line after it in the new
//!   one. The swap happens under the log's lock, between two lines, so none is lost or
//!   split. If the new file cannot be opened the old one is kept, and the caller is told.
//! * Syslog is RFC 3164 as glibc's `syslog(3)` writes it to `/dev/log`:
//!   `<PRI>Mmm dd hh:mm:ss ident/service[pid]: text`, one datagram per line, no host name
//!   (the syslog daemon adds it). Each line is sent to the socket's path rather than on a
//!   connected socket, so a restarted syslog daemon (a new socket at the same path) is
//!   reached without reconnect logic. Sending is bounded by [`SYSLOG_SEND_TIMEOUT`]: a
//!   stuck syslog daemon costs dropped lines, never a stuck mail system.
//!
//! Hand-written rather than the `syslog` crate: that crate's formatter fixes one process
//! name per logger, while Postfix's ident changes with every line (`postfix/smtpd`,
//! `postfix/qmgr`, ...), and the framing is one `format!`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;
use tracing::Level;

/// Longest a syslog send may block before the line is dropped.
pub const SYSLOG_SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) enum Sink {
    Stderr,
    File {
        path: PathBuf,
        file: File,
    },
    Syslog(Syslog),
    /// Tests: an in-memory writer.
    #[cfg(test)]
    Writer(Box<dyn Write + Send>),
}

pub(crate) struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    facility: u8,
}

/// The syslog facility code of a `syslog_facility` name (RFC 5424 table 1).
pub fn facility_code(name: &str) -> Option<u8> {
    let code = match name {
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        _ => {
            let n: u8 = name.strip_prefix("local")?.parse().ok()?;
            if n > 7 {
                return None;
            }
            16 + n
        }
    };
    Some(code)
}

impl Sink {
    pub(crate) fn file(path: &str) -> io::Result<Sink> {
        let path = PathBuf::from(path);
        let file = open_append(&path)?;
        Ok(Sink::File { path, file })
    }

    /// A syslog sink for the socket at `path`; fails when nothing listens there.
    pub(crate) fn syslog(path: &str, facility: &str) -> io::Result<Sink> {
        let facility = facility_code(facility).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown syslog_facility {facility:?}"),
            )
        })?;
        // connect() fails at once when no syslog daemon listens: say so at start, not never.
        UnixDatagram::unbound()?.connect(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SYSLOG_SEND_TIMEOUT))?;
        Ok(Sink::Syslog(Syslog {
            socket,
            path: PathBuf::from(path),
            facility,
        }))
    }

    /// True when lines carry their own time and host (everything but syslog).
    pub(crate) fn wants_prefix(&self) -> bool {
        !matches!(self, Sink::Syslog(_))
    }

    /// Writes one line, given without its newline (it is added here and left in `line`;
    /// the caller clears the buffer and reuses it). Failures are dropped: logging must
    /// never take the daemon down.
    pub(crate) fn write_line(&mut self, level: Level, line: &mut String) {
        // A syslog datagram is the line itself; the other sinks are streams of lines.
        if !matches!(self, Sink::Syslog(_)) {
            line.push('\n');
        }
        let bytes = line.as_bytes();
        let _ = match self {
            Sink::Syslog(syslog) => syslog.send(level, line),
            Sink::Stderr => io::stderr().write_all(bytes),
            Sink::File { file, .. } => file.write_all(bytes),
            #[cfg(test)]
            Sink::Writer(w) => w.write_all(bytes),
        };
    }

    /// Reopens the file by its path (after logrotate moved it): true when it did; other
    /// sinks have nothing to reopen (false). On error the old file stays in use.
    pub(crate) fn reopen(&mut self) -> io::Result<bool> {
        match self {
            Sink::File { path, file } => {
                *file = open_append(path)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Syslog {
    fn send(&self, level: Level, line: &str) -> io::Result<()> {
        let priority = u16::from(self.facility) * 8 + severity(level);
        let stamp = chrono::Local::now().format("%b %e %H:%M:%S");
        let datagram = format!("<{priority}>{stamp} {line}");
        self.socket
            .send_to(datagram.as_bytes(), &self.path)
            .map(|_| ())
    }
}

/// RFC 5424 severities: error 3, warning 4, info 6, debug 7.
fn severity(level: Level) -> u16 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names_map_to_rfc_codes() {
        assert_eq!(facility_code("mail"), Some(2));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("local8"), None);
        assert_eq!(facility_code("kern"), None);
    }

    #[test]
    fn syslog_lines_are_rfc3164_datagrams_with_mail_priority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut sink = Sink::syslog(path.to_str().unwrap(), "mail").unwrap();
        sink.write_line(Level::WARN, &mut "postfix/smtpd[7]: warning: x".to_string());
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        // mail (2) * 8 + warning (4) = 20
        assert!(text.starts_with("<20>"), "{text}");
        assert!(text.ends_with(" postfix/smtpd[7]: warning: x"), "{text}");
    }

    #[test]
    fn syslog_without_a_listener_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody");
        assert!(Sink::syslog(path.to_str().unwrap(), "mail").is_err());
    }
}
