use super::*;
use envelope::{OutcomeKind, QueueId};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// The uid/gid the maps give; the base belongs to them when the tests run as root.
const VMAIL: u32 = 5000;

struct Setup {
    dir: tempfile::TempDir,
    cfg: config::Config,
}

impl Setup {
    fn new(vmailbox: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("vmail");
        fs::create_dir(&base).unwrap();
        if users::running_as_root() {
            std::os::unix::fs::chown(&base, Some(VMAIL), Some(VMAIL)).unwrap();
        }
        let map = dir.path().join("vmailbox");
        fs::write(&map, vmailbox).unwrap();
        let mut cfg = config::Config::embedded_default();
        cfg.virtual_mailbox_domains = vec!["example.com".into()];
        cfg.virtual_mailbox_maps = vec![format!("hash:{}", map.display())];
        cfg.virtual_mailbox_base = base.display().to_string();
        cfg.virtual_uid_maps = vec![format!("static:{VMAIL}")];
        cfg.virtual_gid_maps = vec![format!("static:{VMAIL}")];
        Setup { dir, cfg }
    }

    fn agent(&self) -> VirtualAgent {
        VirtualAgent::new(VirtualSettings::from_config(&self.cfg)).unwrap()
    }

    fn base(&self) -> PathBuf {
        self.dir.path().join("vmail")
    }
}

fn deliver(agent: &VirtualAgent, to: &str, message: &[u8]) -> Verdict {
    let copy = Copy {
        id: QueueId::generate(),
        sender: "sender@example.org",
        original_recipient: to,
        message,
    };
    agent.deliver(&copy, to)
}

fn assert_owned_by_vmail(path: &Path) {
    if users::running_as_root() {
        let meta = fs::metadata(path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (VMAIL, VMAIL),
            "{}",
            path.display()
        );
    }
}

const MAP: &str = "alice@example.com example.com/alice\nbob@example.com example.com/bob/\n";

#[test]
fn mbox_and_maildir_results_are_written_under_the_base_as_the_mapped_ids() {
    let s = Setup::new(MAP);
    let agent = s.agent();
    let v = deliver(
        &agent,
        "Alice@Example.com",
        b"Subject: one\n\nhello alice\n",
    );
    assert_eq!(
        (v.kind, v.text.as_str()),
        (OutcomeKind::Sent, "delivered to mailbox")
    );
    let mbox = s.base().join("example.com/alice");
    let text = fs::read_to_string(&mbox).unwrap();
    assert!(text.starts_with("From sender@example.org "), "{text}");
    assert!(text.contains("Delivered-To: Alice@Example.com\n"), "{text}");
    assert!(text.ends_with("hello alice\n\n"), "{text}");
    assert_owned_by_vmail(&mbox);
    assert_owned_by_vmail(&s.base().join("example.com"));

    let v = deliver(&agent, "bob@example.com", b"Subject: two\n\nhello bob\n");
    assert_eq!(
        (v.kind, v.text.as_str()),
        (OutcomeKind::Sent, "delivered to maildir")
    );
    let new = s.base().join("example.com/bob/new");
    let files: Vec<_> = fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(fs::read_to_string(&files[0])
        .unwrap()
        .ends_with("hello bob\n"));
    assert_owned_by_vmail(&files[0]);
    assert_owned_by_vmail(&new);
}

