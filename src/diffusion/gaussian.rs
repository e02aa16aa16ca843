//! A Gaussian image prior `x0 ~ N(μ, Σ)` on small images, with its exact denoiser and the
//! exact MAP of a linear inverse problem: the closed-form reference that the solvers are
//! tested against.
//!
//! - Denoiser (Tweedie, exact for a Gaussian): `D(x, σ) = μ + Σ (Σ + σ² I)⁻¹ (x − μ)`,
//!   computed as `μ + Q diag(λ / (λ + σ²)) Qᵀ (x − μ)` with `Σ = Q diag(λ) Qᵀ`; built from
//!   tensor ops, so it is differentiable in `x`.
//! - MAP (= posterior mean) for `y = H x0 + η`, `η ~ N(0, σ_y² I)`:
//!   `x̂ = μ + Σ Hᵀ (H Σ Hᵀ + σ_y² I)⁺ (y − H μ)`. With σ_y = 0 this is the minimiser of
//!   `(x − μ)ᵀ Σ⁻¹ (x − μ)` subject to `H x = y` (for `y` in the range of `H`); the
//!   pseudo-inverse handles rank-deficient `H` (inpainting measurements keep zero rows).
//!
//! `H` is made dense by applying the operator to the identity basis, which is fine for the
//! few hundred pixels these priors are meant for.

use super::schedule::VpSchedule;
use super::Denoiser;
use crate::operators::Operator;
use tch::{Device, Kind, Tensor};

/// `N(μ, Σ)` on images of shape `(C, H, W)`, `D = C·H·W` small (a few hundred).
pub struct GaussianPrior {
    shape: [i64; 3],
    /// `(D,)`, f64.
    mean: Tensor,
    /// `(D, D)`, f64.
    cov: Tensor,
    /// Eigen-decomposition of Σ, f32, for the denoiser.
    eigvals: Tensor,
    eigvecs: Tensor,
    mean_f: Tensor,
    schedule: VpSchedule,
}

/// Covariance of a stationary periodic 1-D process of length `n` whose spectrum is `spec(f)`
/// for frequency index `f` (the eigenvalues of the circulant matrix are `spec(min(f, n−f))`).
fn circulant_cov(n: usize, spec: impl Fn(f64) -> f64) -> Vec<f64> {
    let lam: Vec<f64> = (0..n).map(|f| spec(f.min(n - f) as f64)).collect();
    let c: Vec<f64> = (0..n)
        .map(|k| {
            lam.iter()
                .enumerate()
                .map(|(f, l)| l * (2.0 * std::f64::consts::PI * (f * k) as f64 / n as f64).cos())
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = c[(i + n - j) % n];
        }
    }
    m
}

impl GaussianPrior {
    /// A prior from its mean `(C, H, W)` and covariance `(D, D)` (symmetric positive definite).
    pub fn new(mean: &Tensor, cov: &Tensor) -> crate::Result<Self> {
        let size = mean.size();
        let shape: [i64; 3] = match size.as_slice() {
            [c, h, w] => [*c, *h, *w],
            _ => {
                return Err(crate::Error::Input(format!(
                    "prior mean must be (C, H, W), got {size:?}"
                )))
            }
        };
        let d = shape.iter().product::<i64>();
        if cov.size() != [d, d] {
            return Err(crate::Error::Input(format!(
                "prior covariance must be {d}×{d}, got {:?}",
                cov.size()
            )));
        }
        let mean = mean.reshape([d]).to_kind(Kind::Double);
        let cov = cov.to_kind(Kind::Double);
        let cov = (&cov + cov.transpose(0, 1)) * 0.5;
        let (eigvals, eigvecs) = cov.linalg_eigh("L");
        if eigvals.min().double_value(&[]) <= 0.0 {
            return Err(crate::Error::Input(
                "prior covariance is not positive definite".into(),
            ));
        }
        Ok(GaussianPrior {
            shape,
            mean_f: mean.to_kind(Kind::Float),
            mean,
            cov,
            eigvals: eigvals.to_kind(Kind::Float),
            eigvecs: eigvecs.to_kind(Kind::Float),
            schedule: VpSchedule::ddpm(),
        })
    }

    /// A smooth prior on `(C, H, W)` images: a stationary (periodic) process with spatial
    /// spectrum `λ(f) ∝ 1/(1 + (f/1.5)²)² + 0.02` separable in rows and columns, modulated
    /// by a standard deviation that grows linearly down the rows (0.7× to 1.3×); channels
    /// correlated with coefficient 0.8 between neighbours; pixel standard deviation about 0.3
    /// and a per-channel mean in [-0.1, 0.1], so samples stay well inside [-1, 1].
    pub fn smooth(shape: [i64; 3], device: Device) -> crate::Result<Self> {
        let [c, h, w] = shape;
        if c < 1 || h < 1 || w < 1 || c * h * w > 4096 {
            return Err(crate::Error::Input(format!(
                "Gaussian prior shape {shape:?} must be small and non-empty"
            )));
        }
        let spec = |f: f64| 1.0 / (1.0 + (f / 1.5).powi(2)).powi(2) + 0.02;
        let ch = Tensor::from_slice(&circulant_cov(h as usize, spec)).reshape([h, h]);
        let cw = Tensor::from_slice(&circulant_cov(w as usize, spec)).reshape([w, w]);
        let cc: Vec<f64> = (0..c * c)
            .map(|k| 0.8f64.powi(((k / c) - (k % c)).abs() as i32))
            .collect();
        let cc = Tensor::from_slice(&cc).reshape([c, c]);
        let space = ch.kron(&cw);
        // Standard deviation growing from 0.7× to 1.3× down the rows: the prior is then not
        // diagonalised by the Fourier basis, so circulant operators (periodic blurs) couple
        // their null space to the measured part as on real images.
        let row_scale: Vec<f64> = (0..h * w)
            .map(|k| 0.7 + 0.6 * (k / w) as f64 / (h - 1).max(1) as f64)
            .collect();
        let row_scale = Tensor::from_slice(&row_scale);
        let space = &space * row_scale.unsqueeze(0) * row_scale.unsqueeze(1);
        // Scale so that the mean pixel variance is 0.09.
        let var = space.diagonal(0, 0, 1).mean(Kind::Double).double_value(&[]);
        let cov = cc.kron(&space) * (0.09 / var);
        let means: Vec<f64> = (0..c)
            .map(|k| {
                if c > 1 {
                    0.1 - 0.2 * k as f64 / (c - 1) as f64
                } else {
                    0.05
                }
            })
            .collect();
        let mean = Tensor::from_slice(&means)
            .reshape([c, 1, 1])
            .expand([c, h, w], false);
        Self::new(&mean.to_device(device), &cov.to_device(device))
    }

