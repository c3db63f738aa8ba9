//! The operating-system calls std does not offer, in one place.
//!
//! Job: give the rest of mailroom safe, typed functions for the few POSIX and Linux calls it
//! needs beyond std — passwd and group look-ups, process ids and signals, per-thread
//! file-system ids, the host name, a TCP connection from a chosen source address, the
//! open-file limit, file-system free space, `syncfs`, fcntl record locks,
//! terminal echo, and two glibc allocator knobs. Everything else goes through std
//! (`std::os::unix::fs::{fchown, lchown}`, `File::set_permissions`, `File::try_lock`).
//!
//! Inputs → outputs: plain integers, paths and open files in; `io::Result`s with the
//! operating system's error (as `io::Error`, so messages read as std's do) out.
//!
//! Invariants: every other crate of the workspace is `#![forbid(unsafe_code)]`; the unsafe
//! that remains lives here, each block with a `// SAFETY:` comment, and covers only what
//! neither std nor `nix` wraps (`pre_exec`, `mallopt`, `malloc_trim`, `mallinfo2`,
//! `setpriority`, and `poll`, whose `nix` feature is not built). Look-ups retry with a bigger buffer on `ERANGE` (nix does this, up to
//! 1 MiB), so a group with thousands of members is found, not reported missing.
//!
//! Security stance: no policy here. Callers decide whose identity to take and which paths to
//! trust; these functions only make the calls and report what the kernel said.

#![deny(unsafe_op_in_unsafe_fn)]

mod creds;
mod fs;
mod host;
mod ids;
mod lock;
mod memory;
mod net;
mod process;
mod term;
mod users;

pub use creds::{become_user, can_regain_root, hold_signal, ignore_signal};
pub use fs::{
    file_system_magic, free_space, mkfifo, on_journaled_ext4, read_exact_at_nowait, reader_gone,
    set_umask, sync_file_system, FreeSpace,
};
pub use host::hostname;
pub use ids::{effective_gid, effective_uid, is_setid, real_uid, set_fs_gid, set_fs_uid};
pub use lock::{read_lock_record_wait, try_lock_record};
pub use memory::{heap_in_use, release_free_memory, set_mmap_threshold};
pub use net::connect_from;
pub use process::{
    kill, kill_group, limit_file_size, lower_thread_priority, new_session_on_exec, process_exists,
    raise_open_file_limit, redirect_standard_error, wait_exit_keeping_zombie, Signal,
};
pub use term::EchoOff;
pub use users::{
    group_by_name, group_name, user_by_name, user_by_uid, user_by_uid_remembered, User,
};

/// nix reports the bare errno; callers speak `io::Error`.
fn io_error(errno: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno as i32)
}
