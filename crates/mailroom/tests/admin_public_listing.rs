//! `mailq` by an ordinary user, as Postfix allows: the control socket is the queue owner's
//! (0600), so listings go through the daemon's public socket `showq.sock`, which serves
//! listings and nothing else. Needs root (to run the tools as `nobody`); skipped otherwise.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Output;

use testkit::*;

/// Nothing listens on port 9: both messages are deferred, and with an hour of backoff they
/// stay "deferred" (not "active" in a retry) while the listings are compared.
const EXTRA: &str = "relayhost = \"[127.0.0.1]:9\"\nsmtpd_listen = []\n\
                     minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";
const NOBODY: u32 = 65534;

#[test]
fn ordinary_users_list_the_queue_and_change_nothing() {
    if !is_root() {
        eprintln!("skipped: running the tools as another user needs root");
        return;
    }
    let env = TestEnv::with_config(EXTRA);
    for i in 0..2 {
        let msg = format!("Subject: public-{i}\n\nbody {i}\n");
        env.send_ok(
            &["-f", "cron@test.example", "root@remote.example"],
            msg.as_bytes(),
        );
    }
    let _daemon = env.start();
    wait_until("both messages deferred", || {
        let rows = env.queue_json();
        rows.len() == 2 && rows.iter().all(|r| r["queue_name"] == "deferred")
    });
    // A system install: others may traverse the queue directory and read the configuration.
    for dir in [&env.root, &env.queue_dir()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).unwrap();
    }
    fs::set_permissions(&env.config, fs::Permissions::from_mode(0o644)).unwrap();
    let as_nobody = |args: &[&str]| -> Output {
        let mut cmd = env.command();
        cmd.uid(NOBODY).gid(NOBODY).args(args);
        run_with_input(&mut cmd, b"")
    };

    let listed = as_nobody(&["mailq"]);
    assert_success(&listed, "mailq as nobody");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), env.mailq());
    let json = as_nobody(&["postqueue", "-j"]);
    assert_success(&json, "postqueue -j as nobody");
    assert_eq!(String::from_utf8_lossy(&json.stdout).lines().count(), 2);
    let shape = as_nobody(&["qshape", "deferred"]);
    assert_success(&shape, "qshape as nobody");
    assert!(String::from_utf8_lossy(&shape.stdout).contains("remote.example  2"));

    let id = env.queue_json()[0]["queue_id"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        &["postsuper", "-d", "ALL"][..],
        &["postsuper", "-h", id.as_str()],
        &["postcat", "-q", id.as_str()],
        &["postqueue", "-f"],
    ] {
        let out = as_nobody(args);
        assert!(!out.status.success(), "{args:?} as nobody succeeded");
        assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
    }
    let rows = env.queue_json();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["queue_name"] == "deferred"));

    // The public socket itself refuses everything but listings, whoever asks.
    let public = env.queue_dir().join("showq.sock");
    let mode = fs::metadata(&public).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    for line in [
        "flush\n".to_string(),
        "reload\n".to_string(),
        format!("admin {{\"Cat\":{{\"id\":\"{id}\"}}}}\n"),
        "admin {\"Stats\":null}\n".to_string(),
        "admin \"Stats\"\n".to_string(),
    ] {
        let answer = ask(&public, &line);
        assert!(
            answer.starts_with("error") || answer.starts_with("{\"Error\""),
            "{line:?} got {answer:?}"
        );
    }
    assert_eq!(ask(&public, "ping\n"), "ok\n");
}

fn ask(socket: &std::path::Path, line: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}
