//! VML-MAP (Gutha, Vinuesa, Azizpour, arXiv 2512.10524) and its preconditioned variant, as
//! derived in docs/derivation.md.
//!
//! At each noise level σ_i of a Karras schedule, K gradient steps on the simplified
//! variational mode-seeking loss
//!
//! ```text
//! ∇VML_S(x) = −Jᵀ v,   v = (D − x)/σ_i² + Hᵀ(y − H D)/s_i²,   s_i² = σ_y² + c σ_i²
//! ```
//!
//! (one vector-Jacobian product each), then `x̂0 = D(x, σ_i)` clamped to [-1, 1], the
//! data fit on x̂0 (`operators::data_prox`: the SVD's proximal step, or JPEG's projection) and a re-noise to
//! σ_{i+1}.
//! `s_i²` is the measurement variance with an annealed floor `c σ_i²` (our choice, inferred
//! from MAPGA's λ): it keeps σ_y = 0 well posed and tends to σ_y² as σ_i → 0.
//!
//! Step: `x ← x + γ η_i Jᵀ v` with `η_i = (‖H‖²/s_i² + 1/σ_i²)⁻¹`, the inverse curvature of
//! the two terms along the stiffest direction when `J = I`, so γ = 1 is stable for any σ_y,
//! σ_y = 0 included (then `η_i v` stays finite), and for any operator norm. Preconditioned:
//! `x ← x + γ P_i Jᵀ v` with `P_i = V diag(1 / (s_k²/s_i² + 1/σ_i²)) Vᵀ`, which equals the doc's
//! `V[s_i² (ΣᵀΣ)⁺ + σ_i² (I − Σ⁺Σ)]Vᵀ` for zero and for large singular values and stays
//! bounded by σ_i² for tiny ones (the doc's form divides by them).

use super::{
    check_problem, denoise_vjp, x_size, Control, Counter, DataFit, Init, Noise, Problem, Progress,
    Quality, Renoise, Solver,
};
use crate::diffusion::{karras, Denoiser};
use crate::error::{Error, Result};
use crate::operators::{self, Operator};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// VML-MAP's share of `SolverOptions`, for both variants (same names and meanings; `None` =
/// the default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub steps: Option<usize>,
    pub iters: Option<usize>,
    pub step_size: Option<f64>,
    pub prior_step_cap: Option<f64>,
    pub sigma_y_floor: Option<f64>,
    pub renoise: Option<Renoise>,
    pub init: Option<Init>,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    pub rho: Option<f64>,
    pub clip_denoised: Option<bool>,
    pub data_fit: Option<DataFit>,
    pub samples: Option<usize>,
}

impl Options {
    /// The budget of a quality preset of plain VML-MAP. With the data fit on every level a
    /// few levels do what 50 × 3 did without it (docs/benchmarks.md, "The frontier with the
    /// data fit"): `fast` 5 levels × 1 iteration (a 256² SR×4 in 7.5 s on two idle cores),
    /// `normal` the defaults, 20 × 1 (23 s), `best` 50 × 1.
    pub fn preset(q: Quality) -> Self {
        Self::budget(q, 5)
    }

    /// The preconditioned variant's presets: as plain VML-MAP's, but `fast` takes 10 levels,
    /// since its schedule starts at the network's σ_max (157 for DDPM networks) and 5 levels
    /// from there scored 18.1 dB on SR×4 where plain 5 × 1 scored 21.8 (kodim01, 128²).
    pub fn preset_pre(q: Quality) -> Self {
        Self::budget(q, 10)
    }

    fn budget(q: Quality, fast_steps: usize) -> Self {
        Options {
            steps: q.pick(fast_steps, VmlMap::BEST_STEPS),
            iters: q.pick(1, VmlMap::BEST_ITERS),
            ..Self::default()
        }
    }
}

