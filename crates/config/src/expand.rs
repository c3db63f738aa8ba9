//! Postfix-style `$name` expansion inside parameter values.
//!
//! Syntax (a subset of Postfix's `mac_expand`): `$name`, `${name}` and `$(name)` are replaced
//! by the value of parameter `name`; `$$` is a literal `$`. A name is letters, digits and `_`.
//! Postfix's conditional forms (`${name?text}`, `${name:text}`) are not supported and are
//! reported as errors rather than passed through, with one exception: `${stress?{x}:{y}}`
//! is kept as written, because `stress` is not a parameter but the SMTP server's overload
//! state at run time; the parameters that may depend on it parse it (`units::parse_stressed`).
//!
//! This module only scans text; looking names up (and catching reference cycles) is the
//! caller's job, through the `lookup` closure.

/// Why a template could not be expanded.
#[derive(Debug, PartialEq)]
pub(crate) enum ExpandError<E> {
    /// The template itself is malformed; the string says how.
    Syntax(String),
    /// `lookup` refused a name (unknown parameter, cycle, or a bad referenced value).
    Lookup(E),
}

/// Replaces every reference in `template` by `lookup(name)`.
pub(crate) fn expand<E>(
    template: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, ExpandError<E>> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        if let Some(end) = stress_conditional(after) {
            out.push('$');
            out.push_str(&after[..end]);
            rest = &after[end..];
            continue;
        }
        let (name, tail) = reference(after).map_err(ExpandError::Syntax)?;
        out.push_str(&lookup(name).map_err(ExpandError::Lookup)?);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// The parameter name when `item` is exactly one reference (`$name`, `${name}`, `$(name)`),
/// so a list item like `$alias_maps` can splice in the whole referenced list.
pub(crate) fn sole_reference(item: &str) -> Option<&str> {
    let after = item.strip_prefix('$')?;
    match reference(after) {
        Ok((name, "")) => Some(name),
        _ => None,
    }
}

/// The length of a `{stress?...}` or `{stress:...}` conditional after a `$` (braces
/// balanced), or `None` when `after` is not one.
fn stress_conditional(after: &str) -> Option<usize> {
    if !after.starts_with("{stress?") && !after.starts_with("{stress:") {
        return None;
    }
    let mut depth = 0usize;
    for (at, c) in after.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses the reference that follows a `$`: returns the name and the text after it.
fn reference(after: &str) -> Result<(&str, &str), String> {
    let closing = match after.chars().next() {
        Some('{') => Some('}'),
        Some('(') => Some(')'),
        _ => None,
    };
    let (name, tail) = match closing {
        Some(close) => {
            let end = after
                .find(close)
                .ok_or_else(|| format!("unterminated ${}{close} reference", &after[..1]))?;
            (&after[1..end], &after[end + 1..])
        }
        None => {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            after.split_at(end)
        }
    };
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(
            "bad $ reference: expected $name, ${name} or $(name) (write $$ for a literal $)"
                .to_string(),
        );
    }
    Ok((name, tail))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Result<String, String> {
        match name {
            "myhostname" => Ok("mx.example.com".into()),
            "mydomain" => Ok("example.com".into()),
            other => Err(format!("unknown {other}")),
        }
    }

    #[test]
    fn expands_all_reference_forms() {
        let table = [
            ("plain", "plain"),
            ("$myhostname", "mx.example.com"),
            ("localhost.$mydomain", "localhost.example.com"),
            ("${mydomain}x", "example.comx"),
            ("$(mydomain).", "example.com."),
            ("a$$b", "a$b"),
            ("$myhostname/$mydomain", "mx.example.com/example.com"),
        ];
        for (template, expected) in table {
            assert_eq!(
                expand(template, lookup),
                Ok(expected.to_string()),
                "{template}"
            );
        }
    }

    #[test]
    fn reports_syntax_and_lookup_errors() {
        for bad in ["$", "a $ b", "${mydomain", "${}", "${my-domain}", "$-x"] {
            assert!(
                matches!(expand(bad, lookup), Err(ExpandError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            expand("$nosuch", lookup),
            Err(ExpandError::Lookup("unknown nosuch".to_string()))
        );
    }

    #[test]
    fn keeps_stress_conditionals_for_the_parameter_to_parse() {
        assert_eq!(
            expand("${stress?{10}:{300}}s", lookup),
            Ok("${stress?{10}:{300}}s".to_string())
        );
        assert_eq!(
            expand("${stress?{1}:{$mydomain}}", lookup),
            Ok("${stress?{1}:{$mydomain}}".to_string())
        );
        assert!(matches!(
            expand("${stress?{10}", lookup),
            Err(ExpandError::Syntax(_))
        ));
    }

    #[test]
    fn recognises_a_sole_reference() {
        assert_eq!(sole_reference("$alias_maps"), Some("alias_maps"));
        assert_eq!(sole_reference("${alias_maps}"), Some("alias_maps"));
        assert_eq!(sole_reference("x$alias_maps"), None);
        assert_eq!(sole_reference("$alias_maps/x"), None);
        assert_eq!(sole_reference("$$"), None);
    }
}
