//! Running the lists (Postfix's `generic_checks`): each restriction answers permit, reject
//! or "don't know"; permit ends its list, reject ends the check, "don't know" goes on.
//!
//! Postfix's modifiers of that rule, kept here in [`State`]:
//! * `warn_if_reject` before a restriction turns its refusal into a `reject_warning:` line;
//! * `defer_if_permit` (a DNS failure, greylisting) remembers a 4xx that is sent unless
//!   something refuses outright: at the end of the check, whatever permitted;
//! * `defer_if_reject` remembers a 4xx that replaces a later 5xx refusal.
//!
//! Configuration and software errors (451 4.3.5) are never turned into warnings.

use std::net::IpAddr;

use proto::reply::Reply;
use tracing::warn;

use super::dns::{Lookup, MailDomain};
use super::parse::{self, Restriction, Subject};
use super::{access, dnsbl, log_whatsup, policy, Class, Request, Restrictions, Verdict};

/// One restriction's answer.
#[derive(Debug)]
pub enum Status {
    Dunno,
    Permit,
    /// Refused (and logged).
    Reject(Reply),
    /// A table or policy result that is a restriction list (a class name, or restriction
    /// words): evaluated in place by [`one`], never seen by a list.
    Delegate(String),
}

/// How deep classes may name classes (a loop ends here with 451 4.3.5).
const MAX_NESTING: usize = 20;

/// What the evaluation has gathered so far.
#[derive(Debug, Default)]
pub struct State {
    warn_if_reject: bool,
    /// Classes being evaluated, innermost last.
    nesting: usize,
    pub defer_if_permit: Option<Reply>,
    pub defer_if_reject: Option<Reply>,
    pub verdict: Verdict,
}

impl State {
    /// Refuses with `reply` — or only logs it under `warn_if_reject`; a 5xx becomes the
    /// remembered `defer_if_reject` 4xx.
    pub fn refuse(&mut self, request: &Request, reply: Reply) -> Status {
        let summary = reply.summary();
        if self.warn_if_reject {
            log_whatsup(request, "reject_warning", &summary);
            return Status::Dunno;
        }
        let reply = match (reply.code >= 500, self.defer_if_reject.take()) {
            (true, Some(deferred)) => deferred,
            _ => reply,
        };
        log_whatsup(request, "reject", &reply.summary());
        Status::Reject(reply)
    }

    /// `451 4.3.5 Server configuration error`: never a warning only.
    pub fn server_error(&mut self, request: &Request) -> Status {
        let reply = reply(451, "4.3.5", "Server configuration error");
        log_whatsup(request, "reject", &reply.summary());
        Status::Reject(reply)
    }
}