/// VML-MAP, plain or preconditioned. Fields are the resolved settings (see `Options`).
#[derive(Clone, Debug)]
pub struct VmlMap {
    pub precondition: bool,
    pub steps: usize,
    pub iters: usize,
    pub step_size: f64,
    pub prior_step_cap: f64,
    pub sigma_y_floor: f64,
    pub renoise: Renoise,
    pub init: Init,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    pub rho: f64,
    pub clip_denoised: bool,
    /// `None`: [`Self::DEFAULT_DATA_FIT`], or the last level only where the operator says
    /// a fit on every level does not suit it (`Operator::fits_every_level`: wide holes).
    pub data_fit: Option<DataFit>,
    /// Restorations averaged, each drawing its noise from its own seeds (the first from
    /// the request's, so 1 is the plain solve).
    pub samples: usize,
}

impl VmlMap {
    /// 20 levels × 1 iteration: 60 network passes (40 forwards, 20 VJPs), a 256² SR×4 restore in 23 s on two idle
    /// cores and 37 s beside one busy process (docs/bench-runs/speed-s11/); 10 levels lose
    /// 0.5–0.7 dB on random inpainting, and 50 levels gain 1 dB only on a large hole
    /// (docs/benchmarks.md, "The frontier with the data fit").
    pub const DEFAULT_STEPS: usize = 20;
    pub const DEFAULT_ITERS: usize = 1;
    pub const BEST_STEPS: usize = 50;
    pub const BEST_ITERS: usize = 1;
    /// γ of plain VML-MAP; the preconditioned variant keeps 1 (docs/algorithm.md, "Defaults
    /// measured on real images").
    pub const DEFAULT_STEP_SIZE: f64 = 2.0;
    pub const DEFAULT_STEP_SIZE_PRE: f64 = 1.0;
    /// Largest σ of plain VML-MAP's schedule (capped by the denoiser's σ_max): starting from
    /// H⁺y at σ = 10 rather than from noise at the network's σ_max (157 for DDPM) gained
    /// 0.2–6.8 dB on our validation photos.
    pub const DEFAULT_SIGMA_MAX: f64 = 10.0;
    pub const DEFAULT_SIGMA_Y_FLOOR: f64 = 0.1;
    /// κ: a denoiser whose Jacobian expands some directions (a sharpening network does)
    /// multiplies them by about 1 + κ(λ − 1) per iteration; 0.6 took SR×4 back from the
    /// streaks γ = 2 drew with the step-5834 model (a few remain) and leaves blur and
    /// inpainting steps as they were (docs/algorithm.md, "Step size and a sharper model").
    pub const DEFAULT_PRIOR_STEP_CAP: f64 = 0.6;
    pub const DEFAULT_RENOISE: Renoise = Renoise::Stochastic;
    pub const DEFAULT_INIT: Init = Init::Pinv;
    pub const DEFAULT_RHO: f64 = 7.0;
    /// The x̂0 a level hands to the next is clamped to the image range [-1, 1]. Where the
    /// measurement does not reach (colour in colorization, large holes) nothing else bounds
    /// it, and after K steps at a large σ the network sees less noise than σ and its x̂0
    /// leaves the range by far; unclamped, that drew a purple cast over every colorized
    /// photo (docs/algorithm.md, "Clamping x̂0 and colorization").
    pub const DEFAULT_CLIP_DENOISED: bool = true;
    /// With few levels the gradient steps leave x̂0 far from the measurement (SR×4 from 5
    /// levels × 1 iteration: residual 0.16 against σ_y = 0.01, 18.6 dB); the proximal step on
    /// every level's x̂0 brings it to the noise level at no network cost (21.8 dB, as good as
    /// 50 × 3 without it; docs/algorithm.md, "Data fit").
    pub const DEFAULT_DATA_FIT: DataFit = DataFit::Every;
    /// Fewest levels of a schedule that starts at the operator's own σ (see `sigmas`).
    pub const MIN_LEVELS_FROM_START: usize = 5;
    /// One restoration: a MAP estimate, not an average of several (see `samples`).
    pub const DEFAULT_SAMPLES: usize = 1;

