//! Agent-level tests of resolution: aliases, includes, commands, files, forwards, loops.

use std::fs;

use envelope::OutcomeKind;

use super::*;

#[test]
fn aliases_expand_continuations_quotes_and_includes() {
    let setup = Setup::new("");
    let include = setup.path("staff.list");
    fs::write(&include, "# staff\ngina, hank@mx.example.org\n").unwrap();
    let aliases = format!(
        "\"Sales Team\": alice,\n  bob@localhost\nstaff: :include:{}\nboss: \\frank, boss\nPostmaster: staff\n",
        include.display()
    );
    fs::write(setup.path("aliases"), aliases).unwrap();
    let agent = setup.agent();
    let d = send(
        &agent,
        "s@x",
        &[
            "\"sales team\"@mx.example.org",
            "POSTMASTER",
            "boss@localhost",
        ],
        b"S: x\n\n",
    );
    assert!(
        d.outcomes.iter().all(|o| o.kind == OutcomeKind::Sent),
        "{d:?}"
    );
    for user in ["alice", "bob", "gina", "hank", "frank", "boss"] {
        assert_eq!(parse_mbox(&setup.mbox(user)).len(), 1, "{user}");
    }
    let bob = String::from_utf8(setup.mbox("bob")).unwrap();
    assert!(bob.contains("Delivered-To: bob@localhost\n"), "{bob}");
    assert!(String::from_utf8(setup.mbox("gina"))
        .unwrap()
        .contains("Delivered-To: gina@mx.example.org\n"));
}

#[test]
fn same_destination_twice_in_one_message_is_delivered_once() {
    let setup = Setup::new("a: zoe\nb: zoe, a\n");
    let d = send(&setup.agent(), "s@x", &["a", "b", "zoe"], b"S: x\n\n");
    assert_eq!(d.outcomes.len(), 3);
    assert!(
        d.outcomes.iter().all(|o| o.kind == OutcomeKind::Sent),
        "{d:?}"
    );
    assert_eq!(parse_mbox(&setup.mbox("zoe")).len(), 1);
}

#[test]
fn alias_loop_bounces() {
    let setup = Setup::new("ping: pong\npong: ping@localhost\nself: self, yves\n");
    let d = send(&setup.agent(), "s@x", &["ping", "self"], b"S: x\n\n");
    assert_eq!(
        (d.outcomes[0].kind.clone(), d.outcomes[0].dsn.as_str()),
        (OutcomeKind::Bounced, "5.4.6")
    );
    assert!(
        d.outcomes[0].text.starts_with("mail forwarding loop for "),
        "{}",
        d.outcomes[0].text
    );
    // An alias naming itself means the user's own mailbox, not a loop.
    assert_eq!(d.outcomes[1].kind, OutcomeKind::Sent, "{:?}", d.outcomes[1]);
    assert_eq!(parse_mbox(&setup.mbox("self")).len(), 1);
    assert_eq!(parse_mbox(&setup.mbox("yves")).len(), 1);
}

#[test]
fn include_loop_bounces() {
    let setup = Setup::new("");
    let list = setup.path("loop.list");
    fs::write(&list, format!(":include:{}\n", list.display())).unwrap();
    fs::write(
        setup.path("aliases"),
        format!("l: :include:{}\n", list.display()),
    )
    .unwrap();
    let d = send(&setup.agent(), "s@x", &["l"], b"");
    assert_eq!(only_outcome(&d).dsn, "5.4.6");
}

#[test]
fn delivered_to_loop_bounces() {
    let setup = Setup::new("fwd: ivan\n");
    let agent = setup.agent();
    let looped = b"Delivered-To: IVAN@mx.example.org\nSubject: again\n\nbody\n";
    let d = send(&agent, "s@x", &["ivan@mx.example.org"], looped);
    let outcome = only_outcome(&d);
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (OutcomeKind::Bounced, "5.4.6")
    );
    assert_eq!(outcome.text, "mail forwarding loop for ivan@mx.example.org");
    // Through an alias: the final address is what is checked.
    let d = send(&agent, "s@x", &["fwd@localhost"], looped);
    assert_eq!(only_outcome(&d).dsn, "5.4.6");
    // A different address on the header is no loop.
    let d = send(&agent, "s@x", &["ivan@localhost"], looped);
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent);
    assert!(setup.mbox("ivan").starts_with(b"From s@x "));
}

#[test]
fn forward_to_other_domain_is_a_resubmission() {
    let setup =
        Setup::new("judy: judy@elsewhere.example, local-judy\nteam: judy, kim@far.example\n");
    let d = send(
        &setup.agent(),
        "s@x",
        &["judy@localhost"],
        b"Subject: f\n\nx\n",
    );
    let outcome = only_outcome(&d);
    assert_eq!(outcome.kind, OutcomeKind::Sent);
    assert_eq!(
        outcome.text,
        "delivered to mailbox; forwarded as new message"
    );
    assert_eq!(d.resubmit.len(), 1);
    let resubmission = &d.resubmit[0];
    assert_eq!(resubmission.for_recipient, 0);
    assert_eq!(resubmission.sender, "s@x");
    assert_eq!(
        resubmission.recipients,
        vec!["judy@elsewhere.example".to_string()]
    );
    assert_eq!(
        resubmission.message,
        b"Delivered-To: judy@localhost\nSubject: f\n\nx\n"
    );
    assert_eq!(parse_mbox(&setup.mbox("local-judy")).len(), 1);
}

