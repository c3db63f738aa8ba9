//! `mailroom man --dir DIR`: one page per subcommand (and per Postfix program name), plus
//! mailroom.toml(5) listing every parameter the configuration knows with its real default;
//! every page formats with groff and man without a single warning. Skipped, with one line,
//! where groff is not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::*;

fn write_pages(env: &TestEnv, extra: &[&str]) -> PathBuf {
    let dir = env.root.join("man");
    let mut args = vec!["man", "--dir", dir.to_str().unwrap()];
    args.extend(extra);
    let out = env.run(&args, b"");
    assert_success(&out, "mailroom man --dir");
    dir
}

/// The subcommands `mailroom --help` lists (clap's own `help` aside).
fn subcommands(env: &TestEnv) -> Vec<String> {
    let out = env.run(&["--help"], b"");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The page as text: no hyphenation (the page says `.nh`), no bold or underline codes.
fn formatted(page: &Path) -> String {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .unwrap();
    assert_success(&out, "groff");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_subcommand_has_a_page_and_every_page_renders_without_warnings() {
    let env = TestEnv::new();
    let dir = write_pages(&env, &[]);
    let names = subcommands(&env);
    assert!(
        names.len() >= 10 && names.contains(&"config".to_string()),
        "{names:?}"
    );
    for name in &names {
        let found = ["1", "8"]
            .iter()
            .any(|s| dir.join(format!("man{s}/mailroom-{name}.{s}")).is_file());
        assert!(found, "no page for mailroom {name}");
    }
    for page in [
        "man8/mailroom.8",
        "man5/mailroom.toml.5",
        "man1/sendmail.1",
        "man1/postconf.1",
        "man1/mailq.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    let pages: Vec<PathBuf> = ["man1", "man5", "man8"]
        .iter()
        .flat_map(|s| std::fs::read_dir(dir.join(s)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pages.len(), 2 + names.len() + 8, "{pages:?}");

    if !have("groff") {
        eprintln!("skipped: groff is not installed, pages not formatted");
        return;
    }
    let man = have("man");
    for page in &pages {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap();
        assert_success(&out, "groff");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "groff warns on {}",
            page.display()
        );
        if man {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(page)
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .output()
                .unwrap();
            assert_success(&out, "man -l");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                "",
                "man warns on {}",
                page.display()
            );
        }
    }
    // A page names the command it documents.
    let postconf = formatted(&dir.join("man1/postconf.1"));
    assert!(postconf.contains("postconf [-c"), "{postconf}");
    assert!(postconf.contains("-#"), "{postconf}");
}

/// `mailroom config -d` of a system-profile file: every parameter with its default as written.
fn system_defaults(env: &TestEnv) -> BTreeMap<String, String> {
    let file = env.root.join("system.toml");
    std::fs::write(&file, "profile = \"system\"\n").unwrap();
    let out = env.run(&["--config", file.to_str().unwrap(), "config", "-d"], b"");
    assert_success(&out, "config -d");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (line.trim_end_matches(" =").to_string(), String::new()),
        })
        .collect()
}

/// Each parameter's block of the formatted page, whitespace collapsed.
fn parameter_blocks(text: &str, names: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut blocks: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let tag = line.strip_prefix("       ").filter(|t| !t.starts_with(' '));
        match tag {
            Some(tag) if names.contains_key(tag) => current = Some(tag.to_string()),
            Some(_) => current = None,
            None => {
                if let Some(name) = &current {
                    let block = blocks.entry(name.clone()).or_default();
                    block.push(' ');
                    block.push_str(line.trim());
                }
            }
        }
    }
    blocks
        .into_iter()
        .map(|(n, b)| (n, b.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

#[test]
fn mailroom_toml_5_lists_every_parameter_with_its_default() {
    let env = TestEnv::new();
    let dir = write_pages(&env, &[]);
    if !have("groff") {
        eprintln!("skipped: groff is not installed, mailroom.toml(5) not formatted");
        return;
    }
    let defaults = system_defaults(&env);
    assert!(defaults.len() > 80, "{defaults:?}");
    let text = formatted(&dir.join("man5/mailroom.toml.5"));
    let blocks = parameter_blocks(&text, &defaults);
    for (name, default) in &defaults {
        let block = blocks
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in mailroom.toml(5)"));
        // Described rather than shown: the host name (not this machine's), and the profile a
        // file without `profile` gets (embedded; this file asked for system).
        if ["myhostname", "mydomain", "profile"].contains(&name.as_str()) {
            continue;
        }
        let shown = if default.is_empty() { "empty" } else { default };
        assert!(
            block.contains(&format!("Default: {shown}."))
                || block.contains(&format!("Default: {shown};")),
            "{name}: default {shown:?} not in {block:?}"
        );
    }
    assert!(blocks["queue_directory"].contains("embedded profile: $data_directory/queue."));
}

#[test]
fn without_postfix_names_leaves_out_the_postfix_program_pages() {
    let env = TestEnv::new();
    let dir = write_pages(&env, &["--without-postfix-names"]);
    assert!(!dir.join("man1/sendmail.1").exists());
    assert!(!dir.join("man1/postconf.1").exists());
    assert!(dir.join("man1/mailroom-sendmail.1").is_file());
    assert!(dir.join("man5/mailroom.toml.5").is_file());
}
