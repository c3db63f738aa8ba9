//! `.forward` files: where they are found, which are obeyed, what their lines do.
//!
//! The user is a real passwd account: `nobody` when the tests run as root (its files are
//! chowned to it), else the user running the tests. `forward_path` points into the test's
//! temp dir (`$user` expanded), so no real home directory is touched.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// The account whose `.forward` the tests write, and the agent set up to read it from
/// `<dir>/fwd-<user>` (`<dir>/fwd-<user>+<extension>` for an address with an extension).
struct Forward {
    setup: Setup,
    user: users::Account,
}

impl Forward {
    fn new(aliases: &str) -> Forward {
        let mut setup = Setup::new(aliases);
        let name = if users::running_as_root() {
            "nobody".to_string()
        } else {
            users::user_by_uid(sys::effective_uid())
                .unwrap()
                .unwrap()
                .name
        };
        let user = users::user_by_name(&name).unwrap().expect("the test user");
        let dir = setup.dir.path().display().to_string();
        setup.cfg.forward_path =
            format!("{dir}/fwd-$user${{recipient_delimiter}}${{extension}}, {dir}/fwd-$user");
        setup.cfg.recipient_delimiter = "+".into();
        Forward { setup, user }
    }

    fn file(&self, extension: &str) -> PathBuf {
        self.setup
            .path(&format!("fwd-{}{extension}", self.user.name))
    }

    /// Writes the `.forward` as the user's own file, mode 0644.
    fn write(&self, extension: &str, text: &str) -> PathBuf {
        let path = self.file(extension);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        if users::running_as_root() {
            std::os::unix::fs::chown(&path, Some(self.user.uid), None).unwrap();
        }
        path
    }

    fn address(&self, extension: &str) -> String {
        format!("{}{extension}@localhost", self.user.name)
    }

    fn send(&self, extension: &str) -> Delivery {
        let agent = self.setup.agent();
        send(
            &agent,
            "sender@example.net",
            &[&self.address(extension)],
            b"Subject: f\n\nbody\n",
        )
    }

    fn mailbox_messages(&self) -> usize {
        parse_mbox(&self.setup.mbox(&self.user.name)).len()
    }
}

#[test]
fn forward_sends_to_addresses_commands_files_and_the_own_mailbox() {
    let f = Forward::new("");
    let piped = f.setup.path("piped");
    let filed = f.setup.path("filed.mbox");
    f.write(
        "",
        &format!(
            "# my forward\nfar@remote.example, \\{}\n\"|cat > {}\"\n{}\n",
            f.user.name,
            piped.display(),
            filed.display()
        ),
    );
    let d = f.send("");
    let outcome = only_outcome(&d);
    assert_eq!(outcome.kind, OutcomeKind::Sent, "{d:?}");
    assert_eq!(d.resubmit.len(), 1, "{d:?}");
    assert_eq!(d.resubmit[0].recipients, ["far@remote.example"]);
    assert_eq!(
        d.resubmit[0].sender, "sender@example.net",
        "a forward keeps the sender"
    );
    let delivered_to = format!("Delivered-To: {}\n", f.address(""));
    assert!(d.resubmit[0].message.starts_with(delivered_to.as_bytes()));
    assert_eq!(f.mailbox_messages(), 1, "\\user delivers to the mailbox");
    assert!(fs::read_to_string(&piped)
        .unwrap()
        .ends_with("Subject: f\n\nbody\n"));
    assert!(fs::read_to_string(&filed).unwrap().contains("\nbody\n"));
    if users::running_as_root() {
        use std::os::unix::fs::MetadataExt;
        let owner = fs::metadata(&piped).unwrap().uid();
        assert_eq!(owner, f.user.uid, "the command ran as the user");
    }
}

#[test]
fn no_forward_file_means_the_mailbox() {
    let f = Forward::new("");
    assert_eq!(only_outcome(&f.send("")).kind, OutcomeKind::Sent);
    assert_eq!(f.mailbox_messages(), 1);
}

