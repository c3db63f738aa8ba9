//! ESMTP parameters of MAIL and RCPT (RFC 5321 section 4.1.2 `esmtp-param`): SIZE (RFC
//! 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET / ENVID / NOTIFY / ORCPT (RFC 3461) and
//! AUTH (RFC 4954). Pure; every parameter at most once; unknown ones are refused with 555.
//!
//! DSN values are kept decoded: ENVID as the xtext-decoded string, ORCPT as
//! `addr-type;decoded-address` (the form RFC 3464's `Original-Recipient:` field takes).

use crate::reply::Reply;

/// RFC 3461 section 4.4: ENVID is at most 100 characters.
const MAX_ENVID: usize = 100;
/// RFC 3461 section 4.2: ORCPT is at most 500 characters.
const MAX_ORCPT: usize = 500;

/// Parameters of a MAIL command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    /// BODY=8BITMIME (true) or 7BIT (false); `None` when absent.
    pub eight_bit: Option<bool>,
    pub smtputf8: bool,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// RFC 4954 AUTH=; accepted and ignored (we do not trust a client's claim).
    pub auth: Option<String>,
}

/// Parameters of a RCPT command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY` (upper case).
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

impl MailParams {
    pub fn is_empty(&self) -> bool {
        *self == MailParams::default()
    }
}

impl RcptParams {
    pub fn is_empty(&self) -> bool {
        *self == RcptParams::default()
    }
}

fn syntax(what: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Bad {what} parameter syntax"))
}

fn unsupported(key: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported option: {key}"))
}

fn duplicate(key: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Duplicate parameter: {key}"))
}

/// Splits `" K=V K2"` into `(KEY, Option<value>)` pairs; keys upper-cased.
fn split_params(text: &str) -> Result<Vec<(String, Option<&str>)>, Reply> {
    let mut out = Vec::new();
    for item in text.split(' ').filter(|s| !s.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c != '=' && (c.is_ascii_graphic() || !c.is_ascii()))
        });
        if !key_ok || !value_ok {
            return Err(Reply::new(501, "5.5.4", "Bad parameter syntax"));
        }
        let key = key.to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(duplicate(&key));
        }
        out.push((key, value));
    }
    Ok(out)
}

pub fn parse_mail_params(text: &str) -> Result<MailParams, Reply> {
    let mut params = MailParams::default();
    for (key, value) in split_params(text)? {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => params.size = Some(parse_size(v)?),
            ("BODY", Some(v)) => params.eight_bit = Some(parse_body(v)?),
            ("SMTPUTF8", None) => params.smtputf8 = true,
            ("RET", Some(v)) => params.ret = Some(parse_ret(v)?),
            ("ENVID", Some(v)) => params.envid = Some(parse_envid(v)?),
            ("AUTH", Some(v)) => params.auth = Some(decode_xtext(v).ok_or_else(|| syntax("AUTH"))?),
            ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) | ("SMTPUTF8", Some(_)) => {
                return Err(syntax(&key))
            }
            _ => return Err(unsupported(&key)),
        }
    }
    Ok(params)
}

pub fn parse_rcpt_params(text: &str) -> Result<RcptParams, Reply> {
    let mut params = RcptParams::default();
    for (key, value) in split_params(text)? {
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => params.notify = Some(parse_notify(v)?),
            ("ORCPT", Some(v)) => params.orcpt = Some(parse_orcpt(v)?),
            ("NOTIFY" | "ORCPT", None) => return Err(syntax(&key)),
            _ => return Err(unsupported(&key)),
        }
    }
    Ok(params)
}

fn parse_size(value: &str) -> Result<u64, Reply> {
    if value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax("SIZE"));
    }
    // A number too large for u64 is certainly over any limit.
    Ok(value.parse().unwrap_or(u64::MAX))
}

fn parse_body(value: &str) -> Result<bool, Reply> {
    match value.to_ascii_uppercase().as_str() {
        "8BITMIME" => Ok(true),
        "7BIT" => Ok(false),
        "BINARYMIME" => Err(Reply::new(
            555,
            "5.5.4",
            "Unsupported option: BODY=BINARYMIME",
        )),
        _ => Err(syntax("BODY")),
    }
}

fn parse_ret(value: &str) -> Result<String, Reply> {
    let upper = value.to_ascii_uppercase();
    match upper.as_str() {
        "FULL" | "HDRS" => Ok(upper),
        _ => Err(syntax("RET")),
    }
}

fn parse_envid(value: &str) -> Result<String, Reply> {
    if value.len() > MAX_ENVID {
        return Err(syntax("ENVID"));
    }
    decode_xtext(value).ok_or_else(|| syntax("ENVID"))
}

