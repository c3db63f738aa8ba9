//! Postfix's delivery-time `$name` expansion (local(8)'s `local_expand` over
//! `mac_expand`), for `forward_path`: the names describe the recipient being delivered, not
//! configuration parameters. (`mailbox_command` is not expanded, as in Postfix: its `$` is
//! the shell's.) The filter also cleans the values of a command's environment.
//!
//! Names: `user home shell local extension recipient domain recipient_delimiter`
//! (`mailbox` is another name for `local`). Forms: `$name`, `${name}`, `$(name)`,
//! `${name?text}` (text when name is non-empty), `${name:text}` (text when it is empty),
//! `${name?{a}:{b}}`, and `$$` for a `$`. The text of a conditional is expanded in turn.
//!
//! A name with no value (no extension, an unknown name) expands to nothing and marks the
//! result [`Expansion::undefined`]: a `forward_path` item that uses one is skipped, which is
//! how Postfix's default `$home/.forward${recipient_delimiter}${extension}` applies only to
//! addresses with an extension.
//!
//! SECURITY: values come partly from the network (the extension, the domain). Each
//! substituted value goes through Postfix's default `forward_expansion_filter` (letters,
//! digits and `!@%-_=+:,./`; anything else becomes `_`), as does each value of a command's
//! environment (`command_expansion_filter`), so an extension like `x;rm -rf ~` cannot
//! become shell syntax.
//! The template itself is the administrator's and is used as written.

/// Postfix's default `command_expansion_filter` and `forward_expansion_filter`.
const ALLOWED: &str = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The recipient being delivered, as the expansion names see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub user: String,
    pub home: String,
    pub shell: String,
    /// The whole local part, extension included (`alice+news`).
    pub local: String,
    /// The extension without its delimiter (`news`), empty when there is none.
    pub extension: String,
    /// The delimiter this address used (`+`), empty when it has no extension.
    pub delimiter: String,
    pub recipient: String,
    pub domain: String,
}

impl Attributes {
    fn lookup(&self, name: &str) -> Option<&str> {
        let value = match name {
            "user" => &self.user,
            "home" => &self.home,
            "shell" => &self.shell,
            "local" | "mailbox" => &self.local,
            "extension" => &self.extension,
            "recipient_delimiter" => &self.delimiter,
            "recipient" => &self.recipient,
            "domain" => &self.domain,
            _ => return None,
        };
        Some(value.as_str()).filter(|v| !v.is_empty())
    }
}

/// The result of one expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expansion {
    pub text: String,
    /// An unconditional reference had no value.
    pub undefined: bool,
}

/// Expands `template`; `Err` says what is malformed about it.
pub(crate) fn expand(template: &str, attributes: &Attributes) -> Result<Expansion, String> {
    let mut expansion = Expansion {
        text: String::with_capacity(template.len()),
        undefined: false,
    };
    expand_into(template, attributes, &mut expansion, 0)?;
    Ok(expansion)
}

/// Conditionals inside conditionals; deeper is certainly a mistake.
const MAX_NESTING: usize = 10;

fn expand_into(
    template: &str,
    attributes: &Attributes,
    out: &mut Expansion,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_NESTING {
        return Err("too many nested ${...} forms".into());
    }
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.text.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        rest = match after.chars().next() {
            Some('$') => {
                out.text.push('$');
                &after[1..]
            }
            Some(open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                let end = matching(after, open, close)
                    .ok_or_else(|| format!("missing '{close}' in {template:?}"))?;
                reference(&after[1..end], attributes, out, depth)?;
                &after[end + 1..]
            }
            _ => {
                let len = name_length(after);
                if len == 0 {
                    return Err(format!("'$' without a name in {template:?} (write $$)"));
                }
                substitute(&after[..len], attributes, out);
                &after[len..]
            }
        };
    }
    out.text.push_str(rest);
    Ok(())
}

fn name_length(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

/// The byte index of the bracket closing the one `text` starts with.
fn matching(text: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(at);
            }
        }
    }
    None
}

/// The inside of `${...}`: `name`, `name?text`, `name:text`, `name?{a}:{b}`.
fn reference(
    inner: &str,
    attributes: &Attributes,
    out: &mut Expansion,
    depth: usize,
) -> Result<(), String> {
    let len = name_length(inner);
    let (name, tail) = inner.split_at(len);
    if name.is_empty() {
        return Err(format!("bad reference ${{{inner}}}: no name"));
    }
    let defined = attributes.lookup(name).is_some();
    let (when_defined, when_empty) = match tail.chars().next() {
        None => {
            substitute(name, attributes, out);
            return Ok(());
        }
        Some('?') => split_branches(&tail[1..])?,
        Some(':') => (None, Some(braced(&tail[1..]))),
        Some(other) => return Err(format!("bad reference ${{{inner}}}: unexpected {other:?}")),
    };
    match if defined { when_defined } else { when_empty } {
        Some(text) => expand_into(text, attributes, out, depth + 1),
        None => Ok(()),
    }
}

