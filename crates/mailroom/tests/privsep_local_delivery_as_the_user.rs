//! With privileges separated, local delivery still happens as the recipient: the mailbox
//! written by the root helper belongs to the user, and a `|command` or `/file` from the
//! user's alias file runs with the user's uid, not root's and not `mail_owner`'s.

use std::fs;
use testkit::privsep::*;

#[test]
fn mbox_command_and_file_deliveries_are_made_as_the_user() {
    let Some(p) = setup("") else { return };
    let out = user_dir(&p, "out");
    user_aliases(
        &p,
        &format!(
            "cmd: \"|id -u > {o}/uid; cat > {o}/msg\"\nfile: {o}/file.mbox\n",
            o = out.display()
        ),
    );
    let _daemon = p.env.start();
    send_smtp(p.port, &format!("{USER}@localhost"), "to-the-mailbox-1");
    send_smtp(p.port, "cmd@localhost", "to-the-command-2");
    send_smtp(p.port, "file@localhost", "to-the-file-3");
    p.env.wait_log("status=sent", 3);

    let mbox = p.env.mbox(USER);
    assert_eq!(owner_of(&mbox), p.user.0, "mailbox owner");
    assert!(fs::read_to_string(&mbox)
        .unwrap()
        .contains("to-the-mailbox-1"));

    let uid = fs::read_to_string(out.join("uid")).unwrap();
    assert_eq!(uid.trim(), p.user.0.to_string(), "the command's uid");
    assert_eq!(owner_of(&out.join("msg")), p.user.0);
    assert!(fs::read_to_string(out.join("msg"))
        .unwrap()
        .contains("to-the-command-2"));

    let file = out.join("file.mbox");
    assert_eq!(owner_of(&file), p.user.0, "the /file delivery's owner");
    assert!(fs::read_to_string(&file).unwrap().contains("to-the-file-3"));
}
