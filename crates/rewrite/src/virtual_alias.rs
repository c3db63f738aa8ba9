//! `virtual_alias_maps` expansion (Postfix's cleanup_map1n): each result is looked up
//! again, depth first, until it has no entry or maps to itself (`a@x  a@x, b@x` keeps
//! `a@x` and adds `b@x`). An address that comes back to one of its own ancestors is a loop;
//! nesting deeper than `virtual_alias_recursion_limit` or more than
//! `virtual_alias_expansion_limit` results is an error too. Postfix defers the whole
//! message on these (4.6.0, and retries a table that will not fix itself); mailroom bounces
//! the one recipient with 5.4.6, as a mail loop is.

use crate::Rewriter;

/// Why an expansion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpansionError {
    /// A cycle, or deeper than `virtual_alias_recursion_limit`.
    Nesting,
    /// More than `virtual_alias_expansion_limit` addresses.
    Size,
}

impl ExpansionError {
    /// The bounce text (Postfix's warning words).
    pub fn text(self, table: &str, address: &str) -> String {
        match self {
            ExpansionError::Nesting => {
                format!("mail forwarding loop: unreasonable {table} nesting for {address}")
            }
            ExpansionError::Size => {
                format!("unreasonable {table} expansion size for {address}")
            }
        }
    }
}

impl Rewriter {
    /// The final recipients `address` expands to (itself when it has no entry), without
    /// duplicates, in order.
    pub fn expand(&self, address: &str) -> Result<Vec<String>, ExpansionError> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.expand_into(address, 0, &mut path, &mut out)?;
        Ok(out)
    }

    fn expand_into(
        &self,
        address: &str,
        depth: usize,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), ExpansionError> {
        let Some(results) = self.lookup(&self.virtual_alias, address, self.propagate_virtual)
        else {
            push_unique(out, address);
            return Ok(());
        };
        if depth >= self.recursion_limit {
            return Err(ExpansionError::Nesting);
        }
        path.push(address.to_ascii_lowercase());
        for result in results {
            if result.eq_ignore_ascii_case(address) {
                push_unique(out, &result);
            } else if path.contains(&result.to_ascii_lowercase()) {
                return Err(ExpansionError::Nesting);
            } else {
                self.expand_into(&result, depth + 1, path, out)?;
            }
            if out.len() > self.expansion_limit {
                return Err(ExpansionError::Size);
            }
        }
        path.pop();
        Ok(())
    }
}

fn push_unique(out: &mut Vec<String>, address: &str) {
    if !out.iter().any(|a| a.eq_ignore_ascii_case(address)) {
        out.push(address.to_string());
    }
}
