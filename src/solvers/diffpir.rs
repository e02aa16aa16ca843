//! DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu, Zhang,
//! Liang, Cao, Wen, Timofte, Van Gool; CVPR workshops 2023), following the authors'
//! `main_ddpir.py`.
//!
//! Half-quadratic splitting along the reverse diffusion: at each timestep t the network's
//! x̂0 (clamped to [-1, 1]) is pulled towards the measurement by the data proximal step
//!
//! ```text
//! x̂0 ← argmin_x ‖y − H x‖² + ρ_t ‖x − x̂0‖²,   ρ_t = λ σ_n² / σ_t²,   σ_n = max(σ_y / 2, 10⁻³)
//! ```
//!
//! (σ_n is the measurement noise on the [0, 1] pixel scale the reference measures it in, σ_t
//! the VE noise level of x_t on the [-1, 1] scale), then x_t moves to the next timestep s by
//! the DDIM-like rule
//!
//! ```text
//! ε̂   = (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t)
//! x_s = √ᾱ_s x̂0 + √(1−ζ) (√(1 − ᾱ_s − c²) ε̂ + c n₁) + √ζ √(1 − ᾱ_s) n₂,
//! c   = η √(1 − ᾱ_s)/√(1 − ᾱ_t) √β_t
//! ```
//!
//! on the reference's quadratic timestep spacing. The proximal step is exact: through the
//! SVD, or by conjugate gradients on `(HᵀH + ρ I) x = Hᵀy + ρ x̂0` for an operator without one
//! (double precision, to 10⁻⁶ or 300 iterations).
//! One network forward per step, no VJP. Maths, defaults and their sources: docs/algorithm.md.

use super::{
    check_problem, table_sigmas, x_size, Control, Counter, Noise, Problem, Progress, Quality,
    Solver,
};
use crate::diffusion::Denoiser;
use crate::error::{Error, Result};
use crate::operators::{self, Operator};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// DiffPIR's settings; `None` is the default (docs/algorithm.md, "DiffPIR").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Reverse steps (network forwards). Default 100.
    pub steps: Option<usize>,
    /// λ, the weight of the prior in ρ_t = λ σ_n²/σ_t². Default 1.
    pub lambda: Option<f64>,
    /// ζ, the share of fresh noise when re-noising. Default 0.1.
    pub zeta: Option<f64>,
    /// η, DDIM stochasticity inside the re-noising. Default 0.
    pub eta: Option<f64>,
    /// Clamp x̂0 to [-1, 1] before the data step. Default true.
    pub clip_denoised: Option<bool>,
}

impl Options {
    /// The budget of a quality preset: `fast`: 20 steps, the cheap setting of DiffPIR's published tables; `best`: the default 100, the paper's largest budget.
    pub fn preset(q: Quality) -> Self {
        Options {
            steps: q.pick(20, Diffpir::DEFAULT_STEPS),
            ..Self::default()
        }
    }
}

/// DiffPIR with its resolved settings.
#[derive(Clone, Debug)]
pub struct Diffpir {
    pub steps: usize,
    pub lambda: f64,
    pub zeta: f64,
    pub eta: f64,
    pub clip_denoised: bool,
}

impl Diffpir {
    /// `iter_num` of the authors' SR and deblurring configurations.
    pub const DEFAULT_STEPS: usize = 100;
    pub const DEFAULT_LAMBDA: f64 = 1.0;
    /// The deblurring configuration's ζ (SR uses 0.25, inpainting 1).
    pub const DEFAULT_ZETA: f64 = 0.1;
    pub const DEFAULT_ETA: f64 = 0.0;
    /// The reference's floor on σ_n (on the [0, 1] scale): keeps ρ_t > 0 at σ_y = 0, where the
    /// proximal step then all but enforces `H x = y`.
    pub const SIGMA_N_FLOOR: f64 = 1e-3;

