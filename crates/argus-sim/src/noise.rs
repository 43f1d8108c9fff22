//! Deterministic randomness: SplitMix64 streams derived from the seed and a name, so that each
//! feed's noise depends on the seed and the feed alone, never on the order feeds are visited.

/// FNV-1a of a name, to derive independent streams.
pub(crate) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream `name` of `seed`.
    pub(crate) fn new(seed: u64, name: &str) -> Self {
        let mut rng = Rng(seed ^ fnv(name).rotate_left(17));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Bounded bell-shaped noise in [-1, 1] (mean of three uniforms, rescaled).
    pub(crate) fn noise(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() - 1.5) / 1.5
    }
}
