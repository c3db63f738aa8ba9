//! Permissions are checked, not assumed: an unprivileged user whose `sendmail` cannot write
//! `maildrop/` gets exit 77 (EX_NOPERM) and exactly one line on stderr, and leaves nothing.
//! Needs root (to own the queue and to become `nobody`); skipped with a message otherwise.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;
use std::process::Command;

use testkit::*;

const NOBODY: u32 = 65534;

/// `setpriv` argv prefix that runs a command as nobody, or why it cannot be done.
fn as_nobody() -> Result<Vec<String>, String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("setpriv is not installed (util-linux)")?;
    let prefix: Vec<String> = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        .map(String::from)
        .to_vec();
    // The binary must be reachable by nobody (it lives in the build directory).
    let probe = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(bin())
        .arg("--version")
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(prefix),
        Ok(out) => Err(format!(
            "nobody cannot run {}: {}",
            bin(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run setpriv: {e}")),
    }
}

#[test]
fn sendmail_without_write_access_to_maildrop_exits_77_with_one_line() {
    let prefix = match as_nobody() {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "SKIPPED sendmail_without_write_access_to_maildrop_exits_77_with_one_line: {why}"
            );
            return;
        }
    };
    let env = TestEnv::new();
    // nobody may read the configuration and walk to the queue, but maildrop is root's 0700.
    open_up(&env.root);
    fs::set_permissions(&env.config, fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir_all(env.maildrop_dir()).unwrap();
    open_up(&env.queue_dir());
    chown(env.maildrop_dir(), Some(0), Some(0)).unwrap();
    fs::set_permissions(env.maildrop_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    // The setgid helper fallback must not be taken (base_config points postdrop_path nowhere).
    assert!(!env.root.join("no-such-postdrop").exists());

    let mut cmd = command_with_config(&prefix[0], &env.config);
    cmd.args(&prefix[1..])
        .arg(bin())
        .args(["sendmail", "-i", "alice@localhost"]);
    let out = run_with_input(&mut cmd, b"Subject: denied\n\nbody\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "exit status; stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one line on stderr: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'));
    assert!(stderr.starts_with("sendmail: fatal: "), "{stderr:?}");
    assert!(
        stderr.contains("Permission denied") && stderr.contains("maildrop"),
        "{stderr:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        env.maildrop_files().is_empty(),
        "left {:?}",
        env.maildrop_files()
    );

    // The same user with a queue it may write: accepted (the refusal was the permission).
    let theirs = env.root.join("nobody-queue");
    fs::create_dir_all(theirs.join("maildrop")).unwrap();
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    chown(theirs.join("maildrop"), Some(NOBODY), Some(NOBODY)).unwrap();
    let cfg = env.root.join("nobody.toml");
    fs::write(&cfg, base_config(&env.root, &theirs, "")).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = command_with_config(&prefix[0], &cfg);
    cmd.args(&prefix[1..])
        .arg(bin())
        .args(["sendmail", "-i", "alice@localhost"]);
    let out = run_with_input(&mut cmd, b"Subject: allowed\n\nbody\n");
    assert_success(&out, "sendmail as nobody into its own queue");
    assert_eq!(list_dir(&theirs.join("maildrop")).len(), 1);
}
