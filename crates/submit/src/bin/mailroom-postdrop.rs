//! `mailroom-postdrop`: the setgid helper that writes one maildrop file for a user who may
//! not write `maildrop/` directly. All logic (and its security stance) is in
//! [`submit::postdrop`]; this is only the process entry point.

#![forbid(unsafe_code)]

use config::Config;
use submit::postdrop::{run_postdrop, PostdropIo};

fn main() {
    let mut io = PostdropIo::from_process(Box::new(|path| {
        Config::load(path).map_err(|e| e.to_string())
    }));
    std::process::exit(i32::from(run_postdrop(&mut io)));
}
