//! The reclaim policy as small named predicates: when to write back and how
//! much. Pure functions of numbers, so each rule reads (and tests) alone.

use std::time::Duration;

/// How often the thread looks at memory pressure when nothing wakes it: a
/// PSI avg10 window moves little faster than this.
pub(super) const POLL: Duration = Duration::from_secs(1);
/// Rewrite sparse records once this much of the backing file is dead:
/// below it the rewrite costs more I/O than the disk space is worth.
pub(super) const REWRITE_DEAD_BYTES: u64 = 1 << 20;
/// Under system pressure, write back 1/`PRESSURE_SHARE` of the pool per poll:
/// enough to matter within seconds, not so much one poll empties the pool.
pub(super) const PRESSURE_SHARE: u64 = 8;

/// The pages the pool should be brought under once over its limit
/// (hysteresis): `pct` percent of `limit`, without overflow.
pub(super) fn accept_target(limit: u64, pct: u8) -> u64 {
    limit / 100 * u64::from(pct) + limit % 100 * u64::from(pct) / 100
}

/// Whether the limit asks for writeback now: there is one, and an
/// allocation hit it or the pool is above it.
pub(super) fn over_limit(used: u64, limit: u64, hit: bool) -> bool {
    limit != u64::MAX && (hit || used > limit)
}

/// Pages to write back under system memory pressure (0: none held).
pub(super) fn pressure_goal(used: u64) -> u64 {
    if used == 0 {
        0
    } else {
        (used / PRESSURE_SHARE).max(1)
    }
}

/// Whether enough of the backing file is dead to rewrite its sparse records.
pub(super) fn worth_rewriting(dead_bytes: u64) -> bool {
    dead_bytes >= REWRITE_DEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates() {
        assert_eq!(accept_target(1000, 90), 900);
        assert_eq!(accept_target(u64::MAX - 1, 100), u64::MAX - 1);
        assert_eq!(accept_target(150, 50), 75);
        assert!(!over_limit(10, u64::MAX, true), "no limit, nothing to do");
        assert!(over_limit(10, 100, true));
        assert!(over_limit(101, 100, false));
        assert!(!over_limit(100, 100, false));
        assert_eq!(
            (pressure_goal(0), pressure_goal(3), pressure_goal(80)),
            (0, 1, 10)
        );
        assert!(worth_rewriting(1 << 20) && !worth_rewriting((1 << 20) - 1));
    }
}
