use super::*;
use crate::maildrop::{DsnOptions, MaildropFile};
use crate::testing::{config, names, SharedBuffer};
use config::Config;

fn input() -> Vec<u8> {
    maildrop::encode(&MaildropFile {
        id: QueueId::generate(),
        arrival_time: 1,
        uid: 0,
        username: "root".into(),
        fullname: None,
        sender: "forged".into(),
        recipients: vec!["bob".into()],
        dsn: DsnOptions::default(),
        message: b"Subject: s\n\nbody\n".to_vec(),
    })
    .unwrap()
}

fn run(cfg: Config, stdin: Vec<u8>, privileged: bool) -> (u8, String, String) {
    let (stdout, stderr) = (SharedBuffer::default(), SharedBuffer::default());
    let mut io = PostdropIo {
        stdin: Box::new(std::io::Cursor::new(stdin)),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        uid: 4242,
        username: "mallory".into(),
        privileged,
        load_config: Box::new(move |path| match path {
            None => Ok(cfg.clone()),
            Some(path) => Err(format!("asked for {}", path.display())),
        }),
        exit_on_timeout: false,
    };
    let code = run_postdrop(&mut io);
    (code, stdout.text(), stderr.text())
}

#[test]
fn identity_and_time_are_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let maildrop_dir = queue::Layout::new(&cfg.queue_directory).maildrop();
    let (code, stdout, stderr) = run(cfg, input(), false);
    assert_eq!(code, 0, "{stderr}");
    let id = stdout.trim();
    assert_eq!(names(&maildrop_dir), vec![id.to_string()]);
    let file = maildrop::read(&maildrop_dir.join(id)).unwrap();
    assert_eq!((file.uid, file.username.as_str()), (4242, "mallory"));
    assert!(file.arrival_time > 1_600_000_000);
    assert_eq!(
        file.sender, "forged",
        "the sender is the user's to choose, as with -f"
    );
}

#[test]
fn malformed_and_oversized_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (code, _, stderr) = run(cfg.clone(), b"MAILROOM-MAILDROP 1\nT 1\n".to_vec(), false);
    assert_eq!(code, 65);
    assert!(
        stderr.starts_with("mailroom-postdrop: fatal: malformed input"),
        "{stderr}"
    );
    let mut small = cfg;
    small.message_size_limit = 1;
    let huge = vec![b'x'; (ENVELOPE_ALLOWANCE + 10) as usize];
    let (code, _, _) = run(small, huge, false);
    assert_eq!(code, 69);
}

#[test]
fn privileged_run_reads_only_the_system_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(config(dir.path()), input(), true);
    assert_eq!(code, 78);
    assert_eq!(
        stderr,
        "mailroom-postdrop: fatal: asked for /etc/mailroom/mailroom.toml\n"
    );
}

#[test]
fn privileged_run_needs_a_maildrop_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    assert!(
        check_maildrop_group(&SubmitSettings::from_config(&cfg)).is_err(),
        "missing directory"
    );
    std::fs::create_dir_all(queue::Layout::new(&cfg.queue_directory).maildrop()).unwrap();
    // Created by this process, so of its effective group.
    assert!(check_maildrop_group(&SubmitSettings::from_config(&cfg)).is_ok());
}
