use std::path::Path;

use config::Config;
use envelope::{Envelope, Recipient};

use crate::headers::address_spans;
use crate::{original_recipient, Class, ExpansionError, Live, RcptRefusal, Rewriter};

/// A rewriter from TOML lines; `files` are written into a temp dir first and `{dir}` in
/// the TOML names it.
fn rewriter(toml: &str, files: &[(&str, &str)]) -> (Rewriter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let cfg = config_of(toml, dir.path());
    (Rewriter::from_config(&cfg).unwrap(), dir)
}

fn config_of(toml: &str, dir: &Path) -> Config {
    let text = format!(
        "myhostname = \"mx.example.com\"\nmydestination = [\"mx.example.com\", \"localhost\"]\n{}",
        toml.replace("{dir}", &dir.display().to_string())
    );
    Config::from_str(&text, None).unwrap()
}

#[test]
fn canonical_maps_rewrite_each_class_as_configured() {
    let (r, _d) = rewriter(
        "sender_canonical_maps = [\"{dir}/sender\"]\ncanonical_maps = [\"{dir}/canonical\"]",
        &[
            ("sender", "root  ops@example.com\n"),
            (
                "canonical",
                "@old.example  @new.example\nops@example.com  team@example.com\n",
            ),
        ],
    );
    let cases = [
        // The bare local part matches for a local domain (myorigin), then canonical_maps
        // rewrites the result once more (sender-specific first, as in Postfix).
        (
            "root@mx.example.com",
            Class::EnvelopeSender,
            "team@example.com",
        ),
        (
            "root@mx.example.com",
            Class::HeaderSender,
            "team@example.com",
        ),
        // sender_canonical_maps does not apply to recipients.
        (
            "root@mx.example.com",
            Class::EnvelopeRecipient,
            "root@mx.example.com",
        ),
        // `@domain` results keep the user.
        ("bob@old.example", Class::HeaderRecipient, "bob@new.example"),
        // A remote domain's bare local part is not looked up.
        (
            "root@far.example",
            Class::EnvelopeSender,
            "root@far.example",
        ),
        ("", Class::EnvelopeSender, ""),
    ];
    for (input, class, want) in cases {
        assert_eq!(r.canonical(input, class), want, "{input} as {class:?}");
    }
}

#[test]
fn canonical_classes_limit_canonical_maps() {
    let (r, _d) = rewriter(
        "canonical_maps = [\"{dir}/c\"]\ncanonical_classes = [\"envelope_recipient\"]",
        &[("c", "a@x.example b@x.example\n")],
    );
    assert_eq!(
        r.canonical("a@x.example", Class::EnvelopeRecipient),
        "b@x.example"
    );
    assert_eq!(
        r.canonical("a@x.example", Class::EnvelopeSender),
        "a@x.example"
    );
    assert_eq!(
        r.canonical("a@x.example", Class::HeaderSender),
        "a@x.example"
    );
}

#[test]
fn regexp_canonical_map_substitutes_groups() {
    let (r, _d) = rewriter(
        "sender_canonical_maps = [\"regexp:{dir}/re\"]",
        &[(
            "re",
            "/^(.*)@web[0-9]+\\.example\\.com$/  ${1}@example.com\n",
        )],
    );
    assert_eq!(
        r.canonical("root@web07.example.com", Class::EnvelopeSender),
        "root@example.com"
    );
    assert_eq!(
        r.canonical("root@mail.example.com", Class::EnvelopeSender),
        "root@mail.example.com"
    );
}

#[test]
fn unmatched_extension_is_propagated_with_recipient_delimiter() {
    let (r, _d) = rewriter(
        "recipient_delimiter = \"+\"\nvirtual_alias_maps = [\"{dir}/v\"]",
        &[("v", "info@example.org  alice@example.net\n")],
    );
    assert_eq!(
        r.expand("info+news@example.org").unwrap(),
        ["alice+news@example.net"]
    );
    let (r, _d) = rewriter(
        "recipient_delimiter = \"+\"\npropagate_unmatched_extensions = []\nvirtual_alias_maps = [\"{dir}/v\"]",
        &[("v", "info@example.org  alice@example.net\n")],
    );
    assert_eq!(
        r.expand("info+news@example.org").unwrap(),
        ["alice@example.net"]
    );
}

