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