    /// `(C, H, W)`.
    pub fn shape(&self) -> [i64; 3] {
        self.shape
    }

    fn dim(&self) -> i64 {
        self.shape.iter().product()
    }

    /// Mean as an image `(1, C, H, W)`, f32.
    pub fn mean(&self) -> Tensor {
        let [c, h, w] = self.shape;
        self.mean_f.reshape([1, c, h, w])
    }

    /// Covariance `(D, D)`, f64.
    pub fn cov(&self) -> &Tensor {
        &self.cov
    }

    /// `n` samples `(n, C, H, W)`, f32, from the global LibTorch generator.
    pub fn sample(&self, n: i64) -> Tensor {
        let [c, h, w] = self.shape;
        let z = Tensor::randn([n, self.dim()], (Kind::Float, self.mean_f.device()));
        let x = (z * self.eigvals.sqrt()).matmul(&self.eigvecs.transpose(0, 1)) + &self.mean_f;
        x.reshape([n, c, h, w])
    }

    /// The matrix of `H` (`M × D`, f64), column `j` being `H e_j`.
    pub fn dense_operator(&self, op: &dyn Operator) -> Tensor {
        let [c, h, w] = self.shape;
        let d = self.dim();
        let basis = Tensor::eye(d, (Kind::Float, self.mean_f.device())).reshape([d, c, h, w]);
        let hb = op.forward(&basis).reshape([d, -1]).to_kind(Kind::Double);
        hb.transpose(0, 1)
    }

    /// The exact MAP (= posterior mean) of `x0` given `y = H x0 + η`, `η ~ N(0, σ_y² I)`;
    /// `y` is `(N, C', H', W')`, the result `(N, C, H, W)` f32. `sigma_y = 0` gives the
    /// constrained minimiser of `(x − μ)ᵀ Σ⁻¹ (x − μ)` subject to `H x = y`.
    pub fn map_estimate(&self, op: &dyn Operator, y: &Tensor, sigma_y: f64) -> Tensor {
        let [c, h, w] = self.shape;
        let hm = self.dense_operator(op);
        let m = hm.size()[0];
        let n = y.size()[0];
        let yv = y.reshape([n, m]).to_kind(Kind::Double);
        let sh = self.cov.matmul(&hm.transpose(0, 1)); // Σ Hᵀ, (D, M)
        let gram =
            hm.matmul(&sh) + Tensor::eye(m, (Kind::Double, yv.device())) * (sigma_y * sigma_y);
        let gram_pinv = gram.linalg_pinv(1e-10, true);
        let resid = yv - self.mean.unsqueeze(0).matmul(&hm.transpose(0, 1));
        let x = resid.matmul(&gram_pinv).matmul(&sh.transpose(0, 1)) + self.mean.unsqueeze(0);
        x.to_kind(Kind::Float).reshape([n, c, h, w])
    }

    /// The posterior covariance `Σ − Σ Hᵀ (H Σ Hᵀ + σ_y² I)⁺ H Σ` (`D × D`, f64).
    pub fn posterior_cov(&self, op: &dyn Operator, sigma_y: f64) -> Tensor {
        let hm = self.dense_operator(op);
        let m = hm.size()[0];
        let sh = self.cov.matmul(&hm.transpose(0, 1));
        let gram =
            hm.matmul(&sh) + Tensor::eye(m, (Kind::Double, hm.device())) * (sigma_y * sigma_y);
        &self.cov
            - sh.matmul(&gram.linalg_pinv(1e-10, true))
                .matmul(&sh.transpose(0, 1))
    }
}

impl Denoiser for GaussianPrior {
    fn denoise(&self, x: &Tensor, sigma: f64) -> Tensor {
        let size = x.size();
        let n = size.first().copied().unwrap_or(1);
        let gain = &self.eigvals / (&self.eigvals + sigma * sigma);
        let centred = x.reshape([n, self.dim()]) - &self.mean_f;
        let coef = centred.matmul(&self.eigvecs) * gain;
        (coef.matmul(&self.eigvecs.transpose(0, 1)) + &self.mean_f).reshape(size.as_slice())
    }

    fn sigma_min(&self) -> f64 {
        self.schedule.sigma_min()
    }

    fn sigma_max(&self) -> f64 {
        self.schedule.sigma_max()
    }

    /// The DDPM table of the pretrained networks, so that solvers that walk discrete steps
    /// (DPS, DDRM) run on this prior exactly as on a network.
    fn discrete_sigmas(&self) -> Option<Vec<f64>> {
        Some(self.schedule.sigmas().to_vec())
    }
}
