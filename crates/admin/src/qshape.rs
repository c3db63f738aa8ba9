//! `qshape`: the age distribution of queued mail per recipient (or sender) domain, with
//! Postfix's exact algorithm and layout (auxiliary/qshape/qshape.pl).
//!
//! Inputs → outputs: messages (arrival time, sender, open recipients) → a [`Shape`] matrix,
//! computed where the messages are (in the daemon for a live queue, so only the matrix
//! crosses the control socket) → Postfix's text table or JSON.
//!
//! Buckets: with tick `t` minutes (`-t`, default 5) and `b` buckets (`-b`, default 10), the
//! columns are `T` (total), then ages `[0,t)`, `[t,2t)`, `[2t,4t)` … labelled by their upper
//! bound (`5 10 20 40 80 160 320 640 1280 1280+`); `-l` makes them linear. Rows: `TOTAL`,
//! then one per domain sorted by count (descending) then name length; `-p` adds parent
//! domains (`.example.com`) that have at least `-m` (default 5) subdomains; `-s` counts
//! sender domains instead of recipients. The domain column is 80 minus the count columns,
//! at least 18; a longer name is shown by its tail after `+`. Each recipient counts once, as
//! in Postfix (a message to three domains adds three).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// `-s`: sender domains.
    pub senders: bool,
    /// `-p`: parent-domain rollup.
    pub parents: bool,
    /// `-b`: bucket count.
    pub buckets: usize,
    /// `-t`: first bucket width in minutes.
    pub tick_minutes: u64,
    /// `-l`: linear buckets.
    pub linear: bool,
    /// `-m`: parents need this many subdomains to be shown.
    pub min_subdomains: u64,
    /// `-w`: output width (at least 80).
    pub width: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            senders: false,
            parents: false,
            buckets: 10,
            tick_minutes: 5,
            linear: false,
            min_subdomains: 5,
            width: 80,
        }
    }
}

/// The computed matrix: `headings[0]` is `T`; each row's `counts[0]` is its total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub headings: Vec<String>,
    pub rows: Vec<ShapeRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeRow {
    pub domain: String,
    pub counts: Vec<u64>,
}

/// Accumulates messages into counts.
pub struct Counter {
    options: Options,
    now: u64,
    counts: HashMap<String, Vec<u64>>,
    subdomains: HashMap<String, u64>,
}

const TOTAL: &str = "TOTAL";

impl Counter {
    pub fn new(mut options: Options, now: u64) -> Counter {
        options.buckets = options.buckets.max(1);
        options.tick_minutes = options.tick_minutes.max(1);
        Counter {
            options,
            now,
            counts: HashMap::new(),
            subdomains: HashMap::new(),
        }
    }

    /// Adds one message: its arrival time, sender and open recipients.
    pub fn add<'a>(
        &mut self,
        arrival_time: u64,
        sender: &str,
        recipients: impl Iterator<Item = &'a str>,
    ) {
        let bucket = self.bucket(arrival_time);
        if self.options.senders {
            self.add_address(sender, bucket);
        } else {
            for r in recipients {
                self.add_address(r, bucket);
            }
        }
    }

    /// Whether [`Counter::add`] counts sender domains (`-s`) rather than recipients'.
    pub fn counts_senders(&self) -> bool {
        self.options.senders
    }

    /// The column a message of this arrival time is counted in (1 = youngest).
    pub fn bucket(&self, arrival_time: u64) -> usize {
        let age = self.now as f64 - arrival_time as f64;
        let m = age / (60.0 * self.options.tick_minutes as f64);
        if m < 1.0 {
            return 1;
        }
        let b = if self.options.linear {
            (m + 1.0) as usize
        } else {
            2 + m.log2() as usize
        };
        b.min(self.options.buckets)
    }

    fn add_address(&mut self, address: &str, bucket: usize) {
        self.add_counted(address, bucket, 1);
    }

    /// Adds `n` addresses of the same domain and bucket at once: the same counts as `n`
    /// single adds, whatever the order (a caller that has tallied by address first pays the
    /// domain's normalization once, not per message).
    pub fn add_counted(&mut self, address: &str, bucket: usize, n: u64) {
        let width = self.options.buckets + 1;
        if n == 0 {
            return;
        }
        let total = match self.counts.get_mut(TOTAL) {
            Some(total) => total,
            None => self
                .counts
                .entry(TOTAL.to_string())
                .or_insert(vec![0; width]),
        };
        total[0] += n;
        total[bucket] += n;
        let mut domain = normalize(address);
        let mut new = false;
        loop {
            let row = match self.counts.get_mut(&domain) {
                Some(row) => row,
                None => self.counts.entry(domain.clone()).or_insert(vec![0; width]),
            };
            row[0] += n;
            let old = row[0] > n;
            row[bucket] += n;
            if new {
                *self.subdomains.entry(domain.clone()).or_insert(0) += 1;
            }
            new = !old;
            match (self.options.parents, parent(&domain)) {
                (true, Some(p)) => domain = p,
                _ => break,
            }
        }
    }

    pub fn finish(self) -> Shape {
        let mut headings = Vec::new();
        let mut tick = 0u64;
        for i in 0..=self.options.buckets {
            headings.push(if i == 0 {
                "T".to_string()
            } else if i == self.options.buckets {
                format!("{tick}+")
            } else {
                tick.to_string()
            });
            if i + 1 < self.options.buckets {
                tick += if tick > 0 && !self.options.linear {
                    tick
                } else {
                    self.options.tick_minutes
                };
            }
        }
        let mut rows: Vec<ShapeRow> = self
            .counts
            .into_iter()
            .filter(|(d, _)| {
                !d.starts_with('.')
                    || self.subdomains.get(d).copied().unwrap_or(0) >= self.options.min_subdomains
            })
            .map(|(domain, counts)| ShapeRow { domain, counts })
            .collect();
        rows.sort_by(|a, b| {
            b.counts[0]
                .cmp(&a.counts[0])
                .then(a.domain.len().cmp(&b.domain.len()))
                .then((a.domain != TOTAL).cmp(&(b.domain != TOTAL)))
                .then(a.domain.cmp(&b.domain))
        });
        if rows.is_empty() {
            rows.push(ShapeRow {
                domain: TOTAL.into(),
                counts: vec![0; self.options.buckets + 1],
            });
        }
        Shape { headings, rows }
    }
}

