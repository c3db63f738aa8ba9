//! Issue 8 defects 3 and 7 at the agent: a local part that would be another mailbox's
//! dotlock, or that can never be a mailbox (`"|/bin/sh"`, `..`, `user@evil`), is refused by
//! [`LocalAgent::accepts`] (the RCPT check) and never becomes a file in the spool.

use std::path::Path;

use super::*;

/// Every entry of the spool directory, sorted.
fn spool_entries(setup: &Setup) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(setup.path("mail"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn mail_to_alice_lock_never_becomes_alices_dotlock() {
    let setup = Setup::new("");
    let agent = setup.agent();
    assert!(agent.accepts("alice@localhost"));
    for lock_name in ["alice.lock@localhost", "\"Alice.LOCK\"@localhost"] {
        assert!(!agent.accepts(lock_name), "{lock_name} accepted at RCPT");
    }
    let d = send(&agent, "s@example.net", &["alice.lock@localhost"], b"x\n");
    let outcome = only_outcome(&d);
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (OutcomeKind::Bounced, "5.1.3"),
        "{outcome:?}"
    );
    assert!(outcome.text.contains(".lock"), "{outcome:?}");
    assert!(!setup.path("mail/alice.lock").exists());
    // Alice's own mail is not held up by a lock nobody holds.
    let d = send(&agent, "s@example.net", &["alice@localhost"], b"y\n");
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "{d:?}");
    assert_eq!(spool_entries(&setup), ["alice"]);
}

#[test]
fn odd_local_parts_are_refused_and_never_touch_the_spool() {
    let setup = Setup::new("helpdesk: alice\n");
    let agent = setup.agent();
    let odd = [
        "\"|/bin/sh\"@localhost",
        "\"/etc/passwd\"@localhost",
        "\"..\"@localhost",
        "\".hidden\"@localhost",
        "\"user@evil.invalid\"@localhost",
        "a%b@localhost",
        "a!b@localhost",
        "\"a b\"@localhost",
        "\"../../etc/cron.d/x\"@localhost",
    ];
    for address in odd {
        assert!(!agent.accepts(address), "{address} accepted at RCPT");
    }
    let d = send(&agent, "s@example.net", &odd, b"x\n");
    for (outcome, address) in d.outcomes.iter().zip(odd) {
        assert_eq!(outcome.kind, OutcomeKind::Bounced, "{address}: {outcome:?}");
    }
    assert_eq!(spool_entries(&setup), Vec::<String>::new());
    assert!(!Path::new("/etc/cron.d/x").exists());
    // Aliases and well-formed names still pass.
    for address in ["helpdesk@localhost", "bob@localhost", "\"Bob\"@localhost"] {
        assert!(agent.accepts(address), "{address}");
    }
}
