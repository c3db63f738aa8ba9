//! qshape layout and arithmetic against qshape.pl's rules (see the module doc).

use super::*;

const NOW: u64 = 1_000_000;

fn shape(options: Options, msgs: &[(u64, &str, &[&str])]) -> Shape {
    let mut c = Counter::new(options, NOW);
    for (age_minutes, sender, rcpts) in msgs {
        c.add(NOW - age_minutes * 60, sender, rcpts.iter().copied());
    }
    c.finish()
}

fn text(s: &Shape) -> String {
    let mut out = Vec::new();
    write_text(&mut out, s, 80).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn default_buckets_and_layout() {
    let s = shape(
        Options::default(),
        &[
            (0, "a@x", &["u@Example.com", "v@example.com"]),
            (0, "a@x", &["w@example.com"]),
            (7, "a@x", &["u@example.com"]),
            (30, "a@x", &["u@other.org"]),
            (2000, "a@x", &["u@old.example.net"]),
        ],
    );
    assert_eq!(
        s.headings,
        ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"]
    );
    // Column widths: max(len(total), len(heading)), plus one, at least 3.
    let widths = [3, 3, 3, 3, 3, 3, 4, 4, 4, 5, 6];
    let dw = 80 - widths.iter().sum::<usize>();
    let line = |d: &str, cells: &[&str]| {
        let mut l = format!("{d:>dw$}");
        for (c, w) in cells.iter().zip(widths) {
            l += &format!("{c:>w$}");
        }
        l
    };
    let expected = [
        line(
            "",
            &s.headings.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        line(
            "TOTAL",
            &["6", "3", "1", "0", "1", "0", "0", "0", "0", "0", "1"],
        ),
        line(
            "example.com",
            &["4", "3", "1", "0", "0", "0", "0", "0", "0", "0", "0"],
        ),
        line(
            "other.org",
            &["1", "0", "0", "0", "1", "0", "0", "0", "0", "0", "0"],
        ),
        line(
            "old.example.net",
            &["1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "1"],
        ),
    ]
    .join("\n")
        + "\n";
    assert_eq!(text(&s), expected);
    assert!(text(&s).starts_with(&format!(
        "{}  T  5 10 20 40 80 160 320 640 1280 1280+\n",
        " ".repeat(39)
    )));
}

#[test]
fn senders_parents_and_long_names() {
    let s = shape(
        Options {
            senders: true,
            ..Default::default()
        },
        &[(0, "", &["a@b"]), (0, "x@Y.org", &["a@b", "c@d"])],
    );
    let domains: Vec<&str> = s.rows.iter().map(|r| r.domain.as_str()).collect();
    assert_eq!(domains, ["TOTAL", "y.org", "MAILER-DAEMON"]);

    let rcpts: Vec<String> = (1..=5).map(|i| format!("u@s{i}.example.com")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let s = shape(
        Options {
            parents: true,
            ..Default::default()
        },
        &[(0, "a@x", &refs), (0, "a@x", &["u@one.example.org"])],
    );
    let parent = s.rows.iter().find(|r| r.domain == ".example.com").unwrap();
    assert_eq!(parent.counts[0], 5);
    assert!(
        s.rows.iter().all(|r| r.domain != ".example.org"),
        "fewer than 5 subdomains"
    );

    let long = format!("u@{}.example.com", "x".repeat(60));
    let s = shape(Options::default(), &[(0, "a@x", &[long.as_str()])]);
    let t = text(&s);
    let last = t.lines().last().unwrap();
    assert!(last.starts_with("+xxx"), "{last}");
    assert!(last.contains("x.example.com  1"), "{last}");
}

#[test]
fn linear_and_custom_buckets() {
    let s = shape(
        Options {
            linear: true,
            buckets: 4,
            tick_minutes: 10,
            ..Default::default()
        },
        &[
            (5, "a@x", &["u@d"]),
            (15, "a@x", &["u@d"]),
            (500, "a@x", &["u@d"]),
        ],
    );
    assert_eq!(s.headings, ["T", "10", "20", "30", "30+"]);
    assert_eq!(s.rows[0].counts, [3, 1, 1, 0, 1]);
    assert_eq!(normalize("A@..Mx..Example.COM."), "mx.example.com");
    assert_eq!(normalize("root"), "root");
}