/// qshape.pl's domain of an address: lower case, after the last `@`, `..` folded, one
/// leading and one trailing dot removed; the null sender is `MAILER-DAEMON`.
pub fn normalize(address: &str) -> String {
    let lower = address.to_ascii_lowercase();
    if lower.is_empty() {
        return "MAILER-DAEMON".into();
    }
    let domain = match lower.rfind('@') {
        Some(at) => &lower[at + 1..],
        None => &lower[..],
    };
    let folded = domain.replace("..", ".");
    let mut d = folded.as_str();
    if d.len() > 1 {
        d = d.strip_prefix('.').unwrap_or(d);
    }
    if d.len() > 1 {
        d = d.strip_suffix('.').unwrap_or(d);
    }
    d.to_string()
}

/// The `-p` parent of a domain: `.example.com` for `mx.example.com` or `.mx.example.com`;
/// `None` for a domain whose parent would be a top-level domain.
fn parent(domain: &str) -> Option<String> {
    let rest = domain.strip_prefix('.').unwrap_or(domain);
    let dot = rest.find('.')?;
    if dot == 0 {
        return None;
    }
    let tail = &rest[dot + 1..];
    tail.contains('.').then(|| format!(".{tail}"))
}

/// Postfix's text table.
pub fn write_text(out: &mut impl Write, shape: &Shape, width: usize) -> io::Result<()> {
    let totals = &shape
        .rows
        .iter()
        .find(|r| r.domain == TOTAL)
        .map(|r| r.counts.clone())
        .unwrap_or_else(|| vec![0; shape.headings.len()]);
    let mut widths = Vec::new();
    let mut domain_width = width.max(80) as i64;
    for (i, h) in shape.headings.iter().enumerate() {
        let mut l = totals.get(i).copied().unwrap_or(0).to_string().len();
        if h.len() >= l {
            l = h.len();
        }
        let l = if l > 2 { l + 1 } else { 3 };
        widths.push(l);
        domain_width -= l as i64;
    }
    let dw = domain_width.max(18) as usize;
    let headings: Vec<&str> = shape.headings.iter().map(String::as_str).collect();
    write_line(out, "", &headings, &widths, dw)?;
    for row in &shape.rows {
        let counts: Vec<String> = row.counts.iter().map(u64::to_string).collect();
        let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
        write_line(out, &row.domain, &counts, &widths, dw)?;
    }
    Ok(())
}

fn write_line(
    out: &mut impl Write,
    domain: &str,
    cells: &[&str],
    widths: &[usize],
    dw: usize,
) -> io::Result<()> {
    let len = domain.chars().count();
    let tail = |n: usize| domain.chars().skip(len - n).collect::<String>();
    if len > dw {
        if domain.starts_with('.') {
            write!(out, ".+{}", tail(dw - 2))?;
        } else {
            write!(out, "+{}", tail(dw - 1))?;
        }
    } else {
        write!(out, "{domain:>dw$}")?;
    }
    for (cell, w) in cells.iter().zip(widths) {
        write!(out, "{cell:>w$}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests;