#[test]
fn unsafe_forward_files_are_ignored_and_mail_goes_to_the_mailbox() {
    let f = Forward::new("");
    let cases: [fn(&PathBuf); 4] = [
        |p| fs::set_permissions(p, fs::Permissions::from_mode(0o666)).unwrap(),
        |p| fs::set_permissions(p, fs::Permissions::from_mode(0o664)).unwrap(),
        |p| {
            let target = p.with_extension("real");
            fs::rename(p, &target).unwrap();
            symlink(&target, p).unwrap();
        },
        |p| {
            fs::remove_file(p).unwrap();
            fs::create_dir(p).unwrap();
        },
    ];
    for (n, spoil) in cases.iter().enumerate() {
        let path = f.write("", "far@remote.example\n");
        spoil(&path);
        let d = f.send("");
        assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "case {n}: {d:?}");
        assert!(
            d.resubmit.is_empty(),
            "case {n}: the unsafe file was obeyed: {d:?}"
        );
        assert_eq!(f.mailbox_messages(), n + 1, "case {n}");
        let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir(&path));
    }
}

#[test]
fn a_forward_owned_by_another_user_is_ignored() {
    if !users::running_as_root() {
        eprintln!("skipped: needs root to give the file to another user");
        return;
    }
    let f = Forward::new("");
    let path = f.write("", "far@remote.example\n");
    std::os::unix::fs::chown(&path, Some(1), None).unwrap();
    let d = f.send("");
    assert!(d.resubmit.is_empty(), "{d:?}");
    assert_eq!(f.mailbox_messages(), 1);
}

#[test]
fn garbage_lines_are_skipped_and_the_rest_used() {
    let f = Forward::new("");
    f.write(
        "",
        "\"unbalanced, quote\nfirst@remote.example\n|\nsecond@remote.example\n",
    );
    let d = f.send("");
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent, "{d:?}");
    assert_eq!(
        d.resubmit[0].recipients,
        ["first@remote.example", "second@remote.example"]
    );
}

#[test]
fn an_extension_uses_its_own_forward_file_first() {
    let f = Forward::new("");
    f.write("", "plain@remote.example\n");
    f.write("+news", "news@remote.example\n");
    assert_eq!(
        f.send("+news").resubmit[0].recipients,
        ["news@remote.example"]
    );
    assert_eq!(
        f.send("+other").resubmit[0].recipients,
        ["plain@remote.example"]
    );
    assert_eq!(f.send("").resubmit[0].recipients, ["plain@remote.example"]);
}

#[test]
fn a_forward_to_an_address_already_delivered_to_is_a_loop() {
    let f = Forward::new("");
    f.write("", "far@remote.example\n");
    let message = format!("Delivered-To: {}\nSubject: back\n\nx\n", f.address(""));
    let agent = f.setup.agent();
    let d = send(
        &agent,
        "sender@example.net",
        &[&f.address("")],
        message.as_bytes(),
    );
    let outcome = only_outcome(&d);
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (OutcomeKind::Bounced, "5.4.6")
    );
    assert!(d.resubmit.is_empty());
}

#[test]
fn forward_commands_and_files_follow_allow_mail_to_commands_and_files() {
    let mut f = Forward::new("");
    f.setup.cfg.allow_mail_to_commands = vec!["alias".into()];
    f.setup.cfg.allow_mail_to_files = vec!["alias".into()];
    f.write(
        "",
        &format!("|cat > /dev/null\n{}\n", f.setup.path("f").display()),
    );
    let outcome = only_outcome(&f.send("")).clone();
    assert_eq!(
        (outcome.kind, outcome.dsn.as_str()),
        (OutcomeKind::Bounced, "5.7.1")
    );
}

#[test]
fn an_empty_forward_path_reads_no_file() {
    let mut f = Forward::new("");
    f.write("", "far@remote.example\n");
    f.setup.cfg.forward_path = String::new();
    assert!(f.send("").resubmit.is_empty());
    assert_eq!(f.mailbox_messages(), 1);
}

#[test]
fn an_alias_to_the_user_still_reads_the_users_forward() {
    let f = Forward::new("");
    let name = f.user.name.clone();
    fs::write(f.setup.path("aliases"), format!("boss: {name}\n")).unwrap();
    f.write("", "far@remote.example\n");
    let agent = f.setup.agent();
    let d = send(&agent, "s@example.net", &["boss@localhost"], b"x\n");
    assert_eq!(d.resubmit[0].recipients, ["far@remote.example"], "{d:?}");
    assert_eq!(f.mailbox_messages(), 0);
}

#[test]
fn a_malformed_forward_path_item_is_skipped_and_the_next_used() {
    let mut f = Forward::new("");
    let dir = f.setup.dir.path().display().to_string();
    f.setup.cfg.forward_path = format!("{dir}/broken${{home, {dir}/fwd-$user");
    f.write("", "far@remote.example\n");
    assert_eq!(f.send("").resubmit[0].recipients, ["far@remote.example"]);
}
