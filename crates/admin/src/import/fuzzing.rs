//! Property checks for the cargo-fuzz target `postfix_queue_file` (`fuzz/` at the repository
//! root), also run on random inputs in every `cargo test`.
//!
//! A Postfix queue file is data the import trusts no further than its parser: any bytes
//! must give a [`QueueFile`] or an error, never a panic or a hang. What parses is written
//! back in a canonical form (one record per field, content as `N`/`L` lines) that parses to
//! the same [`QueueFile`], and every truncation of that form is refused (it has lost its
//! end record), so a half-copied file is never imported as a smaller message.

use super::queue_file::{parse, QueueFile};

/// Record types of each segment, its terminator first (`M`, `X`, `E`), for building
/// streams that get past the first record; `p` pointers and a stray type now and then.
const SEGMENTS: [&[u8]; 3] = [
    b"MCTcFILSDRO/WVA>K<ionfdmpN",
    b"XLNwpNNNR",
    b"EDRO/PreAFIL>KonpM",
];

/// See the module doc. The first byte picks raw bytes or a record stream built from them.
pub fn check_postfix_queue_file(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return check(data);
    };
    match mode % 2 {
        0 => check(rest),
        _ => check(&records(rest)),
    }
}

fn check(bytes: &[u8]) {
    let Ok(file) = parse(bytes) else {
        return;
    };
    let canonical = encode(&file);
    assert_eq!(
        parse(&canonical).as_ref(),
        Ok(&file),
        "canonical form reparses"
    );
    for cut in 0..canonical.len() {
        assert!(
            parse(&canonical[..cut]).is_err(),
            "truncation at {cut} refused"
        );
    }
}

/// Pairs of (type of the current segment, data) from the input, after a `T` and an `S`;
/// a segment's terminator moves to the next segment.
fn records(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, b'T', b"1700000000 1");
    put(&mut out, b'S', b"s@example.org");
    let mut segment = 0;
    let mut rest = data;
    while let Some((&choice, tail)) = rest.split_first() {
        let length = tail.first().map_or(0, |&n| usize::from(n % 32));
        let length = length.min(tail.len().saturating_sub(1));
        let value = tail.get(1..1 + length).unwrap_or_default();
        let types = SEGMENTS[segment];
        let kind = match choice % 5 {
            0 => types[0],
            _ => types[usize::from(choice / 5) % types.len()],
        };
        put(&mut out, kind, &plausible(kind, value));
        if kind == types[0] {
            if segment == 2 {
                break;
            }
            segment += 1;
        }
        rest = tail.get(1 + length..).unwrap_or_default();
    }
    out
}

/// A value the record type accepts most of the time, so streams get past it: raw bytes
/// are still tried by the other mode.
fn plausible(kind: u8, value: &[u8]) -> Vec<u8> {
    let first = value.first().copied().unwrap_or(0);
    const CHARS: &[u8] = b"abcdefgh@.x-1 =;:";
    let text: Vec<u8> = value
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()])
        .collect();
    match kind {
        b'p' if first % 4 != 0 => b"0".to_vec(),
        b'T' => format!("{} {}", 1_700_000_000 + u32::from(first), first).into_bytes(),
        b'n' => (first % 15 + 1).to_string().into_bytes(),
        b'<' => (first % 2 + 1).to_string().into_bytes(),
        b'W' => {
            if first % 2 == 0 {
                b"-1".to_vec()
            } else {
                text
            }
        }
        b'A' if first % 3 == 0 => format!("trace_flags={}", first).into_bytes(),
        b'A' => [b"dsn_orig_rcpt=".as_slice(), &text].concat(),
        _ => text,
    }
}

/// One record as Postfix's `rec_put` writes it.
fn put(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    let mut rest = data.len();
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        out.push(if rest != 0 { byte | 0x80 } else { byte });
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(data);
}

/// The canonical queue file of a parsed one.
fn encode(file: &QueueFile) -> Vec<u8> {
    let mut out = Vec::new();
    let text = |out: &mut Vec<u8>, kind: u8, value: &str| put(out, kind, value.as_bytes());
    text(
        &mut out,
        b'T',
        &format!("{} {}", file.arrival.0, file.arrival.1),
    );
    text(&mut out, b'S', &file.sender);
    let optional = [
        (b'i', &file.envid),
        (b'L', &file.content_filter),
        (b'>', &file.redirect),
    ];
    for (kind, value) in optional {
        if let Some(value) = value {
            text(&mut out, kind, value);
        }
    }
    if let Some(ret) = &file.ret {
        text(&mut out, b'<', if ret == "FULL" { "1" } else { "2" });
    }
    if file.verify_only {
        text(&mut out, b'A', "trace_flags=256");
    }
    if file.delay_warned {
        text(&mut out, b'W', "-1");
    }
    for done in &file.done {
        text(&mut out, b'D', done);
    }
    for r in &file.recipients {
        if let Some(orcpt) = &r.orcpt {
            text(&mut out, b'o', orcpt);
        }
        if let Some(notify) = &r.notify {
            text(&mut out, b'n', &notify_mask(notify).to_string());
        }
        text(&mut out, b'R', &r.address);
    }
    put(&mut out, b'M', b"");
    let mut lines = file.content.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        match lines.peek() {
            Some(_) => put(&mut out, b'N', line),
            None if !line.is_empty() => put(&mut out, b'L', line),
            None => {}
        }
    }
    put(&mut out, b'X', b"");
    put(&mut out, b'E', b"");
    out
}

fn notify_mask(words: &str) -> u32 {
    words
        .split(',')
        .map(|w| match w {
            "NEVER" => 1,
            "SUCCESS" => 2,
            "FAILURE" => 4,
            _ => 8,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_inputs_hold_the_properties() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut parsed = 0;
        for _ in 0..3_000 {
            let mut data = Vec::new();
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push((seed >> 24) as u8);
            }
            super::check_postfix_queue_file(&data);
            if super::super::queue_file::parse(&super::records(&data)).is_ok() {
                parsed += 1;
            }
        }
        assert!(parsed > 20, "the generator reaches whole files: {parsed}");
    }
}
