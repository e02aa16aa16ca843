//! The one random generator of the engine: SplitMix64 (Steele, Lea & Flood 2014), with
//! Box–Muller for normal samples.
//!
//! Everything random (measurement noise, inpainting masks, solver noise, training crops and
//! noise) is drawn here from an explicit seed, never from LibTorch's global generator:
//! other threads of the process (a second solve in `serve`, training's loader threads) may
//! be drawing from that one at the same time, and its streams differ between devices. The
//! same seed gives the same numbers on every machine and device.

use tch::Tensor;

/// A tiny counter-based generator: the state advances by a fixed odd constant and each
/// output is a mix of the state.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `(0, 1]` with 53 random bits.
    pub fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (`n > 0`), by multiply-shift (bias below 2⁻⁶⁴·n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// `n` standard normal samples, in pairs from uniforms `u1 = 1 − U ∈ (0, 1]` (the log
    /// stays finite) and `u2 = U′ ∈ [0, 1)`. The stream of measurement noise, masks and
    /// training.
    pub fn normals(&mut self, n: usize) -> Vec<f64> {
        self.normal_pairs(n, |r| (1.0 - r.uniform(), r.uniform()))
    }

    /// `n` standard normal samples with both uniforms in `(0, 1]`: the stream the solvers
    /// have always drawn, kept so that every recorded result replays exactly.
    pub fn normals_open(&mut self, n: usize) -> Vec<f64> {
        self.normal_pairs(n, |r| (r.uniform_open0(), r.uniform_open0()))
    }

    fn normal_pairs(
        &mut self,
        n: usize,
        mut draw: impl FnMut(&mut Self) -> (f64, f64),
    ) -> Vec<f64> {
        let mut v = Vec::with_capacity(n + 1);
        while v.len() < n {
            let (u1, u2) = draw(self);
            let (a, b) = box_muller(u1, u2);
            v.push(a);
            v.push(b);
        }
        v.truncate(n);
        v
    }

    /// A float32 CPU tensor of standard normal samples ([`Self::normals`]).
    pub fn normal(&mut self, shape: &[i64]) -> Tensor {
        let v: Vec<f32> = self
            .normals(numel(shape))
            .into_iter()
            .map(|x| x as f32)
            .collect();
        Tensor::from_slice(&v).view(shape)
    }

    /// A float32 CPU tensor, uniform in `[-bound, bound)`.
    pub fn uniform_tensor(&mut self, shape: &[i64], bound: f64) -> Tensor {
        let v: Vec<f32> = (0..numel(shape))
            .map(|_| ((2.0 * self.uniform() - 1.0) * bound) as f32)
            .collect();
        Tensor::from_slice(&v).view(shape)
    }
}

/// Two independent standard normals from `u1 ∈ (0, 1]` and `u2 ∈ [0, 1]`.
fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    (r * t.cos(), r * t.sin())
}

/// Element count of a shape (0 for a negative or empty dimension).
pub fn numel(shape: &[i64]) -> usize {
    shape.iter().product::<i64>().max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed() {
        // The first outputs of SplitMix64 from seed 0 (the published reference values).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let a = SplitMix64::new(5).normals(5);
        let b = SplitMix64::new(5).normals(4);
        assert_eq!(&a[..4], &b[..]);
    }

    /// Bit patterns of the first five samples per seed, recorded from the three copies this
    /// module replaced (operators' measurement noise and training: `normals`; the solvers:
    /// `normals_open`, as f32): recorded results replay only while these hold.
    #[test]
    fn normal_streams_are_the_recorded_ones() {
        let want: [(u64, [u64; 5], [u32; 5]); 3] = [
            (
                0,
                [
                    13834535224895508943,
                    4605962005086401339,
                    4597368460397259108,
                    13809601935364593281,
                    13820518197597655701,
                ],
                [3202863069, 1045741727, 1076470663, 3204126899, 3212645673],
            ),
            (
                7,
                [
                    4607078604814668328,
                    4592205726881297386,
                    13834446717783940759,
                    13830869901750599013,
                    4571169713354589655,
                ],
                [1068414993, 1041497439, 3200976177, 3194556162, 999516255],
            ),
            (
                123456789,
                [
                    13826330907627076642,
                    4589795266800933216,
                    13827376041314693654,
                    13813924069512925442,
                    13817661703839563385,
                ],
                [3221126062, 1049131528, 3219577140, 3194564005, 3207044723],
            ),
        ];
        for (seed, normals, open) in want {
            let a: Vec<u64> = SplitMix64::new(seed)
                .normals(5)
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let b: Vec<u32> = SplitMix64::new(seed)
                .normals_open(5)
                .iter()
                .map(|&x| (x as f32).to_bits())
                .collect();
            assert_eq!(a, normals, "seed {seed}");
            assert_eq!(b, open, "seed {seed}");
        }
    }

    #[test]
    fn normals_have_unit_variance() {
        for v in [
            SplitMix64::new(1).normals(200_001),
            SplitMix64::new(1).normals_open(200_001),
        ] {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            assert!(
                mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
                "{mean} {var}"
            );
        }
    }
}
