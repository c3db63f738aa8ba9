//! passwd and group look-ups through the reentrant `get{pw,gr}{nam,uid,gid}_r` calls (safe
//! from many threads at once), by way of nix, which grows the buffer on `ERANGE`.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid};

/// A passwd entry, the parts mailroom uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    pub home: PathBuf,
    /// The login shell (local delivery's `$shell` and `SHELL`).
    pub shell: PathBuf,
}

impl From<nix::unistd::User> for User {
    fn from(user: nix::unistd::User) -> User {
        User {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            shell: user.shell,
        }
    }
}

/// The user called `name`; `Ok(None)` when there is none (or the name holds a NUL).
pub fn user_by_name(name: &str) -> io::Result<Option<User>> {
    found(nix::unistd::User::from_name(name)).map(|user| user.map(User::from))
}

/// The user whose uid is `uid`; `Ok(None)` when no passwd entry has it.
pub fn user_by_uid(uid: u32) -> io::Result<Option<User>> {
    found(nix::unistd::User::from_uid(Uid::from_raw(uid))).map(|user| user.map(User::from))
}

/// [`user_by_uid`], remembered for the rest of the process: for the one uid a short-lived
/// program names twice. sendmail names its real user (the maildrop file's `U` line) and the
/// embedded profile its effective user (the default `mail_owner`): the same passwd entry
/// whenever the two uids agree, so one NSS look-up (about a dozen system calls: nscd tried
/// twice, `nsswitch.conf` checked, the passwd file read) instead of two. Failures are not
/// remembered. Not for look-ups of other users, whose answers must follow the passwd file.
pub fn user_by_uid_remembered(uid: u32) -> io::Result<Option<User>> {
    static SEEN: Mutex<Vec<(u32, Option<User>)>> = Mutex::new(Vec::new());
    let seen = |uid| {
        let seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.iter()
            .find(|(known, _)| *known == uid)
            .map(|(_, user)| user.clone())
    };
    if let Some(user) = seen(uid) {
        return Ok(user);
    }
    let user = user_by_uid(uid)?;
    let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.len() < 4 && !seen.iter().any(|(known, _)| *known == uid) {
        seen.push((uid, user.clone()));
    }
    Ok(user)
}

/// The gid of the group called `name`; `Ok(None)` when there is none.
pub fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    found(Group::from_name(name)).map(|group| group.map(|g| g.gid.as_raw()))
}

/// The name of group `gid`; `Ok(None)` when no group entry has it.
pub fn group_name(gid: u32) -> io::Result<Option<String>> {
    found(Group::from_gid(Gid::from_raw(gid))).map(|group| group.map(|g| g.name))
}

/// getpwnam_r(3): "not found" is a 0 return with no entry, or one of ENOENT, ESRCH, EBADF,
/// EPERM, depending on the C library and the name service; anything else is a real failure
/// (a name service that cannot be reached), which the caller must not take for "no such user".
fn found<T>(lookup: nix::Result<Option<T>>) -> io::Result<Option<T>> {
    match lookup {
        Ok(entry) => Ok(entry),
        Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Ok(None),
        Err(errno) => Err(crate::io_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn root_is_found_by_name_and_uid_and_nonsense_is_not() {
        let root = user_by_name("root").unwrap().expect("root in passwd");
        assert_eq!((root.uid, root.name.as_str()), (0, "root"));
        assert_eq!(user_by_uid(0).unwrap().unwrap().name, "root");
        assert_eq!(user_by_name("no-such-user-mailroom-x").unwrap(), None);
        assert_eq!(user_by_name("nul\0byte").unwrap(), None);
        assert_eq!(user_by_uid(3_999_999_999).unwrap(), None);
    }

    #[test]
    fn a_remembered_look_up_answers_as_the_look_up_does() {
        for _ in 0..2 {
            assert_eq!(user_by_uid_remembered(0).unwrap(), user_by_uid(0).unwrap());
            assert_eq!(user_by_uid_remembered(3_999_999_999).unwrap(), None);
        }
    }

    #[test]
    fn groups_are_found_by_name_and_gid() {
        let root_gid = group_by_name("root").unwrap().expect("group root");
        assert_eq!(group_name(root_gid).unwrap().as_deref(), Some("root"));
        assert_eq!(group_by_name("no-such-group-mailroom-x").unwrap(), None);
        assert_eq!(group_name(3_999_999_999).unwrap(), None);
    }

    /// Set in the copy of the test binary that runs inside a private mount namespace.
    const INSIDE: &str = "SYS_TEST_BIG_ENTRIES";

    /// `check` once looked groups up with a fixed 64 KiB buffer and the default `mail_owner`
    /// lookup with 16 KiB, so a big group (thousands of members) or a long passwd entry read
    /// as "no such group/user". Runs itself again under `unshare --mount` with a larger
    /// /etc/passwd and /etc/group bound over the real ones, so the host's are never touched.
    #[test]
    fn entries_bigger_than_64_kib_are_found() {
        if std::env::var_os(INSIDE).is_some() {
            let user = user_by_name("mailroom-big").unwrap().expect("big user");
            assert_eq!((user.uid, user.gid), (3_999_999_990, 3_999_999_991));
            assert_eq!(user_by_uid(user.uid).unwrap().unwrap().name, "mailroom-big");
            assert_eq!(group_by_name("mailroom-big").unwrap(), Some(3_999_999_991));
            assert_eq!(
                group_name(3_999_999_991).unwrap().as_deref(),
                Some("mailroom-big")
            );
            return;
        }
        if crate::effective_uid() != 0 || !Path::new("/usr/bin/unshare").exists() {
            eprintln!("skipped: needs root and unshare(1) for a private /etc/passwd");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<String> = (0..10_000).map(|n| format!("member{n:05}")).collect();
        let gecos = "g".repeat(100 << 10);
        let add = |system: &str, line: String| {
            let mut text = std::fs::read_to_string(system).unwrap();
            text.push_str(&line);
            let copy = dir.path().join(Path::new(system).file_name().unwrap());
            std::fs::write(&copy, text).unwrap();
            copy
        };
        let passwd = add(
            "/etc/passwd",
            format!("mailroom-big:x:3999999990:3999999991:{gecos}:/nonexistent:/bin/false\n"),
        );
        let group = add(
            "/etc/group",
            format!("mailroom-big:x:3999999991:{}\n", members.join(",")),
        );
        let inner = std::process::Command::new("/usr/bin/unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/passwd && mount --bind "$1" /etc/group && exec "$2" --exact "$3" --test-threads 1"#)
            .args([passwd.as_os_str(), group.as_os_str()])
            .arg(std::env::current_exe().unwrap())
            .arg("users::tests::entries_bigger_than_64_kib_are_found")
            .env(INSIDE, "1")
            .output()
            .unwrap();
        let output = String::from_utf8_lossy(&inner.stdout);
        assert!(
            inner.status.success(),
            "{output}{}",
            String::from_utf8_lossy(&inner.stderr)
        );
        assert!(output.contains("1 passed"), "{output}");
    }
}
