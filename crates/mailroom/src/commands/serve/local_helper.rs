//! `mailroom local-helper` (hidden): the root local delivery helper that `mailroom serve`
//! starts before it drops root, with the daemon's socketpair as standard input. Not for
//! running by hand; the boundary and its checks are in `agents::local::helper`.

use super::open_log;
use crate::edge::load_config;
use agents::local::helper::{self, Limits};
use agents::LocalAgent;
use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_USAGE};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use tracing::{error, info};

/// The local delivery helper of a privilege-separated daemon (started by serve).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(config_path: Option<&Path>, _: Args) -> u8 {
    let stream = match daemon_socket() {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("mailroom: fatal: local-helper is started by mailroom serve ({e})");
            return EX_USAGE;
        }
    };
    // A stop reaches the whole process group (Ctrl-C, systemd); the helper ends when the
    // daemon closes the socket, after its deliveries in flight, never halfway through one.
    for signal in [
        sys::Signal::SIGTERM,
        sys::Signal::SIGINT,
        sys::Signal::SIGHUP,
    ] {
        if let Err(e) = sys::ignore_signal(signal) {
            eprintln!("mailroom: warning: local-helper cannot ignore {signal}: {e}");
        }
    }
    let cfg = match load_config(config_path, "mailroom") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log = match open_log(&cfg) {
        Ok(log) => log,
        Err(code) => return code,
    };
    let agent = match LocalAgent::new(agents::LocalSettings::from_config(&cfg)) {
        Ok(a) => a,
        Err(e) => {
            error!(target: "local", "fatal: {e}");
            eprintln!("mailroom: fatal: {e}");
            return EX_CONFIG;
        }
    };
    let source = config_path.map(Path::to_path_buf);
    let reload: helper::Reloader = Box::new(move || reread(source.as_deref()));
    info!(target: "local", "local delivery helper started");
    if let Err(e) = helper::serve(stream, agent, Limits::from_config(&cfg), reload) {
        error!(target: "local", "local delivery helper: {e}");
    }
    info!(target: "local", "local delivery helper: the daemon closed the connection; exiting");
    0
}

/// Standard input, which must be a socket (the daemon's socketpair).
fn daemon_socket() -> io::Result<UnixStream> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.file_type().is_socket() {
        return Err(io::Error::other("standard input is not a socket"));
    }
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(file)))
}

/// The configuration file and aliases, read again by the helper itself.
fn reread(source: Option<&Path>) -> Result<(LocalAgent, Limits), String> {
    let cfg = Config::load(source).map_err(|e| e.to_string())?;
    let agent =
        LocalAgent::new(agents::LocalSettings::from_config(&cfg)).map_err(|e| e.to_string())?;
    Ok((agent, Limits::from_config(&cfg)))
}
