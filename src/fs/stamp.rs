//! Timestamps as an inode stores them: whole seconds and nanoseconds since
//! the epoch in 12 bytes, where a `SystemTime` takes 16 (an i64 and a u32
//! padded to 8-byte alignment). Four per inode, so this saves 16 bytes per
//! file. The range is `SystemTime`'s on Linux (an i64 of seconds, before
//! and after 1970), so every time the API accepts round-trips exactly.
//!
//! ctime and crtime are never set from user input: only the clock stamps
//! them (zsfs's own, or the kernel's `current_time()` in a SETATTR under
//! the writeback cache; utimensat cannot set them). The kernel's clock is
//! an i64 of nanoseconds (`ktime_t`; `settimeofday` refuses times past
//! 2262 or before 1970), so a [`ClockStamp`], that i64 in 8 bytes, holds
//! every time they can take exactly. Two of those instead of two `Stamp`s
//! are what brings an inode to a 144-byte malloc chunk from 160.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (negative before it) and 0..1e9 nanoseconds;
/// packed to 4-byte alignment so that four of them take 48 bytes.
#[repr(C, packed(4))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Stamp {
    secs: i64,
    nanos: u32,
}

impl Stamp {
    /// Whole seconds since the epoch, rounded down.
    pub(crate) fn secs(self) -> i64 {
        self.secs
    }
}

impl From<SystemTime> for Stamp {
    fn from(t: SystemTime) -> Stamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Stamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                // `d` before the epoch: floor to whole seconds, so that the
                // nanoseconds count forward as in a timespec.
                let d = e.duration();
                let mut secs = -i128::from(d.as_secs());
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Stamp {
                    secs: secs as i64,
                    nanos,
                }
            }
        }
    }
}

impl From<Stamp> for SystemTime {
    fn from(s: Stamp) -> SystemTime {
        let (secs, nanos) = (s.secs, s.nanos);
        let whole = Duration::from_secs(secs.unsigned_abs());
        let t = if secs >= 0 {
            UNIX_EPOCH + whole
        } else {
            UNIX_EPOCH - whole
        };
        t + Duration::from_nanos(u64::from(nanos))
    }
}

/// A clock reading: nanoseconds since the epoch in an i64 (1677 to 2262,
/// the kernel clock's own range; a time outside it is clamped), packed to
/// 4-byte alignment like `Stamp`.
#[repr(C, packed(4))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct ClockStamp(i64);

const NANOS: i128 = 1_000_000_000;

impl From<Stamp> for ClockStamp {
    fn from(s: Stamp) -> ClockStamp {
        let ns = i128::from(s.secs) * NANOS + i128::from(s.nanos);
        ClockStamp(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }
}

impl From<ClockStamp> for Stamp {
    fn from(c: ClockStamp) -> Stamp {
        let ns = c.0;
        Stamp {
            secs: ns.div_euclid(NANOS as i64),
            nanos: ns.rem_euclid(NANOS as i64) as u32,
        }
    }
}

impl From<SystemTime> for ClockStamp {
    fn from(t: SystemTime) -> ClockStamp {
        Stamp::from(t).into()
    }
}

impl From<ClockStamp> for SystemTime {
    fn from(c: ClockStamp) -> SystemTime {
        Stamp::from(c).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_stamps_hold_the_kernel_clock_range_exactly() {
        let max = UNIX_EPOCH + Duration::from_nanos(i64::MAX as u64);
        let min = UNIX_EPOCH - Duration::from_nanos(i64::MAX as u64) - Duration::from_nanos(1);
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_765_000_000, 999_999_999),
            UNIX_EPOCH - Duration::new(3, 1),
            max,
            min,
        ] {
            assert_eq!(SystemTime::from(ClockStamp::from(t)), t, "{t:?}");
            assert_eq!(Stamp::from(ClockStamp::from(t)), Stamp::from(t));
        }
        // Outside it (no kernel clock reads so): clamped, not wrapped.
        let far = UNIX_EPOCH + Duration::new(1 << 40, 0);
        assert_eq!(SystemTime::from(ClockStamp::from(far)), max);
        assert_eq!(std::mem::size_of::<ClockStamp>(), 8);
    }

    #[test]
    fn round_trips_and_orders_like_system_time() {
        let ts = [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(0, 1),
            UNIX_EPOCH - Duration::new(86_400 * 365 * 300, 999_999_999),
            UNIX_EPOCH + Duration::new(1 << 40, 5),
            UNIX_EPOCH - Duration::new(1 << 40, 0),
        ];
        for a in ts {
            assert_eq!(SystemTime::from(Stamp::from(a)), a, "{a:?}");
            for b in ts {
                assert_eq!(Stamp::from(a).cmp(&Stamp::from(b)), a.cmp(&b));
            }
        }
        assert_eq!(Stamp::from(UNIX_EPOCH - Duration::new(0, 1)).secs(), -1);
        assert_eq!(std::mem::size_of::<[Stamp; 4]>(), 48);
    }
}
