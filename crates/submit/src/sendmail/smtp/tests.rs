use super::*;
use crate::testing::config;

// The command table of the `-bs` dialect is `sendmail_bs_dialect` in
// `crates/proto/src/command/tests.rs`, beside the parser.

fn data(input: &str, limit: u64) -> Option<Option<Vec<u8>>> {
    Input::new(&mut input.as_bytes()).message(limit).unwrap()
}

#[test]
fn data_unstuffing_and_limits() {
    assert_eq!(
        data("a\r\n..b\r\n.\r\n", 100),
        Some(Some(b"a\n.b\n".to_vec()))
    );
    assert_eq!(data("a\r\n", 100), None, "end of input before the dot");
    assert_eq!(data("0123456789\r\n.\r\nNEXT\r\n", 5), Some(None));
    let long = format!("{}\r\n.\r\n", "x".repeat(200_000));
    assert_eq!(data(&long, 1000), Some(None));
}

fn session(input: &str, submit: Submit<'_>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let settings = SubmitSettings::from_config(&config(dir.path()));
    let mut reader = input.as_bytes();
    let mut output = Vec::new();
    let mut session = Session::new(&settings, (7, "u"), &mut reader, &mut output, submit);
    session.run().unwrap();
    String::from_utf8(output).unwrap()
}

#[test]
fn sequence_errors_and_refusals() {
    let mut calls = 0;
    let mut refuse = |_: &MaildropFile| {
        calls += 1;
        Err(fixed::insufficient_storage())
    };
    let input = "RCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:<x@y>\r\nMAIL FROM:<x@y>\r\nRCPT TO:<a@b>\r\nDATA\r\nhi\r\n.\r\nBOGUS\r\n";
    let output = session(input, &mut refuse);
    let codes: Vec<&str> = output.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "503", "503", "250", "503", "250", "354", "452", "500"]
    );
    assert_eq!(calls, 1);
}

#[test]
fn rset_clears_and_long_lines_are_refused() {
    let mut accept = |drop: &MaildropFile| {
        assert_eq!(drop.recipients, ["c@d"]);
        Ok(drop.id)
    };
    let long = "x".repeat(5000);
    let input = format!(
        "MAIL FROM:<a@b>\r\nRCPT TO:<z@z>\r\nRSET\r\n{long}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    );
    let output = session(&input, &mut accept);
    let codes: Vec<&str> = output.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "500", "250", "250", "354", "250", "221"]
    );
}

/// The old reader kept the whole rest of an over-long command line in memory while skipping
/// it; now at most a line's worth plus one read is buffered, however long the line.
#[test]
fn an_over_long_line_is_skipped_in_bounded_memory() {
    let mut text = vec![b'x'; 4 << 20];
    text.extend_from_slice(b"\r\nQUIT\r\n");
    let mut reader = io::BufReader::with_capacity(8192, &text[..]);
    let mut input = Input::new(&mut reader);
    assert_eq!(input.command_line().unwrap(), Some(None));
    assert!(
        input.pending.capacity() < 64 * 1024,
        "{}",
        input.pending.capacity()
    );
    assert_eq!(input.command_line().unwrap(), Some(Some(b"QUIT".to_vec())));
    assert_eq!(input.command_line().unwrap(), None);
}
