//! Diffusion posterior sampling (DPS; Chung, Kim, Mccann, Klasky, Ye, ICLR 2023), as in the
//! authors' release: ancestral DDPM sampling on the network's own 1000 steps, and after each
//! step a gradient step on the measurement residual through the network,
//!
//! ```text
//! x_{t−1} = μ̃_t(x_t, x̂0) + σ̃_t n − ζ ∇_{x_t} ‖y − H x̂0(x_t)‖
//! ```
//!
//! i.e. the paper's step `ζ' / ‖y − H x̂0‖` on the squared residual with ζ = 2ζ'. `x̂0` is
//! clamped to [-1, 1] (`clip_denoised`) before it enters the posterior mean and the residual.
//! Differences from the reference, both forced by the VE `Denoiser` interface: the variance is
//! the fixed posterior variance `β̃_t` rather than the learned one of `learn_sigma` networks,
//! and the residual norm is taken per image rather than over the whole batch.
//!
//! Working state: the VP variable `x_t = √ᾱ_t x0 + √(1−ᾱ_t) n`; the denoiser sees
//! `x_t / √ᾱ_t` at `σ_t = √((1−ᾱ_t)/ᾱ_t)`.

use super::{
    check_problem, table_sigmas, x_size, Control, Counter, Noise, Problem, Progress, Quality,
    Solver,
};
use crate::diffusion::schedule::evenly_spaced_timesteps;
use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// DPS's share of `SolverOptions` (same names and meanings; `None` = the default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub steps: Option<usize>,
    pub dps_scale: Option<f64>,
    pub clip_denoised: Option<bool>,
}

impl Options {
    /// The budget of a quality preset: `fast`: a quarter of the default's 1000 steps; `best`: the default (1000 is every
    /// timestep of the DDPM networks, so there is no more to take).
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(250, 1000),
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct Dps {
    pub steps: usize,
    pub scale: f64,
    pub clip_denoised: bool,
}

impl Dps {
    pub const DEFAULT_STEPS: usize = 1000;
    /// The authors' configurations use 0.3 (SR, deblur) and 0.5 (inpainting) on FFHQ.
    pub const DEFAULT_SCALE: f64 = 0.3;

    pub fn new(opts: &Options) -> Result<Self> {
        let s = Dps {
            steps: opts.steps.unwrap_or(Self::DEFAULT_STEPS),
            scale: opts.dps_scale.unwrap_or(Self::DEFAULT_SCALE),
            clip_denoised: opts.clip_denoised.unwrap_or(true),
        };
        if s.steps == 0 {
            return Err(Error::Usage("dps needs steps ≥ 1".into()));
        }
        if !(s.scale.is_finite() && s.scale >= 0.0) {
            return Err(Error::Usage(format!(
                "dps scale must be ≥ 0, got {}",
                s.scale
            )));
        }
        Ok(s)
    }
}

impl Solver for Dps {
    fn name(&self) -> &'static str {
        "dps"
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
        let y = problem.y.to_kind(Kind::Float);
        let size = x_size(problem, n);
        let opts = (Kind::Float, y.device());
        let table = table_sigmas(denoiser);
        let ts = evenly_spaced_timesteps(table.len(), self.steps);
        let mut noise = Noise::for_batch(seeds, n)?;

        let mut count = Counter::default();
        let mut x = noise.normal(&size, opts);
        for (i, &t) in ts.iter().enumerate() {
            let sigma = table[t];
            let ab = 1.0 / (1.0 + sigma * sigma);
            let ab_prev = ts
                .get(i + 1)
                .map_or(1.0, |&s| 1.0 / (1.0 + table[s] * table[s]));
            let alpha = ab / ab_prev;
            let beta = 1.0 - alpha;

            let x_req = x.detach().set_requires_grad(true);
            let mut x0 = denoiser.denoise(&(&x_req / ab.sqrt()), sigma);
            if self.clip_denoised {
                x0 = x0.clamp(-1.0, 1.0);
            }
            count.forwards += 1;
            // ‖y − H x̂0‖ per image, summed: the gradient of each image's norm. A residual
            // of exactly zero (a JPEG result that re-compresses to y) has no gradient
            // rather than NaN's: the floor 1e-30 under the root is far below any other.
            let resid = &y - op.forward_surrogate(&x0);
            let norm = resid
                .reshape([n, -1])
                .square()
                .sum_dim_intlist(1, false, Kind::Float)
                .clamp_min(1e-30)
                .sqrt()
                .sum(Kind::Float);
            let grad = Tensor::f_run_backward(&[norm], &[&x_req], false, false)?
                .pop()
                .ok_or_else(|| Error::Internal("backward pass returned no gradient".into()))?;
            count.vjps += 1;

            x = tch::no_grad(|| {
                let x0 = x0.detach();
                let xt = x_req.detach();
                let mean = x0 * (beta * ab_prev.sqrt() / (1.0 - ab))
                    + xt * ((1.0 - ab_prev) * alpha.sqrt() / (1.0 - ab));
                let mut next = mean - grad * self.scale;
                if i + 1 < ts.len() {
                    let var = beta * (1.0 - ab_prev) / (1.0 - ab);
                    next += noise.normal(&size, opts) * var.sqrt();
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
