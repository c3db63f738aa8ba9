use super::*;

fn parse(line: &str) -> Result<Invocation, UsageError> {
    let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
    parse_args(&args)
}

fn submit(line: &str) -> SubmitOptions {
    let invocation = parse(line).unwrap();
    assert_eq!(invocation.mode, Mode::Submit, "{line}");
    invocation.submit
}

/// line, -t, -i, sender, recipients
type Case = (
    &'static str,
    bool,
    bool,
    Option<&'static str>,
    &'static [&'static str],
);

#[test]
fn flags_table() {
    let cases: &[Case] = &[
        ("bob", false, false, None, &["bob"]),
        ("-t", true, false, None, &[]),
        ("-t bob", true, false, None, &["bob"]),
        ("-ti", true, true, None, &[]),
        ("-oi bob", false, true, None, &["bob"]),
        ("-o i bob", false, true, None, &["bob"]),
        ("-i -f alice bob", false, true, Some("alice"), &["bob"]),
        ("-falice bob", false, false, Some("alice"), &["bob"]),
        ("-f <> bob", false, false, Some(""), &["bob"]),
        ("-f<> bob", false, false, Some(""), &["bob"]),
        ("-f <a@x> bob", false, false, Some("a@x"), &["bob"]),
        ("-r alice bob", false, false, Some("alice"), &["bob"]),
        (
            "-v -v -odb -oem -7 -8 -U -G -x -n -m -c bob",
            false,
            false,
            None,
            &["bob"],
        ),
        (
            "-h 30 -L tag -O x=y -p smtp -X /dev/null -e q -B 8BITMIME bob",
            false,
            false,
            None,
            &["bob"],
        ),
        ("-Z -y bob", false, false, None, &["bob"]),
        ("-- -t", false, false, None, &["-t"]),
        ("bob -t", false, false, None, &["bob", "-t"]),
        ("-bm a@x b@y", false, false, None, &["a@x", "b@y"]),
        ("a@x,b@y", false, false, None, &["a@x", "b@y"]),
    ];
    for (line, extract, ignore_dots, sender, recipients) in cases {
        let options = submit(line);
        assert_eq!(options.extract_recipients, *extract, "{line}");
        assert_eq!(options.ignore_dots, *ignore_dots, "{line}");
        assert_eq!(options.sender.as_deref(), *sender, "{line}");
        assert_eq!(options.recipients, *recipients, "{line}");
    }
}

#[test]
fn null_sender_as_empty_argument() {
    let args = [OsString::from("-f"), OsString::new(), OsString::from("bob")];
    assert_eq!(
        parse_args(&args).unwrap().submit.sender.as_deref(),
        Some("")
    );
}

#[test]
fn full_name_with_spaces_and_config() {
    let args: Vec<OsString> = ["-F", "Cron Daemon", "-C", "/tmp/m.toml", "root"]
        .iter()
        .map(OsString::from)
        .collect();
    let invocation = parse_args(&args).unwrap();
    assert_eq!(invocation.submit.fullname.as_deref(), Some("Cron Daemon"));
    assert_eq!(invocation.config_path, Some(PathBuf::from("/tmp/m.toml")));
    assert_eq!(invocation.submit.recipients, ["root"]);
}

#[test]
fn modes() {
    let cases = [
        ("-bp", Mode::ListQueue),
        ("-bs", Mode::SmtpOnStdio),
        ("-bi", Mode::NewAliases),
        ("-I", Mode::NewAliases),
        ("-q", Mode::Flush(FlushScope::All)),
        ("-q30m", Mode::Flush(FlushScope::All)),
        (
            "-qRexample.org",
            Mode::Flush(FlushScope::Site("example.org".into())),
        ),
        (
            "-qSexample.org",
            Mode::Flush(FlushScope::Site("example.org".into())),
        ),
        (
            "-qI0123456789ABCDEF",
            Mode::Flush(FlushScope::QueueId("0123456789ABCDEF".into())),
        ),
        ("-b m", Mode::Submit),
    ];
    for (line, mode) in cases {
        assert_eq!(parse(line).unwrap().mode, mode, "{line}");
    }
}

#[test]
fn dsn_options() {
    let options = submit("-N success,delay -R hdrs -V abc123 bob");
    assert_eq!(options.dsn.notify.as_deref(), Some("SUCCESS,DELAY"));
    assert_eq!(options.dsn.ret.as_deref(), Some("HDRS"));
    assert_eq!(options.dsn.envid.as_deref(), Some("abc123"));
    assert_eq!(submit("-N never bob").dsn.notify.as_deref(), Some("NEVER"));
}

#[test]
fn usage_errors() {
    for line in [
        "-f",
        "-bd",
        "-bv bob",
        "-qR",
        "-qX",
        "-N never,success bob",
        "-N sometimes bob",
        "-R all bob",
    ] {
        assert!(parse(line).is_err(), "{line} accepted");
    }
    let args = [
        OsString::from("-f"),
        OsString::from("a\nb"),
        OsString::from("bob"),
    ];
    assert!(parse_args(&args).is_err());
    let args = [OsString::from("bob\r\nRCPT")];
    assert!(parse_args(&args).is_err());
}