    pub fn new(o: &Options) -> Result<Self> {
        let s = Diffpir {
            steps: o.steps.unwrap_or(Self::DEFAULT_STEPS),
            lambda: o.lambda.unwrap_or(Self::DEFAULT_LAMBDA),
            zeta: o.zeta.unwrap_or(Self::DEFAULT_ZETA),
            eta: o.eta.unwrap_or(Self::DEFAULT_ETA),
            clip_denoised: o.clip_denoised.unwrap_or(true),
        };
        // One step would start and end at the smallest noise level: nothing to anneal.
        if s.steps < 2 {
            return Err(Error::Usage(format!(
                "diffpir needs steps ≥ 2, got {}",
                s.steps
            )));
        }
        if !(s.lambda.is_finite() && s.lambda > 0.0) {
            return Err(Error::Usage(format!(
                "diffpir lambda must be > 0, got {}",
                s.lambda
            )));
        }
        for (name, v) in [("zeta", s.zeta), ("eta", s.eta)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Usage(format!(
                    "diffpir {name} must be in [0, 1], got {v}"
                )));
            }
        }
        Ok(s)
    }

    /// ρ_t for measurement noise σ_y (on the [-1, 1] scale) at VE noise level σ_t.
    pub fn rho(&self, sigma_y: f64, sigma_t: f64) -> f64 {
        let sigma_n = (sigma_y / 2.0).max(Self::SIGMA_N_FLOOR);
        self.lambda * sigma_n * sigma_n / (sigma_t * sigma_t)
    }
}

/// The reference's quadratic spacing over `total` timesteps, descending from `total − 1` to
/// 0: `s_i = ⌊T √(i/(N−1))⌋` with the last one `T − 1`, timestep `T − 1 − s_i`. Dense at low
/// noise; repeats a timestep when N is close to T (as the reference does).
pub fn quadratic_timesteps(total: usize, steps: usize) -> Result<Vec<usize>> {
    if steps < 2 || steps > total {
        return Err(Error::Usage(format!(
            "diffpir steps must be in 2..={total} (the network's timesteps), got {steps}"
        )));
    }
    let t = total as f64;
    Ok((0..steps)
        .map(|i| {
            let s = if i + 1 == steps {
                total - 1
            } else {
                ((t * (i as f64 / (steps - 1) as f64).sqrt()) as usize).min(total - 1)
            };
            total - 1 - s
        })
        .collect())
}

/// `argmin_x ‖y − H x‖² + ρ ‖x − z‖²` for every image of the batch `z`: through the SVD,
/// coefficient by coefficient `(s_k (Uᵀy)_k + ρ (Vᵀz)_k) / (s_k² + ρ)` (the null space keeps
/// z), or by conjugate gradients when the operator has no SVD.
pub fn data_prox(op: &dyn Operator, y: &Tensor, z: &Tensor, rho: f64) -> Tensor {
    let size = z.size();
    let n = size[0];
    let d: i64 = size[1..].iter().product();
    match op.svd() {
        Some(svd) => {
            let opts = (z.kind(), z.device());
            let s = svd
                .singular_values()
                .to_kind(z.kind())
                .to_device(z.device())
                .flatten(0, -1);
            let m = s.size()[0].min(d);
            let s = s.narrow(0, 0, m);
            let zbar = svd.vt(z).reshape([n, d]);
            let uty = svd.ut(y).reshape([n, -1]).narrow(1, 0, m);
            let head = (&uty * &s + zbar.narrow(1, 0, m) * rho) / (s.square() + rho);
            let c = Tensor::cat(&[head, zbar.narrow(1, m, d - m)], 1).to_kind(opts.0);
            svd.v(&c).reshape(size.as_slice())
        }
        None => prox_cg(op, y, z, rho),
    }
}

