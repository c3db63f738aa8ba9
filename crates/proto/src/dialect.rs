//! The two ways mailroom reads SMTP commands. smtpd faces the internet and reads RFC 5321
//! to the letter, because what it accepts is what later hops must parse; `sendmail -bs`
//! faces a local program (a mail client, a cron job) and has always read it leniently, as
//! the local sendmail interface it stands in for. One codec serves both; a [`Dialect`]
//! says which rules apply.
//!
//! | | smtpd ([`Dialect::SMTPD`]) | `sendmail -bs` ([`Dialect::SENDMAIL_BS`]) |
//! | --- | --- | --- |
//! | line length, line end included | 1000 | 2048 |
//! | bytes | UTF-8, no control characters (else 500) | any: invalid UTF-8 read as U+FFFD |
//! | HELO/EHLO | one word of at most 255 bytes | any non-empty text |
//! | MAIL/RCPT path | `<…>` checked by `address.rs` | `<…>` or a bare address without spaces or controls |
//! | ESMTP parameters | checked, unknown ones refused (555) | SIZE read when valid, the rest ignored |
//! | arguments after DATA, RSET, QUIT | refused (501) | ignored |
//! | BDAT, VRFY, HELP, STARTTLS, AUTH, EXPN, ETRN, TURN | understood | unknown (500) |
//!
//! DATA differs too, but by the decoder's [`BareNewline`](crate::data::BareNewline) policy
//! (`Local` for `sendmail -bs`), since smtpd's own policy comes from its configuration.

use crate::line::MAX_LINE;

/// Which command syntax applies; see the module doc for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// RFC 5321 syntax to the letter; `false` is the lenient reading of `lenient.rs`.
    pub strict: bool,
    /// Whether the verbs beyond the basic set (HELO EHLO MAIL RCPT DATA RSET NOOP QUIT) are
    /// understood; without, they are unknown commands.
    pub extensions: bool,
    /// The longest command line, line end included (for [`crate::line::frame`]).
    pub max_line: usize,
}

impl Dialect {
    /// smtpd: the internet.
    pub const SMTPD: Dialect = Dialect {
        strict: true,
        extensions: true,
        max_line: MAX_LINE,
    };

    /// `sendmail -bs`: a local program. RFC 5321 section 4.5.3.1.4 asks for at least 512
    /// octets per command line; local clients get more room than the internet does.
    pub const SENDMAIL_BS: Dialect = Dialect {
        strict: false,
        extensions: false,
        max_line: 2048,
    };
}
