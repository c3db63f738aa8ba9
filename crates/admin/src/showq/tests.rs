//! Layout tests against Postfix's format strings (postqueue/showq_compat.c, long queue IDs):
//! heading `"%-17s %8s %-19s %s\n"`, sender line `"%-17s %8ld %19.19s %s\n"`, reason line
//! `"%*s(%s)\n"` with padding `76 - strlen(reason)`, recipient line `"%-17s %8s %-19s %s\n"`
//! with three empty fields, a blank line between messages, `"\n-- %lu Kbytes in %lu
//! Request%s.\n"`.

use super::*;
use crate::row::RowRecipient;

fn row(id: &str, state: State, size: u64, sender: &str, rcpts: &[(&str, &str)]) -> Row {
    Row {
        queue_name: state,
        queue_id: id.into(),
        arrival_time: 1_709_622_489,
        message_size: size,
        forced_expire: false,
        sender: sender.into(),
        recipients: rcpts
            .iter()
            .map(|(a, r)| RowRecipient {
                address: a.to_string(),
                delay_reason: r.to_string(),
            })
            .collect(),
        next_attempt: 0,
        attempts: 0,
    }
}

fn render(rows: &[Row]) -> String {
    let mut w = TextWriter::new(Vec::new());
    for r in rows {
        w.row(r).unwrap();
    }
    String::from_utf8(w.finish().unwrap()).unwrap()
}

#[test]
fn empty_queue() {
    assert_eq!(render(&[]), "Mail queue is empty\n");
}

#[test]
fn postfix_long_id_layout() {
    let time = AsciiClock::default().asctime19(1_709_622_489).to_string();
    assert_eq!(time.len(), 19);
    let reason = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
    let rows = [
        row(
            "0H5X9R3T6W2K4M8A",
            State::Deferred,
            1500,
            "alice@example.org",
            &[("bob@example.net", reason), ("carol@example.net", reason)],
        ),
        row(
            "0H5X9R3T6W2K4M8B",
            State::Active,
            600,
            "",
            &[("root@localhost", "")],
        ),
        row("0H5X9R3T6W2K4M8C", State::Hold, 10, "x@y", &[("z@w", "")]),
    ];
    let pad = " ".repeat(76 - reason.len());
    let rcpt = " ".repeat(47);
    let expected = format!(
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n\
         0H5X9R3T6W2K4M8A      1500 {time} alice@example.org\n\
         {pad}({reason})\n\
         {rcpt}bob@example.net\n\
         {rcpt}carol@example.net\n\
         \n\
         0H5X9R3T6W2K4M8B*      600 {time} MAILER-DAEMON\n\
         {rcpt}root@localhost\n\
         \n\
         0H5X9R3T6W2K4M8C!       10 {time} x@y\n\
         {rcpt}z@w\n\
         \n\
         -- 2 Kbytes in 3 Requests.\n"
    );
    assert_eq!(render(&rows), expected);
}

#[test]
fn reason_changes_and_unavailable() {
    let rows = [row(
        "0H5X9R3T6W2K4M8A",
        State::Deferred,
        1023,
        "a@b",
        &[("one@x", "why"), ("two@x", ""), ("three@x", "")],
    )];
    let text = render(&rows);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[2], format!("{}(why)", " ".repeat(73)));
    assert_eq!(lines[4], format!("{}(reason unavailable)", " ".repeat(58)));
    assert_eq!(lines[5].trim(), "two@x");
    assert_eq!(lines[6].trim(), "three@x");
    assert!(text.ends_with("\n-- 0 Kbytes in 1 Request.\n"), "{text}");
}

#[test]
fn json_matches_postfix_spacing() {
    let r = row(
        "0H5X9R3T6W2K4M8A",
        State::Deferred,
        1500,
        "",
        &[("bob@example.net", "refused \"x\""), ("c@d", "")],
    );
    let mut out = Vec::new();
    write_json(&mut out, &r).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"queue_name\": \"deferred\", \"queue_id\": \"0H5X9R3T6W2K4M8A\", \"arrival_time\": 1709622489, \
         \"message_size\": 1500, \"forced_expire\": false, \"sender\": \"MAILER-DAEMON\", \"recipients\": \
         [{\"address\": \"bob@example.net\", \"delay_reason\": \"refused \\\"x\\\"\"}, {\"address\": \"c@d\"}]}\n"
    );
}

#[test]
fn json_escapes_like_serde_json() {
    let nasty = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} ü ✓ \u{2028}";
    let mut b = Vec::new();
    json_str(&mut b, nasty);
    assert_eq!(
        String::from_utf8(b).unwrap(),
        serde_json::to_string(nasty).unwrap()
    );
}

#[test]
fn calendar_matches_chrono() {
    // Every day from 1900 to 2200 at a few times of day, as local (naive) times.
    for day in (-25_567i64..84_000).step_by(3) {
        for secs in [0, 1, 3_599, 43_210, 86_399] {
            let local = day * 86_400 + secs;
            let naive = chrono::DateTime::from_timestamp(local, 0)
                .unwrap()
                .naive_utc();
            let expected = naive.format("%a %b %e %H:%M:%S").to_string();
            assert_eq!(
                std::str::from_utf8(&asctime19_local(local)).unwrap(),
                expected,
                "{local}"
            );
        }
    }
}

#[test]
fn clock_matches_chrono_in_the_local_zone() {
    let mut clock = AsciiClock::default();
    let mut t: u64 = 1_600_000_000;
    // Seven years in uneven steps, crossing whatever transitions the local zone has.
    while t < 1_820_000_000 {
        let expected = chrono_asctime19(t);
        assert_eq!(clock.asctime19(t).as_bytes(), &expected, "{t}");
        t += 7_919;
    }
    assert_eq!(clock.asctime19(0).len(), 19);
    assert_eq!(
        clock.asctime19(u64::MAX).as_bytes(),
        &chrono_asctime19(u64::MAX)
    );
}

/// The test above again in zones with transitions (DST, a 30-minute DST shift, a 45-minute
/// offset), each in a child process of this test binary with `TZ` set.
#[test]
fn clock_matches_chrono_in_zones_with_transitions() {
    let exe = std::env::current_exe().unwrap();
    for zone in [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
    ] {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "showq::tests::clock_matches_chrono_in_the_local_zone",
            ])
            .env("TZ", zone)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{zone}: {text}"
        );
    }
}

/// `mailq | head -1` with the daemon down writes the heading before the first message is
/// known: the output must be the same bytes as when it comes with the first row.
#[test]
fn a_heading_written_early_is_not_written_twice() {
    let rows = [
        row(
            "0H5X9R3T6W2K4M8A",
            State::Deferred,
            1234,
            "a@b",
            &[("c@d", "")],
        ),
        row("0H5X9R3T6W2K4M8B", State::Hold, 10, "", &[("e@f", "")]),
    ];
    let mut w = TextWriter::new(Vec::new());
    w.heading().unwrap();
    w.heading().unwrap();
    for r in &rows {
        w.row(r).unwrap();
    }
    let early = String::from_utf8(w.finish().unwrap()).unwrap();
    assert_eq!(early, render(&rows));
}
