//! Properties for the `milter_reply` fuzz target (and for `cargo test` on stable): any
//! bytes, read as a stream of milter reply packets, decode without a panic, and their
//! changes applied to a message (made of the same bytes) keep it a message: splitting it
//! again gives the same headers and body.

use crate::codec::{decode_response, packet_length, Response};
use crate::mail::Mail;

/// Feeds `data` through the reply decoder and the end-of-message changes.
pub fn check_replies(data: &[u8]) {
    let split = data.len() / 2;
    let mut mail = Mail::new("a@b", vec!["c@d".into()], &data[split..]);
    let again = Mail::new("a@b", vec!["c@d".into()], &mail.message());
    assert_eq!(again, mail, "a message splits the same way twice");
    let mut rest = &data[..split];
    let mut new_body = None;
    while let Some((header, tail)) = rest.split_first_chunk::<4>() {
        let Ok(length) = packet_length(*header) else {
            break;
        };
        let Some(body) = tail.get(..length) else {
            break;
        };
        rest = &tail[length..];
        if let Ok(reply) = decode_response(body) {
            let leading_space = matches!(reply, Response::ChangeHeader { index: 0, .. });
            mail.apply(&reply, leading_space, &mut new_body);
        }
    }
    if let Some(body) = new_body {
        mail.body = crate::mail::body_from_crlf(&body);
    }
    let reparsed = Mail::new(&mail.sender, mail.recipients.clone(), &mail.message());
    assert_eq!(
        reparsed.headers, mail.headers,
        "changed headers stay headers"
    );
    assert_eq!(reparsed.body, mail.body, "the body stays the body");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn seeds_hold_the_properties() {
        let mut replies = Vec::new();
        for body in [
            &b"h\0X-A\0v\r\n\r\nX-Forged: 1\0"[..],
            b"i\0\0\0\x05N\0\nv\0",
            b"m\0\0\0\x01Subject\0\0",
            b"b\r\n\r\nbody\r\n",
            b"e<x>\0",
            b"-<c@d>\0",
            b"y550\0",
            b"\xff",
        ] {
            replies.extend(packet(body));
        }
        let message = b"Subject: s\nX: y\n\tz\n\nbody\n";
        let mut data = replies.clone();
        data.resize(replies.len().max(message.len()), b' ');
        data.extend_from_slice(message);
        // Make the halves the replies and the message.
        let (r, m) = (replies.len(), message.len());
        let mut balanced = replies.clone();
        balanced.extend(std::iter::repeat_n(0u8, m.saturating_sub(r)));
        let mut tail = message.to_vec();
        tail.extend(std::iter::repeat_n(b'\n', r.saturating_sub(m)));
        balanced.extend(tail);
        check_replies(&balanced);
        check_replies(&data);
        check_replies(b"");
        check_replies(b"\0\0\0\x01h\nX\n");
    }
}