#[test]
fn unknown_users_bounce_and_a_catch_all_takes_the_rest() {
    let s = Setup::new(MAP);
    let v = deliver(&s.agent(), "carol@example.com", b"x\n");
    assert_eq!(v.kind, OutcomeKind::Bounced);
    assert_eq!(v.dsn, "5.1.1");
    assert_eq!(v.text, "unknown user: \"carol@example.com\"");

    let s = Setup::new(&format!("{MAP}@example.com example.com/catchall/\n"));
    let agent = s.agent();
    assert_eq!(
        deliver(&agent, "carol@example.com", b"x\n").kind,
        OutcomeKind::Sent
    );
    assert_eq!(
        fs::read_dir(s.base().join("example.com/catchall/new"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(agent.accepts("carol@example.com"), Some(true));
}

#[test]
fn an_extension_reaches_the_users_mailbox_with_recipient_delimiter() {
    let mut s = Setup::new(MAP);
    assert_eq!(s.agent().accepts("alice+news@example.com"), Some(false));
    s.cfg.recipient_delimiter = "+".into();
    let agent = s.agent();
    assert_eq!(agent.accepts("alice+news@example.com"), Some(true));
    let v = deliver(&agent, "alice+news@example.com", b"x\n");
    assert_eq!(v.kind, OutcomeKind::Sent, "{v:?}");
}

#[test]
fn accepts_answers_only_for_virtual_mailbox_domains() {
    let s = Setup::new(MAP);
    let agent = s.agent();
    assert_eq!(agent.accepts("alice@EXAMPLE.com."), Some(true));
    assert_eq!(agent.accepts("carol@example.com"), Some(false));
    assert_eq!(agent.accepts("alice@example.org"), None);
    assert!(agent.is_virtual_domain("Example.Com"));
    assert!(!agent.is_virtual_domain("example.org"));
}

#[test]
fn domains_listed_as_keys_of_the_default_maps_are_virtual() {
    let mut s = Setup::new(&format!(
        "example.net whatever\nx@example.net example.net/x\n{MAP}"
    ));
    // Postfix's default: virtual_mailbox_domains = $virtual_mailbox_maps.
    s.cfg.virtual_mailbox_domains = s.cfg.virtual_mailbox_maps.clone();
    let agent = s.agent();
    assert!(agent.is_virtual_domain("example.net"));
    assert!(
        !agent.is_virtual_domain("example.com"),
        "no key example.com"
    );
    assert_eq!(agent.accepts("y@example.net"), Some(false));
}

#[test]
fn another_virtual_transport_leaves_the_domains_to_it() {
    let mut s = Setup::new(MAP);
    s.cfg.virtual_transport = "lmtp:unix:/run/dovecot/lmtp".into();
    let agent = s.agent();
    assert!(!agent.is_virtual_domain("example.com"));
    assert_eq!(
        agent.accepts("carol@example.com"),
        Some(false),
        "smtpd still checks"
    );
}

#[test]
fn a_uid_below_virtual_minimum_uid_is_deferred_not_written() {
    if !users::running_as_root() {
        eprintln!("skipped: uid maps are used only as root");
        return;
    }
    let mut s = Setup::new(MAP);
    s.cfg.virtual_uid_maps = vec!["static:0".into()];
    let v = deliver(&s.agent(), "alice@example.com", b"x\n");
    assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Deferred, "4.3.5"));
    assert_eq!(v.text, "mail system configuration error");
    assert!(!s.base().join("example.com").exists());
    s.cfg.virtual_uid_maps = vec![];
    let v = deliver(&s.agent(), "alice@example.com", b"x\n");
    assert_eq!(
        (v.kind, v.dsn.as_str()),
        (OutcomeKind::Deferred, "4.3.5"),
        "no uid"
    );
}

#[test]
fn a_mailbox_past_virtual_mailbox_limit_bounces_5_2_2() {
    let mut s = Setup::new(MAP);
    s.cfg.virtual_mailbox_limit = 400;
    let agent = s.agent();
    let body = format!("Subject: big\n\n{}\n", "a".repeat(150));
    assert_eq!(
        deliver(&agent, "alice@example.com", body.as_bytes()).kind,
        OutcomeKind::Sent
    );
    let before = fs::read(s.base().join("example.com/alice")).unwrap();
    let v = deliver(&agent, "alice@example.com", body.as_bytes());
    assert_eq!(
        (v.kind, v.dsn.as_str()),
        (OutcomeKind::Bounced, "5.2.2"),
        "{}",
        v.text
    );
    assert!(v.text.contains("File too large"), "{}", v.text);
    assert_eq!(
        fs::read(s.base().join("example.com/alice")).unwrap(),
        before
    );
    let big = format!("Subject: big\n\n{}\n", "a".repeat(500));
    let v = deliver(&agent, "bob@example.com", big.as_bytes());
    assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Bounced, "5.2.2"));
}

#[test]
fn a_result_that_climbs_out_of_the_base_is_deferred() {
    let s = Setup::new("alice@example.com ../../etc/alice\n");
    let v = deliver(&s.agent(), "alice@example.com", b"x\n");
    assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Deferred, "4.3.5"));
}

#[test]
fn a_broken_map_is_an_error_naming_its_line() {
    let s = Setup::new("alice@example.com example.com/alice\nbad-line-without-value\n");
    let error = VirtualAgent::new(VirtualSettings::from_config(&s.cfg)).unwrap_err();
    assert!(error.to_string().contains("vmailbox:2:"), "{error}");
}
