//! check on a store broken the seed-001 way, in the embedded profile (owner = this user).

use super::*;
use std::os::unix::fs::PermissionsExt;

fn config(root: &Path) -> Settings {
    let text = format!(
        "queue_directory = \"{0}/queue\"\nmail_spool_directory = \"{0}/mail\"\nsmtpd_listen = []\n",
        root.display()
    );
    Settings::from_config(&config::Config::from_str(&text, None).unwrap())
}

fn layout(root: &Path) {
    for (d, m) in [
        ("queue", 0o755),
        ("queue/maildrop", 0o730),
        ("queue/store", 0o700),
        ("mail", 0o755),
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(m)).unwrap();
    }
    for i in 1..=3 {
        let seg = root.join(format!("queue/store/00000000000{i}.seg"));
        fs::write(&seg, b"").unwrap();
        fs::set_permissions(&seg, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_good_layout_has_no_problems() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let report = check(&config(dir.path()), false);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
}

#[test]
fn wrong_modes_are_reported_once_and_fixed() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let maildrop = dir.path().join("queue/maildrop");
    fs::set_permissions(&maildrop, fs::Permissions::from_mode(0o777)).unwrap();
    for i in 1..=3 {
        let seg = dir.path().join(format!("queue/store/00000000000{i}.seg"));
        fs::set_permissions(&seg, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut report = check(&config(dir.path()), false);
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    let md = &report.problems[0];
    assert_eq!(md.path, maildrop.display().to_string());
    assert_eq!(md.what, "mode 0777, expected 0730");
    assert_eq!(md.fix, format!("chmod 0730 {}", maildrop.display()));
    assert!(
        report.problems[1].path.ends_with("store/* (3 files)"),
        "{:?}",
        report.problems[1]
    );
    fix(&mut report);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.fixed.len(), 2);
    assert!(check(&config(dir.path()), false).problems.is_empty());
}

#[test]
fn a_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let maildrop = dir.path().join("queue/maildrop");
    fs::remove_dir(&maildrop).unwrap();
    std::os::unix::fs::symlink("/etc", &maildrop).unwrap();
    let mut report = check(&config(dir.path()), false);
    assert!(report.problems[0].what.contains("symbolic link"));
    fix(&mut report);
    assert_eq!(report.problems.len(), 1);
}

/// Issue 8, defect 12: `check` accepted any maildrop mode from 0700 to 0775 and `--fix`
/// "repaired" 0777 to 0775. Every mode looser than what serve creates is flagged, and the
/// fix is exactly the created mode.
#[test]
fn looser_modes_than_serve_creates_are_flagged_and_fixed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let cfg = config(dir.path());
    for row in layout::queue_layout(&cfg) {
        if row.kind != layout::Kind::Directory {
            continue;
        }
        fs::create_dir_all(&row.path).unwrap();
        let looser = [
            0o777,
            0o775,
            0o770,
            0o757,
            row.mode | 0o002,
            row.mode | 0o040,
        ];
        for loose in looser.into_iter().filter(|m| m & !row.mode != 0) {
            fs::set_permissions(&row.path, fs::Permissions::from_mode(loose)).unwrap();
            let mut report = check(&cfg, false);
            let shown = row.path.display().to_string();
            let flagged: Vec<_> = report.problems.iter().filter(|p| p.path == shown).collect();
            assert_eq!(
                flagged.len(),
                1,
                "{loose:04o} {shown}: {:#?}",
                report.problems
            );
            fix(&mut report);
            let mode = fs::metadata(&row.path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, row.mode, "--fix restores exactly {shown}");
        }
    }
    assert!(check(&cfg, false).problems.is_empty());
}

#[test]
fn a_stricter_maildrop_passes_in_the_embedded_profile() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let maildrop = dir.path().join("queue/maildrop");
    fs::set_permissions(&maildrop, fs::Permissions::from_mode(0o700)).unwrap();
    let report = check(&config(dir.path()), false);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
}

#[test]
fn a_dkim_key_others_may_read_is_an_error_that_fix_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    layout(root);
    let key = root.join("example.com.s.key");
    fs::write(&key, b"secret").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let mut cfg = config(root);
    cfg.secret_files = vec![key.clone()];
    let mut report = check(&cfg, false);
    let problem = report
        .problems
        .iter()
        .find(|p| p.path == key.display().to_string())
        .expect("the key is reported");
    assert_eq!(problem.severity, Severity::Error);
    assert!(
        problem.what.contains("mode 0644, expected 0600"),
        "{}",
        problem.what
    );
    fix(&mut report);
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert!(check(&cfg, false)
        .problems
        .iter()
        .all(|p| p.path != key.display().to_string()));
}

/// README's old gap: a `*.lock` that holds mail blocks a mailbox and check said nothing.
#[test]
fn a_lock_file_holding_mail_is_reported_and_a_real_lock_is_not() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let mail = dir.path().join("mail");
    let mbox = "From a@example.org Mon Dec  1 10:00:00 2026\nSubject: kept\n\nbody of a message\n";
    fs::write(mail.join("alice.lock"), mbox).unwrap();
    fs::write(mail.join("bob.lock"), b"4242\n").unwrap();
    let report = check(&config(dir.path()), false);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.severity, Severity::Error);
    assert_eq!(p.path, mail.join("alice.lock").display().to_string());
    assert!(
        p.what.contains(&format!("holds {} bytes", mbox.len())),
        "{}",
        p.what
    );
    assert!(p.what.contains("alice's mailbox"), "{}", p.what);
    assert!(p.fix.starts_with("mv -n "), "{}", p.fix);
    assert!(p.fix.contains("alice.held-mail"), "{}", p.fix);
    let mut report = report;
    fix(&mut report);
    assert!(report.fixed.is_empty(), "check --fix never moves mail");
    assert!(mail.join("alice.lock").exists());
}
