//! Issue 8, defect 15: the admin tools' exit codes and messages, as Postfix's.
//! * `postcat -q NOSUCHID` exited 75 (try later): now `postcat: fatal: open queue file
//!   NOSUCHID: No such file or directory`, exit 1, with the daemon up or down.
//! * `postqueue -i NOSUCHID` exited 75: a malformed ID is Postfix's `Invalid request`,
//!   exit 64; a well-formed ID that is not queued is no error (Postfix exits 0).
//! * A non-root `postqueue -f` said "mail system is down": now `User nobody(65534) is not
//!   allowed to flush the mail queue`, exit 77 (EX_NOPERM).
//! * A non-root `postsuper` printed an os error: now `postsuper: fatal: use of this command
//!   is reserved for the superuser`, exit 1.
//!
//! The non-root cases run as nobody through `setpriv` and are skipped when not root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use testkit::*;

const SETPRIV: [&str; 4] = [
    "/usr/bin/setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
];

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A queue ID that is well formed but names no message.
fn unknown_id(env: &TestEnv) -> String {
    env.send_ok(&["-i", "alice@localhost"], b"Subject: x\n\nx\n");
    let name = env.maildrop_files().pop().unwrap();
    fs::remove_file(env.maildrop_dir().join(&name)).unwrap();
    name
}

#[test]
fn postcat_of_a_missing_message_exits_1_like_postfix() {
    let env = TestEnv::new();
    let unknown = unknown_id(&env);
    for daemon_up in [false, true] {
        let _daemon = daemon_up.then(|| env.start());
        for id in ["NOSUCHID", unknown.as_str()] {
            let out = env.run(&["postcat", "-q", id], b"");
            assert_eq!(out.status.code(), Some(1), "daemon up {daemon_up}: {out:?}");
            assert_eq!(
                stderr(&out),
                format!("postcat: fatal: open queue file {id}: No such file or directory\n")
            );
        }
    }
}

#[test]
fn postqueue_i_of_a_malformed_id_is_an_invalid_request() {
    let env = TestEnv::new();
    let unknown = unknown_id(&env);
    let _daemon = env.start();
    let out = env.run(&["postqueue", "-i", "NOSUCHID"], b"");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert_eq!(
        stderr(&out),
        "postqueue: fatal: Invalid request: \"NOSUCHID\"\n"
    );
    let out = env.run(&["postqueue", "-i", &unknown], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "not queued is no error in Postfix: {out:?}"
    );
    let out = env.run(&["sendmail", &format!("-qI{}", "NOSUCHID")], b"");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

/// `setpriv … mailroom` for nobody, or why it cannot run.
fn as_nobody(env: &TestEnv) -> Result<Command, String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    if !Path::new(SETPRIV[0]).exists() {
        return Err("setpriv is not installed (util-linux)".into());
    }
    // nobody must read the configuration and reach the queue directory.
    open_up(&env.root);
    fs::set_permissions(&env.config, fs::Permissions::from_mode(0o644)).unwrap();
    let probe = Command::new(SETPRIV[0])
        .args(&SETPRIV[1..])
        .arg(bin())
        .arg("--version")
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "nobody cannot run {}: {}",
                bin(),
                stderr(&out).trim()
            ))
        }
        Err(e) => return Err(format!("cannot run setpriv: {e}")),
    }
    let mut cmd = command_with_config(SETPRIV[0], &env.config);
    cmd.args(&SETPRIV[1..]).arg(bin());
    Ok(cmd)
}

#[test]
fn non_root_flush_and_postsuper_are_refused_with_postfixs_words() {
    let env = TestEnv::new();
    let Ok(_) = as_nobody(&env).map_err(|why| {
        eprintln!("SKIPPED non_root_flush_and_postsuper_are_refused_with_postfixs_words: {why}")
    }) else {
        return;
    };
    let _daemon = env.start();
    let run = |args: &[&str]| run_with_input(as_nobody(&env).unwrap().args(args), b"");

    let out = run(&["postqueue", "-f"]);
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert_eq!(
        stderr(&out),
        "postqueue: fatal: User nobody(65534) is not allowed to flush the mail queue\n"
    );
    let out = run(&["postsuper", "-d", "ALL"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "postsuper: fatal: use of this command is reserved for the superuser\n"
    );
    // Listing is still open to everyone (through the public socket).
    let out = run(&["postqueue", "-p"]);
    assert_success(&out, "postqueue -p as nobody");
}
