use std::io::Write;

use proptest::prelude::*;

use crate::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn problems(e: MapError) -> Vec<String> {
    match e {
        MapError::Syntax(p) => p.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}

#[test]
fn text_table_keys_fold_case_continuations_join_and_first_duplicate_wins() {
    let f =
        file("# virtual\nInfo@Example.ORG  alice,\n   bob@example.net\n\ninfo@example.org carol\n");
    let spec = format!("hash:{}", f.path().display());
    let m = Map::open(&spec).unwrap();
    assert_eq!(
        m.lookup("INFO@example.org").as_deref(),
        Some("alice, bob@example.net")
    );
    assert_eq!(m.lookup("nobody@example.org"), None);
    assert_eq!(m.warnings().len(), 1, "{:?}", m.warnings());
    assert!(m.warnings()[0]
        .to_string()
        .ends_with(":5: duplicate entry: \"info@example.org\"; the first is used"));
}

#[test]
fn text_table_errors_name_every_bad_line() {
    let f = file("good value\nlonely\n  orphan? no, continues good\nalso-lonely\n");
    let path = f.path().display().to_string();
    let err = problems(Map::open(&path).unwrap_err());
    assert_eq!(
        err,
        vec![format!("{path}:4: expected format: key whitespace value"),]
    );
    let f = file(" starts-indented value\nlonely\n");
    let path = f.path().display().to_string();
    let err = problems(Map::open(&path).unwrap_err());
    assert_eq!(
        err,
        vec![
            format!("{path}:1: a logical line must not start with white space"),
            format!("{path}:2: expected format: key whitespace value"),
        ]
    );
}

#[test]
fn missing_file_and_unknown_type_are_errors() {
    let e = Map::open("hash:/nonexistent/virtual").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/virtual: "),
        "{e}"
    );
    let e = Map::open("mysql:/etc/x.cf").unwrap_err();
    assert!(
        e.to_string().contains("unsupported map type `mysql`"),
        "{e}"
    );
}

#[test]
fn regexp_substitutes_groups_case_insensitively_in_order() {
    let m = Map::from_regexp(
        "/^(.*)@web[0-9]+\\.example\\.com$/  ${1}@example.com\n/^root@(.*)$/ ops+$1@example.com\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        m.lookup("root@WEB01.example.com").as_deref(),
        Some("root@example.com")
    );
    assert_eq!(m.lookup("root@db1").as_deref(), Some("ops+db1@example.com"));
    assert_eq!(m.lookup("alice@example.net"), None);
    assert!(m.is_pattern());
}

#[test]
fn regexp_flags_negation_if_endif_and_dollars() {
    let text = "if /@example\\.com$/\n!/^postmaster@/ costs $$5\nendif\n/^Big/i exact-case\n/x\\/y/ slash\n";
    let m = Map::from_regexp(text, "t").unwrap();
    assert_eq!(m.lookup("alice@example.com").as_deref(), Some("costs $5"));
    assert_eq!(m.lookup("postmaster@example.com"), None);
    assert_eq!(m.lookup("Bigger").as_deref(), Some("exact-case"));
    assert_eq!(
        m.lookup("bigger"),
        None,
        "the i flag turns case sensitivity on"
    );
    assert_eq!(m.lookup("x/y").as_deref(), Some("slash"));
}

#[test]
fn regexp_errors_name_the_line() {
    let p = regexp::problems_of("/ok/ fine\n/(a)/ $2\n/unclosed\nendif\n/[/ x\nif /a/\n");
    let lines: Vec<_> = p.iter().map(|p| (p.line, p.text.clone())).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0].0, 2);
    assert!(
        lines[0].1.contains("out of range replacement index \"2\""),
        "{lines:?}"
    );
    assert_eq!(lines[1], (3, "the pattern has no closing /".into()));
    assert_eq!(lines[2], (4, "ignoring ENDIF without matching IF".into()));
    assert_eq!(lines[3].0, 5);
    assert!(lines[3].1.starts_with("bad pattern"), "{lines:?}");
    assert_eq!(lines[4], (6, "IF has no matching ENDIF".into()));
}

#[test]
fn pcre_x_flag_is_free_spacing() {
    let f = file("/^ a b $/x spaced\n");
    let m = Map::open(&format!("pcre:{}", f.path().display())).unwrap();
    assert_eq!(m.lookup("ab").as_deref(), Some("spaced"));
    let f = file("/^ a b $/x spaced\n");
    let m = Map::open(&format!("regexp:{}", f.path().display())).unwrap();
    assert_eq!(
        m.lookup("ab"),
        None,
        "regexp's x is POSIX extended syntax, not spacing"
    );
}

