//! The configuration at the command line: an unknown key is one clear error naming the file,
//! the line and the key (exit 78, EX_CONFIG) for every program; `mailroom config` prints
//! parameters the way `postconf` does.

use std::fs;

use testkit::*;

fn assert_config_error(out: &std::process::Output, file: &std::path::Path, line: usize, key: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "exit status; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    let place = format!("{}:{line}", file.display());
    assert!(stderr.contains(&place), "{stderr:?} should name {place}");
    assert!(stderr.contains(key), "{stderr:?} should name {key}");
}

#[test]
fn an_unknown_key_stops_serve_and_sendmail_with_file_line_and_key() {
    let env = TestEnv::new();
    let text = fs::read_to_string(&env.config).unwrap();
    let line = text.lines().count() + 1;
    fs::write(&env.config, format!("{text}queue_minfrea = \"1G\"\n")).unwrap();

    let out = env.run(&["serve"], b"");
    assert_config_error(&out, &env.config, line, "queue_minfrea");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("queue_minfree"),
        "did you mean"
    );
    assert!(
        !env.queue_dir().exists(),
        "serve did nothing with a bad configuration"
    );

    let out = env.sendmail(&["-i", "alice@localhost"], b"Subject: x\n\nx\n");
    assert_config_error(&out, &env.config, line, "queue_minfrea");
    assert!(env.maildrop_files().is_empty());

    for args in [
        &["mailq"][..],
        &["config"],
        &["newaliases"],
        &["postqueue", "-p"],
    ] {
        let out = env.run(args, b"");
        assert_config_error(&out, &env.config, line, "queue_minfrea");
    }

    // `--config FILE` and `sendmail -C FILE` win over $MAILROOM_CONFIG.
    let good = env.root.join("good.toml");
    fs::write(&good, text).unwrap();
    let out = env.run(
        &[
            "--config",
            good.to_str().unwrap(),
            "sendmail",
            "-i",
            "alice@localhost",
        ],
        b"Subject: ok\n\nx\n",
    );
    assert_success(&out, "mailroom --config good.toml sendmail");
    let out = env.sendmail(
        &["-C", good.to_str().unwrap(), "-i", "alice@localhost"],
        b"Subject: ok\n\nx\n",
    );
    assert_success(&out, "sendmail -C good.toml");
    assert_eq!(env.maildrop_files().len(), 2);

    // A bad value is reported the same way.
    fs::write(
        &env.config,
        format!(
            "{}hopcount_limit = \"many\"\n",
            fs::read_to_string(&good).unwrap()
        ),
    )
    .unwrap();
    let out = env.run(&["serve"], b"");
    assert_config_error(&out, &env.config, line, "hopcount_limit");
}

#[test]
fn mailroom_config_prints_non_default_and_single_parameters() {
    let env = TestEnv::with_config("queue_minfree = \"20M\"\nhopcount_limit = 7\n");

    let out = env.run(&["config", "queue_minfree"], b"");
    assert_success(&out, "mailroom config queue_minfree");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "queue_minfree = 20971520\n"
    );
    let out = env.run(&["config", "-d", "queue_minfree"], b"");
    assert_success(&out, "mailroom config -d queue_minfree");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "queue_minfree = 104857600\n"
    );

    let out = env.run(&["config", "-n"], b"");
    assert_success(&out, "mailroom config -n");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let root = env.root.display();
    for line in [
        "hopcount_limit = 7".to_string(),
        "queue_minfree = 20971520".to_string(),
        format!("queue_directory = {root}/queue"),
        format!("mail_spool_directory = {root}/mail"),
        format!("maillog_file = {root}/mail.log"),
        "myhostname = test.example".to_string(),
        "mydestination = localhost, test.example".to_string(),
        "minimal_backoff_time = 1s".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "config -n lacks {line:?}:\n{text}"
        );
    }
    for default in [
        "message_size_limit",
        "mailbox_size_limit",
        "maximal_queue_lifetime",
        "default_process_limit",
    ] {
        assert!(
            !text.contains(&format!("{default} =")),
            "config -n shows default {default}:\n{text}"
        );
    }
    let mut sorted: Vec<&str> = text.lines().collect();
    sorted.sort();
    assert_eq!(sorted, text.lines().collect::<Vec<_>>(), "alphabetical");

    // The full listing has every parameter, one per line, and the single ones agree with it.
    let out = env.run(&["config"], b"");
    assert_success(&out, "mailroom config");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(all.lines().count() > 40, "{all}");
    assert!(all.lines().any(|l| l == "hopcount_limit = 7"));
    assert!(all.lines().any(|l| l == "message_size_limit = 10240000"));

    let out = env.run(&["config", "no_such_parameter"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_parameter"));
}
