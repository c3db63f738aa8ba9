//! Durations as operators type them (`--older-than 2h`, `30d`) and ages as people read them.
//!
//! Inputs → outputs: `"90s" | "15m" | "2h" | "30d" | "1w" | "3600"` → seconds; seconds →
//! `"3d 4h"`. Pure functions, no I/O; trusts nothing (bad input is an error string).

/// Parses a duration: a number with an optional unit `s`, `m`, `h`, `d`, `w`.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (use e.g. 90s, 15m, 2h, 30d, 1w)"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("bad duration unit in {text:?} (s, m, h, d or w)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// A short human age: `45s`, `12m`, `3h 5m`, `4d 2h`.
pub fn human_age(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("15m"), Ok(900));
        assert_eq!(parse_seconds("2h"), Ok(7200));
        assert_eq!(parse_seconds("30d"), Ok(30 * 86_400));
        assert_eq!(parse_seconds("1w"), Ok(604_800));
        assert!(parse_seconds("2x").is_err());
        assert!(parse_seconds("h").is_err());
        assert!(parse_seconds("").is_err());
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(720), "12m");
        assert_eq!(human_age(3 * 3600 + 300), "3h 5m");
        assert_eq!(human_age(4 * 86_400 + 7200), "4d 2h");
    }
}
