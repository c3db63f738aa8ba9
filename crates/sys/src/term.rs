//! Terminal echo, for reading a password typed at a terminal.

use std::io;

use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};

/// Turns echo off on stdin until dropped, so every path out (an error included) restores it.
pub struct EchoOff {
    saved: Termios,
}

impl EchoOff {
    /// Fails (ENOTTY) when stdin is not a terminal.
    pub fn new() -> io::Result<EchoOff> {
        let saved = tcgetattr(io::stdin()).map_err(crate::io_error)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(io::stdin(), SetArg::TCSANOW, &quiet).map_err(crate::io_error)?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}
