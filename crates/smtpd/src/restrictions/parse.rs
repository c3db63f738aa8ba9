//! A restriction list as main.cf writes it (`permit_mynetworks, check_client_access
//! cidr:/etc/x, reject_rbl_client zen.example`: names, case-insensitive, some followed by
//! one argument) → [`Restriction`]s, with their maps opened once per configuration.
//!
//! Nothing here fails: a word that is not a restriction, a missing argument or a map that
//! cannot be opened becomes [`Restriction::Broken`] (answered `451 4.3.5 Server
//! configuration error` when reached, as Postfix does) plus a problem line for the log and
//! `mailroom check`.

use std::collections::HashSet;
use std::sync::Arc;

/// What a DNS list, an access table or a syntax check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The client address.
    Client,
    /// The client's host name (always `unknown`: mailroom does no reverse look-up at
    /// connect, so these restrictions never match, as in Postfix for a nameless client).
    ClientName,
    Helo,
    Sender,
    Recipient,
}

/// One restriction of a list.
#[derive(Debug)]
pub enum Restriction {
    Permit,
    Reject,
    Defer,
    DeferIfPermit,
    DeferIfReject,
    /// Turns the next restriction's refusal into a `reject_warning:` log line.
    WarnIfReject,
    PermitMynetworks,
    PermitSaslAuthenticated,
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectUnauthPipelining,
    RejectInvalidHelo,
    RejectNonFqdnHelo,
    RejectUnknownHelo,
    /// `reject_non_fqdn_sender` / `_recipient`.
    RejectNonFqdn(Subject),
    /// `reject_unknown_sender_domain` / `_recipient_domain`.
    RejectUnknownDomain(Subject),
    /// `reject_unknown_reverse_client_hostname` (`forward_confirmed` false) or
    /// `reject_unknown_client_hostname` (the name must also resolve back to the address).
    RejectUnknownClient {
        forward_confirmed: bool,
    },
    /// `reject_rbl_client` / `reject_rhsbl_*`: the list's domain, with an optional
    /// `=127.0.0.2` filter on the answer.
    Dnsbl {
        subject: Subject,
        domain: String,
    },
    /// `check_*_access type:table`.
    Access {
        subject: Subject,
        maps: Arc<maps::Maps>,
    },
    /// `check_policy_service inet:host:port` or `unix:/path`.
    Policy(String),
    /// A name from `smtpd_restriction_classes`: that list, evaluated in place.
    Class(String),
    /// Cannot be evaluated as configured: the word, for the log.
    Broken(String),
}

/// Parses one list; the problems say what became [`Restriction::Broken`]. A word in
/// `classes` (the `smtpd_restriction_classes` names) is that class.
pub fn parse_list(words: &[String], classes: &HashSet<String>) -> (Vec<Restriction>, Vec<String>) {
    let mut list = Vec::new();
    let mut problems = Vec::new();
    let mut words = words.iter().map(|w| w.trim()).filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        let name = word.to_ascii_lowercase();
        let restriction = match simple(&name) {
            Some(restriction) => restriction,
            None if classes.contains(word) => Restriction::Class(word.to_string()),
            None => match with_argument(&name) {
                Some(make) => match words.next() {
                    Some(argument) => make(argument).unwrap_or_else(|problem| {
                        problems.push(format!("{word} {argument}: {problem}"));
                        Restriction::Broken(word.to_string())
                    }),
                    None => {
                        problems.push(format!("restriction {word} requires an argument"));
                        Restriction::Broken(word.to_string())
                    }
                },
                None => {
                    problems.push(format!("unknown smtpd restriction: \"{word}\""));
                    Restriction::Broken(word.to_string())
                }
            },
        };
        list.push(restriction);
    }
    (list, problems)
}

