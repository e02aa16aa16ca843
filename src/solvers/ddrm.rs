//! Denoising diffusion restoration models (DDRM; Kawar, Elad, Ermon, Song, NeurIPS 2022),
//! following the authors' `efficient_generalized_steps`.
//!
//! Sampling runs in the spectral basis of `H = U Σ Vᵀ` on the VE variable `x̄ = Vᵀ x`, with
//! `ȳ = Σ⁺ Uᵀ y` and per-coefficient measurement noise `σ_y / s_k`. From `σ_t` to `σ_{t'}`,
//! with `x̄̂0 = Vᵀ D(x, σ_t)`, `ε̄ = (x̄ − x̄̂0)/σ_t` and fresh noise `n`:
//!
//! ```text
//! s_k = 0 (null space)   x̄' = x̄̂0 + √(1−η²) σ_{t'} ε̄ + η σ_{t'} n
//! s_k σ_{t'} < σ_y       x̄' = x̄̂0 + √(1−η²) σ_{t'} (Uᵀy − s_k x̄̂0)/σ_y + η σ_{t'} n
//! s_k σ_{t'} > σ_y       x̄' = η_b ȳ + (1−η_b) x̄̂0 + √(σ_{t'}² − η_b² σ_y²/s_k²) n
//! ```
//!
//! Steps: the network's timesteps `0, k, 2k, …` with stride `k = T / steps` (20 steps,
//! η = 0.85, η_b = 1 by default, as in the paper), ending at σ = 0 where the result is
//! `D(x, σ_0)`. Start: `x̄ = ȳ + √(σ_T² − σ_y²/s_k²) n` where `s_k σ_T > σ_y`, `σ_T n`
//! elsewhere. Singular values below `svd_cutoff` count as zero, as the authors' operators
//! zero them (3e-2 for blur factors).

use super::{
    check_problem, strided_timesteps, table_sigmas, x_size, Control, Counter, Noise, Problem,
    Progress, Quality, Solver,
};
use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// DDRM's share of `SolverOptions` (same names and meanings; `None` = the default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub steps: Option<usize>,
    pub eta: Option<f64>,
    pub eta_b: Option<f64>,
    pub svd_cutoff: Option<f64>,
}

impl Options {
    /// The budget of a quality preset: `fast`: half the default's 20 steps; `best`: 100.
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(10, 100),
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct Ddrm {
    pub steps: usize,
    pub eta: f64,
    pub eta_b: f64,
    pub svd_cutoff: f64,
}

impl Ddrm {
    pub const DEFAULT_STEPS: usize = 20;
    pub const DEFAULT_ETA: f64 = 0.85;
    pub const DEFAULT_ETA_B: f64 = 1.0;
    pub const DEFAULT_SVD_CUTOFF: f64 = 3e-2;

    pub fn new(opts: &Options) -> Result<Self> {
        let s = Ddrm {
            steps: opts.steps.unwrap_or(Self::DEFAULT_STEPS),
            eta: opts.eta.unwrap_or(Self::DEFAULT_ETA),
            eta_b: opts.eta_b.unwrap_or(Self::DEFAULT_ETA_B),
            svd_cutoff: opts.svd_cutoff.unwrap_or(Self::DEFAULT_SVD_CUTOFF),
        };
        if s.steps == 0 {
            return Err(Error::Usage("ddrm needs steps ≥ 1".into()));
        }
        for (name, v) in [("eta", s.eta), ("eta_b", s.eta_b)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Usage(format!(
                    "ddrm {name} must be in [0, 1], got {v}"
                )));
            }
        }
        if !(s.svd_cutoff.is_finite() && s.svd_cutoff >= 0.0) {
            return Err(Error::Usage(format!(
                "svd_cutoff must be ≥ 0, got {}",
                s.svd_cutoff
            )));
        }
        Ok(s)
    }
}

impl Solver for Ddrm {
    fn name(&self) -> &'static str {
        "ddrm"
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
        let svd = super::require_svd(op, "ddrm")?;
        let y = problem.y.to_kind(Kind::Float);
        let size = x_size(problem, n);
        let opts = (Kind::Float, y.device());
        let d: i64 = size[1..].iter().product();
        let sy = problem.sigma_y;
        let table = table_sigmas(denoiser);
        let ts = strided_timesteps(table.len(), self.steps)?;
        let mut noise = Noise::for_batch(seeds, n)?;

        let _guard = tch::no_grad_guard();
        // Singular values padded to D, with the small ones zeroed.
        let s_m = super::singular_values(svd, op, d, y.device())?;
        let m = s_m.size()[0];
        let s_m = s_m.where_self(&s_m.ge(self.svd_cutoff), &s_m.zeros_like());
        let s = Tensor::cat(&[s_m.shallow_clone(), Tensor::zeros([d - m], opts)], 0);
        let pad = |t: Tensor| Tensor::cat(&[t, Tensor::zeros([n, d - m], opts)], 1);
        let uty = pad(svd.ut(&y).reshape([n, m]));
        let nonzero = s.gt(0.0);
        let s_safe = s.where_self(&nonzero, &s.ones_like());
        let ybar = &uty / &s_safe;
        // σ_y / s_k, infinite in the null space.
        let noise_lvl = (s_safe.reciprocal() * sy)
            .where_self(&nonzero, &Tensor::full([d], f64::INFINITY, opts));

        // Start at the largest σ of the schedule.
        let sigma_t0 = table[ts[0]];
        let measured = nonzero.logical_and(&(&s * sigma_t0).gt(sy));
        let start_std = (-noise_lvl.square() + sigma_t0 * sigma_t0)
            .clamp_min(0.0)
            .sqrt();
        let z = noise.normal(&[n, d], opts);
        let mut xbar = (&ybar + &z * &start_std).where_self(&measured, &(&z * sigma_t0));

        let mut count = Counter::default();
        let mut x0 = Tensor::zeros(size, opts);
        for (i, &t) in ts.iter().enumerate() {
            let sigma = table[t];
            let sigma_next = ts.get(i + 1).map_or(0.0, |&u| table[u]);
            x0 = denoiser.denoise(&svd.v(&xbar).reshape(size), sigma);
            count.forwards += 1;
            let x0bar = svd.vt(&x0).reshape([n, d]);
            let epsbar = (&xbar - &x0bar) / sigma;

            let std_c = sigma_next * self.eta;
            let tilde = sigma_next * (1.0 - self.eta * self.eta).sqrt();
            let noise = noise.normal(&[n, d], opts);
            // Null space (and any coefficient that fits neither rule below).
            let mut next = &x0bar + &epsbar * tilde + &noise * std_c;
            // Less noisy than y: pull towards the measurement through the residual.
            let after = nonzero.logical_and(&(&s * sigma_next).lt(sy));
            if sy > 0.0 {
                let pulled = &x0bar + (&uty - &x0bar * &s) * (tilde / sy) + &noise * std_c;
                next = pulled.where_self(&after, &next);
            }
            // Noisier than y: take the measurement, add the missing noise.
            let before = nonzero.logical_and(&(&s * sigma_next).gt(sy));
            let std_b = (-(noise_lvl.square() * (self.eta_b * self.eta_b))
                + sigma_next * sigma_next)
                .clamp_min(0.0)
                .sqrt();
            let taken = &ybar * self.eta_b + &x0bar * (1.0 - self.eta_b) + &noise * std_b;
            next = taken.where_self(&before, &next);
            xbar = next;
            if count.report(i + 1, ts.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        // The last step lands on σ = 0, where every rule gives x̄̂0 (DDRM's output).
        Ok(Some(x0.clamp(-1.0, 1.0)))
    }
}
