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
    maildrop_holds_a_message(config, lines)?;
    virtual_mailbox_holds_a_message(config, lines)?;
    virtual_mailbox_base_is_absolute(config)?;
    virtual_domains_are_not_local(config, lines)?;
    transport_limits_name_transports(config)
}

/// A limit for a transport that `transports` does not declare would limit nothing: a
/// misspelt name is refused instead of leaving the destination at the default.
fn transport_limits_name_transports(config: &Config) -> Result<(), Failure> {
    let declared = |name: &str| config.transports.iter().any(|(n, _)| n == name);
    let limits = config.transport_destination_concurrency_limit.iter();
    let limits = limits.map(|(n, _)| ("transport_destination_concurrency_limit", n));
    let rates = config.transport_destination_rate_limit.iter();
    let mut all = limits.chain(rates.map(|(n, _)| ("transport_destination_rate_limit", n)));
    match all.find(|(_, name)| !declared(name)) {
        Some((key, name)) => Err((
            key,
            format!(
                "unknown transport {name:?}: declare it in transports = {{ {name} = \"smtp\" }}"
            ),
        )),
        None => Ok(()),
    }
}

/// Postfix's virtual(8): a limited `virtual_mailbox_limit` below `message_size_limit` (or
/// with an unlimited one) is fatal when it starts; checked only when virtual mailbox
/// domains are configured, since only then does the agent run.
fn virtual_mailbox_holds_a_message(
    config: &Config,
    lines: &BTreeMap<&str, usize>,
) -> Result<(), Failure> {
    let limit = config.virtual_mailbox_limit;
    let message = config.message_size_limit;
    let in_use = !config.virtual_mailbox_domains.is_empty();
    if !in_use || limit == 0 || (message != 0 && message <= limit) {
        return Ok(());
    }
    let text =
        format!("virtual_mailbox_limit ({limit}) is smaller than message_size_limit ({message})");
    Err((
        blame(lines, "virtual_mailbox_limit", "message_size_limit"),
        text,
    ))
}

/// Postfix's virtual(8) refuses to run with a relative base (`do not specify relative
/// pathname`); refusing at load time says so before any mail is deferred.
fn virtual_mailbox_base_is_absolute(config: &Config) -> Result<(), Failure> {
    let base = config.virtual_mailbox_base.trim();
    if base.is_empty() || base.starts_with('/') {
        return Ok(());
    }
    let text = format!("do not specify a relative pathname: virtual_mailbox_base = {base}");
    Err(("virtual_mailbox_base", text))
}

/// A domain is either local (`mydestination`, local(8)) or a virtual mailbox domain, never
/// both: Postfix warns and then delivers it locally, so the virtual mailboxes silently get
/// nothing. mailroom refuses the configuration instead. Items that are maps (`type:name`
/// or a path) are not compared.
fn virtual_domains_are_not_local(
    config: &Config,
    lines: &BTreeMap<&str, usize>,
) -> Result<(), Failure> {
    let plain = |list: &[String]| -> Vec<String> {
        list.iter()
            .flat_map(|entry| entry.split([',', ' ', '\t']))
            .map(|item| item.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|item| !item.is_empty() && !item.contains([':', '/']))
            .collect()
    };
    let local = plain(&config.mydestination);
    let Some(both) = plain(&config.virtual_mailbox_domains)
        .into_iter()
        .find(|domain| local.contains(domain))
    else {
        return Ok(());
    };
    let text =
        format!("do not list domain {both} in BOTH mydestination and virtual_mailbox_domains");
    Err((
        blame(lines, "virtual_mailbox_domains", "mydestination"),
        text,
    ))
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

    #[test]
    fn a_domain_both_local_and_virtual_is_refused() {
        let mut config = crate::Config::system_default();
        config.mydestination = vec!["localhost".into(), "Example.COM".into()];
        config.virtual_mailbox_domains = vec!["example.org, example.com.".into()];
        let (key, text) = check(&config, &BTreeMap::new()).unwrap_err();
        assert_eq!(key, "virtual_mailbox_domains");
        assert!(text.contains("example.com in BOTH"), "{text}");
        config.virtual_mailbox_domains = vec!["example.org".into(), "hash:/etc/vmailbox".into()];
        assert!(check(&config, &BTreeMap::new()).is_ok());
    }

    #[test]
    fn a_virtual_mailbox_limit_below_one_message_is_refused() {
        let mut config = crate::Config::system_default();
        config.virtual_mailbox_limit = config.message_size_limit - 1;
        assert!(
            check(&config, &BTreeMap::new()).is_ok(),
            "no virtual domains"
        );
        config.virtual_mailbox_domains = vec!["example.com".into()];
        assert_eq!(
            check(&config, &BTreeMap::new()).unwrap_err().0,
            "virtual_mailbox_limit"
        );
        config.virtual_mailbox_limit = 0;
        assert!(check(&config, &BTreeMap::new()).is_ok());
    }

    #[test]
    fn a_relative_virtual_mailbox_base_is_refused() {
        let mut config = crate::Config::system_default();
        config.virtual_mailbox_base = "var/vmail".into();
        assert_eq!(
            check(&config, &BTreeMap::new()).unwrap_err().0,
            "virtual_mailbox_base"
        );
        config.virtual_mailbox_base = "/var/vmail".into();
        assert!(check(&config, &BTreeMap::new()).is_ok());
    }
}
