//! The lenient reading of MAIL and RCPT arguments ([`Dialect::SENDMAIL_BS`]): what
//! `sendmail -bs` has always accepted from local programs, which are not held to RFC 5321
//! (some send `MAIL FROM:user` without brackets). Only what would corrupt the envelope is
//! refused: a control character or a space inside the address.
//!
//! [`Dialect::SENDMAIL_BS`]: crate::Dialect::SENDMAIL_BS

/// `FROM:<a@b> SIZE=10` → (`a@b`, ` SIZE=10`): `keyword` (any case), optional spaces, then
/// `<path>` or a bare address up to the next space. An obsolete source route
/// (`@relay:user@host`) is dropped. `None` when that shape is not there.
pub fn path_argument<'a>(rest: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?,
        None => rest.split_once(' ').unwrap_or((rest, "")),
    };
    let address = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    let clean = !address.chars().any(|c| c.is_control() || c.is_whitespace());
    clean.then(|| (address.to_string(), params))
}

/// The first `SIZE=n` among whitespace-separated parameters whose value is a number; every
/// other parameter is ignored.
pub fn size_parameter(params: &str) -> Option<u64> {
    params.split_whitespace().find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sizes() {
        assert_eq!(
            path_argument("FROM:<a@b>", "FROM:"),
            Some(("a@b".into(), ""))
        );
        assert_eq!(
            path_argument("to: c@d SIZE=1", "TO:"),
            Some(("c@d".into(), "SIZE=1"))
        );
        assert_eq!(path_argument("FROM:<a", "FROM:"), None);
        assert_eq!(path_argument("FROM:<@r>", "FROM:"), None);
        assert_eq!(size_parameter("BODY=8BITMIME size=7"), Some(7));
        assert_eq!(size_parameter("SIZE=x SIZE=9"), Some(9));
        assert_eq!(size_parameter("SIZE"), None);
    }
}
