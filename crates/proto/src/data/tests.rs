//! Wire bytes → stored message (or failure) tables, including the published SMTP smuggling
//! sequences, fed whole and one byte at a time (a split must never change the outcome).

use super::*;

/// Decodes `input` in dot mode, whole and byte by byte; both must agree. Returns the
/// outcome, the bytes consumed and whether the end was found.
fn dot(input: &[u8], policy: BareNewline, limit: u64) -> (Result<Vec<u8>, DataError>, usize, bool) {
    let mut whole = Decoder::new(Mode::Dot, policy, limit);
    let (used, done) = whole.feed(input);
    let mut split = Decoder::new(Mode::Dot, policy, limit);
    let mut split_used = 0;
    for byte in input {
        if split.is_done() {
            break;
        }
        split_used += split.feed(std::slice::from_ref(byte)).0;
    }
    assert_eq!(
        (used, done),
        (split_used, split.is_done()),
        "split changed the outcome"
    );
    let whole_result = whole.finish();
    assert_eq!(whole_result, split.finish(), "split changed the outcome");
    (whole_result, used, done)
}

const R: BareNewline = BareNewline::Reject;
const N: BareNewline = BareNewline::Normalize;

#[test]
fn plain_messages() {
    let table: &[(&[u8], &[u8], usize)] = &[
        (b".\r\n", b"", 3),
        (b"a\r\n.\r\n", b"a\n", 6),
        (
            b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            b"Subject: x\n\nbody\n",
            23,
        ),
        (b"..leading dot\r\n.\r\n", b".leading dot\n", 18),
        (b"..\r\n.\r\n", b".\n", 7),
        (b"a.\r\n.\r\n", b"a.\n", 7),
        (b"\xc3\xa9 8bit\r\n.\r\n", b"\xc3\xa9 8bit\n", 12),
    ];
    for (input, stored, used) in table {
        for policy in [R, N] {
            let (result, consumed, done) = dot(input, policy, 0);
            assert!(done, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(
                consumed,
                *used,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(
                result.as_deref(),
                Ok(*stored),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn smuggling_sequences_never_end_the_data() {
    // Each is followed by a smuggled command and then the real end.
    let sequences: &[&[u8]] = &[
        b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\n",
    ];
    for seq in sequences {
        let mut input = b"text".to_vec();
        input.extend_from_slice(seq);
        input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n.\r\n");
        for policy in [R, N] {
            let (result, used, done) = dot(&input, policy, 0);
            assert!(done, "{seq:?} {policy:?}");
            assert_eq!(used, input.len(), "{seq:?} {policy:?}: ended early");
            match policy {
                BareNewline::Reject => assert!(result.is_err(), "{seq:?} accepted under reject"),
                BareNewline::Normalize => {
                    let stored = result.unwrap_or_else(|e| panic!("{seq:?}: {e:?}"));
                    assert!(
                        stored.ends_with(b"MAIL FROM:<evil@x>\n"),
                        "{seq:?}: {stored:?}"
                    );
                    assert!(!stored.contains(&b'\r'), "{seq:?}: CR left in {stored:?}");
                }
                BareNewline::Local => unreachable!("smtpd's policies only"),
            }
        }
    }
}

#[test]
fn bare_line_ends_under_each_policy() {
    type Outcome = Result<&'static [u8], DataError>;
    let table: &[(&[u8], Outcome, Outcome)] = &[
        (b"a\nb\r\n.\r\n", Err(DataError::BareLf), Ok(b"a\nb\n")),
        (b"a\rb\r\n.\r\n", Err(DataError::BareCr), Ok(b"a\nb\n")),
        (b"a\r\r\n.\r\n", Err(DataError::BareCr), Ok(b"a\n\n")),
        (b".\rx\r\n.\r\n", Err(DataError::BareCr), Ok(b"\nx\n")),
        (b"\n.\r\n.\r\n", Err(DataError::BareLf), Ok(b"\n\n")),
    ];
    for (input, rejected, normalized) in table {
        let label = String::from_utf8_lossy(input);
        assert_eq!(
            dot(input, R, 0).0.as_deref(),
            rejected.as_deref(),
            "reject {label:?}"
        );
        assert_eq!(
            dot(input, N, 0).0.as_deref(),
            normalized.as_deref(),
            "normalize {label:?}"
        );
    }
}

#[test]
fn limits() {
    let (r, _, done) = dot(b"a\0b\r\n.\r\n", N, 0);
    assert_eq!((r, done), (Err(DataError::Nul), true));

    // Long lines are kept whole (issue 8 defect 13: they were refused with 500 5.5.2).
    for length in [998, 999, 10_000] {
        let mut long = vec![b'y'; length];
        long.extend_from_slice(b"\r\nafter\r\n.\r\n");
        let (r, used, done) = dot(&long, R, 0);
        let mut stored = vec![b'y'; length];
        stored.extend_from_slice(b"\nafter\n");
        assert_eq!((r, used, done), (Ok(stored), long.len(), true), "{length}");
    }

    assert_eq!(
        dot(b"12345\r\n.\r\n", R, 6).0.as_deref(),
        Ok(&b"12345\n"[..])
    );
    assert_eq!(dot(b"123456\r\n.\r\n", R, 6).0, Err(DataError::TooBig));
}

#[test]
fn the_first_failure_wins() {
    let (r, _, _) = dot(b"a\nb\0\r\n.\r\n", R, 0);
    assert_eq!(r, Err(DataError::BareLf));
}

#[test]
fn chunks_keep_dots_and_need_no_terminator() {
    let mut d = Decoder::new(Mode::Chunk, R, 0);
    assert_eq!(d.feed(b"Subject: x\r\n\r\n.\r\nline"), (21, false));
    assert_eq!(d.feed(b" two\r"), (5, false));
    assert_eq!(d.feed(b"\nend"), (4, false));
    assert_eq!(
        d.finish().as_deref(),
        Ok(&b"Subject: x\n\n.\nline two\nend\n"[..])
    );

    let mut d = Decoder::new(Mode::Chunk, R, 0);
    d.feed(b"trailing cr\r");
    assert_eq!(d.finish(), Err(DataError::BareCr));

    let mut d = Decoder::new(Mode::Chunk, N, 0);
    d.feed(b"a\nb");
    assert_eq!(d.finish().as_deref(), Ok(&b"a\nb\n"[..]));
}

#[test]
fn policy_from_config() {
    assert_eq!(BareNewline::from_config("reject"), R);
    assert_eq!(BareNewline::from_config("normalize"), N);
    assert_eq!(BareNewline::from_config("no"), N);
}

/// Found by the `data` fuzz target: a message cut after `.\r` kept the bare CR.
#[test]
fn regression_dot_cr_at_the_end_is_a_bare_cr() {
    let mut d = Decoder::new(Mode::Dot, R, 0);
    assert_eq!(d.feed(b".\r"), (2, false));
    assert_eq!(d.finish(), Err(DataError::BareCr));
}

/// Found by the `data` fuzz target: one long read reported "line too long" where the same
/// bytes in small reads reported "too big"; a long line is now content, and the size limit
/// is found in byte order however the input was split.
#[test]
fn regression_failure_order_does_not_depend_on_read_splits() {
    let mut input = vec![b'w'; 1070];
    input.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(dot(&input, R, 100).0, Err(DataError::TooBig));
    assert_eq!(dot(&input, R, 5000).0.map(|m| m.len()), Ok(1071));
}

/// Issue 8 defect 13: a 100 kB base64 line without breaks, as broken clients send, is
/// stored byte for byte in both DATA and BDAT, and a dot inside it is not un-stuffed.
#[test]
fn long_lines_are_kept_whole() {
    let line: Vec<u8> = (0..100_000u32)
        .map(|i| b"ABCD+/.="[(i % 8) as usize])
        .collect();
    let mut wire = b"Subject: long\r\n\r\n".to_vec();
    wire.extend_from_slice(&line);
    wire.extend_from_slice(b"\r\n.\r\n");
    let mut stored = b"Subject: long\n\n".to_vec();
    stored.extend_from_slice(&line);
    stored.push(b'\n');
    assert_eq!(dot(&wire, R, 0).0, Ok(stored.clone()));
    let mut chunk = Decoder::new(Mode::Chunk, R, 0);
    chunk.feed(&wire[..wire.len() - 3]);
    assert_eq!(chunk.finish(), Ok(stored));
}

/// `sendmail -bs`'s DATA (`BareNewline::Local`, moved here from the reader it had in
/// `submit/src/sendmail/smtp.rs`): Unix text, LF ends lines and `.` LF the data.
#[test]
fn local_text_is_read_the_unix_way() {
    const L: BareNewline = BareNewline::Local;
    let table: &[(&[u8], &[u8], usize)] = &[
        (b"a\r\n..b\r\n.\r\n", b"a\n.b\n", 11),
        (b"a\n.\nQUIT\n", b"a\n", 4),
        (b".\n", b"", 2),
        (b"a\r\rb\r\n.\r\n", b"a\r\rb\n", 9),
        (b"a\0b\n.\r\n", b"a\0b\n", 7),
        (b".\rx\n.\n", b"\rx\n", 6),
        (b"x\r\r\n.\n", b"x\r\n", 6),
        (b"\r\n.\r\n", b"\n", 5),
    ];
    for (input, stored, used) in table {
        let label = String::from_utf8_lossy(input);
        let (result, consumed, done) = dot(input, L, 0);
        assert!(done, "{label:?}");
        assert_eq!(consumed, *used, "{label:?}");
        assert_eq!(result.as_deref(), Ok(*stored), "{label:?}");
    }
    let (result, _, done) = dot(b"a\r\n", L, 100);
    assert!(!done, "end of input before the dot");
    assert_eq!(result.as_deref(), Ok(&b"a\n"[..]));
    assert_eq!(
        dot(b"0123456789\r\n.\r\nNEXT\r\n", L, 5),
        (Err(DataError::TooBig), 15, true)
    );
}