/// A refusal as Postfix's `smtpd_check_reject` makes it: the enhanced code's class follows
/// the reply code's, the text is printable and at most 510 bytes.
pub fn reply(code: u16, dsn: &str, text: &str) -> Reply {
    if !(400..600).contains(&code) {
        warn!(target: "smtpd", "SMTP reply code configuration error: {code} {dsn} {}", maillog::sanitize(text));
        return Reply::new(450, "", "4.7.1 Service unavailable");
    }
    let class = if code >= 500 { '5' } else { '4' };
    let detail = dsn.get(1..).unwrap_or(".7.1");
    let mut line = format!("{class}{detail} {text}");
    line = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 510 {
        let mut end = 510;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    Reply::new(code, "", line)
}

/// Runs `lists` in order and returns the verdict.
pub async fn run(
    r: &Restrictions,
    lists: &[(Class, &[Restriction])],
    request: &Request,
) -> Verdict {
    let mut state = State::default();
    for (class, list) in lists {
        if let Status::Reject(reply) = run_list(r, *class, list, request, &mut state).await {
            state.verdict.reject = Some(reply);
            return state.verdict;
        }
    }
    if let Some(reply) = state.defer_if_permit.take() {
        log_whatsup(request, "reject", &reply.summary());
        state.verdict.reject = Some(reply);
    }
    state.verdict
}

async fn run_list(
    r: &Restrictions,
    class: Class,
    list: &[Restriction],
    request: &Request,
    state: &mut State,
) -> Status {
    for restriction in list {
        if let Restriction::WarnIfReject = restriction {
            state.warn_if_reject = true;
            continue;
        }
        let status = one(r, class, restriction, request, state).await;
        state.warn_if_reject = false;
        match status {
            Status::Dunno | Status::Delegate(_) => {}
            Status::Permit | Status::Reject(_) => return status,
        }
    }
    Status::Dunno
}

/// A restriction class, or a table result that names restrictions (Postfix's
/// `generic_checks` on the result): its permit permits, its refusal refuses, its end is
/// DUNNO. Boxed: a class may name a class.
fn nested<'a>(
    r: &'a Restrictions,
    class: Class,
    list: &'a [Restriction],
    request: &'a Request,
    state: &'a mut State,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Status> + Send + 'a>> {
    Box::pin(async move {
        if state.nesting >= MAX_NESTING {
            warn!(target: "smtpd", "restriction classes nested more than {MAX_NESTING} deep (a loop?): answering 451 4.3.5");
            return state.server_error(request);
        }
        state.nesting += 1;
        let status = run_list(r, class, list, request, state).await;
        state.nesting -= 1;
        status
    })
}

/// A table or policy result that is a restriction list, parsed now (its maps opened once
/// per use, as such results are rare) and evaluated in place.
async fn delegated(
    r: &Restrictions,
    class: Class,
    value: &str,
    request: &Request,
    state: &mut State,
) -> Status {
    if let Some(list) = r.classes.get(value.trim()) {
        return nested(r, class, list, request, state).await;
    }
    let (list, problems) = parse::parse_list(&super::words(value), &r.class_names());
    for problem in &problems {
        warn!(target: "smtpd", "access table result {:?}: {problem}", maillog::sanitize(value));
    }
    nested(r, class, &list, request, state).await
}

/// One restriction; a result naming restrictions is evaluated in place.
async fn one(
    r: &Restrictions,
    class: Class,
    restriction: &Restriction,
    request: &Request,
    state: &mut State,
) -> Status {
    match single(r, class, restriction, request, state).await {
        Status::Delegate(value) => delegated(r, class, &value, request, state).await,
        status => status,
    }
}

/// One restriction, as it answers.
async fn single(
    r: &Restrictions,
    class: Class,
    restriction: &Restriction,
    request: &Request,
    state: &mut State,
) -> Status {
    use Restriction::*;
    let c = &r.codes;
    let subject = class.subject(request);
    let generic = |code: u16, dsn: &str, text: &str| {
        reply(
            code,
            dsn,
            &format!("<{subject}>: {} rejected: {text}", class.name()),
        )
    };
    let permit_if = |yes: bool| if yes { Status::Permit } else { Status::Dunno };
    match restriction {
        Permit => Status::Permit,
        Reject => state.refuse(request, generic(c.reject, "5.7.1", "Access denied")),
        Defer => state.refuse(request, generic(c.defer, "4.7.1", "Access denied")),
        DeferIfPermit => {
            let deferred = generic(c.defer, "4.7.1", "defer_if_permit requested");
            state.defer_if_permit.get_or_insert(deferred);
            Status::Dunno
        }
        DeferIfReject => {
            let deferred = generic(c.defer, "4.7.1", "defer_if_reject requested");
            state.defer_if_reject.get_or_insert(deferred);
            Status::Dunno
        }
        WarnIfReject => Status::Dunno,
        PermitMynetworks => permit_if(request.mynetworks),
        PermitSaslAuthenticated => permit_if(request.sasl.is_some()),
        PermitAuthDestination => permit_if(request.recipient.is_some() && request.auth_destination),
        RejectUnauthDestination | DeferUnauthDestination => {
            unauth_destination(r, restriction, request, state)
        }
        RejectUnauthPipelining if request.pipelined => state.refuse(
            request,
            generic(503, "5.5.0", "Improper use of SMTP command pipelining"),
        ),
        RejectUnauthPipelining => Status::Dunno,
        RejectInvalidHelo | RejectNonFqdnHelo | RejectUnknownHelo => {
            helo(r, restriction, request, state).await
        }
        RejectNonFqdn(which) => non_fqdn(r, *which, request, state),
        RejectUnknownDomain(which) => unknown_domain(r, *which, request, state).await,
        RejectUnknownClient { forward_confirmed } => {
            unknown_client(r, *forward_confirmed, request, state).await
        }
        Dnsbl { subject, domain } => dnsbl::check(r, *subject, domain, request, state).await,
        Access { subject, maps } => table(r, *subject, maps, request, state),
        Policy(endpoint) => policy_service(r, class, endpoint, request, state).await,
        Class(name) => match r.classes.get(name) {
            Some(list) => nested(r, class, list, request, state).await,
            None => state.server_error(request),
        },
        Broken(word) => {
            warn!(target: "smtpd", "restriction {word:?} cannot be evaluated (see the configuration warnings): answering 451 4.3.5");
            state.server_error(request)
        }
    }
}

/// `check_*_access`: the first table result for the subject's keys.
fn table(
    r: &Restrictions,
    subject: Subject,
    maps: &maps::Maps,
    request: &Request,
    state: &mut State,
) -> Status {
    let Some(value) = access::find(maps, subject, request) else {
        return Status::Dunno;
    };
    let table = maps.iter().next().map_or("", |m| m.spec()).to_string();
    let (name, class) = about(subject, request);
    access::result(r, &value, &table, (&name, class), request, state)
}

/// `check_policy_service`: the server's action, or the default action when it fails.
async fn policy_service(
    r: &Restrictions,
    class: Class,
    endpoint: &str,
    request: &Request,
    state: &mut State,
) -> Status {
    let action = policy::query(&r.policy_pool, &r.policy, endpoint, request)
        .await
        .unwrap_or_else(|_| r.policy.default_action.clone());
    let subject = class.subject(request);
    access::result(
        r,
        &action,
        endpoint,
        (&subject, class.name()),
        request,
        state,
    )
}

/// The `<name>` and class a subject-specific refusal names.
fn about(subject: Subject, request: &Request) -> (String, &'static str) {
    let class = match subject {
        Subject::Client | Subject::ClientName => Class::Client,
        Subject::Helo => Class::Helo,
        Subject::Sender => Class::Sender,
        Subject::Recipient => Class::Recipient,
    };
    (class.subject(request), class.name())
}

fn unauth_destination(
    r: &Restrictions,
    restriction: &Restriction,
    request: &Request,
    state: &mut State,
) -> Status {
    let Some(recipient) = &request.recipient else {
        return Status::Dunno;
    };
    if request.auth_destination {
        return Status::Dunno;
    }
    let (code, dsn) = match restriction {
        Restriction::DeferUnauthDestination => (r.codes.relay - 100, "4.7.1"),
        _ => (r.codes.relay, "5.7.1"),
    };
    state.refuse(
        request,
        reply(code, dsn, &format!("<{recipient}>: Relay access denied")),
    )
}

async fn helo(
    r: &Restrictions,
    restriction: &Restriction,
    request: &Request,
    state: &mut State,
) -> Status {
    let Some(name) = request.helo.as_deref() else {
        return Status::Dunno;
    };
    let refuse = |code: u16, dsn: &str, text: &str| {
        reply(
            code,
            dsn,
            &format!("<{name}>: Helo command rejected: {text}"),
        )
    };
    let literal = name.starts_with('[') && name.ends_with(']') && name.len() > 2;
    let bare = truncate_dot(name);
    let c = &r.codes;
    match restriction {
        Restriction::RejectInvalidHelo if literal => match valid_literal(name) {
            true => Status::Dunno,
            false => state.refuse(
                request,
                refuse(c.invalid_hostname, "5.5.2", "invalid ip address"),
            ),
        },
        Restriction::RejectInvalidHelo
            if !valid_hostname(bare) && bare.parse::<IpAddr>().is_err() =>
        {
            state.refuse(request, refuse(c.invalid_hostname, "5.5.2", "Invalid name"))
        }
        Restriction::RejectNonFqdnHelo
            if !literal && (!valid_hostname(bare) || !bare.contains('.')) =>
        {
            state.refuse(
                request,
                refuse(c.non_fqdn, "5.5.2", "need fully-qualified hostname"),
            )
        }
        Restriction::RejectUnknownHelo if !literal && valid_hostname(bare) => {
            match r.dns.host(bare).await {
                Lookup::Found(()) => Status::Dunno,
                Lookup::NotFound => state.refuse(
                    request,
                    refuse(c.unknown_hostname, "4.7.1", "Host not found"),
                ),
                Lookup::TempFail(_) => {
                    state
                        .defer_if_permit
                        .get_or_insert(refuse(450, "4.7.1", "Host not found"));
                    Status::Dunno
                }
            }
        }
        _ => Status::Dunno,
    }
}

fn non_fqdn(r: &Restrictions, which: Subject, request: &Request, state: &mut State) -> Status {
    let (address, class) = match which {
        Subject::Sender => (request.sender.as_deref(), Class::Sender),
        _ => (request.recipient.as_deref(), Class::Recipient),
    };
    let Some(address) = address.filter(|a| !a.is_empty()) else {
        return Status::Dunno;
    };
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    if domain.starts_with('[') && domain.ends_with(']') {
        return Status::Dunno;
    }
    let domain = truncate_dot(domain);
    if valid_hostname(domain) && domain.contains('.') {
        return Status::Dunno;
    }
    let text = format!(
        "<{address}>: {} rejected: need fully-qualified address",
        class.name()
    );
    state.refuse(request, reply(r.codes.non_fqdn, "4.5.2", &text))
}

async fn unknown_domain(
    r: &Restrictions,
    which: Subject,
    request: &Request,
    state: &mut State,
) -> Status {
    let sender = which == Subject::Sender;
    let (address, class) = match sender {
        true => (request.sender.as_deref(), Class::Sender),
        false => (request.recipient.as_deref(), Class::Recipient),
    };
    let Some((_, domain)) = address.and_then(|a| a.rsplit_once('@')) else {
        return Status::Dunno;
    };
    // Our own domains are not asked about (Postfix skips its local and virtual classes).
    if domain.is_empty() || domain.starts_with('[') || (!sender && request.final_destination) {
        return Status::Dunno;
    }
    let address = address.unwrap_or_default();
    let dsn = if sender { "4.1.8" } else { "4.1.2" };
    let text = |why: &str| format!("<{address}>: {} rejected: {why}", class.name());
    match r.dns.mail_domain(truncate_dot(domain)).await {
        MailDomain::Exists => Status::Dunno,
        MailDomain::NullMx => {
            let (code, dsn) = if sender {
                (550, "5.7.27")
            } else {
                (556, "5.1.10")
            };
            let why = format!("Domain {domain} does not accept mail (nullMX)");
            state.refuse(request, reply(code, dsn, &text(&why)))
        }
        MailDomain::NotFound => state.refuse(
            request,
            reply(r.codes.unknown_address, dsn, &text("Domain not found")),
        ),
        MailDomain::TempFail => {
            let deferred = reply(450, dsn, &text("Domain not found"));
            state.defer_if_permit.get_or_insert(deferred);
            Status::Dunno
        }
    }
}

async fn unknown_client(
    r: &Restrictions,
    forward_confirmed: bool,
    request: &Request,
    state: &mut State,
) -> Status {
    let ip = request.client_ip;
    let names = r.dns.reverse(ip).await;
    let status = match (&names, forward_confirmed) {
        (Lookup::Found(_), false) => Lookup::Found(()),
        (Lookup::Found(names), true) => confirmed(r, names, ip).await,
        (Lookup::NotFound, _) => Lookup::NotFound,
        (Lookup::TempFail(why), _) => Lookup::TempFail(why.clone()),
    };
    let (dsn, text) = match forward_confirmed {
        false => (
            "4.7.1",
            format!("Client host rejected: cannot find your reverse hostname, [{ip}]"),
        ),
        true => (
            "4.7.25",
            format!("Client host rejected: cannot find your hostname, [{ip}]"),
        ),
    };
    match status {
        Lookup::Found(()) => Status::Dunno,
        Lookup::NotFound => state.refuse(request, reply(r.codes.unknown_client, dsn, &text)),
        Lookup::TempFail(_) => state.refuse(request, reply(450, dsn, &text)),
    }
}

/// Whether one of the reverse names resolves back to `ip`.
async fn confirmed(r: &Restrictions, names: &[String], ip: IpAddr) -> Lookup<()> {
    let mut failure = Lookup::NotFound;
    for name in names {
        match r.dns.addresses(name).await {
            Lookup::Found(ips) if ips.contains(&ip) => return Lookup::Found(()),
            Lookup::TempFail(why) => failure = Lookup::TempFail(why),
            _ => {}
        }
    }
    failure
}

/// `example.com.` → `example.com` (one trailing dot, not two: Postfix's `dup_if_truncate`).
pub(super) fn truncate_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(stripped) if !stripped.ends_with('.') => stripped,
        _ => name,
    }
}

