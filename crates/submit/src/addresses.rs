//! Addresses out of an RFC 5322 address list (`To:` values, sendmail arguments): display
//! names, comments and group syntax are dropped, `<...>` wins over the text around it.
//!
//! Tolerant rather than strict: this feeds `sendmail -t`, whose input is whatever a script
//! printed. Anything that yields no address is skipped, never an error.

/// The addresses in `list`, in order: `Ann <a@x>, "Doe, J" <j@y>, b@z (Bob), team: c@w;`
/// gives `a@x`, `j@y`, `b@z`, `c@w`.
pub fn parse_address_list(list: &str) -> Vec<String> {
    let mut parser = Parser::default();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => parser.quoted(&mut chars),
            '(' => skip_comment(&mut chars),
            '<' => parser.angle(&mut chars),
            // `name:` opens a group: what came before was its display name.
            ':' if parser.angle.is_none() => parser.text.clear(),
            ',' | ';' => parser.finish(),
            c if c.is_whitespace() => {}
            c => parser.text.push(c),
        }
    }
    parser.finish();
    parser.found
}

#[derive(Default)]
struct Parser {
    /// Bare addr-spec text of the current mailbox, whitespace removed.
    text: String,
    /// The `<...>` part of the current mailbox, if it had one.
    angle: Option<String>,
    found: Vec<String>,
}

impl Parser {
    fn quoted(&mut self, chars: &mut std::str::Chars<'_>) {
        self.text.push('"');
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    self.text.push('\\');
                    self.text.extend(chars.next());
                }
                '"' => break,
                c => self.text.push(c),
            }
        }
        self.text.push('"');
    }

    fn angle(&mut self, chars: &mut std::str::Chars<'_>) {
        let inside: String = chars.by_ref().take_while(|&c| c != '>').collect();
        let inside: String = inside.chars().filter(|c| !c.is_whitespace()).collect();
        // An obsolete source route `<@relay:user@host>` keeps only `user@host`.
        let address = match inside.strip_prefix('@') {
            Some(route) => route.split_once(':').map_or("", |(_, a)| a).to_string(),
            None => inside,
        };
        self.angle = Some(address);
    }

    fn finish(&mut self) {
        let text = std::mem::take(&mut self.text);
        let address = self.angle.take().unwrap_or(text);
        if !address.is_empty() {
            self.found.push(address);
        }
    }
}

fn skip_comment(chars: &mut std::str::Chars<'_>) {
    let mut depth = 1;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("a@x", &["a@x"]),
            ("Ann <a@x>, b@y", &["a@x", "b@y"]),
            ("\"Doe, John\" <j@d>", &["j@d"]),
            ("b@z (Bob, the builder)", &["b@z"]),
            ("team: c@w, d@w;, e@v", &["c@w", "d@w", "e@v"]),
            ("undisclosed-recipients:;", &[]),
            ("\"john doe\"@example.com", &["\"john doe\"@example.com"]),
            ("<@relay.example:user@host>", &["user@host"]),
            ("root", &["root"]),
            (" , ,, ", &[]),
            ("<>", &[]),
            ("Broken <a@x", &["a@x"]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_address_list(input), *expected, "input {input:?}");
        }
    }
}
