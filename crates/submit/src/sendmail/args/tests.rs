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
            "-v -v -odb -oem -o7 -o8 -U -G -x -m -c bob",
            false,
            false,
            None,
            &["bob"],
        ),
        (
            "-h 30 -L tag -O x=y -p smtp -XV -XV+= -e q -B 8BITMIME -B7BIT -Am -Ac bob",
            false,
            false,
            None,
            &["bob"],
        ),
        // Debian cron (cron.c: "-FCronDaemon -i -B8BITMIME -oem").
        (
            "-FCronDaemon -i -B8BITMIME -oem root",
            false,
            true,
            None,
            &["root"],
        ),
        ("-oifoo bob", false, true, None, &["bob"]),
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
            "-qI0123456789ABCDEF",
            Mode::Flush(FlushScope::QueueId("0123456789ABCDEF".into())),
        ),
        ("-b m", Mode::Submit),
        ("-bpx", Mode::ListQueue),
        ("-bh", Mode::HostStatus),
        ("-bH", Mode::HostStatus),
        ("-q -t", Mode::Flush(FlushScope::All)),
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
        "-qSexample.org",
        "-n bob",
        "-X /dev/null bob",
        "-B 8bit bob",
        "-oA bob",
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

/// Defect 11: a letter Postfix's sendmail does not know was ignored and its value became a
/// recipient (`-s "disk full" root` queued mail to `diskfull` and `root`).
#[test]
fn unknown_letter_is_refused_not_its_value_made_a_recipient() {
    let args: Vec<OsString> = ["-s", "disk full", "root"].map(OsString::from).to_vec();
    assert_eq!(
        parse_args(&args),
        Err(UsageError::BadOption("invalid option -- 's'".into()))
    );
    for (line, letter) in [
        ("-Z root", 'Z'),
        ("-ty bob", 'y'),
        ("-d bob", 'd'),
        ("-a x", 'a'),
    ] {
        assert_eq!(
            parse(line),
            Err(UsageError::BadOption(format!(
                "invalid option -- '{letter}'"
            ))),
            "{line}"
        );
    }
}

#[test]
fn missing_value_is_a_getopt_refusal() {
    for (line, letter) in [("-f", 'f'), ("-t -F", 'F'), ("-tA", 'A')] {
        assert_eq!(
            parse(line),
            Err(UsageError::BadOption(format!(
                "option requires an argument -- '{letter}'"
            ))),
            "{line}"
        );
    }
}

/// Every letter of Postfix's GETOPT_LIST is an option here and nothing else is.
#[test]
fn option_letters_are_postfixs() {
    let postfix = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx";
    let letters = |with_value: bool| -> String {
        let chars: Vec<char> = postfix.chars().collect();
        let mut out: Vec<char> = (0..chars.len())
            .filter(|&i| chars[i] != ':')
            .filter(|&i| (chars.get(i + 1) == Some(&':')) == with_value)
            .map(|i| chars[i])
            .collect();
        out.sort_unstable();
        out.into_iter().collect()
    };
    let sorted = |s: &str| {
        let mut v: Vec<char> = s.chars().collect();
        v.sort_unstable();
        v.into_iter().collect::<String>()
    };
    assert_eq!(sorted(WITH_VALUE), letters(true));
    assert_eq!(sorted(FLAGS), letters(false));
}
