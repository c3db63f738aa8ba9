//! `cidr:` tables (Postfix's cidr_table(5)): `network/prefix result` or `address result`,
//! tried in order against a client address; the first network that holds it wins.

use std::net::IpAddr;

use crate::lines::logical_lines;
use crate::text::problem;
use crate::MapError;

#[derive(Debug)]
struct Network {
    base: IpAddr,
    prefix: u8,
    result: String,
}

#[derive(Debug)]
pub(crate) struct CidrTable {
    rules: Vec<Network>,
}

impl CidrTable {
    pub(crate) fn parse(text: &str, origin: &str) -> Result<CidrTable, MapError> {
        let (lines, mut problems) = logical_lines(text, origin);
        let mut rules = Vec::new();
        for l in lines {
            match parse_rule(&l.text) {
                Ok(rule) => rules.push(rule),
                Err(e) => problems.push(problem(origin, l.line, &e)),
            }
        }
        if problems.is_empty() {
            Ok(CidrTable { rules })
        } else {
            Err(MapError::Syntax(problems))
        }
    }

    pub(crate) fn lookup(&self, key: &str) -> Option<&str> {
        let addr: IpAddr = unbracket(key).parse().ok()?;
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.rules
            .iter()
            .find(|n| contains(n, addr))
            .map(|n| n.result.as_str())
    }
}

fn unbracket(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

fn parse_rule(text: &str) -> Result<Network, String> {
    let (pattern, result) = text
        .split_once(char::is_whitespace)
        .ok_or("expected format: network/prefix result")?;
    let (addr, prefix) = match pattern.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (pattern, None),
    };
    let base: IpAddr = unbracket(addr)
        .parse()
        .map_err(|_| format!("bad address pattern: \"{pattern}\""))?;
    let max = if base.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("bad network prefix in \"{pattern}\""))?,
    };
    if mask(base, prefix) != base {
        return Err(format!("non-null host address bits in \"{pattern}\", perhaps you should use \"{}/{prefix}\" instead", mask(base, prefix)));
    }
    Ok(Network {
        base,
        prefix,
        result: result.trim().to_string(),
    })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

fn contains(n: &Network, addr: IpAddr) -> bool {
    n.base.is_ipv4() == addr.is_ipv4() && mask(addr, n.prefix) == n.base
}
