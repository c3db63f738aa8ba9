//! Checks across parameters, run once every value is final. Each failure names the key to
//! blame: the one the file set, when only one of the pair was set there.

use std::collections::BTreeMap;

use crate::units::format_duration;
use crate::Config;

type Failure = (&'static str, String);

/// `lines` holds the keys the file set (by canonical name), to pick the key to blame.
pub(crate) fn check(config: &Config, lines: &BTreeMap<&str, usize>) -> Result<(), Failure> {
    backoff_range(config, lines)?;
    mailbox_holds_a_message(config, lines)?;
    maildrop_holds_a_message(config, lines)
}

/// Postfix's scheduler assumes the backoff window is not inverted.
fn backoff_range(config: &Config, lines: &BTreeMap<&str, usize>) -> Result<(), Failure> {
    if config.minimal_backoff_time <= config.maximal_backoff_time {
        return Ok(());
    }
    let message = format!(
        "minimal_backoff_time ({}) is larger than maximal_backoff_time ({})",
        format_duration(config.minimal_backoff_time),
        format_duration(config.maximal_backoff_time)
    );
    Err((
        blame(lines, "maximal_backoff_time", "minimal_backoff_time"),
        message,
    ))
}

/// Postfix's local(8) refuses to start when a mailbox cannot hold one maximal message;
/// we refuse at load time instead (0 means "no limit" for both).
fn mailbox_holds_a_message(config: &Config, lines: &BTreeMap<&str, usize>) -> Result<(), Failure> {
    let mailbox = config.mailbox_size_limit;
    let message = config.message_size_limit;
    if mailbox == 0 || (message != 0 && message <= mailbox) {
        return Ok(());
    }
    let text = format!(
        "mailbox_size_limit ({mailbox}) must be 0 or at least message_size_limit ({})",
        if message == 0 {
            "0 = unlimited".to_string()
        } else {
            message.to_string()
        }
    );
    Err((
        blame(lines, "mailbox_size_limit", "message_size_limit"),
        text,
    ))
}

/// A maildrop cap below one message would make every large submission fail for good.
fn maildrop_holds_a_message(config: &Config, lines: &BTreeMap<&str, usize>) -> Result<(), Failure> {
    let maildrop = config.maildrop_size_limit;
    let message = config.message_size_limit;
    if message == 0 || message <= maildrop {
        return Ok(());
    }
    let text =
        format!("maildrop_size_limit ({maildrop}) is smaller than message_size_limit ({message})");
    Err((
        blame(lines, "maildrop_size_limit", "message_size_limit"),
        text,
    ))
}

/// `preferred` unless only `other` was set in the file.
fn blame(
    lines: &BTreeMap<&str, usize>,
    preferred: &'static str,
    other: &'static str,
) -> &'static str {
    if !lines.contains_key(preferred) && lines.contains_key(other) {
        other
    } else {
        preferred
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn inverted_backoff_blames_the_key_the_file_set() {
        let mut config = crate::Config::system_default();
        config.minimal_backoff_time = Duration::from_secs(5000);
        let only_minimal = BTreeMap::from([("minimal_backoff_time", 3)]);
        assert_eq!(
            check(&config, &only_minimal).unwrap_err().0,
            "minimal_backoff_time"
        );
        assert_eq!(
            check(&config, &BTreeMap::new()).unwrap_err().0,
            "maximal_backoff_time"
        );
    }

    #[test]
    fn size_limits_must_nest() {
        let mut config = crate::Config::system_default();
        assert!(check(&config, &BTreeMap::new()).is_ok());
        config.message_size_limit = 0;
        assert_eq!(
            check(&config, &BTreeMap::new()).unwrap_err().0,
            "mailbox_size_limit"
        );
        config.mailbox_size_limit = 0;
        assert!(check(&config, &BTreeMap::new()).is_ok());
        config.message_size_limit = 300 << 20;
        assert_eq!(
            check(&config, &BTreeMap::new()).unwrap_err().0,
            "maildrop_size_limit"
        );
    }
}
