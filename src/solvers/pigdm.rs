//! Pseudoinverse-guided diffusion models (ΠGDM; Song, Vahdat, Mardani, Kautz, ICLR 2023).
//!
//! DDIM sampling on the network's strided timesteps (100 steps, η = 1 by default), each step
//! corrected by the pseudo-inverse guidance, one vector-Jacobian product through the network:
//!
//! ```text
//! g   = (∂x̂0/∂x_t)ᵀ h,   h = H⁺(y − H x̂0)                                  (σ_y = 0)
//!                           h = r_t² Hᵀ (r_t² H Hᵀ + σ_y² I)⁻¹ (y − H x̂0)   (σ_y > 0)
//! x_s = √ᾱ_s x̂0 + c1 n + c2 ε̂ + √ᾱ_s √ᾱ_t g
//! c1  = η √((1 − ᾱ_t/ᾱ_s)(1 − ᾱ_s)/(1 − ᾱ_t)),  c2 = √(1 − ᾱ_s − c1²)
//! ```
//!
//! with `r_t² = 1 − ᾱ_t = σ_t²/(1 + σ_t²)` (the paper's adaptive weight for unit data
//! variance). The noisy form is the paper's `(r_t² H Hᵀ + σ_y² I)⁻¹` guidance scaled by
//! `r_t²` so that it reduces to the noiseless `H⁺` form at σ_y = 0; it is applied through the
//! SVD, `V Σᵀ diag(r_t²/(r_t² s_k² + σ_y²)) Uᵀ`. The weight `√ᾱ_s √ᾱ_t` is the one of the
//! NVIDIA reference implementation (RED-diff's `pgdm.py`, adaptive weights on), which also
//! starts from `√ᾱ_T H⁺y + √(1−ᾱ_T) n`.

use super::{
    check_problem, denoise_vjp, strided_timesteps, table_sigmas, x_size, Control, Counter, Noise,
    Problem, Progress, Quality, Solver,
};
use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::operators;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// ΠGDM's share of `SolverOptions` (same names and meanings; `None` = the default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub steps: Option<usize>,
    pub eta: Option<f64>,
    pub clip_denoised: Option<bool>,
}

impl Options {
    /// The budget of a quality preset: `fast`: a quarter of the default's 100 steps; `best`: 250.
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(25, 250),
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct Pigdm {
    pub steps: usize,
    pub eta: f64,
    pub clip_denoised: bool,
}

impl Pigdm {
    pub const DEFAULT_STEPS: usize = 100;
    pub const DEFAULT_ETA: f64 = 1.0;

    pub fn new(opts: &Options) -> Result<Self> {
        let s = Pigdm {
            steps: opts.steps.unwrap_or(Self::DEFAULT_STEPS),
            eta: opts.eta.unwrap_or(Self::DEFAULT_ETA),
            clip_denoised: opts.clip_denoised.unwrap_or(false),
        };
        if s.steps == 0 {
            return Err(Error::Usage("pigdm needs steps ≥ 1".into()));
        }
        if !(0.0..=1.0).contains(&s.eta) {
            return Err(Error::Usage(format!(
                "pigdm eta must be in [0, 1], got {}",
                s.eta
            )));
        }
        Ok(s)
    }
}

impl Solver for Pigdm {
    fn name(&self) -> &'static str {
        "pigdm"
    }

    fn solve_seeded(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seeds: &[u64],
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>> {
        let n = check_problem(problem)?;
        let op = problem.op;
        let sy = problem.sigma_y;
        // Its guidance is H⁺ (σ_y = 0) or the SVD: both need a linear H.
        super::require_linear(op, "pigdm")?;
        let svd = if sy > 0.0 {
            Some(super::require_svd(op, "pigdm with σ_y > 0")?)
        } else {
            None
        };
        let y = problem.y.to_kind(Kind::Float);
        let size = x_size(problem, n);
        let opts = (Kind::Float, y.device());
        let d: i64 = size[1..].iter().product();
        let table = table_sigmas(denoiser);
        let ts = strided_timesteps(table.len(), self.steps)?;
        let mut noise = Noise::for_batch(seeds, n)?;

        // Guidance direction h for a residual, and the singular values it needs.
        let spectrum = svd
            .map(|svd| super::singular_values(svd, op, d, y.device()))
            .transpose()?;
        let direction = |resid: &Tensor, r2: f64| -> Tensor {
            match (svd, &spectrum) {
                (Some(svd), Some(s)) => {
                    let m = s.size()[0];
                    let w = (s.square() * r2 + sy * sy).reciprocal() * s * r2;
                    let c = svd.ut(resid).reshape([n, m]) * w;
                    let c = Tensor::cat(&[c, Tensor::zeros([n, d - m], opts)], 1);
                    svd.v(&c).reshape(size)
                }
                _ => op.pinv(resid),
            }
        };

        let ab_start = 1.0 / (1.0 + table[ts[0]] * table[ts[0]]);
        // The start's signal weight √ᾱ is tiny; damping only keeps a noisy blur's H⁺y
        // from exploding through it.
        let mut x = tch::no_grad(|| operators::damped_pinv(op, &y, sy)) * ab_start.sqrt()
            + noise.normal(&size, opts) * (1.0 - ab_start).sqrt();
        let mut count = Counter::default();
        for (i, &t) in ts.iter().enumerate() {
            let sigma = table[t];
            let ab_t = 1.0 / (1.0 + sigma * sigma);
            let ab_s = ts
                .get(i + 1)
                .map_or(1.0, |&u| 1.0 / (1.0 + table[u] * table[u]));
            let c1 = self.eta
                * ((1.0 - ab_t / ab_s) * (1.0 - ab_s) / (1.0 - ab_t))
                    .max(0.0)
                    .sqrt();
            let c2 = (1.0 - ab_s - c1 * c1).max(0.0).sqrt();
            let r2 = 1.0 - ab_t;

            // The VJP is taken in the VE variable x_t/√ᾱ_t; ∂/∂x_t = (1/√ᾱ_t) ∂/∂x_ve, which
            // turns the weight √ᾱ_s √ᾱ_t into √ᾱ_s.
            let x_ve = &x / ab_t.sqrt();
            let clip = self.clip_denoised;
            let (x0, g_ve) = denoise_vjp(denoiser, &x_ve, sigma, |x0| {
                let x0 = if clip {
                    x0.clamp(-1.0, 1.0)
                } else {
                    x0.shallow_clone()
                };
                direction(&(&y - op.forward(&x0)), r2)
            })?;
            count.forwards += 1;
            count.vjps += 1;
            x = tch::no_grad(|| {
                let eps = (&x_ve - &x0) / sigma;
                let x0 = if clip { x0.clamp(-1.0, 1.0) } else { x0 };
                let mut next = &x0 * ab_s.sqrt() + eps * c2 + g_ve * ab_s.sqrt();
                if c1 > 0.0 {
                    next += noise.normal(&size, opts) * c1;
                }
                next
            });
            if count.report(i + 1, ts.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        Ok(Some(x.clamp(-1.0, 1.0)))
    }
}
