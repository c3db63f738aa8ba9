//! Who is submitting: the real uid and its login name from the password database.
//! Environment variables (`LOGNAME`, `USER`) are not trusted for this: anyone can set them.

/// The login name of the real uid of this process, or `uid<N>` without a passwd entry.
pub fn real_user() -> (u32, String) {
    let uid = sys::real_uid();
    (uid, login_name(uid))
}

/// The login name of `uid`, or `uid<N>` when it has no passwd entry.
pub fn login_name(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

fn user_name(uid: u32) -> Option<String> {
    // Remembered: the embedded profile's default `mail_owner` is the effective user, looked
    // up again when the configuration loads; the same entry unless sendmail is set-uid.
    let name = sys::user_by_uid_remembered(uid).ok().flatten()?.name;
    // A name that would break the maildrop U line is no name at all; nor is one that was not
    // UTF-8 (decoded with replacement characters).
    let usable = !name.is_empty()
        && !name.contains(char::is_whitespace)
        && !name.contains(char::REPLACEMENT_CHARACTER);
    usable.then_some(name)
}

/// True when this process runs with other rights than its caller's (setgid or setuid).
pub fn is_privileged() -> bool {
    sys::is_setid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name_and_unknown_uids_fall_back() {
        assert_eq!(login_name(0), "root");
        assert_eq!(login_name(3_999_999_999), "uid3999999999");
        assert!(!real_user().1.is_empty());
    }
}