/// `a`, `{a}` or `{a}:{b}` after a `?`.
fn split_branches(text: &str) -> Result<(Option<&str>, Option<&str>), String> {
    if text.starts_with('{') {
        if let Some(end) = matching(text, '{', '}') {
            let rest = &text[end + 1..];
            let otherwise = match rest.strip_prefix(':') {
                Some(b) => Some(braced(b)),
                None if rest.is_empty() => None,
                None => return Err(format!("unexpected text after {{...}}: {rest:?}")),
            };
            return Ok((Some(&text[1..end]), otherwise));
        }
    }
    Ok((Some(text), None))
}

/// `{x}` → `x`; anything else as is.
fn braced(text: &str) -> &str {
    text.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text)
}

fn substitute(name: &str, attributes: &Attributes, out: &mut Expansion) {
    match attributes.lookup(name) {
        Some(value) => out.text.extend(value.chars().map(filtered)),
        None => out.undefined = true,
    }
}

/// A character of a substituted value: kept when Postfix's filter allows it, else `_`.
pub(crate) fn filtered(c: char) -> char {
    if ALLOWED.contains(c) {
        c
    } else {
        '_'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(extension: &str) -> Attributes {
        Attributes {
            user: "alice".into(),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
            local: if extension.is_empty() {
                "alice".into()
            } else {
                format!("alice+{extension}")
            },
            extension: extension.into(),
            delimiter: if extension.is_empty() { "" } else { "+" }.into(),
            recipient: "alice@example.org".into(),
            domain: "example.org".into(),
        }
    }

    fn text(template: &str, attributes: &Attributes) -> (String, bool) {
        let e = expand(template, attributes).unwrap();
        (e.text, e.undefined)
    }

    #[test]
    fn postfix_default_forward_path_uses_the_extension_only_when_there_is_one() {
        let default = "$home/.forward${recipient_delimiter}${extension}";
        assert_eq!(
            text(default, &alice("news")),
            ("/home/alice/.forward+news".into(), false)
        );
        assert!(text(default, &alice("")).1, "skipped without an extension");
        assert_eq!(
            text("$home/.forward", &alice("")),
            ("/home/alice/.forward".into(), false)
        );
    }

    #[test]
    fn every_name_and_form() {
        let a = alice("news");
        assert_eq!(
            text("$user $(shell) ${local} $mailbox $recipient $domain", &a).0,
            "alice /bin/bash alice+news alice+news alice@example.org example.org"
        );
        assert_eq!(text("${extension?-x $extension}", &a).0, "-x news");
        assert_eq!(text("${extension?-x $extension}", &alice("")).0, "");
        assert_eq!(text("${extension:none}", &alice("")).0, "none");
        assert_eq!(text("${extension:none}", &a).0, "");
        assert_eq!(text("${extension?{yes}:{no}}", &a).0, "yes");
        assert_eq!(text("${extension?{yes}:{no}}", &alice("")).0, "no");
        assert_eq!(text("cost $$5", &a), ("cost $5".into(), false));
        assert_eq!(text("$nosuchname", &a), (String::new(), true));
    }

    #[test]
    fn network_given_values_cannot_become_shell_syntax() {
        let mut a = alice("x;rm -rf ~`id`$(id)");
        a.domain = "evil\"domain".into();
        assert_eq!(text("-a $extension", &a).0, "-a x_rm_-rf___id___id_");
        assert_eq!(text("$domain", &a).0, "evil_domain");
        // The template itself is the administrator's and is kept as written.
        assert_eq!(text("a;b \"$user\"", &a).0, "a;b \"alice\"");
    }

    #[test]
    fn malformed_templates_are_errors_not_panics() {
        for bad in [
            "${home",
            "$",
            "a $ b",
            "${}",
            "${home!x}",
            "$(home",
            "${home?{a}x}",
        ] {
            assert!(expand(bad, &alice("")).is_err(), "{bad}");
        }
        let deep = format!("{}x{}", "${home?".repeat(20), "}".repeat(20));
        assert!(expand(&deep, &alice("")).is_err());
        for odd in ["é$home", "${home?é}", "$é", "${home:{}"] {
            let _ = expand(odd, &alice(""));
        }
    }
}
