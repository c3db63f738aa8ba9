//! The `tracing` layer that formats and throttles log lines.

use crate::sink::Sink;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Repeat {
    first_seen: Instant,
    suppressed: u64,
    program: String,
}

struct State {
    out: Sink,
    format: Format,
    /// `syslog_name`: `mailroom` or `postfix`, before `/service[pid]`.
    ident: String,
    host: String,
    pid: u32,
    repeat_window: Duration,
    repeats: HashMap<String, Repeat>,
    second: Instant,
    warnings_this_second: u32,
    dropped: u64,
    /// The text-format prefix ("Dec  1 19:48:00 host ") of the second it was made for:
    /// formatting a chrono date costs more than the rest of the line, and a busy server
    /// writes thousands of lines in the same second.
    stamp: (i64, String),
    /// The line being written, kept between lines so a line costs no allocation.
    line: String,
    /// `ident/program[pid]: ` per program, made at its first line (a handful of programs
    /// log; formatting the tag was a third of a line's cost).
    tags: Vec<(String, String)>,
}

/// Handle kept by the daemon to flush pending "repeated N times" lines periodically.
#[derive(Clone)]
pub struct LogHandle {
    state: Arc<Mutex<State>>,
}

struct MailLogLayer {
    state: Arc<Mutex<State>>,
    max_level: Level,
    /// JSON lines carry the call sites' fields; text lines only their message (and the
    /// `audit` marker), so in text the other fields are not formatted at all.
    structured: bool,
}

/// Where and how to log (from `maillog_file`, `syslog_*` and `log_format`).
#[derive(Debug, Clone)]
pub struct Options {
    /// A file to append to; empty = syslog when `syslog_socket` is set, else standard error.
    pub file: String,
    /// The syslog datagram socket (`/dev/log`); empty = no syslog.
    pub syslog_socket: String,
    pub syslog_name: String,
    pub syslog_facility: String,
    pub format: Format,
    pub repeat_window: Duration,
}

/// Where [`init`] could not log.
pub enum InitError {
    /// `maillog_file` cannot be opened.
    File(io::Error),
    /// Syslog is unreachable; the log went to standard error instead.
    Syslog(io::Error, LogHandle),
}

