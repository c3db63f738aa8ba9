//! The shipped unit file `dist/mailroom.service` passes `systemd-analyze verify` with no
//! complaint (verify exits 0 even for lines it ignores, so any output fails the test), and
//! its `Type=notify` readiness is the one `mailroom serve` really sends (READY=1 over
//! `NOTIFY_SOCKET` once it is serving).

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::*;

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/mailroom.service");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn unit_file_passes_systemd_analyze_verify_without_warnings() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let text = unit_text();
    for line in [
        "Type=notify",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ] {
        assert!(text.contains(line), "the unit lost {line}");
    }
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("mailroom.service");
    fs::write(&unit, text.replace("/usr/sbin/mailroom", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn serve_notifies_ready_then_stopping_over_notify_socket() {
    let env = TestEnv::new();
    let socket_path = env.root.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = env
        .command()
        .arg("serve")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut heard = Vec::new();
    let wait_for = |word: &str, heard: &mut Vec<String>| {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if heard.last().unwrap().lines().any(|l| l == word) {
                    return;
                }
            }
        }
        panic!("no {word} from serve; heard {heard:?}");
    };
    wait_for("READY=1", &mut heard);
    // Ready means serving: the control socket is there.
    assert!(env.queue_dir().join("control.sock").exists());
    // Our own unreaped child.
    let _ = sys::kill(child.id(), sys::Signal::SIGHUP);
    wait_for("RELOADING=1", &mut heard);
    wait_for("READY=1", &mut heard);
    let _ = sys::kill(child.id(), sys::Signal::SIGTERM);
    wait_for("STOPPING=1", &mut heard);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let reloading = heard.iter().find(|m| m.contains("RELOADING=1")).unwrap();
    // systemd (253+) wants the reload's start time with RELOADING=1.
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
}