#[test]
fn command_delivery_exit_codes() {
    let setup = Setup::new("");
    let out = setup.path("piped");
    let aliases = format!(
        "pipe: \"|cat > {}\"\ntemp: |exit 75\nfail: \"|echo no such list >&2; exit 67\"\n",
        out.display()
    );
    fs::write(setup.path("aliases"), aliases).unwrap();
    let d = send(
        &setup.agent(),
        "s@x",
        &["pipe", "temp", "fail"],
        b"Subject: c\n\nbody\n",
    );
    let [pipe, temp, fail] = &d.outcomes[..] else {
        panic!("{d:?}")
    };
    assert_eq!(pipe.kind, OutcomeKind::Sent, "{pipe:?}");
    assert_eq!(
        pipe.text,
        format!("delivered to command: cat > {}", out.display())
    );
    let piped = fs::read_to_string(&out).unwrap();
    assert!(piped.starts_with("From s@x "), "{piped}");
    assert!(
        piped.ends_with("Delivered-To: pipe@mx.example.org\nSubject: c\n\nbody\n"),
        "{piped}"
    );
    assert_eq!(
        (temp.kind.clone(), temp.dsn.as_str()),
        (OutcomeKind::Deferred, "4.3.0")
    );
    // EX_NOUSER: Postfix's sys_exits status for it.
    assert_eq!(
        (fail.kind.clone(), fail.dsn.as_str()),
        (OutcomeKind::Bounced, "5.1.1")
    );
    assert!(
        fail.text.ends_with("Command output: no such list"),
        "{}",
        fail.text
    );
}

#[test]
fn commands_and_files_need_permission() {
    let mut setup = Setup::new("c: |true\nf: /tmp/never-written\n");
    setup.cfg.allow_mail_to_commands = vec!["forward".into()];
    setup.cfg.allow_mail_to_files = Vec::new();
    let d = send(&setup.agent(), "s@x", &["c", "f"], b"");
    assert_eq!(d.outcomes[0].text, "mail to command is restricted");
    assert_eq!(d.outcomes[1].text, "mail to file is restricted");
    assert!(d.outcomes.iter().all(|o| o.dsn == "5.7.1"));
}

#[test]
fn file_delivery_appends_mbox_format() {
    let setup = Setup::new("");
    let file = setup.path("archive");
    fs::write(
        setup.path("aliases"),
        format!("arch: {}, /dev/null\n", file.display()),
    )
    .unwrap();
    let agent = setup.agent();
    for _ in 0..2 {
        let d = send(&agent, "s@x", &["arch"], b"Subject: f\n\nFrom x\n");
        assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "{d:?}");
    }
    let messages = parse_mbox(&fs::read(&file).unwrap());
    assert_eq!(messages.len(), 2);
    assert!(messages[1]
        .1
        .ends_with(b"Delivered-To: arch@mx.example.org\nSubject: f\n\nFrom x\n"));
}

#[test]
fn deferred_destination_defers_the_recipient_and_holds_forwards() {
    let setup = Setup::new("mix: mona, |exit 75, remote@far.example\n");
    let d = send(&setup.agent(), "s@x", &["mix"], b"");
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Deferred);
    assert!(d.resubmit.is_empty(), "the retry will forward it");
    assert_eq!(
        parse_mbox(&setup.mbox("mona")).len(),
        1,
        "as in Postfix, mona may get it twice"
    );
}

#[test]
fn unknown_user_with_passwd_maps() {
    let mut setup = Setup::new("known-alias: root\n");
    setup.cfg.local_recipient_maps = vec!["proxy:unix:passwd.byname".into(), "$alias_maps".into()];
    let agent = setup.agent();
    let d = send(
        &agent,
        "s@x",
        &["nosuchuser-xyz@localhost", "Known-Alias"],
        b"",
    );
    let unknown = &d.outcomes[0];
    assert_eq!(
        (unknown.kind.clone(), unknown.dsn.as_str()),
        (OutcomeKind::Bounced, "5.1.1")
    );
    assert_eq!(unknown.text, "unknown user: \"nosuchuser-xyz\"");
    assert_eq!(d.outcomes[1].kind, OutcomeKind::Sent, "{:?}", d.outcomes[1]);
    // Without the passwd map anyone is a user.
    let setup = Setup::new("");
    let d = send(&setup.agent(), "s@x", &["nosuchuser-xyz"], b"");
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent);
}

#[test]
fn check_aliases_reports_file_and_line_and_missing_file_is_empty() {
    let setup = Setup::new("ok: a\nbroken line\n\nworse: \"\n");
    let err = check_aliases(&setup.cfg.alias_maps)
        .unwrap_err()
        .to_string();
    let file = setup.path("aliases");
    assert_eq!(
        err,
        format!(
            "{0}:2: missing ':' after the alias name\n{0}:4: unbalanced double quote",
            file.display()
        )
    );
    fs::write(&file, "a: b\nc: d\n").unwrap();
    assert_eq!(check_aliases(&setup.cfg.alias_maps).unwrap(), 2);
    fs::remove_file(&file).unwrap();
    assert_eq!(check_aliases(&setup.cfg.alias_maps).unwrap(), 0);
    assert!(LocalAgent::new(LocalSettings::from_config(&setup.cfg)).is_ok());
}

#[test]
fn reload_picks_up_new_aliases() {
    let setup = Setup::new("");
    let mut agent = setup.agent();
    fs::write(setup.path("aliases"), "newname: nina\n").unwrap();
    agent
        .reload(LocalSettings::from_config(&setup.cfg))
        .unwrap();
    send(&agent, "s@x", &["newname"], b"");
    assert_eq!(parse_mbox(&setup.mbox("nina")).len(), 1);
    let mut bad = setup.cfg.clone();
    bad.alias_maps = vec!["nis:mail.aliases".into()];
    assert!(agent.reload(LocalSettings::from_config(&bad)).is_err());
}
