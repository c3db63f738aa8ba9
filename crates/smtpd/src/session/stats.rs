//! Per-session command counts for Postfix's `disconnect from` line:
//! `disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6`
//! (`ok/total` where some failed, `total` alone where all succeeded).

/// Verbs in the order Postfix prints them; anything else counts as `unknown`.
const ORDER: [&str; 17] = [
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
    "etrn", "expn", "turn", "help", "quit", "unknown",
];
const UNKNOWN: usize = ORDER.len() - 1;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// (ok, total) per entry of `ORDER`.
    counts: [(u32, u32); ORDER.len()],
}

impl Stats {
    pub fn record(&mut self, verb: &str, ok: bool) {
        let index = ORDER.iter().position(|v| *v == verb).unwrap_or(UNKNOWN);
        let entry = &mut self.counts[index];
        entry.1 += 1;
        if ok {
            entry.0 += 1;
        }
    }

    /// ` ehlo=1 mail=1 ... commands=5` (with a leading space; empty-handed sessions give
    /// ` commands=0`).
    pub fn summary(&self) -> String {
        // Written into one string: a `format!` per verb was most of this line's cost.
        let mut out = String::with_capacity(64);
        let (mut ok, mut total) = (0, 0);
        for (verb, &(good, all)) in ORDER.iter().zip(&self.counts) {
            if all == 0 {
                continue;
            }
            out.push(' ');
            out.push_str(verb);
            out.push('=');
            push_pair(&mut out, good, all);
            ok += good;
            total += all;
        }
        out.push_str(" commands=");
        push_pair(&mut out, ok, total);
        out
    }
}

/// `total` where all succeeded, `ok/total` where some failed.
fn push_pair(out: &mut String, ok: u32, total: u32) {
    use std::fmt::Write;
    // Writing into a String cannot fail.
    if ok != total {
        let _ = write!(out, "{ok}/");
    }
    let _ = write!(out, "{total}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_style_summary() {
        let mut s = Stats::default();
        assert_eq!(s.summary(), " commands=0");
        for (verb, ok) in [
            ("ehlo", true),
            ("mail", true),
            ("rcpt", true),
            ("rcpt", false),
            ("data", true),
            ("quit", true),
            ("bogus", false),
        ] {
            s.record(verb, ok);
        }
        assert_eq!(
            s.summary(),
            " ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 unknown=0/1 commands=5/7"
        );
    }
}
