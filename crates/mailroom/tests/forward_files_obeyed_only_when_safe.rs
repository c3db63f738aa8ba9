//! `.forward` files as an administrator meets them: garbage lines are skipped with one
//! warning naming `file:line` while the rest is used; a file others could have written
//! (group or world writable) is ignored with one warning and the mail goes to the mailbox;
//! a missing file is simply no forward. With privileges separated, a `|command` from the
//! file runs as the user — not as root, not as `mail_owner`.

use std::fs;
use std::path::PathBuf;

use testkit::privsep::{self, local_user, write_as};
use testkit::*;

/// A started world whose forward_path is `<root>/forward/$user`, and that directory.
fn world_with_forward_dir() -> (World, PathBuf) {
    let world = World::builder().smtp().build();
    let dir = world.env.root.join("forward");
    world.configure(&format!("forward_path = \"{}/$user\"\n", dir.display()));
    open_up(&world.env.root);
    fs::create_dir(&dir).unwrap();
    open_up(&dir);
    (world, dir)
}

#[test]
fn garbage_lines_are_skipped_with_a_warning_each_and_the_rest_used() {
    let Some((user, ids)) = local_user() else {
        return;
    };
    let (mut world, dir) = world_with_forward_dir();
    let file = dir.join(&user);
    let text = format!("\"never closed\nkeep@localhost\n|\n\\{user}\n");
    write_as(&file, &text, ids, 0o644);
    world.start();
    let me = format!("{user}@localhost");
    world.submit("someone@example.net", &[&me], &message("garbage-lines"));
    world.env.wait_mbox("keep", 1);
    world.env.wait_mbox(&user, 1);
    world.wait_lines(&[&format!("to=<{me}>"), "status=sent"], 1);

    let warnings = world.lines_with(&["warning", &file.display().to_string()]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("{}:1: ", file.display())),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains(&format!("{}:3: ", file.display())),
        "{warnings:?}"
    );
    assert!(warnings.iter().all(|w| w.contains("(line skipped)")));
}

#[test]
fn a_forward_others_can_write_is_ignored_with_one_warning() {
    let Some((user, ids)) = local_user() else {
        return;
    };
    let (mut world, dir) = world_with_forward_dir();
    let file = dir.join(&user);
    write_as(&file, "stolen@localhost\n", ids, 0o664);
    world.start();
    let me = format!("{user}@localhost");
    world.submit("someone@example.net", &[&me], &message("group-writable"));
    world.env.wait_mbox(&user, 1);
    let warnings = world.wait_lines(&["warning", "is group writable: ignored"], 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&file.display().to_string()));
    assert_eq!(
        world.env.count_mbox("stolen"),
        0,
        "the unsafe file was obeyed"
    );

    // Made safe, it is obeyed; a missing file warns about nothing.
    write_as(&file, "kept@localhost\n", ids, 0o644);
    world.submit("someone@example.net", &[&me], &message("now-safe"));
    world.env.wait_mbox("kept", 1);
    fs::remove_file(&file).unwrap();
    world.submit("someone@example.net", &[&me], &message("no-forward"));
    world.env.wait_mbox(&user, 2);
    assert_eq!(
        world
            .lines_with(&["warning", &file.display().to_string()])
            .len(),
        1
    );
}

#[test]
fn privsep_forward_commands_run_as_the_user() {
    let Some(p) = privsep::setup("") else { return };
    let out = privsep::user_dir(&p, "out");
    let dir = p.env.root.join("forward");
    fs::create_dir(&dir).unwrap();
    open_up(&dir);
    p.env.write_config(&format!(
        "mail_owner = \"{}\"\nsmtpd_listen = [\"127.0.0.1:{}\"]\nlocal_recipient_maps = []\nforward_path = \"{}/$user\"\n",
        privsep::OWNER,
        p.port,
        dir.display()
    ));
    let command = format!(
        "\"|id -u > {o}/uid.tmp; mv {o}/uid.tmp {o}/uid\"\n",
        o = out.display()
    );
    write_as(&dir.join(privsep::USER), &command, p.user, 0o644);
    let _daemon = p.env.start();
    privsep::send_smtp(
        p.port,
        &format!("{}@localhost", privsep::USER),
        "forwarded-to-a-command",
    );
    p.env.wait_log("status=sent", 1);
    let uid = out.join("uid");
    wait_until("the command's output", || uid.exists());
    let uid = fs::read_to_string(uid).unwrap();
    assert_eq!(
        uid.trim(),
        p.user.0.to_string(),
        "the .forward command's uid"
    );
    assert_ne!(p.user.0, p.owner.0);
}