/// Conjugate gradients on `(HᵀH + ρ I) x = Hᵀy + ρ z` from `x = z`, per image and in double
/// precision (with ρ as small as the σ_y = 0 floor gives, the system's condition number is
/// ~1/ρ for a blur, beyond what single precision resolves), until every image's residual
/// is below 10⁻⁶ of its right-hand side or after 300 iterations (each one operator forward
/// and adjoint, no network).
fn prox_cg(op: &dyn Operator, y: &Tensor, z: &Tensor, rho: f64) -> Tensor {
    const MAX_ITERS: usize = 300;
    const REL_TOL: f64 = 1e-6;
    let size = z.size();
    let n = size[0];
    let (y, z0) = (y.to_kind(Kind::Double), z.to_kind(Kind::Double));
    let apply = |x: &Tensor| op.adjoint(&op.forward(x)) + x * rho;
    let dot = |a: &Tensor, b: &Tensor| {
        (a * b)
            .reshape([n, -1])
            .sum_dim_intlist(1, false, Kind::Double)
    };
    let bcast = |v: &Tensor| v.reshape([n, 1, 1, 1]);
    let b = op.adjoint(&y) + &z0 * rho;
    let b2 = dot(&b, &b);
    let mut x = z0;
    let mut r = &b - apply(&x);
    let mut p = r.shallow_clone();
    let mut r2 = dot(&r, &r);
    for _ in 0..MAX_ITERS {
        let done = r2.le_tensor(&(&b2 * (REL_TOL * REL_TOL)));
        if done.all().int64_value(&[]) == 1 {
            break;
        }
        let going = done.logical_not();
        let ap = apply(&p);
        let pap = dot(&p, &ap);
        // Converged images have r = 0 and p·Ap = 0: step 0 instead of 0/0.
        let alpha = (&r2 / pap.clamp_min(f64::MIN_POSITIVE)).where_self(&going, &r2.zeros_like());
        x += &p * bcast(&alpha);
        r -= &ap * bcast(&alpha);
        let r2_new = dot(&r, &r);
        let beta = (&r2_new / r2.clamp_min(f64::MIN_POSITIVE)).where_self(&going, &r2.zeros_like());
        p = &r + &p * bcast(&beta);
        r2 = r2_new;
    }
    x.to_kind(z.kind())
}

impl Solver for Diffpir {
    fn name(&self) -> &'static str {
        "diffpir"
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
        // The data step is a linear least-squares solve.
        super::require_linear(op, "diffpir")?;
        let y = problem.y.to_kind(Kind::Float);
        let size = x_size(problem, n);
        let opts = (Kind::Float, y.device());
        let table = table_sigmas(denoiser);
        let ts = quadratic_timesteps(table.len(), self.steps)?;
        let ab = |t: usize| 1.0 / (1.0 + table[t] * table[t]);
        let mut noise = Noise::for_batch(seeds, n)?;
        let _guard = tch::no_grad_guard();

        // The reference starts from a cheap estimate (bicubic, y, masked y) at ᾱ_T ≈ 4·10⁻⁵;
        // the damped H⁺y plays that part here for every operator.
        let a0 = ab(ts[0]);
        let mut x = operators::damped_pinv(op, &y, problem.sigma_y) * a0.sqrt()
            + noise.normal(&size, opts) * (1.0 - a0).sqrt();
        let mut count = Counter::default();
        for (i, &t) in ts.iter().enumerate() {
            let sigma = table[t];
            let ab_t = ab(t);
            let mut x0 = denoiser.denoise(&(&x / ab_t.sqrt()), sigma);
            count.forwards += 1;
            if self.clip_denoised {
                x0 = x0.clamp(-1.0, 1.0);
            }
            let Some(&s) = ts.get(i + 1) else {
                // The reference evaluates the network here and returns x_0 itself, noise
                // σ_0 ≈ 0.01 included; its denoised x̂0 is returned instead.
                if count.report(i + 1, ts.len(), on_progress) == Control::Stop {
                    return Ok(None);
                }
                return Ok(Some(x0.clamp(-1.0, 1.0)));
            };
            let x0 = data_prox(op, &y, &x0, self.rho(problem.sigma_y, sigma));
            let eps = (&x - &x0 * ab_t.sqrt()) / (1.0 - ab_t).sqrt();
            let ab_s = ab(s);
            // β_t of the single step t−1 → t (the reference's `betas[t_i]`).
            let beta_t = 1.0 - ab_t / t.checked_sub(1).map_or(1.0, ab);
            let c = self.eta * ((1.0 - ab_s) / (1.0 - ab_t)).sqrt() * beta_t.sqrt();
            let mut dir = eps * (1.0 - ab_s - c * c).max(0.0).sqrt();
            if c > 0.0 {
                dir += noise.normal(&size, opts) * c;
            }
            x = &x0 * ab_s.sqrt() + dir * (1.0 - self.zeta).sqrt();
            if self.zeta > 0.0 {
                x += noise.normal(&size, opts) * (self.zeta * (1.0 - ab_s)).sqrt();
            }
            if count.report(i + 1, ts.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        // quadratic_timesteps gives at least two steps; the last returns above.
        Err(Error::Input("diffpir ran no step".into()))
    }
}
