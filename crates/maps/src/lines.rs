//! Postfix's logical lines: blank lines and `#` comments are skipped, and a line that starts
//! with white space continues the previous logical line.

use crate::Problem;

/// One logical line: the number of its first physical line and its text (continuations
/// joined by one space, outer white space trimmed).
pub(crate) struct Logical {
    pub line: usize,
    pub text: String,
}

/// The logical lines of `text`, and a problem for each continuation with nothing to continue.
pub(crate) fn logical_lines(text: &str, origin: &str) -> (Vec<Logical>, Vec<Problem>) {
    let mut out: Vec<Logical> = Vec::new();
    let mut problems = Vec::new();
    let mut open = false;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = raw.starts_with([' ', '\t']);
        match out.last_mut() {
            Some(last) if continues && open => {
                last.text.push(' ');
                last.text.push_str(trimmed);
            }
            _ if continues => problems.push(Problem {
                origin: origin.to_string(),
                line: n + 1,
                text: "a logical line must not start with white space".into(),
            }),
            _ => {
                out.push(Logical {
                    line: n + 1,
                    text: trimmed.to_string(),
                });
                open = true;
            }
        }
    }
    (out, problems)
}