/// The restrictions without an argument (Postfix's older names included).
fn simple(name: &str) -> Option<Restriction> {
    use Restriction::*;
    Some(match name {
        "permit" => Permit,
        "reject" => Reject,
        "defer" => Defer,
        "defer_if_permit" => DeferIfPermit,
        "defer_if_reject" => DeferIfReject,
        "warn_if_reject" => WarnIfReject,
        "permit_mynetworks" => PermitMynetworks,
        "permit_sasl_authenticated" => PermitSaslAuthenticated,
        "permit_auth_destination" => PermitAuthDestination,
        "reject_unauth_destination" => RejectUnauthDestination,
        "defer_unauth_destination" => DeferUnauthDestination,
        "reject_unauth_pipelining" => RejectUnauthPipelining,
        "reject_invalid_helo_hostname" | "reject_invalid_hostname" => RejectInvalidHelo,
        "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => RejectNonFqdnHelo,
        "reject_unknown_helo_hostname" | "reject_unknown_hostname" => RejectUnknownHelo,
        "reject_non_fqdn_sender" => RejectNonFqdn(Subject::Sender),
        "reject_non_fqdn_recipient" => RejectNonFqdn(Subject::Recipient),
        "reject_unknown_sender_domain" => RejectUnknownDomain(Subject::Sender),
        "reject_unknown_recipient_domain" => RejectUnknownDomain(Subject::Recipient),
        "reject_unknown_reverse_client_hostname" => RejectUnknownClient {
            forward_confirmed: false,
        },
        "reject_unknown_client_hostname" | "reject_unknown_client" => RejectUnknownClient {
            forward_confirmed: true,
        },
        _ => return None,
    })
}

type Make = fn(&str) -> Result<Restriction, String>;

/// The restrictions that take the next word as their argument.
fn with_argument(name: &str) -> Option<Make> {
    Some(match name {
        "check_client_access" => |a| access(Subject::Client, a),
        "check_helo_access" => |a| access(Subject::Helo, a),
        "check_sender_access" => |a| access(Subject::Sender, a),
        "check_recipient_access" => |a| access(Subject::Recipient, a),
        "reject_rbl_client" => |a| dnsbl(Subject::Client, a),
        "reject_rhsbl_client" | "reject_rhsbl_reverse_client" => |a| dnsbl(Subject::ClientName, a),
        "reject_rhsbl_helo" => |a| dnsbl(Subject::Helo, a),
        "reject_rhsbl_sender" => |a| dnsbl(Subject::Sender, a),
        "reject_rhsbl_recipient" => |a| dnsbl(Subject::Recipient, a),
        "check_policy_service" => policy,
        _ => return None,
    })
}

fn access(subject: Subject, spec: &str) -> Result<Restriction, String> {
    if !spec.contains(':') {
        return Err("need maptype:mapname".to_string());
    }
    let maps = maps::Maps::open(&[spec]).map_err(|e| e.to_string())?;
    Ok(Restriction::Access {
        subject,
        maps: Arc::new(maps),
    })
}

fn dnsbl(subject: Subject, domain: &str) -> Result<Restriction, String> {
    let (name, filter) = domain.split_once('=').unwrap_or((domain, ""));
    if name.is_empty() || name.contains(':') {
        return Err("need a DNS list domain".to_string());
    }
    if !filter.is_empty() && !super::dns::valid_filter(filter) {
        return Err(format!(
            "bad reply filter {filter:?} (use 127.0.0.2 or 127.0.0.[2..11;20])"
        ));
    }
    Ok(Restriction::Dnsbl {
        subject,
        domain: domain.to_ascii_lowercase(),
    })
}

fn policy(endpoint: &str) -> Result<Restriction, String> {
    super::policy::Endpoint::parse(endpoint)?;
    Ok(Restriction::Policy(endpoint.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split([',', ' ', '\n'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn names_arguments_and_problems() {
        let (list, problems) = parse_list(
            &words(
                "Permit_MyNetworks, reject_rbl_client zen.example.invalid=127.0.0.[2..4], \
             check_policy_service inet:127.0.0.1:10023 bogus_restriction \
             check_client_access cidr:/nonexistent/file reject_rhsbl_sender",
            ),
            &HashSet::new(),
        );
        assert!(matches!(list[0], Restriction::PermitMynetworks));
        assert!(
            matches!(&list[1], Restriction::Dnsbl { subject: Subject::Client, domain } if domain == "zen.example.invalid=127.0.0.[2..4]")
        );
        assert!(matches!(&list[2], Restriction::Policy(p) if p == "inet:127.0.0.1:10023"));
        assert!(matches!(&list[3], Restriction::Broken(w) if w == "bogus_restriction"));
        assert!(matches!(&list[4], Restriction::Broken(_)));
        assert!(matches!(&list[5], Restriction::Broken(_)));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("unknown smtpd restriction"));
        assert!(problems[2].contains("requires an argument"));
    }

    #[test]
    fn bad_policy_endpoint_and_map_without_type_are_problems() {
        for text in [
            "check_policy_service 127.0.0.1:10023",
            "check_sender_access /etc/x",
            "reject_rbl_client zen.example=999.1",
        ] {
            let (list, problems) = parse_list(&words(text), &HashSet::new());
            assert!(matches!(list[0], Restriction::Broken(_)), "{text}");
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        }
    }
}
