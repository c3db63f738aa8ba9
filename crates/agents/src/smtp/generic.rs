//! `smtp_generic_maps` (Postfix's smtp_map11 and smtp_header_rewrite): when mail leaves
//! over SMTP, the envelope sender, the envelope recipients and every address header are
//! rewritten through the generic table — typically a locally valid address into one the
//! internet can answer (`root@web01.localdomain  ops@example.com`). The queued message is
//! not changed: each delivery rewrites its own copy, so the log and the DSNs keep the
//! addresses as queued.

use envelope::Envelope;

/// The envelope and message as they go out, or `None` when the table changes nothing.
pub fn rewrite_outgoing(
    rewriter: &rewrite::Rewriter,
    env: &Envelope,
    message: &[u8],
) -> Option<(Envelope, Vec<u8>)> {
    if !rewriter.has_generic() {
        return None;
    }
    let mut out = env.clone();
    out.sender = rewriter.generic(&env.sender);
    for r in &mut out.recipients {
        r.address = rewriter.generic(&r.address);
    }
    let headers = rewrite::rewrite_headers(message, &|address, _| rewriter.generic(address));
    if headers.is_none() && out == *env {
        return None;
    }
    Some((out, headers.unwrap_or_else(|| message.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_rewrites_sender_recipients_and_headers_of_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("generic");
        std::fs::write(&map, "root@web01.localdomain  ops@example.com\n").unwrap();
        let mut cfg = config::Config::embedded_default();
        cfg.smtp_generic_maps = vec![map.display().to_string()];
        let rewriter = rewrite::Rewriter::from_config(&cfg).unwrap();
        let env = Envelope::new(
            "root@web01.localdomain",
            vec!["root@web01.localdomain".into(), "x@far.example".into()],
            0,
        );
        let message = b"From: Root <root@web01.localdomain>\nTo: x@far.example\n\nbody root@web01.localdomain\n";
        let (out, bytes) = rewrite_outgoing(&rewriter, &env, message).unwrap();
        assert_eq!(out.sender, "ops@example.com");
        assert_eq!(out.recipients[0].address, "ops@example.com");
        assert_eq!(out.recipients[1].address, "x@far.example");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "From: Root <ops@example.com>\nTo: x@far.example\n\nbody root@web01.localdomain\n"
        );
        let untouched = Envelope::new("a@b.example", vec!["x@far.example".into()], 0);
        assert!(rewrite_outgoing(&rewriter, &untouched, b"To: x@far.example\n\n").is_none());
    }
}