    /// Resolves `opts` against the defaults and checks them.
    pub fn new(opts: &Options, precondition: bool) -> Result<Self> {
        let s = VmlMap {
            precondition,
            steps: opts.steps.unwrap_or(Self::DEFAULT_STEPS),
            iters: opts.iters.unwrap_or(Self::DEFAULT_ITERS),
            step_size: opts.step_size.unwrap_or(if precondition {
                Self::DEFAULT_STEP_SIZE_PRE
            } else {
                Self::DEFAULT_STEP_SIZE
            }),
            prior_step_cap: opts.prior_step_cap.unwrap_or(Self::DEFAULT_PRIOR_STEP_CAP),
            sigma_y_floor: opts.sigma_y_floor.unwrap_or(Self::DEFAULT_SIGMA_Y_FLOOR),
            renoise: opts.renoise.unwrap_or(Self::DEFAULT_RENOISE),
            init: opts.init.unwrap_or(Self::DEFAULT_INIT),
            sigma_min: opts.sigma_min,
            sigma_max: opts.sigma_max,
            rho: opts.rho.unwrap_or(Self::DEFAULT_RHO),
            clip_denoised: opts.clip_denoised.unwrap_or(Self::DEFAULT_CLIP_DENOISED),
            data_fit: opts.data_fit,
            samples: opts.samples.unwrap_or(Self::DEFAULT_SAMPLES),
        };
        if s.steps == 0 || s.iters == 0 {
            return Err(Error::Usage("vml-map needs steps ≥ 1 and iters ≥ 1".into()));
        }
        if s.samples == 0 {
            return Err(Error::Usage("vml-map needs samples ≥ 1".into()));
        }
        if !(s.step_size.is_finite() && s.step_size > 0.0) {
            return Err(Error::Usage(format!(
                "step size must be > 0, got {}",
                s.step_size
            )));
        }
        if s.prior_step_cap.is_nan() || s.prior_step_cap <= 0.0 {
            return Err(Error::Usage(format!(
                "prior_step_cap must be > 0, got {}",
                s.prior_step_cap
            )));
        }
        if !(s.sigma_y_floor.is_finite() && s.sigma_y_floor >= 0.0) {
            return Err(Error::Usage(format!(
                "sigma_y_floor must be ≥ 0, got {}",
                s.sigma_y_floor
            )));
        }
        if !(s.rho.is_finite() && s.rho > 0.0) {
            return Err(Error::Usage(format!("rho must be > 0, got {}", s.rho)));
        }
        for v in [s.sigma_min, s.sigma_max].into_iter().flatten() {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Usage(format!("σ bounds must be > 0, got {v}")));
            }
        }
        Ok(s)
    }

    /// The noise levels σ_1 > … > σ_N for `denoiser` on `op`'s measurements: `steps`
    /// levels from `DEFAULT_SIGMA_MAX` (plain) or the network's σ_max (preconditioned)
    /// down to σ_min. Where the operator names a start (`Operator::start_sigma`) and
    /// σ_max is not set, the schedule starts there, as SDEdit starts part-way, with as
    /// many levels as the full schedule has below the start (a fraction of its cost) but
    /// at least `MIN_LEVELS_FROM_START`. Squeezing all `steps` levels into the short
    /// range did worse: on JPEG Q10 (the pack's validation photos, docs/benchmarks.md
    /// "JPEG") 20 levels from 0.15 gained 0.89 dB over the decoded file, 10 gained 1.23
    /// and 5 gained 1.34; the 2 levels the `fast` schedule has below 0.15 lost 0.7.
    pub fn sigmas(&self, denoiser: &dyn Denoiser, op: &dyn Operator) -> Result<Vec<f64>> {
        let lo = self.sigma_min.unwrap_or_else(|| denoiser.sigma_min());
        let hi = self.sigma_max.unwrap_or_else(|| {
            if self.precondition {
                denoiser.sigma_max()
            } else {
                denoiser.sigma_max().min(Self::DEFAULT_SIGMA_MAX)
            }
        });
        if !(lo > 0.0 && lo <= hi) {
            return Err(Error::Usage(format!(
                "need 0 < σ_min ≤ σ_max, got {lo} and {hi}"
            )));
        }
        let all = karras(self.steps, lo, hi, self.rho);
        match op
            .start_sigma()
            .filter(|&s| self.sigma_max.is_none() && s > lo && s < hi)
        {
            Some(start) => {
                let tail = all.iter().filter(|&&s| s <= start).count();
                let n = tail.max(self.steps.min(Self::MIN_LEVELS_FROM_START));
                Ok(karras(n, lo, start, self.rho))
            }
            None => Ok(all),
        }
    }
}