#[test]
fn cidr_first_network_holding_the_address_wins() {
    let f = file("192.168.1.1 REJECT one\n192.168.0.0/16 OK\n2001:db8::/32 DUNNO\n");
    let m = Map::open(&format!("cidr:{}", f.path().display())).unwrap();
    assert_eq!(m.lookup("192.168.1.1").as_deref(), Some("REJECT one"));
    assert_eq!(m.lookup("192.168.7.9").as_deref(), Some("OK"));
    assert_eq!(m.lookup("::ffff:192.168.7.9").as_deref(), Some("OK"));
    assert_eq!(m.lookup("[2001:db8::1]").as_deref(), Some("DUNNO"));
    assert_eq!(m.lookup("10.0.0.1"), None);
    assert_eq!(m.lookup("not-an-address"), None);
    let f = file("192.168.1.1/16 OK\n");
    let e = problems(Map::open(&format!("cidr:{}", f.path().display())).unwrap_err());
    assert!(
        e[0].contains("non-null host address bits") && e[0].contains("192.168.0.0/16"),
        "{e:?}"
    );
}

#[test]
fn inline_and_static() {
    let m = Map::open("inline:{ root=ops@example.com, { abuse = a, b } }").unwrap();
    assert_eq!(m.lookup("ROOT").as_deref(), Some("ops@example.com"));
    assert_eq!(m.lookup("abuse").as_deref(), Some("a, b"));
    let m = Map::open("static:{ smtp:[relay]:25 }").unwrap();
    assert_eq!(m.lookup("anything").as_deref(), Some("smtp:[relay]:25"));
    assert!(Map::open("inline:{ novalue }").is_err());
}

#[test]
fn address_lookup_follows_postfixs_order() {
    let t = Map::from_text(
        "alice+news@example.com exact\nbob@example.com bob-domain\ncarol carol-local\n@example.com catch-all\n",
        "t",
    )
    .unwrap();
    let maps = Maps::from_maps(vec![t]);
    let q = AddressQuery {
        delimiter: "+",
        local_domain: false,
    };
    let local = AddressQuery {
        delimiter: "+",
        local_domain: true,
    };
    let v = |a: &str, q| {
        maps.find_address(a, q)
            .map(|f| (f.value, f.unmatched_extension))
    };
    assert_eq!(v("alice+news@example.com", q), Some(("exact".into(), None)));
    assert_eq!(
        v("bob+x@example.com", q),
        Some(("bob-domain".into(), Some("x".into())))
    );
    assert_eq!(
        v("carol@example.com", q),
        Some(("catch-all".into(), None)),
        "bare user only for local domains"
    );
    assert_eq!(
        v("carol+y@example.com", local),
        Some(("carol-local".into(), Some("y".into())))
    );
    assert_eq!(v("dave@example.org", q), None);
}

#[test]
fn pattern_tables_see_the_whole_address_only() {
    let re = Map::from_regexp("/^bob$/ bare\n/^@example\\.com$/ at-domain\n", "r").unwrap();
    let maps = Maps::from_maps(vec![re]);
    let local = AddressQuery {
        delimiter: "+",
        local_domain: true,
    };
    assert_eq!(maps.find_address("bob@example.com", local), None);
}

#[test]
fn extensions_split_and_carry() {
    assert_eq!(split_extension("alice+news", "+"), ("alice", Some("news")));
    assert_eq!(split_extension("alice-news", "+-"), ("alice", Some("news")));
    assert_eq!(split_extension("owner-list", "-"), ("owner-list", None));
    assert_eq!(split_extension("list-request", "-"), ("list-request", None));
    assert_eq!(split_extension("+alice", "+"), ("+alice", None));
    assert_eq!(split_extension("alice+news", ""), ("alice+news", None));
    assert_eq!(
        with_extension("bob@example.net", Some("news"), "+"),
        "bob+news@example.net"
    );
    assert_eq!(
        with_extension("bob+x@example.net", Some("news"), "+"),
        "bob+x@example.net"
    );
    assert_eq!(
        with_extension("bob@example.net", None, "+"),
        "bob@example.net"
    );
}

#[test]
fn live_reload_keeps_the_previous_maps_on_a_bad_edit() {
    let f = file("a 1\n");
    let live = Live::open(&[f.path().display().to_string()]).unwrap();
    assert_eq!(live.get().lookup("a").as_deref(), Some("1"));
    std::fs::write(f.path(), "a 2\n").unwrap();
    live.reload().unwrap();
    assert_eq!(live.get().lookup("a").as_deref(), Some("2"));
    std::fs::write(f.path(), "a 3\nbroken\n").unwrap();
    let e = live.reload().unwrap_err();
    assert!(
        e.to_string()
            .ends_with(":2: expected format: key whitespace value"),
        "{e}"
    );
    assert_eq!(live.get().lookup("a").as_deref(), Some("2"));
}

proptest! {
    #[test]
    fn no_panic_on_any_table_text(text in "\\PC{0,200}", key in "\\PC{0,40}") {
        if let Ok(m) = Map::from_text(&text, "t") { let _ = m.lookup(&key); }
        if let Ok(m) = Map::from_regexp(&text, "t") { let _ = m.lookup(&key); }
        let _ = cidr::CidrTable::parse(&text, "t").map(|t| t.lookup(&key).map(str::to_string));
        let _ = inline::parse(&text, "t");
        let _ = split_extension(&key, "+-");
        let _ = with_extension(&key, Some("x"), "+");
    }
}
