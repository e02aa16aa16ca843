//! RED-diff: regularisation by denoising diffusion (Mardani, Song, Kautz, Vahdat, "A
//! Variational Perspective on Solving Inverse Problems with Diffusion Models", ICLR 2024),
//! following the authors' `algos/reddiff.py`.
//!
//! The estimate μ (started at H⁺y) is optimised by Adam over the network's strided timesteps
//! in descending order; at timestep t, with fresh noise ε and `x_t = √ᾱ_t μ + √(1−ᾱ_t) ε`,
//! one Adam step on
//!
//! ```text
//! ℓ_t(μ) = mean((y − H μ)²) / 2 + λ σ_t · mean(sg[ε̂(x_t) − ε] ⊙ μ)
//! ```
//!
//! where `σ_t = √((1−ᾱ_t)/ᾱ_t)` (the reference's "linear" inverse-SNR weighting) and the means
//! run over the measured entries and over the pixels. The gradient is taken in closed form:
//! `Hᵀ(Hμ − y)/M + (λσ_t/D)(ε̂ − ε)`, so one network forward per step and no VJP. σ_y does not
//! enter the update, as in the reference (its 1/σ_v² is folded into λ). Maths, defaults and
//! their sources: docs/algorithm.md.

use super::{
    check_problem, strided_timesteps, table_sigmas, x_size, Control, Counter, Noise, Problem,
    Progress, Quality, Solver,
};
use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::operators::{self, Operator};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// RED-diff's settings; `None` is the default (docs/algorithm.md, "RED-diff").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Adam steps, one per strided timestep. Default 50.
    pub steps: Option<usize>,
    /// λ, the weight of the denoising regulariser. Default 0.25.
    pub lambda: Option<f64>,
    /// Adam learning rate. Default 0.1.
    pub step_size: Option<f64>,
}

impl Options {
    /// The budget of a quality preset: `fast`: half the default's 50 steps; `best`: 1000, the paper's budget.
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(25, 1000),
            ..Self::default()
        }
    }
}

/// RED-diff with its resolved settings.
#[derive(Clone, Debug)]
pub struct RedDiff {
    pub steps: usize,
    pub lambda: f64,
    pub lr: f64,
}

/// Adam's moment decay rates and ε: the reference's (0.9, 0.99) and PyTorch's default 1e-8.
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.99;
const ADAM_EPS: f64 = 1e-8;

impl RedDiff {
    pub const DEFAULT_STEPS: usize = 50;
    pub const DEFAULT_LAMBDA: f64 = 0.25;
    pub const DEFAULT_LR: f64 = 0.1;

    pub fn new(o: &Options) -> Result<Self> {
        let s = RedDiff {
            steps: o.steps.unwrap_or(Self::DEFAULT_STEPS),
            lambda: o.lambda.unwrap_or(Self::DEFAULT_LAMBDA),
            lr: o.step_size.unwrap_or(Self::DEFAULT_LR),
        };
        if s.steps == 0 {
            return Err(Error::Usage("red-diff needs steps ≥ 1".into()));
        }
        if !(s.lambda.is_finite() && s.lambda >= 0.0) {
            return Err(Error::Usage(format!(
                "red-diff lambda must be ≥ 0, got {}",
                s.lambda
            )));
        }
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return Err(Error::Usage(format!(
                "red-diff step_size (Adam learning rate) must be > 0, got {}",
                s.lr
            )));
        }
        Ok(s)
    }
}

/// The number of measured entries of one measurement: those `H 1` reaches. For inpainting
/// the measurement keeps zeros where pixels are unknown, which the reference's measurement
/// does not have; counting them would weaken the data term's mean.
pub fn measured_entries(op: &dyn Operator, like: &Tensor) -> i64 {
    let [c, h, w] = op.x_shape();
    let ones = Tensor::ones([1, c, h, w], (Kind::Float, like.device()));
    let reach = op.forward(&ones).abs().gt(1e-6);
    reach.sum(Kind::Int64).int64_value(&[]).max(1)
}

/// The gradient of ℓ_t at μ for the noise pair (ε̂, ε): `Hᵀ(Hμ − y)/M + w (ε̂ − ε)/D` with
/// `w = λ σ_t`, each image's loss a mean over its own entries. The reference's `.mean()`
/// runs over the whole batch, which divides every image's gradient by N as well: Adam
/// nearly cancels that scale, but not in its ε, so an image would come out (slightly)
/// differently in a batch than alone. For one image the two are the same.
pub fn loss_gradient(
    op: &dyn Operator,
    y: &Tensor,
    mu: &Tensor,
    eps_diff: &Tensor,
    weight: f64,
    measured: i64,
) -> Tensor {
    let size = mu.size();
    let d = size[1..].iter().product::<i64>() as f64;
    // The VJP is Hᵀ for a linear operator and goes through a nonlinear one (JPEG).
    op.vjp(mu, &(op.forward(mu) - y)) / measured as f64 + eps_diff * (weight / d)
}

/// One Adam step (bias-corrected, step number `k` from 1) on `mu` in place.
pub fn adam_step(mu: &mut Tensor, m: &mut Tensor, v: &mut Tensor, g: &Tensor, lr: f64, k: i32) {
    *m = &*m * BETA1 + g * (1.0 - BETA1);
    *v = &*v * BETA2 + g.square() * (1.0 - BETA2);
    let mhat = &*m / (1.0 - BETA1.powi(k));
    let vhat = &*v / (1.0 - BETA2.powi(k));
    *mu -= mhat / (vhat.sqrt() + ADAM_EPS) * lr;
}

impl Solver for RedDiff {
    fn name(&self) -> &'static str {
        "red-diff"
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
        let ts = strided_timesteps(table.len(), self.steps)?;
        let mut noise = Noise::for_batch(seeds, n)?;
        let _guard = tch::no_grad_guard();

        let measured = measured_entries(op, &y);
        // The reference starts from H⁺y; damped, so that a noisy blur's H⁺y does not start
        // the optimisation from amplified noise.
        let mut mu = operators::damped_pinv(op, &y, problem.sigma_y).to_kind(Kind::Float);
        let mut m = mu.zeros_like();
        let mut v = mu.zeros_like();
        let mut count = Counter::default();
        for (i, &t) in ts.iter().enumerate() {
            let sigma = table[t];
            let eps = noise.normal(&size, opts);
            // x_t/√ᾱ_t = μ + σ_t ε: the VE input of the denoiser.
            let x_ve = &mu + &eps * sigma;
            let x0 = denoiser.denoise(&x_ve, sigma);
            count.forwards += 1;
            let eps_hat = (&x_ve - x0) / sigma;
            let g = loss_gradient(
                op,
                &y,
                &mu,
                &(eps_hat - &eps),
                self.lambda * sigma,
                measured,
            );
            adam_step(&mut mu, &mut m, &mut v, &g, self.lr, i as i32 + 1);
            if count.report(i + 1, ts.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        Ok(Some(mu.clamp(-1.0, 1.0)))
    }
}