impl Solver for VmlMap {
    fn name(&self) -> &'static str {
        if self.precondition {
            "vml-map-pre"
        } else {
            "vml-map"
        }
    }

    /// With `samples` > 1, the mean of that many solves, each from its own seeds, then the
    /// data fit once more: each solve is a different draw of the re-noising, and their mean
    /// trades a little sharpness for error (JPEG Q10 / Q30 on the validation photos, 3
    /// samples: +0.15 / +0.18 dB and higher SSIM; docs/algorithm.md, "Averaged samples").
    /// For JPEG the mean of points inside the file's quantisation cell stays inside it.
    fn solve_seeded(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seeds: &[u64],
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>> {
        if self.samples == 1 {
            return self.solve_one(denoiser, problem, seeds, on_progress);
        }
        let mut sum: Option<Tensor> = None;
        let mut before = Progress {
            step: 0,
            steps: 0,
            forwards: 0,
            vjps: 0,
        };
        for k in 0..self.samples {
            let own: Vec<u64> = seeds.iter().map(|&s| sample_seed(s, k)).collect();
            let mut last = before;
            let mut report = |p: Progress| {
                last = Progress {
                    step: before.step + p.step,
                    steps: self.samples * p.steps,
                    forwards: before.forwards + p.forwards,
                    vjps: before.vjps + p.vjps,
                };
                on_progress(last)
            };
            let Some(x) = self.solve_one(denoiser, problem, &own, &mut report)? else {
                return Ok(None);
            };
            before = last;
            sum = Some(match sum {
                None => x,
                Some(acc) => acc + x,
            });
        }
        let mean = sum.map(|t| t / self.samples as f64);
        Ok(mean.map(|m| {
            let y = problem.y.to_kind(Kind::Float);
            let fitted = match self.data_fit {
                Some(DataFit::Off) => None,
                _ => tch::no_grad(|| operators::data_prox(problem.op, &m, &y, problem.sigma_y)),
            };
            fitted.unwrap_or(m).clamp(-1.0, 1.0)
        }))
    }
}

