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

/// `len` bytes of text-like data: words picked by noise from `seed`, so LZ4
/// and zstd both find something, and zstd more.
pub(crate) fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "block ", "zspage ", "pool ", "the ", "of ", "lz4 ", "\n", "idle ",
    ];
    let mut out = Vec::with_capacity(len + 8);
    // noise() drops the seed's low bit: spread seeds so each differs.
    for r in noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), len) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[usize::from(r) % 8].as_bytes());
    }
    out.truncate(len);
    out
}
