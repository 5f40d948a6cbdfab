//! Sizes as mount options and control-file commands write them: tmpfs's
//! `memparse` (decimal digits and an optional binary suffix), and the
//! percentage-of-RAM forms of `size=` and `pool_limit=`.

use super::PoolLimit;

/// tmpfs's `memparse`: decimal digits and an optional binary suffix
/// k, m, g, t, p, e (either case). `None` on anything else or on overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let digits_end = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = s[..digits_end].parse().ok()?;
    let shift = match &s[digits_end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `size=`'s form: a size, or a percentage of `ram` (tmpfs allows more than
/// 100 %, the memory being overcommitted; so do we).
pub(crate) fn parse_size_or_percent(s: &str, ram: u64) -> Option<u64> {
    if let Some(p) = s.strip_suffix('%') {
        let p: u64 = p.parse().ok()?;
        if p == 0 {
            return None;
        }
        return (ram / 100).checked_mul(p);
    }
    parse_size(s)
}

/// `SIZE` or `N%` of RAM, as `pool_limit=` and the control file's
/// `pool_limit` command take it. The range (non-zero, 1..=100 %) is
/// [`PoolLimit::check`]'s.
pub fn parse_pool_limit(v: &str) -> Option<PoolLimit> {
    let limit = match v.strip_suffix('%') {
        Some(p) => PoolLimit::Percent(p.parse::<u8>().ok()?),
        None => PoolLimit::Bytes(parse_size(v)?),
    };
    limit.check().ok().map(|()| limit)
}

/// A duration: digits with an optional unit s, m, h or d (a bare number is
/// seconds, as sleep(1) takes it). `None` on anything else or on overflow.
pub(crate) fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let digits_end = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let n: u64 = s[..digits_end].parse().ok()?;
    let unit = match &s[digits_end..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(unit).map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memparse_suffixes_and_overflow() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("16e"), None, "2^64 overflows");
        assert_eq!(parse_size("1.5g"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size_or_percent("25%", 400), Some(100));
        assert_eq!(parse_size_or_percent("0%", 400), None);
    }

    #[test]
    fn durations_in_seconds_minutes_hours_days() {
        use std::time::Duration;
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        for bad in ["", "m", "1.5m", "2w", "-1", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn pool_limits_are_non_zero_and_percentages_in_range() {
        assert_eq!(parse_pool_limit("1g"), Some(PoolLimit::Bytes(1 << 30)));
        assert_eq!(parse_pool_limit("20%"), Some(PoolLimit::Percent(20)));
        for bad in ["0", "0%", "101%", "lots", ""] {
            assert_eq!(parse_pool_limit(bad), None, "{bad}");
        }
    }
}
