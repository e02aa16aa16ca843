//! Noise schedules in the variance-exploding (VE) form `x = x0 + σ n`.
//!
//! - DDPM linear betas (Ho et al. 2020, `β_t` from 1e-4 to 0.02 over 1000 steps), converted to
//!   VE noise levels `σ_t = √((1 − ᾱ_t)/ᾱ_t)` (docs/derivation.md, "Pretrained DDPM networks
//!   as VE denoisers"). Between table entries `t(σ)` is linear in `log σ`, so a network whose
//!   timestep embedding takes real `t` can be queried at any σ in its range.
//! - Karras et al. 2022 ("Elucidating the design space…", eq. 5) spacing with ρ = 7.
//! - Evenly spaced subsets of the network's own discrete steps.
//!
//! Plain `f64` maths, testable without tensors.

/// A discrete VP schedule seen through its VE noise levels `σ_t`, `t = 0 … T−1` (ascending).
#[derive(Clone, Debug)]
pub struct VpSchedule {
    sigmas: Vec<f64>,
    log_sigmas: Vec<f64>,
}

/// `ᾱ_t = Π_{s ≤ t} (1 − β_s)` for `β_t` linear from `beta_start` to `beta_end` over `steps`
/// steps, in f64: the one derivation of the DDPM schedule (sampling uses its σ, training
/// its ᾱ).
pub fn linear_alphas_cumprod(beta_start: f64, beta_end: f64, steps: usize) -> Vec<f64> {
    let mut alpha_bar = 1.0;
    (0..steps)
        .map(|i| {
            let beta = if steps > 1 {
                beta_start + (beta_end - beta_start) * i as f64 / (steps - 1) as f64
            } else {
                beta_start
            };
            alpha_bar *= 1.0 - beta;
            alpha_bar
        })
        .collect()
}

impl VpSchedule {
    /// The schedule of a DDPM with `β_t` linear from `beta_start` to `beta_end` over `steps`
    /// steps (guided-diffusion's `linear` schedule when steps = 1000).
    pub fn linear(beta_start: f64, beta_end: f64, steps: usize) -> Self {
        let sigmas = linear_alphas_cumprod(beta_start, beta_end, steps)
            .into_iter()
            .map(|ab| ((1.0 - ab) / ab).sqrt())
            .collect();
        Self::from_sigmas(sigmas)
    }

    /// The schedule of the guided-diffusion networks we load: linear betas 1e-4 … 0.02, 1000 steps.
    pub fn ddpm() -> Self {
        Self::linear(1e-4, 0.02, 1000)
    }

    /// A schedule from its VE noise levels; they must be positive and strictly increasing
    /// (every `β_t > 0` schedule is).
    pub fn from_sigmas(sigmas: Vec<f64>) -> Self {
        let log_sigmas = sigmas.iter().map(|s| s.ln()).collect();
        VpSchedule { sigmas, log_sigmas }
    }

    /// Number of discrete steps T.
    pub fn len(&self) -> usize {
        self.sigmas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigmas.is_empty()
    }

    /// `σ_t` for every discrete `t`, ascending.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// `σ_0`, the smallest noise level.
    pub fn sigma_min(&self) -> f64 {
        self.sigmas.first().copied().unwrap_or(0.0)
    }

    /// `σ_{T−1}`, the largest noise level.
    pub fn sigma_max(&self) -> f64 {
        self.sigmas.last().copied().unwrap_or(0.0)
    }

    /// `σ(t)` for real `t` in `[0, T−1]` (clamped), linear in `log σ` between entries.
    pub fn sigma_at(&self, t: f64) -> f64 {
        let n = self.sigmas.len();
        if n == 0 {
            return 0.0;
        }
        let t = t.clamp(0.0, (n - 1) as f64);
        let lo = (t.floor() as usize).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        let w = t - lo as f64;
        ((1.0 - w) * self.log_sigmas[lo] + w * self.log_sigmas[hi]).exp()
    }

    /// The real timestep whose noise level is σ: the inverse of `sigma_at`, clamped to
    /// `[0, T−1]` outside the table.
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        let n = self.log_sigmas.len();
        if n < 2 || sigma.is_nan() || sigma <= 0.0 {
            return 0.0;
        }
        let ls = sigma.ln();
        if ls <= self.log_sigmas[0] {
            return 0.0;
        }
        if ls >= self.log_sigmas[n - 1] {
            return (n - 1) as f64;
        }
        // First index whose log σ exceeds ls; the bracket is [hi − 1, hi].
        let hi = self
            .log_sigmas
            .partition_point(|&v| v <= ls)
            .clamp(1, n - 1);
        let lo = hi - 1;
        let w = (ls - self.log_sigmas[lo]) / (self.log_sigmas[hi] - self.log_sigmas[lo]);
        lo as f64 + w
    }

    /// `ᾱ_t` of the VP form for a VE noise level: `1 / (1 + σ²)`.
    pub fn alpha_bar_of_sigma(sigma: f64) -> f64 {
        1.0 / (1.0 + sigma * sigma)
    }
}

/// Karras et al. (2022) noise levels: `n` values from `sigma_max` down to `sigma_min`,
/// `σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`. Descending; both
/// endpoints included (one value, `sigma_max`, when `n = 1`).
pub fn karras(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![sigma_max];
    }
    let a = sigma_max.powf(1.0 / rho);
    let b = sigma_min.powf(1.0 / rho);
    (0..n)
        .map(|i| {
            let f = i as f64 / (n - 1) as f64;
            (a + f * (b - a)).powf(rho)
        })
        .collect()
}

/// `n` timesteps spread evenly over `0 … steps−1`, descending, from `steps − 1` to 0
/// (rounded to the nearest integer; duplicates removed when `n > steps`).
pub fn evenly_spaced_timesteps(steps: usize, n: usize) -> Vec<usize> {
    if steps == 0 || n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![steps - 1];
    }
    let mut ts: Vec<usize> = (0..n)
        .map(|i| ((steps - 1) as f64 * (1.0 - i as f64 / (n - 1) as f64)).round() as usize)
        .collect();
    ts.dedup();
    ts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddpm_endpoints() {
        let s = VpSchedule::ddpm();
        assert_eq!(s.len(), 1000);
        // σ_0 = √(β_0 / (1 − β_0)).
        assert!((s.sigma_min() - (1e-4f64 / (1.0 - 1e-4)).sqrt()).abs() < 1e-12);
        assert!(
            s.sigma_max() > 150.0 && s.sigma_max() < 160.0,
            "{}",
            s.sigma_max()
        );
    }
}
