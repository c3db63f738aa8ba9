//! `recipient_delimiter` (alias look-up with, then without the extension; RCPT checks) and
//! `owner-LIST` aliases (the list's mail is sent on with the owner as envelope sender).

use super::*;
use std::fs;

fn with_delimiter(aliases: &str, delimiter: &str) -> Setup {
    let mut setup = Setup::new(aliases);
    setup.cfg.recipient_delimiter = delimiter.into();
    setup
}

#[test]
fn an_extension_reaches_the_users_mailbox() {
    let setup = with_delimiter("", "+");
    let d = send(
        &setup.agent(),
        "s@example.net",
        &["alice+news@localhost"],
        b"x\n",
    );
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "{d:?}");
    let messages = parse_mbox(&setup.mbox("alice"));
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8_lossy(&messages[0].1).into_owned();
    assert!(
        text.contains("Delivered-To: alice+news@localhost\n"),
        "{text}"
    );
    assert!(setup.mbox("alice+news").is_empty());
}

#[test]
fn without_a_delimiter_the_plus_is_part_of_the_name() {
    let setup = with_delimiter("", "");
    let d = send(
        &setup.agent(),
        "s@example.net",
        &["alice+news@localhost"],
        b"x\n",
    );
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent);
    assert!(setup.mbox("alice").is_empty());
    assert_eq!(parse_mbox(&setup.mbox("alice+news")).len(), 1);
}

#[test]
fn aliases_are_looked_up_with_the_extension_first_then_without() {
    let setup = with_delimiter("", "+");
    let (with, without) = (setup.path("with.mbox"), setup.path("without.mbox"));
    fs::write(
        setup.path("aliases"),
        format!(
            "list+news: {}\nlist: {}\n",
            with.display(),
            without.display()
        ),
    )
    .unwrap();
    let agent = setup.agent();
    for rcpt in [
        "list+news@localhost",
        "list+other@localhost",
        "list@localhost",
    ] {
        assert_eq!(
            only_outcome(&send(&agent, "s@x", &[rcpt], b"x\n")).kind,
            OutcomeKind::Sent
        );
    }
    assert_eq!(parse_mbox(&fs::read(&with).unwrap()).len(), 1);
    assert_eq!(parse_mbox(&fs::read(&without).unwrap()).len(), 2);
}

#[test]
fn rcpt_check_accepts_an_extension_of_a_known_user_or_alias() {
    let mut setup = with_delimiter("list: a@remote.example\n", "+");
    setup.cfg.local_recipient_maps = vec!["unix:passwd.byname".into()];
    let agent = setup.agent();
    assert!(agent.accepts("root+anything@localhost"));
    assert!(agent.accepts("list+x@localhost"));
    assert!(!agent.accepts("no-such-user-mailroom+x@localhost"));
    setup.cfg.recipient_delimiter = String::new();
    let agent = setup.agent();
    assert!(
        !agent.accepts("root+anything@localhost"),
        "no delimiter, no extension"
    );
}

#[test]
fn a_list_with_an_owner_is_sent_on_from_the_owner() {
    let setup = with_delimiter("list: far@remote.example, bob\nowner-list: carol\n", "");
    let d = send(
        &setup.agent(),
        "writer@example.net",
        &["list@localhost"],
        b"x\n",
    );
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "{d:?}");
    assert_eq!(d.resubmit.len(), 1, "{d:?}");
    let resubmitted = &d.resubmit[0];
    assert_eq!(resubmitted.sender, "owner-list@mx.example.org");
    assert_eq!(
        resubmitted.recipients,
        ["far@remote.example", "bob@mx.example.org"]
    );
    assert!(resubmitted
        .message
        .starts_with(b"Delivered-To: list@localhost\n"));
    assert!(
        setup.mbox("bob").is_empty(),
        "members get the list's new message"
    );
}

#[test]
fn a_list_without_an_owner_keeps_the_sender() {
    let setup = with_delimiter("list: far@remote.example, bob\n", "");
    let d = send(
        &setup.agent(),
        "writer@example.net",
        &["list@localhost"],
        b"x\n",
    );
    assert_eq!(d.resubmit[0].sender, "writer@example.net");
    assert_eq!(
        parse_mbox(&setup.mbox("bob")).len(),
        1,
        "local members inline"
    );
}

#[test]
fn a_bounce_to_a_list_with_an_owner_stays_a_bounce() {
    let setup = with_delimiter("list: far@remote.example\nowner-list: carol\n", "");
    let d = send(&setup.agent(), "", &["list@localhost"], b"x\n");
    assert_eq!(
        d.resubmit[0].sender, "",
        "a null sender must not gain an address"
    );
}