/// Installs the global subscriber and returns a handle for [`LogHandle::flush_repeats`] and
/// [`LogHandle::reopen`]. Fails if the log file cannot be opened; an unreachable syslog
/// socket falls back to standard error (the handle comes with the error, to say so).
pub fn init(options: &Options) -> Result<LogHandle, InitError> {
    let (out, syslog_error) = if !options.file.is_empty() {
        (Sink::file(&options.file).map_err(InitError::File)?, None)
    } else if !options.syslog_socket.is_empty() {
        match Sink::syslog(&options.syslog_socket, &options.syslog_facility) {
            Ok(sink) => (sink, None),
            Err(e) => (Sink::Stderr, Some(e)),
        }
    } else {
        (Sink::Stderr, None)
    };
    let state = Arc::new(Mutex::new(State {
        out,
        format: options.format,
        ident: options.syslog_name.clone(),
        host: hostname(),
        pid: std::process::id(),
        repeat_window: options.repeat_window,
        repeats: HashMap::new(),
        second: Instant::now(),
        warnings_this_second: 0,
        dropped: 0,
        stamp: (i64::MIN, String::new()),
        line: String::new(),
        tags: Vec::new(),
    }));
    let debug = std::env::var_os("MAILROOM_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
    let layer = MailLogLayer {
        state: state.clone(),
        max_level: if debug { Level::DEBUG } else { Level::INFO },
        structured: matches!(options.format, Format::Json),
    };
    // A second init (tests) keeps the first subscriber; the handle still works.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    let handle = LogHandle { state };
    match syslog_error {
        Some(e) => Err(InitError::Syslog(e, handle)),
        None => Ok(handle),
    }
}

/// The host name's first label, as Postfix logs it.
fn hostname() -> String {
    match sys::hostname() {
        Ok(name) => name.split('.').next().unwrap_or("localhost").to_string(),
        Err(_) => "localhost".into(),
    }
}

#[derive(Default)]
struct Fields {
    /// Keep the fields besides the message (JSON); `audit` is kept either way.
    structured: bool,
    message: String,
    /// Field names are the call site's identifiers (`&'static`): nothing to copy.
    extra: Vec<(&'static str, String)>,
}

impl Fields {
    fn wants(&self, field: &Field) -> bool {
        self.structured || field.name() == "audit"
    }

    /// Removes the `audit` marker field; true when it was set.
    fn take_audit(&mut self) -> bool {
        let before = self.extra.len();
        self.extra.retain(|(name, _)| *name != "audit");
        self.extra.len() != before
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else if self.wants(field) {
            self.extra.push((field.name(), value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            // The message is `format_args!`: write it once, into a buffer sized for a
            // typical mail.log line rather than grown from empty.
            self.message = String::with_capacity(160);
            let _ = write!(self.message, "{value:?}");
        } else if self.wants(field) {
            self.extra.push((field.name(), format!("{value:?}")));
        }
    }
}

impl<S: Subscriber> Layer<S> for MailLogLayer {
    /// Debug detail is opt-in (MAILROOM_DEBUG=1). Saying so here, not in `on_event`, lets
    /// tracing turn the disabled call sites off once, so they cost nothing per message.
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max_level {
            return;
        }
        let mut fields = Fields {
            structured: self.structured,
            ..Fields::default()
        };
        event.record(&mut fields);
        // Library modules log with their module path as target; the log names programs.
        let program = program_of(event.metadata().target());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.event(level, program, fields);
    }
}

/// The program a target names: `smtpd` itself, or the room of a module path
/// (`queue::store` → `store`).
fn program_of(target: &str) -> &str {
    match target.split("::").nth(1) {
        Some(room) => room,
        None => target,
    }
}

impl State {
    fn event(&mut self, level: Level, program: &str, mut fields: Fields) {
        let audit = fields.take_audit();
        let message = crate::sanitized(&fields.message);
        if level <= Level::WARN && !self.admit_warning(program, &message, audit) {
            return;
        }
        self.write(level, program, &message, &fields.extra);
    }

    /// Folds repeats (not audit lines) and enforces the per-second cap; true = write this
    /// line now.
    fn admit_warning(&mut self, program: &str, message: &str, audit: bool) -> bool {
        let now = Instant::now();
        if audit {
            return self.within_rate(now);
        }
        if let Some(r) = self.repeats.get_mut(message) {
            if now.duration_since(r.first_seen) < self.repeat_window {
                r.suppressed += 1;
                return false;
            }
        }
        self.flush_one(message);
        self.repeats.insert(
            message.to_string(),
            Repeat {
                first_seen: now,
                suppressed: 0,
                program: program.to_string(),
            },
        );
        self.within_rate(now)
    }

    /// The per-second cap on warning lines.
    fn within_rate(&mut self, now: Instant) -> bool {
        if now.duration_since(self.second) >= Duration::from_secs(1) {
            if self.dropped > 0 {
                let line = format!(
                    "{} warning lines suppressed by the log rate limit",
                    self.dropped
                );
                self.dropped = 0;
                self.write(Level::WARN, "maillog", &line, &[]);
            }
            self.second = now;
            self.warnings_this_second = 0;
        }
        if self.warnings_this_second >= crate::MAX_WARNINGS_PER_SEC {
            self.dropped += 1;
            return false;
        }
        self.warnings_this_second += 1;
        true
    }

    fn flush_one(&mut self, message: &str) {
        if let Some(r) = self.repeats.remove(message) {
            if r.suppressed > 0 {
                let line = format!("{message} (repeated {} times)", r.suppressed);
                self.write(Level::WARN, &r.program, &line, &[]);
            }
        }
    }

    fn write(
        &mut self,
        level: Level,
        program: &str,
        message: &str,
        extra: &[(&'static str, String)],
    ) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match self.format {
            Format::Text => {
                if self.out.wants_prefix() {
                    line.push_str(self.prefix());
                }
                line.push_str(self.tag(program));
                line.push_str(level_prefix(level));
                line.push_str(message);
            }
            Format::Json => {
                let ident = format!("{}/{program}", self.ident);
                let mut obj = serde_json::Map::new();
                obj.insert("time".into(), chrono::Local::now().to_rfc3339().into());
                obj.insert("host".into(), self.host.clone().into());
                obj.insert("program".into(), ident.clone().into());
                obj.insert("pid".into(), self.pid.into());
                obj.insert("level".into(), level.as_str().to_lowercase().into());
                obj.insert("message".into(), message.into());
                for (k, v) in extra {
                    obj.insert((*k).into(), crate::sanitize(v).into());
                }
                let json = serde_json::Value::Object(obj).to_string();
                if !self.out.wants_prefix() {
                    // Syslog still needs its tag to file the line under the service.
                    let _ = write!(line, "{ident}[{}]: ", self.pid);
                }
                line.push_str(&json);
            }
        }
        self.out.write_line(level, &mut line);
        self.line = line;
    }
}

const MAX_TAGS: usize = 32;

impl State {
    /// `ident/program[pid]: `, kept per program.
    fn tag(&mut self, program: &str) -> &str {
        let at = match self.tags.iter().position(|(p, _)| p == program) {
            Some(at) => at,
            None => {
                let tag = format!("{}/{program}[{}]: ", self.ident, self.pid);
                // Programs are the daemon's services and transports: a few. Should a caller
                // pass many, the oldest tag makes room.
                if self.tags.len() == MAX_TAGS {
                    self.tags.remove(0);
                }
                self.tags.push((program.to_string(), tag));
                self.tags.len() - 1
            }
        };
        &self.tags[at].1
    }

    /// "Dec  1 19:48:00 host ", formatted once per second: the clock is read as a plain
    /// count of seconds, and the local time (time zone, calendar) worked out only when that
    /// second changes.
    fn prefix(&mut self) -> &str {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if self.stamp.0 != second {
            let now = chrono::DateTime::from_timestamp(second, 0)
                .map(|utc| utc.with_timezone(&chrono::Local))
                .unwrap_or_else(chrono::Local::now);
            let text = format!("{} {} ", now.format("%b %e %H:%M:%S"), self.host);
            self.stamp = (second, text);
        }
        &self.stamp.1
    }
}

/// Postfix writes `warning: ` / `error: ` / `fatal: ` before such messages.
fn level_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error: ",
        Level::WARN => "warning: ",
        _ => "",
    }
}

impl LogHandle {
    /// Reopens `maillog_file` by its path (SIGUSR1, `mailroom logrotate`). Lines before
    /// this call are in the old file, every line after it in the new one. False when the
    /// log is not a file (syslog, standard error): nothing to reopen.
    pub fn reopen(&self) -> io::Result<bool> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.out.reopen()
    }

    /// Writes the pending `(repeated N times)` lines whose window has ended.
    pub fn flush_repeats(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = state.repeat_window;
        let due: Vec<String> = state
            .repeats
            .iter()
            .filter(|(_, r)| now.duration_since(r.first_seen) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            state.flush_one(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn state(out: Shared) -> State {
        State {
            out: Sink::Writer(Box::new(out)),
            format: Format::Text,
            ident: "mailroom".into(),
            host: "h".into(),
            pid: 1,
            repeat_window: Duration::from_secs(60),
            repeats: HashMap::new(),
            second: Instant::now(),
            warnings_this_second: 0,
            dropped: 0,
            stamp: (i64::MIN, String::new()),
            line: String::new(),
            tags: Vec::new(),
        }
    }

    fn fields(message: &str, audit: bool) -> Fields {
        let mut fields = Fields {
            structured: false,
            message: message.into(),
            extra: Vec::new(),
        };
        if audit {
            fields.extra.push(("audit", "true".into()));
        }
        fields
    }

    fn logged_with(max_level: Level) -> String {
        let out = Shared::default();
        let layer = MailLogLayer {
            state: Arc::new(Mutex::new(state(out.clone()))),
            max_level,
            structured: false,
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "smtpd", "an info line");
            tracing::debug!(target: "smtpd", "a debug line");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn debug_lines_are_written_only_when_debug_is_on() {
        let quiet = logged_with(Level::INFO);
        assert!(
            quiet.contains("an info line") && !quiet.contains("a debug line"),
            "{quiet}"
        );
        let debug = logged_with(Level::DEBUG);
        assert!(
            debug.contains("an info line") && debug.contains("a debug line"),
            "{debug}"
        );
    }

    #[test]
    fn consecutive_lines_share_no_text_through_the_reused_buffer() {
        let out = Shared::default();
        let mut state = state(out.clone());
        state.event(
            Level::INFO,
            "qmgr",
            fields("3F2A: removed and a long tail", false),
        );
        state.event(Level::INFO, "smtpd", fields("x", false));
        state.event(Level::WARN, "smtpd", fields("bad\r\nline", false));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].ends_with(" h mailroom/qmgr[1]: 3F2A: removed and a long tail"),
            "{text}"
        );
        assert!(lines[1].ends_with(" h mailroom/smtpd[1]: x"), "{text}");
        assert!(
            lines[2].ends_with(" h mailroom/smtpd[1]: warning: bad\\x0d\\x0aline"),
            "{text}"
        );
        // The prefix is "Mmm dd hh:mm:ss host ": month, day, time, host.
        assert_eq!(
            lines[1].split(' ').filter(|w| !w.is_empty()).count(),
            6,
            "{text}"
        );
    }

    #[test]
    fn json_lines_are_one_object_each_with_the_fields_escaped() {
        let out = Shared::default();
        let mut state = state(out.clone());
        state.format = Format::Json;
        let mut with_extra = fields("3F2A: to=<a@b.example>, status=sent", false);
        with_extra.extra.push(("relay", "mx\r\nfake: line".into()));
        state.event(Level::INFO, "smtp", with_extra);
        state.event(Level::WARN, "smtpd", fields("bad\r\nline", false));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one event, one line: {text}");
        let objects: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        let first = &objects[0];
        assert_eq!(first["program"], "mailroom/smtp");
        assert_eq!(first["host"], "h");
        assert_eq!(first["pid"], 1);
        assert_eq!(first["level"], "info");
        assert_eq!(first["message"], "3F2A: to=<a@b.example>, status=sent");
        assert_eq!(first["relay"], "mx\\x0d\\x0afake: line");
        let time = first["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(objects[1]["level"], "warn");
        assert_eq!(objects[1]["message"], "bad\\x0d\\x0aline");
    }

    #[test]
    fn a_call_site_s_fields_reach_json_lines_and_text_lines_skip_them() {
        for structured in [true, false] {
            let out = Shared::default();
            let mut state = state(out.clone());
            if structured {
                state.format = Format::Json;
            }
            let layer = MailLogLayer {
                state: Arc::new(Mutex::new(state)),
                max_level: Level::INFO,
                structured,
            };
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let relay = "mx.example[192.0.2.1]:25";
                tracing::info!(target: "smtp", relay = %relay, dsn = "2.0.0", "3F2A: to=<a@b.example>, status=sent");
            });
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            if structured {
                let object: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
                assert_eq!(object["relay"], "mx.example[192.0.2.1]:25", "{text}");
                assert_eq!(object["dsn"], "2.0.0", "{text}");
                assert_eq!(object["message"], "3F2A: to=<a@b.example>, status=sent");
            } else {
                assert!(
                    text.ends_with(" h mailroom/smtp[1]: 3F2A: to=<a@b.example>, status=sent\n"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn audit_warnings_are_written_every_time_others_are_folded() {
        let out = Shared::default();
        let mut state = state(out.clone());
        for _ in 0..3 {
            state.event(
                Level::WARN,
                "smtpd",
                fields("SASL PLAIN authentication failed", true),
            );
            state.event(Level::WARN, "smtpd", fields("disk is slow", false));
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches("SASL PLAIN authentication failed").count(),
            3,
            "{text}"
        );
        assert_eq!(text.matches("disk is slow").count(), 1, "{text}");
        assert!(!text.contains("audit"), "the marker is not printed: {text}");
    }
}
