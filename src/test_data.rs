//! Deterministic test data for the unit tests (the mounted tests have
//! their own copy in tests/common/data.rs: integration tests cannot see
//! `cfg(test)` items of the library).

/// `len` bytes of xorshift64 noise from `seed`: incompressible, the same on
/// every machine, different for every seed.
pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1; // xorshift never leaves 0
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
