use super::*;

/// Encodes one record the way Postfix's `rec_put` does.
fn record(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    let mut rest = data.len();
    loop {
        let mut byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest != 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(data);
}

fn file(records: &[(u8, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, data) in records {
        record(&mut out, *kind, data.as_bytes());
    }
    out
}

fn simple() -> Vec<(u8, &'static str)> {
    vec![
        (
            b'C',
            "             42              99               2 0 42 0",
        ),
        (b'T', "1700000000 123456"),
        (b'A', "rewrite_context=local"),
        (b'S', "alice@example.com"),
        (b'n', "4"),
        (b'R', "bob@example.net"),
        (b'D', "carol@example.net"),
        (b'o', "rfc822;dave@example.org"),
        (b'R', "dave@example.org"),
        (b'M', ""),
        (b'N', "Subject: hi"),
        (b'N', ""),
        (b'L', "a long "),
        (b'N', "line"),
        (b'X', ""),
        (b'E', ""),
    ]
}

#[test]
fn envelope_content_and_done_marks_are_read() {
    let parsed = parse(&file(&simple())).unwrap();
    assert_eq!(parsed.arrival, (1_700_000_000, 123_456));
    assert_eq!(parsed.sender, "alice@example.com");
    let addresses: Vec<&str> = parsed.recipients.iter().map(|r| &*r.address).collect();
    assert_eq!(addresses, ["bob@example.net", "dave@example.org"]);
    assert_eq!(parsed.recipients[0].notify.as_deref(), Some("FAILURE"));
    assert_eq!(
        parsed.recipients[1].orcpt.as_deref(),
        Some("rfc822;dave@example.org")
    );
    assert_eq!(parsed.done, ["carol@example.net"]);
    assert_eq!(parsed.content, b"Subject: hi\n\na long line\n");
}

#[test]
fn dsn_companions_of_a_done_recipient_do_not_stick_to_the_next() {
    let mut records = simple();
    records[6] = (b'o', "rfc822;carol@example.net");
    records.insert(7, (b'D', "carol@example.net"));
    let parsed = parse(&file(&records)).unwrap();
    // `dave` keeps his own ORCPT, and carol's was dropped with her.
    assert_eq!(parsed.done, ["carol@example.net"]);
    assert_eq!(
        parsed.recipients[1].orcpt.as_deref(),
        Some("rfc822;dave@example.org")
    );
}

#[test]
fn pointer_records_are_followed() {
    // R bob, then a pointer to a recipient appended past the end record, and back.
    let mut head = Vec::new();
    record(&mut head, b'T', b"1700000000 0");
    record(&mut head, b'S', b"");
    record(&mut head, b'R', b"bob@example.net");
    let pointer_at = head.len();
    record(&mut head, b'p', format!("{:15}", 0).as_bytes());
    let back_to = head.len();
    record(&mut head, b'M', b"");
    record(&mut head, b'N', b"body");
    record(&mut head, b'X', b"");
    record(&mut head, b'E', b"");
    let heap = head.len();
    record(&mut head, b'R', b"appended@example.net");
    record(&mut head, b'p', format!("{back_to:15}").as_bytes());
    let patched = format!("{heap:15}");
    let mut bytes = head.clone();
    bytes[pointer_at + 2..pointer_at + 17].copy_from_slice(patched.as_bytes());
    let parsed = parse(&bytes).unwrap();
    let addresses: Vec<&str> = parsed.recipients.iter().map(|r| &*r.address).collect();
    assert_eq!(addresses, ["bob@example.net", "appended@example.net"]);
    assert!(parsed.sender.is_empty());
}

#[test]
fn a_pointer_loop_is_an_error_not_a_hang() {
    let mut bytes = Vec::new();
    record(&mut bytes, b'T', b"1 0");
    let loop_at = bytes.len();
    record(&mut bytes, b'p', format!("{loop_at:15}").as_bytes());
    assert!(parse(&bytes).is_err());
}

#[test]
fn a_file_without_its_end_record_is_refused() {
    let mut records = simple();
    records.pop();
    let error = parse(&file(&records)).unwrap_err();
    assert!(error.message.contains("missing end record"), "{error}");
}

#[test]
fn a_record_out_of_its_segment_is_refused() {
    let mut records = simple();
    records.insert(11, (b'S', "mallory@example.com"));
    assert!(parse(&file(&records)).is_err());
}

#[test]
fn redirect_sends_every_recipient_to_the_target() {
    let mut records = simple();
    records.insert(2, (b'>', "quarantine@example.com"));
    let parsed = parse(&file(&records)).unwrap();
    assert!(parsed
        .recipients
        .iter()
        .all(|r| r.address == "quarantine@example.com"));
}

#[test]
fn notify_and_ret_masks_become_rfc3461_words() {
    assert_eq!(notify_words("1").unwrap(), "NEVER");
    assert_eq!(notify_words("14").unwrap(), "SUCCESS,FAILURE,DELAY");
    assert!(notify_words("0").is_err());
    assert_eq!(ret_word("2").unwrap(), "HDRS");
    assert!(ret_word("3").is_err());
}

#[test]
fn any_truncation_or_byte_flip_is_an_error_or_a_parse_never_a_panic() {
    let bytes = file(&simple());
    for cut in 0..bytes.len() {
        assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut seed: u32 = 7;
    for _ in 0..5_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let mut flipped = bytes.clone();
        let at = (seed as usize >> 8) % flipped.len();
        flipped[at] ^= (seed >> 24) as u8 | 1;
        let _ = parse(&flipped);
    }
}
