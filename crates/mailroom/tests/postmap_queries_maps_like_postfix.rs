//! `postmap -q KEY MAP` answers as Postfix's does (value on stdout, exit 0; exit 1 when no
//! map has the key or a map is bad, with the bad `file:line` on stderr), through the
//! `mailroom postmap` subcommand and a symlink named `postmap`.

use std::os::unix::fs::symlink;
use std::process::Command;

use testkit::*;

fn postmap(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("postmap")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn query_text_and_regexp_maps_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let virt = dir.path().join("virtual");
    std::fs::write(&virt, "info@example.org  alice, bob@example.net\n").unwrap();
    let generic = dir.path().join("generic.re");
    std::fs::write(
        &generic,
        "/^(.*)@web[0-9]+\\.example\\.com$/  ${1}@example.com\n",
    )
    .unwrap();
    let virt = format!("hash:{}", virt.display());
    let generic = format!("regexp:{}", generic.display());

    let o = postmap(&["-q", "INFO@example.org", &virt]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "alice, bob@example.net\n");

    let o = postmap(&["-q", "root@web01.example.com", &virt, &generic]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "root@example.com\n");

    let o = postmap(&["-q", "nobody@example.org", &virt, &generic]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(1), String::new()));

    // Keys on standard input: one `key<TAB>value` line per key found.
    let o = run_with_input(
        Command::new(bin()).args(["postmap", "-q", "-", &virt, &generic]),
        b"info@example.org\nmissing@example.org\ncron@web7.example.com\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "info@example.org\talice, bob@example.net\ncron@web7.example.com\tcron@example.com\n"
    );

    // The Postfix name works as a symlink too.
    let link = dir.path().join("postmap");
    symlink(bin(), &link).unwrap();
    let o = Command::new(&link)
        .args(["-q", "info@example.org", &virt])
        .output()
        .unwrap();
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(0), "alice, bob@example.net\n".into())
    );
}

#[test]
fn a_bad_map_exits_1_naming_the_line_and_unknown_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("canonical");
    std::fs::write(&bad, "root ops@example.com\njust-a-key\n").unwrap();
    let spec = bad.display().to_string();
    let o = postmap(&["-q", "root", &spec]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains(&format!(
            "postmap: fatal: {spec}:2: expected format: key whitespace value"
        )),
        "{}",
        stderr(&o)
    );
    // Checking without -q: the same line, exit 1; a good file exits 0 silently.
    let o = postmap(&[&spec]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    std::fs::write(&bad, "root ops@example.com\n").unwrap();
    let o = postmap(&[&spec]);
    assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()));

    let o = postmap(&["-z", &spec]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("unknown option -z"), "{}", stderr(&o));
    let o = postmap(&["-q", "k", "mysql:/etc/x.cf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unsupported map type `mysql`"),
        "{}",
        stderr(&o)
    );
}