/// Postfix's `valid_hostname`: labels of letters, digits, `-` and `_`, none empty, longer
/// than 63 or starting or ending with `-`; at most 255 bytes; not all numeric.
pub fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn valid_literal(name: &str) -> bool {
    let inner = &name[1..name.len() - 1];
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for good in ["mail.example.com", "localhost", "a-b.c_d.org", "x1"] {
            assert!(valid_hostname(good), "{good}");
        }
        for bad in [
            "",
            "-a.com",
            "a-.com",
            "a..com",
            "1.2.3.4",
            "a b",
            "ex@mple.com",
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
        assert!(valid_literal("[192.0.2.1]") && valid_literal("[IPv6:::1]"));
        assert!(!valid_literal("[999.1.1.1]") && !valid_literal("[::1]"));
        assert_eq!(truncate_dot("a.com."), "a.com");
        assert_eq!(truncate_dot("a.com.."), "a.com..");
    }

    #[test]
    fn replies_follow_the_reply_code_class() {
        assert_eq!(reply(504, "4.5.2", "x").summary(), "504 5.5.2 x");
        assert_eq!(reply(450, "5.7.1", "x").summary(), "450 4.7.1 x");
        assert_eq!(
            reply(200, "2.0.0", "x").summary(),
            "450 4.7.1 Service unavailable"
        );
        assert_eq!(reply(554, "5.7.1", "a\r\nb").summary(), "554 5.7.1 a  b");
    }
}
