//! Deterministic test data, so a failure names a seed that reproduces it.

/// xorshift64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1) // xorshift never leaves 0
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform-enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `len` bytes that LZ4 cannot compress, different for every `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// `noise` for object number `tag`: tags are small consecutive integers,
/// so spread them over the seed space first.
pub fn tagged(tag: u64, len: usize) -> Vec<u8> {
    noise(tag.wrapping_mul(0x9E37_79B9_7F4A_7C15), len)
}

/// Bytes that LZ4 roughly halves: 16-byte runs of one byte between 16
/// bytes of noise, different in every block.
pub fn half_compressible(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let v = rng.next();
        out.extend(std::iter::repeat_n((v >> 8) as u8, 16));
        out.extend_from_slice(&rng.next().to_le_bytes());
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}