#[test]
fn masquerade_strips_subdomains_with_exceptions_and_negations() {
    let (r, _d) = rewriter(
        "masquerade_domains = [\"!dev.example.com\", \"example.com\"]\nmasquerade_exceptions = [\"admin\"]",
        &[],
    );
    let cases = [
        ("root@web01.example.com", "root@example.com"),
        ("root@a.b.example.com", "root@example.com"),
        ("root@example.com", "root@example.com"),
        ("admin@web01.example.com", "admin@web01.example.com"),
        ("root@dev.example.com", "root@dev.example.com"),
        ("root@x.dev.example.com", "root@x.dev.example.com"),
        ("root@notexample.com", "root@notexample.com"),
        ("root", "root"),
    ];
    for (input, want) in cases {
        assert_eq!(r.canonical(input, Class::EnvelopeSender), want, "{input}");
    }
    // The default masquerade_classes leave envelope recipients alone.
    assert_eq!(
        r.canonical("root@web01.example.com", Class::EnvelopeRecipient),
        "root@web01.example.com"
    );
}

const VIRTUAL: &str = "\
example.org            virtual domain
info@example.org       alice@mx.example.com, bob@example.net
team@example.org       info@example.org, carol
self@example.org       self@example.org, dave@example.net
@catch.example         postmaster@mx.example.com
loop1@example.org      loop2@example.org
loop2@example.org      loop1@example.org
";

fn virtual_rewriter() -> (Rewriter, tempfile::TempDir) {
    rewriter(
        "virtual_alias_maps = [\"{dir}/virtual\"]",
        &[("virtual", VIRTUAL)],
    )
}

#[test]
fn virtual_alias_expansion_is_one_to_many_and_recursive() {
    let (r, _d) = virtual_rewriter();
    let ok = |a: &str| r.expand(a).unwrap();
    assert_eq!(
        ok("info@example.org"),
        ["alice@mx.example.com", "bob@example.net"]
    );
    // Recursive; an unqualified result gets @myorigin.
    assert_eq!(
        ok("team@example.org"),
        [
            "alice@mx.example.com",
            "bob@example.net",
            "carol@mx.example.com"
        ]
    );
    // Expanding into itself stops there, as in Postfix.
    assert_eq!(
        ok("self@example.org"),
        ["self@example.org", "dave@example.net"]
    );
    assert_eq!(ok("anyone@catch.example"), ["postmaster@mx.example.com"]);
    assert_eq!(ok("nobody@far.example"), ["nobody@far.example"]);
    assert_eq!(r.expand("loop1@example.org"), Err(ExpansionError::Nesting));
}

