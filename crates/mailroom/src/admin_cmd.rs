//! Command-line glue for the queue tools: where a request runs (the daemon, or this process
//! when the daemon is down), and the front ends `qshape`, `postcat`, `mailroom check`,
//! `mailroom doctor` and `mailroom mailbox archive`. The work itself is in the `admin` crate.
//!
//! Where a request runs: if the daemon answers on its control socket, there (it owns the
//! store lock and streams from its in-memory index, so no log is re-read); a user other than
//! the queue owner lists through the daemon's public socket. Otherwise listings read a
//! lock-free snapshot of the log, and changes open the store under its lock.

use crate::cli::load_config;
use admin::engine::{Backend, Context, NoScheduler};
use admin::protocol::{self, ClientError, Event, Request};
use config::Config;
use envelope::sysexits::{EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Runs `request` through the daemon or in-process; `on_event` sees every event but `End`
/// and `Error`. Returns the request's count, or one line saying what went wrong.
pub fn execute(
    cfg: &Config,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    mut on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, String> {
    use std::os::unix::net::UnixStream;
    let stream = match UnixStream::connect(crate::control::socket_path(cfg)) {
        Ok(stream) => Some(stream),
        // Not the queue owner: listings go through the public socket.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && request.is_public() => {
            UnixStream::connect(crate::control::public_socket_path(cfg)).ok()
        }
        Err(_) => None,
    };
    if let Some(stream) = stream {
        return protocol::call_on(stream, request, ids, on_event).map_err(|e| match e {
            ClientError::NoDaemon(e) => e.to_string(),
            ClientError::Broken(why) => why,
        });
    }
    let mut result = Ok(0);
    let mut handler = |event: Event| -> io::Result<()> {
        match event {
            Event::End { count } => result = Ok(count),
            Event::Error(why) => result = Err(why),
            other => on_event(other)?,
        }
        Ok(())
    };
    let maildrop = cfg.queue_directory.join("maildrop");
    let now = admin::duration::unix_now();
    let run = match request {
        Request::List { .. } | Request::Qshape { .. } | Request::Stats => {
            let snapshot =
                queue::Snapshot::scan(&cfg.queue_directory).map_err(|e| e.to_string())?;
            let ctx = Context {
                backend: Backend::Snapshot(&snapshot),
                scheduler: &NoScheduler,
                maildrop,
                now,
            };
            ctx.run(request, None, &mut handler)
        }
        Request::Super(_) | Request::Cat { .. } => {
            let (store, _) = queue::Store::open(&cfg.queue_directory, Default::default())
                .map_err(|e| match e {
                    queue::StoreError::Locked(_) => "the daemon holds the queue store but does not answer on its control socket; try again".to_string(),
                    e => e.to_string(),
                })?;
            let ctx = Context {
                backend: Backend::Store(&store),
                scheduler: &NoScheduler,
                maildrop,
                now,
            };
            let mut reader = ids.map(BufReader::new);
            let ids = reader.as_mut().map(|r| r as &mut dyn BufRead);
            ctx.run(request, ids, &mut handler)
        }
    };
    match run {
        Ok(()) => result,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

/// True when the daemon answers `ping`.
pub fn daemon_up(cfg: &Config) -> bool {
    matches!(
        crate::control::request(cfg, &protocol::Command::Ping),
        Ok(protocol::Reply::Ok(_))
    )
}

/// Prints `program: fatal: why` and returns EX_TEMPFAIL.
pub fn fatal(program: &str, why: &str) -> u8 {
    eprintln!("{program}: fatal: {why}");
    EX_TEMPFAIL
}

fn usage(program: &str, text: &str) -> u8 {
    eprintln!("{program}: fatal: usage: {text}");
    EX_USAGE
}

/// Pulls `-c FILE`/`-C FILE` out of Postfix-style arguments (Postfix's `-c` names a
/// configuration directory; ours names the file).
fn take_config(args: &mut Vec<String>, path: Option<&Path>) -> Option<PathBuf> {
    let mut config = path.map(Path::to_path_buf);
    while let Some(i) = args.iter().position(|a| a == "-c" || a == "-C") {
        args.remove(i);
        if i < args.len() {
            config = Some(PathBuf::from(args.remove(i)));
        }
    }
    config
}

fn strings(args: Vec<std::ffi::OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

const QSHAPE_USAGE: &str =
    "qshape [-s] [-p] [-l] [-m min_subdomains] [-b buckets] [-t minutes] [-w width] [--json] [queue ...]";

/// `qshape`: Postfix's flags, queue names as arguments (`all` = every queue).
pub fn qshape(config: Option<&Path>, args: Vec<std::ffi::OsString>) -> u8 {
    let mut args = strings(args);
    let config = take_config(&mut args, config);
    let (options, json, mut queues) = match qshape_args(args) {
        Ok(parsed) => parsed,
        Err(why) => return usage("qshape", &format!("{why}; {QSHAPE_USAGE}")),
    };
    if queues.is_empty() {
        queues = vec![admin::row::State::Incoming, admin::row::State::Active];
    }
    let cfg = match load_config(config.as_deref(), "qshape") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let width = options.width;
    let request = Request::Qshape { options, queues };
    let mut shape = None;
    let result = execute(&cfg, &request, None, |e| {
        if let Event::Shape(s) = e {
            shape = Some(s);
        }
        Ok(())
    });
    if let Err(why) = result {
        return fatal("qshape", &why);
    }
    let Some(shape) = shape else {
        return fatal("qshape", "no answer");
    };
    let mut out = io::stdout().lock();
    let written = if json {
        serde_json::to_writer(&mut out, &shape)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        admin::qshape::write_text(&mut out, &shape, width)
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => EX_SOFTWARE,
        _ => 0,
    }
}

type QshapeArgs = (admin::qshape::Options, bool, Vec<admin::row::State>);

fn qshape_args(args: Vec<String>) -> Result<QshapeArgs, String> {
    use admin::row::State;
    let mut options = admin::qshape::Options::default();
    let (mut json, mut queues) = (false, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "-s" => options.senders = true,
            "-p" => options.parents = true,
            "-l" => options.linear = true,
            "--json" => json = true,
            "-m" => options.min_subdomains = number("-m")?,
            "-b" => options.buckets = number("-b")? as usize,
            "-t" => options.tick_minutes = number("-t")?,
            "-w" => options.width = number("-w")? as usize,
            "all" => queues.extend(State::ALL),
            q => queues.push(State::parse(q).ok_or_else(|| format!("unknown queue {q}"))?),
        }
    }
    Ok((options, json, queues))
}

/// `postcat [-e] [-h] [-b] [-v] -q ID...` or `postcat [-ehbv] FILE...`.
pub fn postcat(config: Option<&Path>, args: Vec<std::ffi::OsString>) -> u8 {
    let mut args = strings(args);
    let config = take_config(&mut args, config);
    let mut sections = admin::postcat::Sections::default();
    let (mut by_id, mut names) = (false, Vec::new());
    for a in args {
        match a.strip_prefix('-') {
            Some(flags) if !flags.is_empty() => {
                for f in flags.chars() {
                    match f {
                        'e' => sections.envelope = true,
                        'h' => sections.header = true,
                        'b' => sections.body = true,
                        'v' => sections.verbose = true,
                        'q' => by_id = true,
                        'o' | 's' | 'd' | 'r' => {} // offsets, dumps: Postfix record details we do not have
                        _ => {
                            return usage(
                                "postcat",
                                "postcat [-ehbv] [-q] [-c config] id-or-file ...",
                            )
                        }
                    }
                }
            }
            _ => names.push(a),
        }
    }
    if names.is_empty() {
        return usage("postcat", "postcat [-ehbv] [-q] [-c config] id-or-file ...");
    }
    let cfg = match load_config(config.as_deref(), "postcat") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut code = 0;
    for name in names {
        let shown = if by_id {
            cat_id(&cfg, &name, sections)
        } else {
            cat_file(&name, sections).map_err(CatError::Failed)
        };
        match shown {
            Ok(()) => {}
            // Postfix's words and exit status: a missing message is not "try again later".
            Err(CatError::Missing) => {
                eprintln!("postcat: fatal: open queue file {name}: No such file or directory");
                return EX_NOT_FOUND;
            }
            Err(CatError::Failed(why)) => {
                eprintln!("postcat: warning: {why}");
                code = EX_TEMPFAIL;
            }
        }
    }
    code
}

/// postcat's exit status for a message that is not in the queue (Postfix's `msg_fatal`).
const EX_NOT_FOUND: u8 = 1;

enum CatError {
    /// No message with that ID in the queue or in maildrop.
    Missing,
    /// Something failed on the way (the daemon, the store): worth trying again.
    Failed(String),
}

fn cat_id(cfg: &Config, id: &str, sections: admin::postcat::Sections) -> Result<(), CatError> {
    let mut envelope = None;
    let mut body = Vec::new();
    execute(cfg, &Request::Cat { id: id.to_string() }, None, |e| {
        match e {
            Event::Envelope(env) => envelope = Some(*env),
            Event::Body { text, hex } => body = Event::body_bytes(&text, &hex),
            _ => {}
        }
        Ok(())
    })
    .map_err(CatError::Failed)?;
    let env = envelope.ok_or(CatError::Missing)?;
    let mut out = io::stdout().lock();
    admin::postcat::write(&mut out, &env, &body, sections)
        .map_err(|e| CatError::Failed(e.to_string()))
}

/// A file: a maildrop file (envelope and message), else shown as a plain message.
fn cat_file(name: &str, sections: admin::postcat::Sections) -> Result<(), String> {
    let path = Path::new(name);
    let id = path
        .file_name()
        .and_then(|n| envelope::QueueId::parse(&n.to_string_lossy()).ok());
    let maildrop = id.and_then(|id| Some((id, admin::Row::from_maildrop(id, path)?)));
    let (env, body) = match maildrop {
        Some((_, row)) => {
            let file = submit::maildrop::read(path).map_err(|e| e.to_string())?;
            let env = admin::protocol::Envelope {
                recipients: row
                    .recipients
                    .iter()
                    .map(|r| (r.address.clone(), "pending".into()))
                    .collect(),
                row,
                origin: format!("maildrop (uid {} {})", file.uid, file.username),
                envid: file.dsn.envid.clone(),
                ret: file.dsn.ret.clone(),
                location: name.to_string(),
            };
            (env, file.message)
        }
        None => {
            let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
            let row = admin::Row {
                queue_name: admin::row::State::Incoming,
                queue_id: name.to_string(),
                arrival_time: 0,
                message_size: bytes.len() as u64,
                forced_expire: false,
                sender: String::new(),
                recipients: Vec::new(),
                next_attempt: 0,
                attempts: 0,
            };
            let env = admin::protocol::Envelope {
                row,
                recipients: Vec::new(),
                origin: "file".into(),
                envid: None,
                ret: None,
                location: name.to_string(),
            };
            (env, bytes)
        }
    };
    let mut out = io::stdout().lock();
    admin::postcat::write(&mut out, &env, &body, sections).map_err(|e| e.to_string())
}
