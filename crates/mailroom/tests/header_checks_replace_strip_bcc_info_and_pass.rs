//! The header/body check actions beyond the first set: REPLACE (the header rewritten),
//! STRIP (removed, with a `strip:` line), INFO (an `info:` line only), BCC (a recipient
//! added), PASS (no further header, body or milter inspection for that message) — over SMTP
//! and from sendmail, each logged in Postfix's cleanup format. A milter that refuses every
//! message (over SMTP; for sendmail one that is down, with `milter_default_action =
//! reject`) shows PASS reaching the milters: only the PASSed message gets through. A BCC without `@` is a warning and does nothing.

use std::fs;

use testkit::*;

const HEADER_CHECKS: &str = "\
/^Subject: (.*) v1agra/ REPLACE Subject: $1 [spam]
/^X-Internal:/ STRIP internal header
/^X-Trace:/ INFO traced
/^X-Copy:/ BCC audit@test.example
/^X-Broken:/ BCC nobody
/^X-Trusted:/ PASS trusted sender
/^Subject:.*after pass/ REJECT
";
const BODY_CHECKS: &str = "/^secret line/ STRIP\n/^forbidden/ REJECT no\n";

/// For SMTP mail, a milter that refuses every message at its end (smtpd's milters are
/// told of the session from its connect on, so a down one would already refuse MAIL).
const REJECT_AT_END: &str = "
class TestMilter(Recording):
    def eom(self):
        return Milter.REJECT
";

fn world() -> (World, Option<PyMilter>) {
    let mut world = World::new("");
    let root = world.env.root.clone();
    fs::write(root.join("header_checks"), HEADER_CHECKS).unwrap();
    fs::write(root.join("body_checks"), BODY_CHECKS).unwrap();
    let milter = PyMilter::available().then(|| PyMilter::start(&root, REJECT_AT_END));
    let smtpd_port = milter.as_ref().map_or_else(free_port, |m| m.port);
    world.configure(&format!(
        "header_checks = [\"regexp:{0}/header_checks\"]\nbody_checks = [\"regexp:{0}/body_checks\"]\n\
         smtpd_milters = [\"inet:127.0.0.1:{1}\"]\nnon_smtpd_milters = [\"inet:127.0.0.1:{2}\"]\n\
         milter_default_action = \"reject\"",
        root.display(),
        smtpd_port,
        free_port()
    ));
    world.start();
    (world, milter)
}

/// The SMTP tests need the refusing milter: Debian's python3-milter.
fn smtp_world() -> Option<(World, PyMilter)> {
    match world() {
        (world, Some(milter)) => Some((world, milter)),
        (_, None) => {
            eprintln!(
                "skipped: Debian's python3-milter is not installed (scripts/test.sh installs it)"
            );
            None
        }
    }
}

/// One message over SMTP; returns the reply to the end of DATA.
fn smtp(world: &World, to: &str, message: &str) -> Reply {
    world.data_reply("a@test.example", to, message)
}

fn delivered(world: &World, user: &str, count: usize) {
    world.wait_lines(
        &[&format!("to=<{user}@test.example>"), "status=sent"],
        count,
    );
}

fn mbox(world: &World, user: &str) -> String {
    fs::read_to_string(world.env.mbox(user)).unwrap_or_default()
}

#[test]
fn replace_strip_info_bcc_and_pass_over_smtp() {
    let Some((world, _milter)) = smtp_world() else {
        return;
    };
    let from = "from unknown[127.0.0.1]; from=<a@test.example> to=<alice@test.example> proto=ESMTP helo=<client.test>";
    // Not PASSed: the milter refuses it, after the checks ran.
    let reply = smtp(
        &world,
        "alice@test.example",
        "Subject: cheap v1agra\nX-Trace: 1\n\nhi\n",
    );
    assert_eq!(reply.code, 550, "{}", reply.text());
    world.env.wait_log(
        &format!("replace: header Subject: cheap v1agra {from}: Subject: cheap [spam]"),
        1,
    );
    world
        .env
        .wait_log(&format!("info: header X-Trace: 1 {from}: traced"), 1);

    // PASSed: the milter is not asked, and the REJECT below the PASS is not reached.
    let message = "X-Trusted: yes\nSubject: cheap v1agra after pass\nX-Internal: x\nX-Copy: 1\n\nsecret line\nforbidden\n";
    let reply = smtp(&world, "alice@test.example", message);
    assert_eq!(reply.code, 250, "{}", reply.text());
    world.env.wait_log(
        &format!("pass: header X-Trusted: yes {from}: trusted sender"),
        1,
    );
    delivered(&world, "alice", 1);
    let alice = mbox(&world, "alice");
    assert!(
        alice.contains("Subject: cheap v1agra after pass\n"),
        "{alice}"
    );
    assert!(
        alice.contains("X-Internal: x\n") && alice.contains("forbidden\n"),
        "{alice}"
    );
    assert!(
        !world.env.mbox("audit").exists(),
        "BCC after PASS was acted on"
    );
}

#[test]
fn strip_bcc_and_a_bad_bcc_without_pass() {
    let (world, _milter) = world();
    // No milter verdict is needed for sendmail mail under PASS; without PASS the down
    // milter refuses, so this one PASSes at its last header, after the other checks ran.
    let message = "Subject: cheap v1agra\nX-Internal: x\nX-Copy: 1\nX-Broken: 1\nX-Trusted: yes\n\nsecret line\nkept\n";
    world.env.send_ok(
        &["-f", "a@test.example", "bob@test.example"],
        message.as_bytes(),
    );
    world.env.wait_log(
        "strip: header X-Internal: x from local; from=<a@test.example> to=<bob@test.example>: internal header",
        1,
    );
    world.env.wait_log(
        "bcc: header X-Copy: 1 from local; from=<a@test.example> to=<bob@test.example>: audit@test.example",
        1,
    );
    world.env.wait_log(
        "bad BCC address (need user@domain) in header_checks: BCC nobody",
        1,
    );
    delivered(&world, "bob", 1);
    delivered(&world, "audit", 1);
    for user in ["bob", "audit"] {
        let text = mbox(&world, user);
        assert!(text.contains("Subject: cheap [spam]\n"), "{text}");
        assert!(!text.contains("X-Internal"), "{text}");
        // PASS came in the headers: body checks were off, the secret line stays.
        assert!(text.contains("secret line\nkept\n"), "{text}");
    }
}

#[test]
fn body_strip_removes_the_line() {
    let Some((world, _milter)) = smtp_world() else {
        return;
    };
    // Without PASS the milter refuses the message after the body checks logged.
    let message = "Subject: plain\n\nsecret line\nkept\n";
    let reply = smtp(&world, "carol@test.example", message);
    assert_eq!(reply.code, 550, "{}", reply.text());
    world.env.wait_log(
        "strip: body secret line from unknown[127.0.0.1]; from=<a@test.example> to=<carol@test.example> proto=ESMTP helo=<client.test>",
        1,
    );
}