#[test]
fn virtual_alias_limits_end_long_chains_and_wide_lists() {
    let chain: String = (0..20)
        .map(|i| format!("a{i}@x.example a{}@x.example\n", i + 1))
        .collect();
    let (r, _d) = rewriter(
        "virtual_alias_maps = [\"{dir}/v\"]\nvirtual_alias_recursion_limit = 5",
        &[("v", &chain)],
    );
    assert_eq!(r.expand("a0@x.example"), Err(ExpansionError::Nesting));
    assert_eq!(r.expand("a17@x.example").unwrap(), ["a20@x.example"]);
    let wide = format!(
        "list@x.example {}\n",
        (0..10)
            .map(|i| format!("m{i}@y.example"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (r, _d) = rewriter(
        "virtual_alias_maps = [\"{dir}/v\"]\nvirtual_alias_expansion_limit = 5",
        &[("v", &wide)],
    );
    assert_eq!(r.expand("list@x.example"), Err(ExpansionError::Size));
}

#[test]
fn virtual_alias_domains_default_to_the_domain_keys_of_the_map() {
    let (r, _d) = virtual_rewriter();
    assert!(r.is_virtual_alias_domain("example.org"));
    assert!(r.is_virtual_alias_domain("EXAMPLE.ORG"));
    assert!(!r.is_virtual_alias_domain("catch.example"));
    assert!(!r.is_virtual_alias_domain("example.net"));
    assert_eq!(r.rcpt_refusal("info@example.org"), None);
    assert_eq!(
        r.rcpt_refusal("nobody@example.org"),
        Some(RcptRefusal::UnknownVirtual)
    );
    assert_eq!(r.rcpt_refusal("nobody@example.net"), None);
}

#[test]
fn routing_bounces_loops_unknown_virtual_and_relocated_recipients() {
    let (r, _d) = rewriter(
        "virtual_alias_maps = [\"{dir}/virtual\"]\nrelocated_maps = [\"{dir}/relocated\"]",
        &[
            ("virtual", VIRTUAL),
            ("relocated", "old@example.net  new@example.com\n"),
        ],
    );
    let status = |a: &str| r.recipient_error(a).map(|(s, _)| s);
    assert_eq!(status("loop1@example.org").as_deref(), Some("5.4.6"));
    assert_eq!(
        r.recipient_error("nobody@example.org"),
        Some(("5.1.1".into(), "User unknown in virtual alias table".into()))
    );
    assert_eq!(
        r.recipient_error("old@example.net"),
        Some(("5.1.6".into(), "User has moved to new@example.com".into()))
    );
    // Left in a virtual alias domain after cleanup (it maps to itself): nowhere to go.
    assert_eq!(status("self@example.org").as_deref(), Some("5.1.1"));
    assert_eq!(status("alice@mx.example.com"), None);
    assert_eq!(status("bob@example.net"), None);
}

#[test]
fn cleanup_expands_recipients_and_keeps_the_given_address_as_orcpt() {
    let (r, _d) = rewriter(
        "virtual_alias_maps = [\"{dir}/virtual\"]\nsender_canonical_maps = [\"{dir}/sc\"]\nmasquerade_domains = [\"example.com\"]",
        &[("virtual", VIRTUAL), ("sc", "root  root@web01.example.com\n")],
    );
    let mut env = Envelope::new(
        "root@mx.example.com",
        vec!["info@example.org".into(), "bob@example.net".into()],
        0,
    );
    let mut with_orcpt = Recipient::new("self@example.org");
    with_orcpt.orcpt = Some("rfc822;given@example.org".into());
    env.recipients.push(with_orcpt);
    let message =
        b"From: Root <root@mx.example.com>\nTo: info@example.org\nSubject: x\n\nFrom: body\n";
    let rewritten = r.cleanup(&mut env, message).unwrap();
    assert_eq!(env.sender, "root@example.com");
    let got: Vec<(&str, Option<&str>)> = env
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.orcpt.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("alice@mx.example.com", Some("rfc822;info@example.org")),
            ("bob@example.net", Some("rfc822;info@example.org")),
            ("self@example.org", Some("rfc822;given@example.org")),
            ("dave@example.net", Some("rfc822;given@example.org")),
        ]
    );
    assert_eq!(
        original_recipient(&env.recipients[0]),
        Some("info@example.org")
    );
    assert_eq!(
        String::from_utf8(rewritten).unwrap(),
        "From: Root <root@example.com>\nTo: info@example.org\nSubject: x\n\nFrom: body\n"
    );
}

#[test]
fn address_spans_find_each_address_of_a_header() {
    let cases: [(&str, &[&str]); 9] = [
        (" a@x", &["a@x"]),
        (" Ann <a@x>, \"Doe, J\" <j@y>", &["a@x", "j@y"]),
        (" b@z (Bob), c@w", &["b@z", "c@w"]),
        (" team: c@w, d@v;", &["c@w", "d@v"]),
        (" \"john doe\"@x", &["\"john doe\"@x"]),
        (" Just A Name", &[]),
        (" <>", &[]),
        (" Ünïcode <u@x>, ü@y", &["u@x", "ü@y"]),
        (" a@x,\n\tb@y", &["a@x", "b@y"]),
    ];
    for (value, want) in cases {
        let got: Vec<&str> = address_spans(value)
            .into_iter()
            .map(|s| &value[s])
            .collect();
        assert_eq!(got, want, "{value:?}");
    }
}

#[test]
fn generic_maps_rewrite_envelope_and_headers_of_outgoing_mail() {
    let (r, _d) = rewriter(
        "smtp_generic_maps = [\"{dir}/generic\"]",
        &[("generic", "root@web01.localdomain  ops@example.com\n")],
    );
    assert!(r.has_generic());
    assert_eq!(r.generic("root@web01.localdomain"), "ops@example.com");
    assert_eq!(
        r.generic("other@web01.localdomain"),
        "other@web01.localdomain"
    );
}

#[test]
fn bad_map_at_reload_keeps_the_previous_rewriter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    std::fs::write(&path, "info@example.org alice@example.net\n").unwrap();
    let cfg = config_of("virtual_alias_maps = [\"regexp:{dir}/v\"]", dir.path());
    std::fs::write(&path, "/^info@example\\.org$/ alice@example.net\n").unwrap();
    let live = Live::open(&cfg).unwrap();
    std::fs::write(
        &path,
        "/^info@example\\.org$/ alice@example.net\n/(unclosed/ x\n",
    )
    .unwrap();
    let err = live.reload(&cfg).unwrap_err().to_string();
    assert!(err.contains(&format!("{}:2", path.display())), "{err}");
    assert_eq!(
        live.get().expand("info@example.org").unwrap(),
        ["alice@example.net"]
    );
    std::fs::write(&path, "/^info@example\\.org$/ bob@example.net\n").unwrap();
    live.reload(&cfg).unwrap();
    assert_eq!(
        live.get().expand("info@example.org").unwrap(),
        ["bob@example.net"]
    );
}
