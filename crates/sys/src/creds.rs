//! Giving up root for good (privilege separation), and ignoring or holding off signals.

use std::io;

use nix::sys::signal::{sigaction, signal, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{setgroups, setresgid, setresuid, setuid, Gid, Uid};

/// Makes this process (every thread: glibc applies credential changes process-wide) `uid`
/// with `gid` as its only group, real, effective and saved alike, and forbids gaining
/// privileges by exec (`PR_SET_NO_NEW_PRIVS`). On error, names the call that failed.
pub fn become_user(uid: u32, gid: u32) -> Result<(), (&'static str, io::Error)> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[gid]).map_err(|e| ("setgroups", crate::io_error(e)))?;
    setresgid(gid, gid, gid).map_err(|e| ("setresgid", crate::io_error(e)))?;
    setresuid(uid, uid, uid).map_err(|e| ("setresuid", crate::io_error(e)))?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| ("prctl(PR_SET_NO_NEW_PRIVS)", crate::io_error(e)))
}

/// True when `setuid(0)` succeeds (after [`become_user`] it must not).
pub fn can_regain_root() -> bool {
    setuid(Uid::from_raw(0)).is_ok()
}

/// Ignores `sig` (SIG_IGN) for the rest of this process's life.
pub fn ignore_signal(sig: Signal) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no handler code, so none of signal(2)'s hazards
    // (non-async-signal-safe handlers) apply.
    unsafe { signal(sig, SigHandler::SigIgn) }
        .map(drop)
        .map_err(crate::io_error)
}

/// Catches `sig` with a handler that does nothing, until the caller installs its own
/// (tokio's handler replaces this one). Unlike SIG_IGN, a caught signal's disposition is
/// reset to the default across `exec`, so programs started meanwhile (the local delivery
/// helper, procmail) still get the signal's usual meaning.
pub fn hold_signal(sig: Signal) -> io::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(do_nothing),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing at all, so it is async-signal-safe; SA_RESTART keeps
    // interrupted system calls from failing with EINTR.
    unsafe { sigaction(sig, &action) }
        .map(drop)
        .map_err(crate::io_error)
}

extern "C" fn do_nothing(_: nix::libc::c_int) {}
