//! Issue 8, defect 12: after `chmod 777 queue/maildrop`, `check --fix` set 0775 and `check`
//! accepted anything from 0700 to 0775, so other local users could list pending mail. Now
//! the layout `serve` creates is clean, any looser mode is flagged, and `--fix` restores
//! exactly the mode `serve` created.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use testkit::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn check_flags_looser_modes_and_fix_restores_what_serve_created() {
    let env = TestEnv::new();
    let daemon = env.start();
    daemon.kill9();
    let dirs = [
        env.queue_dir(),
        env.maildrop_dir(),
        env.queue_dir().join("store"),
    ];
    let created: Vec<u32> = dirs.iter().map(|d| mode(d)).collect();
    assert_eq!(
        created[1], 0o730,
        "serve creates maildrop 0730 whatever the umask"
    );
    let out = env.run(&["check"], b"");
    assert_success(&out, "check of the layout serve created");

    for (dir, created) in dirs.iter().zip(&created) {
        for loose in [0o777, 0o775, 0o770] {
            if loose & !created == 0 {
                continue;
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(loose)).unwrap();
            let out = env.run(&["check"], b"");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                !out.status.success(),
                "{loose:04o} {} passed check",
                dir.display()
            );
            let expected = format!("mode {loose:04o}, expected {created:04o}");
            assert!(stdout.contains(&expected), "{stdout}");
            let out = env.run(&["check", "--fix"], b"");
            assert_success(&out, "check --fix");
            assert_eq!(
                mode(dir),
                *created,
                "--fix restores exactly {}",
                dir.display()
            );
            assert_success(&env.run(&["check"], b""), "check after --fix");
        }
    }
}