/// The seed of sample `k` of a request seeded `seed`: `seed` itself for the first, so
/// that one sample is the plain solve; the others spread by the golden-ratio increment
/// of SplitMix64 (`rng`), whose streams from such seeds do not overlap in practice.
pub fn sample_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl VmlMap {
    /// One solve: the levels of `sigmas`, from the seeds' noise.
    fn solve_one(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seeds: &[u64],
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>> {
        let n = check_problem(problem)?;
        let op = problem.op;
        let svd = if self.precondition {
            Some(super::require_svd(op, "vml-map-pre")?)
        } else {
            None
        };
        let sigma_y2 = problem.sigma_y * problem.sigma_y;
        if self.precondition && self.sigma_y_floor == 0.0 {
            // Without the floor the null-space gain σ_i²/s_i² of P multiplies the part of
            // Jᵀ Hᵀ r that J leaks out of the range of Hᵀ; it diverges at large σ_i.
            return Err(Error::Usage("vml-map-pre needs sigma_y_floor > 0".into()));
        }
        let sigmas = self.sigmas(denoiser, op)?;
        let y = problem.y.to_kind(Kind::Float);
        let size = x_size(problem, n);
        let opts = (Kind::Float, y.device());
        let mut noise = Noise::for_batch(seeds, n)?;

        // Singular values padded with zeros to the image dimension D (the null space of H).
        let spectrum = match svd {
            Some(svd) => {
                let d: i64 = size[1..].iter().product();
                let s = super::singular_values(svd, op, d, y.device())?;
                let m = s.size()[0];
                Some(Tensor::cat(&[s, Tensor::zeros([d - m], opts)], 0))
            }
            None => None,
        };

        let data_fit = self.data_fit.unwrap_or(if op.fits_every_level() {
            Self::DEFAULT_DATA_FIT
        } else {
            DataFit::Last
        });
        let mut count = Counter::default();
        let sigma1 = sigmas[0];
        let mut x = noise.normal(&size, opts) * sigma1;
        let start = tch::no_grad(|| match self.init {
            Init::Noise => None,
            Init::Pinv => Some(operators::damped_pinv(op, &y, problem.sigma_y)),
            Init::Classical => Some(crate::operators::classical::restore(
                op,
                &y,
                problem.sigma_y,
            )),
        });
        if let Some(start) = start {
            x += start;
        }
        let mut x0 = x.shallow_clone();
        // ‖H‖² scales the data term's curvature: 1/16 for ×4 average pooling, whose data
        // steps would otherwise be 16 times too short (docs/algorithm.md). An operator that
        // measures nothing has no data term to scale.
        let l = Some(operators::norm_squared(op))
            .filter(|l| *l > 0.0)
            .unwrap_or(1.0);
        for (i, &sigma) in sigmas.iter().enumerate() {
            let sigma2 = sigma * sigma;
            let s2 = sigma_y2 + self.sigma_y_floor * sigma2;
            // η_i v = a (D − x) + b Hᵀ(y − H D), with a ∈ [0, 1] and b ‖H‖² ∈ [0, 1].
            let a = s2 / (s2 + l * sigma2);
            let b = sigma2 / (s2 + l * sigma2);
            // P_i / η_i in the spectral basis: (‖H‖² σ² + s²) / (s_k² σ² + s²).
            let pdiag = spectrum
                .as_ref()
                .map(|s| (s.square() * sigma2 + s2).reciprocal() * (l * sigma2 + s2));
            // Along H's null space a step moves x by γ a (plain) or γ (preconditioned: P
            // there is σ_i²) of the way to D when J = I; κ caps that share.
            let prior_share = if svd.is_some() { 1.0 } else { a };
            let gamma = self.step_size.min(self.prior_step_cap / prior_share);
            for _ in 0..self.iters {
                let xi = &x;
                let (_, jtg) = denoise_vjp(denoiser, xi, sigma, |d| {
                    // Hᵀ(y − H D) for a linear H; J_H(D)ᵀ(y − H D) for JPEG.
                    (d - xi) * a + op.vjp(d, &(&y - op.forward(d))) * b
                })?;
                count.forwards += 1;
                count.vjps += 1;
                let step = match (svd, &pdiag) {
                    (Some(svd), Some(p)) => tch::no_grad(|| svd.v(&(svd.vt(&jtg) * p))),
                    _ => jtg,
                };
                x = (&x + step * gamma).detach();
            }
            x0 = tch::no_grad(|| denoiser.denoise(&x, sigma));
            if self.clip_denoised {
                x0 = x0.clamp(-1.0, 1.0);
            }
            count.forwards += 1;
            let last = i + 1 == sigmas.len();
            let fit = match data_fit {
                DataFit::Off => false,
                DataFit::Last => last,
                DataFit::Every => true,
            };
            if fit {
                // JPEG projects x̂0 onto the images that code to the same file; an
                // operator with neither an SVD nor a projection keeps x̂0 as it is.
                if let Some(fitted) =
                    tch::no_grad(|| operators::data_prox(op, &x0, &y, problem.sigma_y))
                {
                    x0 = fitted;
                }
            }
            if let Some(&next) = sigmas.get(i + 1) {
                x = match self.renoise {
                    Renoise::Stochastic => &x0 + noise.normal(&size, opts) * next,
                    Renoise::Deterministic => &x0 + (&x - &x0) * (next / sigma),
                };
            }
            if count.report(i + 1, sigmas.len(), on_progress) == Control::Stop {
                return Ok(None);
            }
        }
        Ok(Some(x0.clamp(-1.0, 1.0)))
    }
}
