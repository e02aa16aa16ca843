//! DAPS: decoupled annealing posterior sampling (Zhang, Chu, Berner, Sun, Yue, Azizzadenesheli,
//! Anandkumar; "Improving Diffusion Inverse Problem Solving with Decoupled Noise Annealing",
//! CVPR 2025), following the authors' `sampler.py` and `cores/mcmc.py`.
//!
//! Along a Karras schedule σ_0 > … > σ_{N−1} (then σ_N = 0), from `x = σ_0 n`:
//!
//! 1. x̂0: a few Euler steps of the probability-flow ODE `dx/dσ = (x − D(x, σ))/σ` from σ_i
//!    down to 0.01, on a Karras grid of `ode_steps` steps (one network forward each);
//! 2. x0: Langevin dynamics from x̂0, `iters` steps of
//!    `x ← x + γ_i (−2Hᵀ(Hx − y)/τ² + (x̂0 − x)/σ_i²) + √(2γ_i) n`, which samples
//!    `p(x0 | x_t, y) ∝ exp(−‖y − H x0‖²/τ² − ‖x0 − x̂0‖²/(2σ_i²))` (no network);
//! 3. x_{i+1} = x0 + σ_{i+1} n.
//!
//! The step γ_i decays linearly from `step_size` to `lr_min_ratio · step_size` over the
//! levels. τ is the reference's fixed data-fitting scale, not σ_y: σ_y does not enter (the
//! reference pairs τ = 0.01 with σ_y = 0.05), so σ_y = 0 needs no rule. Maths, defaults and
//! their sources: docs/algorithm.md.

use super::{check_problem, x_size, Control, Counter, Noise, Problem, Progress, Quality, Solver};
use crate::diffusion::{karras, Denoiser};
use crate::error::{Error, Result};
use crate::operators::Operator;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// DAPS's settings; `None` is the default (docs/algorithm.md, "DAPS").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Annealing levels N. Default 200.
    pub steps: Option<usize>,
    /// Euler steps of the ODE that gives x̂0 at each level. Default 5.
    pub ode_steps: Option<usize>,
    /// Langevin steps per level. Default 100.
    pub iters: Option<usize>,
    /// Langevin step size γ at the first level. Default 1e-4.
    pub step_size: Option<f64>,
    /// γ at the last level, relative to `step_size`. Default 0.01.
    pub lr_min_ratio: Option<f64>,
    /// Data-fitting scale τ. Default 0.01.
    pub tau: Option<f64>,
    /// Largest annealing σ. Default min(100, the denoiser's σ_max).
    pub sigma_max: Option<f64>,
    /// Smallest annealing σ. Default 0.1.
    pub sigma_min: Option<f64>,
    /// Karras ρ of both schedules. Default 7.
    pub rho: Option<f64>,
}

impl Options {
    /// The budget of a quality preset: `fast`: 50 annealing levels (250 forwards); `best`: the default 200 ("DAPS-1K").
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(50, Daps::DEFAULT_STEPS),
            ..Self::default()
        }
    }
}

/// DAPS with its resolved settings (`sigma_max: None` = min(100, the denoiser's σ_max)).
#[derive(Clone, Debug)]
pub struct Daps {
    pub steps: usize,
    pub ode_steps: usize,
    pub iters: usize,
    pub step_size: f64,
    pub lr_min_ratio: f64,
    pub tau: f64,
    pub sigma_max: Option<f64>,
    pub sigma_min: f64,
    pub rho: f64,
}

impl Daps {
    /// The authors' "DAPS-1K": 200 levels × 5 ODE steps = 1000 forwards.
    pub const DEFAULT_STEPS: usize = 200;
    pub const DEFAULT_ODE_STEPS: usize = 5;
    pub const DEFAULT_ITERS: usize = 100;
    pub const DEFAULT_STEP_SIZE: f64 = 1e-4;
    pub const DEFAULT_LR_MIN_RATIO: f64 = 0.01;
    pub const DEFAULT_TAU: f64 = 0.01;
    pub const DEFAULT_SIGMA_MAX: f64 = 100.0;
    pub const DEFAULT_SIGMA_MIN: f64 = 0.1;
    pub const DEFAULT_RHO: f64 = 7.0;
    /// Where each level's ODE ends (the reference's diffusion scheduler σ_min).
    pub const ODE_SIGMA_MIN: f64 = 0.01;

