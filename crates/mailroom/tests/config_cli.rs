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
fn mailroom_config_prints_what_the_file_sets_and_single_parameters() {
    let env = TestEnv::with_config("queue_minfree = \"20M\"\nhopcount_limit = 7\n");

    // Like postconf: the value as written; -x the final value; -d the default.
    for (args, expected) in [
        (&["config", "queue_minfree"][..], "queue_minfree = 20M\n"),
        (
            &["config", "-x", "queue_minfree"],
            "queue_minfree = 20971520\n",
        ),
        (
            &["config", "-d", "queue_minfree"],
            "queue_minfree = 104857600\n",
        ),
        (&["config", "-h", "queue_minfree"], "20M\n"),
        (&["config", "-hx", "queue_minfree"], "20971520\n"),
        (&["config", "myorigin"], "myorigin = $myhostname\n"),
        (&["config", "-x", "myorigin"], "myorigin = test.example\n"),
        (&["config", "-h", "relayhost"], "\n"),
        (
            &["config", "relayhost", "hopcount_limit"],
            "relayhost =\nhopcount_limit = 7\n",
        ),
    ] {
        let out = env.run(args, b"");
        assert_success(&out, &args.join(" "));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{args:?}");
    }

    let out = env.run(&["config", "-n"], b"");
    assert_success(&out, "mailroom config -n");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let root = env.root.display();
    for line in [
        "hopcount_limit = 7".to_string(),
        "queue_minfree = 20M".to_string(),
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
    let defaults = String::from_utf8_lossy(&env.run(&["config", "-d"], b"").stdout).into_owned();
    assert!(all.lines().count() > 40, "{all}");
    assert_eq!(
        all.lines().count(),
        defaults.lines().count(),
        "-d lists the same parameters"
    );
    assert!(all.lines().any(|l| l == "hopcount_limit = 7"));
    assert!(all.lines().any(|l| l == "message_size_limit = 10240000"));
}

#[test]
fn an_unknown_parameter_is_postfixs_warning_and_exit_zero() {
    // postconf warns and goes on; its exit status stays 0 (Postfix's postconf.c ends in
    // exit(0) after "NAME: unknown parameter").
    let env = TestEnv::with_config("hopcount_limit = 7\n");
    let out = env.run(&["config", "no_such_parameter", "hopcount_limit"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hopcount_limit = 7\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "postconf: warning: no_such_parameter: unknown parameter\n"
    );
}

#[test]
fn conflicting_postconf_options_are_a_usage_error() {
    let env = TestEnv::new();
    for (args, message) in [
        (
            &["config", "-d", "-n"][..],
            "postconf: fatal: specify one of -d -n\n",
        ),
        (
            &["config", "-x", "-e", "a=b"],
            "postconf: fatal: specify one of -e -x\n",
        ),
        (
            &["config", "-e"],
            "postconf: fatal: -e requires name=value argument\n",
        ),
    ] {
        let out = env.run(args, b"");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{args:?}");
    }
}