fn parse_notify(value: &str) -> Result<String, Reply> {
    let upper = value.to_ascii_uppercase();
    let items: Vec<&str> = upper.split(',').collect();
    let known = |i: &&str| matches!(*i, "SUCCESS" | "FAILURE" | "DELAY");
    let valid = match items.as_slice() {
        ["NEVER"] => true,
        list => list.iter().all(known) && !has_duplicates(list),
    };
    if valid {
        Ok(upper)
    } else {
        Err(syntax("NOTIFY"))
    }
}

fn has_duplicates(items: &[&str]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[i + 1..].contains(a))
}

/// `rfc822;a+2Bb@c` → `rfc822;a+b@c`. The decoded address must be printable ASCII, or
/// UTF-8 for `utf-8` addr-type (RFC 6533).
fn parse_orcpt(value: &str) -> Result<String, Reply> {
    if value.len() > MAX_ORCPT {
        return Err(syntax("ORCPT"));
    }
    let (kind, address) = value.split_once(';').ok_or_else(|| syntax("ORCPT"))?;
    let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let decoded = decode_xtext(address).filter(|a| !a.is_empty());
    match decoded {
        Some(address) if kind_ok => Ok(format!("{kind};{address}")),
        _ => Err(syntax("ORCPT")),
    }
}

/// RFC 3461 section 4: `+XX` hex escapes; other characters are `!`..`~` except `+` and `=`.
/// Non-ASCII is allowed (RFC 6533 utf-8-addr-xtext). Returns `None` on bad syntax or on a
/// decoded control character.
pub fn decode_xtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
                {
                    return None;
                }
                let byte = u8::from_str_radix(hex, 16).ok()?;
                if !(0x21..=0x7e).contains(&byte) && byte != b' ' {
                    return None;
                }
                out.push(byte);
                i += 3;
            }
            b'=' => return None,
            b if b.is_ascii_graphic() || b >= 0x80 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params_table() {
        let ok: &[(&str, MailParams)] = &[
            ("", MailParams::default()),
            (
                " SIZE=1000",
                MailParams {
                    size: Some(1000),
                    ..Default::default()
                },
            ),
            (
                "size=99999999999999999999",
                MailParams {
                    size: Some(u64::MAX),
                    ..Default::default()
                },
            ),
            (
                " BODY=8BITMIME SMTPUTF8",
                MailParams {
                    eight_bit: Some(true),
                    smtputf8: true,
                    ..Default::default()
                },
            ),
            (
                " BODY=7bit",
                MailParams {
                    eight_bit: Some(false),
                    ..Default::default()
                },
            ),
            (
                " RET=hdrs ENVID=QQ+2B1",
                MailParams {
                    ret: Some("HDRS".into()),
                    envid: Some("QQ+1".into()),
                    ..Default::default()
                },
            ),
            (
                " AUTH=<>",
                MailParams {
                    auth: Some("<>".into()),
                    ..Default::default()
                },
            ),
        ];
        for (input, expected) in ok {
            assert_eq!(
                parse_mail_params(input).as_ref(),
                Ok(expected),
                "input {input:?}"
            );
        }
        let bad: &[(&str, u16)] = &[
            (" SIZE=abc", 501),
            (" SIZE", 501),
            (" SIZE=1 SIZE=2", 501),
            (" BODY=BINARYMIME", 555),
            (" BODY=9BIT", 501),
            (" RET=ALL", 501),
            (" ENVID=a=b", 501),
            (" ENVID=+zz", 501),
            (" SMTPUTF8=yes", 501),
            (" XFOO=1", 555),
            (" =1", 501),
            (" A=", 501),
        ];
        for (input, code) in bad {
            let got = parse_mail_params(input).map_err(|r| r.code);
            assert_eq!(got, Err(*code), "input {input:?}");
        }
        let long_envid = format!(" ENVID={}", "a".repeat(101));
        assert!(parse_mail_params(&long_envid).is_err());
    }

    #[test]
    fn rcpt_params_table() {
        let p = parse_rcpt_params(" NOTIFY=success,delay ORCPT=rfc822;a+2Bb@c.org").unwrap();
        assert_eq!(p.notify.as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a+b@c.org"));
        assert_eq!(
            parse_rcpt_params(" NOTIFY=NEVER")
                .unwrap()
                .notify
                .as_deref(),
            Some("NEVER")
        );
        for bad in [
            " NOTIFY=NEVER,SUCCESS",
            " NOTIFY=SUCCESS,SUCCESS",
            " NOTIFY=SOMETIMES",
            " ORCPT=rfc822",
            " ORCPT=;a@b",
            " ORCPT=rfc822;",
            " ORCPT=rfc822;a+0Ab",
            " FOO",
        ] {
            assert!(parse_rcpt_params(bad).is_err(), "input {bad:?}");
        }
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("a+2Bb+3Dc").as_deref(), Some("a+b=c"));
        assert_eq!(decode_xtext("+2b"), None);
        assert_eq!(decode_xtext("+2"), None);
        assert_eq!(decode_xtext("+00"), None);
        assert_eq!(decode_xtext("é").as_deref(), Some("é"));
    }
}
