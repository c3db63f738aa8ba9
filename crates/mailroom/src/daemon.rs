//! The binary's door to the running daemon: queue requests through [`admin::execute`] (the
//! daemon when it answers, else in process) and the short commands of
//! [`admin::protocol::Command`]. The words on the wire live in `admin::protocol`, not here.
//!
//! A leaf: it imports nothing from the rest of the binary.

use admin::protocol::{self, Command, Event, Reply, Request};
use config::Config;
use std::io::{self, Read};

/// Runs `request` where it can run (see [`admin::execute`]).
pub fn execute(
    cfg: &Config,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, String> {
    admin::execute(&cfg.queue_directory, request, ids, on_event)
}

/// Sends one short command to the daemon's control socket.
pub fn send(cfg: &Config, command: &Command) -> io::Result<Reply> {
    protocol::send(
        &queue::Layout::new(&cfg.queue_directory).control_socket(),
        command,
    )
}

/// True when the daemon answers `ping`.
pub fn daemon_up(cfg: &Config) -> bool {
    matches!(send(cfg, &Command::Ping), Ok(Reply::Ok(_)))
}