    pub fn new(o: &Options) -> Result<Self> {
        let s = Daps {
            steps: o.steps.unwrap_or(Self::DEFAULT_STEPS),
            ode_steps: o.ode_steps.unwrap_or(Self::DEFAULT_ODE_STEPS),
            iters: o.iters.unwrap_or(Self::DEFAULT_ITERS),
            step_size: o.step_size.unwrap_or(Self::DEFAULT_STEP_SIZE),
            lr_min_ratio: o.lr_min_ratio.unwrap_or(Self::DEFAULT_LR_MIN_RATIO),
            tau: o.tau.unwrap_or(Self::DEFAULT_TAU),
            sigma_max: o.sigma_max,
            sigma_min: o.sigma_min.unwrap_or(Self::DEFAULT_SIGMA_MIN),
            rho: o.rho.unwrap_or(Self::DEFAULT_RHO),
        };
        let usage = |m: String| Err(Error::Usage(format!("daps {m}")));
        if s.steps == 0 || s.ode_steps == 0 {
            return usage(format!(
                "needs steps ≥ 1 and ode_steps ≥ 1, got {} and {}",
                s.steps, s.ode_steps
            ));
        }
        for (name, v) in [
            ("step_size", s.step_size),
            ("lr_min_ratio", s.lr_min_ratio),
            ("tau", s.tau),
            ("rho", s.rho),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return usage(format!("{name} must be > 0, got {v}"));
            }
        }
        // Below the ODE's end point the "ODE" would run upwards in σ.
        if !(s.sigma_min.is_finite() && s.sigma_min >= Self::ODE_SIGMA_MIN) {
            return usage(format!(
                "sigma_min must be ≥ {}, got {}",
                Self::ODE_SIGMA_MIN,
                s.sigma_min
            ));
        }
        if let Some(m) = s.sigma_max {
            if !(m.is_finite() && m > s.sigma_min) {
                return usage(format!(
                    "sigma_max must be > sigma_min = {}, got {m}",
                    s.sigma_min
                ));
            }
        }
        Ok(s)
    }

    /// The annealing levels σ_0 … σ_{N−1} for `denoiser`: the first N of N + 1 Karras points
    /// from σ_max to σ_min (the reference drops the last point and anneals to 0 after it).
    pub fn levels(&self, denoiser: &dyn Denoiser) -> Result<Vec<f64>> {
        let top = self
            .sigma_max
            .unwrap_or(Self::DEFAULT_SIGMA_MAX.min(denoiser.sigma_max()));
        if top <= self.sigma_min {
            return Err(Error::Usage(format!(
                "daps: the denoiser's σ_max {top} is not above sigma_min {}",
                self.sigma_min
            )));
        }
        let mut s = karras(self.steps + 1, self.sigma_min, top, self.rho);
        s.pop();
        Ok(s)
    }

    /// `iters` Langevin steps of size `lr` from `x0hat` on
    /// `exp(−‖y − Hx‖²/τ² − ‖x − x̂0‖²/(2σ²))`.
    pub(crate) fn langevin(
        &self,
        op: &dyn Operator,
        y: &Tensor,
        x0hat: &Tensor,
        sigma: f64,
        lr: f64,
        noise: &mut Noise,
    ) -> Tensor {
        let size = x0hat.size();
        let opts = (x0hat.kind(), x0hat.device());
        let mut x = x0hat.shallow_clone();
        for _ in 0..self.iters {
            let data = op.vjp(&x, &(op.forward(&x) - y)) * (-2.0 / (self.tau * self.tau));
            let prior = (x0hat - &x) / (sigma * sigma);
            x = &x + (data + prior) * lr + noise.normal(&size, opts) * (2.0 * lr).sqrt();
        }
        x
    }

    /// [`Daps::langevin`] with its own noise drawn from `seed`: the Langevin stage alone, for
    /// checking what it samples.
    pub fn langevin_seeded(
        &self,
        op: &dyn Operator,
        y: &Tensor,
        x0hat: &Tensor,
        sigma: f64,
        lr: f64,
        seed: u64,
    ) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.langevin(op, y, x0hat, sigma, lr, &mut Noise::new(seed))
    }

    /// Langevin step size at level `i` (the reference's linear decay over N + 1 levels).
    pub fn lr(&self, i: usize) -> f64 {
        let ratio = i as f64 / (self.steps + 1) as f64;
        self.step_size * (1.0 + ratio * (self.lr_min_ratio - 1.0))
    }
}

/// Euler steps of the probability-flow ODE from `x` at σ down to `ODE_SIGMA_MIN` on a Karras
/// grid of `steps` steps; the forwards are added to `count`.
fn ode_x0(
    denoiser: &dyn Denoiser,
    x: &Tensor,
    sigma: f64,
    steps: usize,
    rho: f64,
    count: &mut Counter,
) -> Tensor {
    let grid = karras(steps + 1, Daps::ODE_SIGMA_MIN, sigma, rho);
    let mut x = x.shallow_clone();
    for w in grid.windows(2) {
        let d = (&x - denoiser.denoise(&x, w[0])) / w[0];
        count.forwards += 1;
        x = &x + d * (w[1] - w[0]);
    }
    x
}

impl Solver for Daps {
    fn name(&self) -> &'static str {
        "daps"
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
        let levels = self.levels(denoiser)?;
        let mut noise = Noise::for_batch(seeds, n)?;
        let _guard = tch::no_grad_guard();

        let mut x = noise.normal(&size, opts) * levels[0];
        let mut count = Counter::default();
        for (i, &sigma) in levels.iter().enumerate() {
            let x0hat = ode_x0(denoiser, &x, sigma, self.ode_steps, self.rho, &mut count);
            let x0 = self.langevin(op, &y, &x0hat, sigma, self.lr(i), &mut noise);
            // An unstable step size shows as non-finite values; say so rather than return them.
            if x0.isfinite().all().int64_value(&[]) == 0 {
                return Err(Error::Usage(format!(
                    "daps: the Langevin steps diverged at σ = {sigma:.3}; lower step_size \
                     (now {}) or raise tau (now {})",
                    self.step_size, self.tau
                )));
            }
            x = match levels.get(i + 1) {
                Some(&next) => &x0 + noise.normal(&size, opts) * next,
                None => x0,
            };
            if count.report(i + 1, levels.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        Ok(Some(x.clamp(-1.0, 1.0)))
    }
}
