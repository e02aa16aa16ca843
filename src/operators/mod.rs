//! Linear degradation operators `H` with `Hᵀ`, `H⁺` and, where cheap, the SVD.
//!
//! Conventions shared by every operator:
//! - An operator is built for one image shape `(C, H, W)` (masks and blur matrices depend
//!   on it); the batch dimension `N` is free. Building is cheap, so tiles build their own.
//! - Images are `(N, C, H, W)` float tensors in [-1, 1]; measurements are image-shaped
//!   tensors `(N, C', H', W')` (for inpainting, the masked image with zeros where unknown).
//! - `H = U Σ Vᵀ`: `vt` maps an image to `D = C·H·W` spectral coefficients, `ut` maps a
//!   measurement to `M ≤ D` coefficients, and `H x = u(s ⊙ vt(x)[.., ..M])` where `s` are
//!   the `M` singular values (zeros allowed, not sorted).
//! - Operators compute on the device and in the float kind of their argument; their own
//!   tables live on the host in f64 (tch tensors are not `Sync`, operators must be).
//!
//! The operators (maths in docs/operators.md):
//! inpainting (`inpaint`), super-resolution by block mean or bicubic (`sr`, separable),
//! Gaussian / uniform blur (`blur`, separable with symmetric boundary), motion and user
//! kernels (`blur`, circular convolution diagonalised by a real Fourier basis in
//! `circular`), colorization (`colorize`) and denoising (`denoise`).

pub mod blur;
pub mod circular;
pub mod classical;
pub mod colorize;
pub mod denoise;
pub mod inpaint;
pub mod jpeg;
pub mod noise;
pub mod separable;
pub mod sr;

pub use inpaint::{box_mask, half_mask, mask_from_image, random_mask};

use crate::task::Task;
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The task's own parameters ([`Task::validate`]).
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
    #[error("{0}")]
    Invalid(String),
    #[error("mask is {got_w}×{got_h} but the image is {want_w}×{want_h}")]
    MaskSize {
        got_w: i64,
        got_h: i64,
        want_w: i64,
        want_h: i64,
    },
    #[error("inpainting needs a mask")]
    MissingMask,
    #[error("the mask selects no pixel to restore")]
    EmptyMask,
}

/// The pieces of `H = U Σ Vᵀ`.
pub trait Svd: Send + Sync {
    /// `Vᵀ x`: image `(N, C, H, W)` → `(N, D)`.
    fn vt(&self, x: &Tensor) -> Tensor;
    /// `V c`: `(N, D)` → image `(N, C, H, W)`.
    fn v(&self, c: &Tensor) -> Tensor;
    /// `Uᵀ y`: measurement → `(N, M)`.
    fn ut(&self, y: &Tensor) -> Tensor;
    /// `U c`: `(N, M)` → measurement.
    fn u(&self, c: &Tensor) -> Tensor;
    /// The `M` singular values, pairing with the first `M` entries of `vt`; f64 on the
    /// CPU (callers move them to their device and kind).
    fn singular_values(&self) -> Tensor;
}

/// A measurement operator `H` built for one image shape: linear (every operator but JPEG)
/// or not (`is_linear`). Solvers reach `H` only through `forward` and `vjp` unless they
/// need it linear (its SVD, `pinv` as the exact pseudo-inverse); those check `is_linear`
/// (`solvers::require_linear`, `solvers::require_svd`) and refuse the others.
pub trait Operator: Send + Sync {
    /// Short description for logs.
    fn name(&self) -> String;
    /// `(C, H, W)` of the images it takes.
    fn x_shape(&self) -> [i64; 3];
    /// `(C', H', W')` of the measurements it gives.
    fn y_shape(&self) -> [i64; 3];
    /// `H x`.
    fn forward(&self, x: &Tensor) -> Tensor;
    /// `Hᵀ y`. A nonlinear operator gives the transpose of the Jacobian its gradients use
    /// when that is the same at every `x` (JPEG's straight-through linearisation).
    fn adjoint(&self, y: &Tensor) -> Tensor;
    /// Moore–Penrose pseudo-inverse `H⁺ y`. A nonlinear operator gives an `x` with
    /// `H x ≈ y` instead, where to start a solver (JPEG: the decoded image).
    fn pinv(&self, y: &Tensor) -> Tensor;
    /// Whether `H` is linear, so that `adjoint`, `pinv` and `svd` mean what they say.
    fn is_linear(&self) -> bool {
        true
    }
    /// `H x` as autograd should see it (DPS differentiates through it): `forward` for a
    /// linear operator, a differentiable surrogate for a nonlinear one.
    fn forward_surrogate(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
    /// `J(x)ᵀ g`, the vector-Jacobian product of `H` at `x`: `Hᵀ g` for a linear operator
    /// (whatever `x`), autograd through `forward_surrogate` for a nonlinear one.
    fn vjp(&self, _x: &Tensor, g: &Tensor) -> Tensor {
        self.adjoint(g)
    }
    /// `‖J‖²` of a nonlinear operator's gradients, when it knows it better than power
    /// iteration on `forward` and `adjoint` would (`norm_squared`).
    fn gain_squared(&self) -> Option<f64> {
        None
    }
    /// For an operator without an SVD, the proximal step of its data term where it has a
    /// cheap one: the `x` nearest `x0` that is consistent with `y` (JPEG: every image that
    /// codes to the same file, `jpeg::Codec::project`). `None` otherwise.
    fn consistent(&self, _x0: &Tensor, _y: &Tensor) -> Option<Tensor> {
        None
    }
    /// Whether the data fit suits every level's x̂0, as VML-MAP applies it by default
    /// (`DataFit::Every`), or only the last one's. A wide hole is the exception: fitted early,
    /// its surroundings come back sharp while the hole is still the smooth guess of a large
    /// σ, and the later levels keep it smooth (box 64² in 128²: 2.8 dB below the fit on the
    /// last level only; docs/algorithm.md, "Data fit").
    fn fits_every_level(&self) -> bool {
        true
    }
    /// The noise level a diffusion solver should start from when the operator loses only
    /// detail smaller than a known scale (JPEG alone: about its compression error), so
    /// that the prior repairs that detail and does not redraw the rest. `None`: the
    /// solver's own start.
    fn start_sigma(&self) -> Option<f64> {
        None
    }
    /// The measurement of `x` with sensor noise σ_y drawn from `seed`, where it is not
    /// `degrade`'s `H x + σ n`: a JPEG records the noise before compression, and its
    /// compression error (`own_noise`, for the solvers) is in the round trip already.
    fn measure(&self, _x: &Tensor, _sigma_y: f64, _seed: u64) -> Option<Tensor> {
        None
    }
    /// The SVD, when the operator has a cheap one.
    fn svd(&self) -> Option<&dyn Svd> {
        None
    }
    /// The classical estimator for this operator (`classical::restore`): the Wiener filter
    /// for the measurement's σ unless the operator knows a better one.
    fn classical(&self, _y: &Tensor, sigma_y: f64) -> classical::Estimate {
        classical::Estimate::Wiener { sigma: sigma_y }
    }
    /// Noise of its own that the operator's task adds (denoising: the task's σ); it adds to
    /// σ_y in variance.
    fn own_noise(&self) -> f64 {
        0.0
    }
}

/// Builds the operator for `task` on images of shape `(C, H, W)`. `mask` is `(H, W)` with
/// 1 where the pixel is unknown (inpainting only); other tasks ignore it here (the caller
/// uses it to limit where the result applies).
pub fn build(
    task: &Task,
    shape: [i64; 3],
    mask: Option<&Tensor>,
) -> Result<Box<dyn Operator>, OperatorError> {
    build_with(task, shape, mask, None)
}

/// [`build`] with the tables of the input JPEG file, which `jpeg` without a quality needs.
pub fn build_with(
    task: &Task,
    shape: [i64; 3],
    mask: Option<&Tensor>,
    jpeg: Option<&crate::jpeg::Tables>,
) -> Result<Box<dyn Operator>, OperatorError> {
    task.validate()?;
    check_shape(shape)?;
    Ok(match task {
        Task::Jpeg {
            quality,
            sampling,
            tables: given,
            inner,
        } => {
            let inner = match inner.as_deref() {
                Some(t) => Some(build_with(t, shape, mask, None)?),
                None => None,
            };
            let own;
            let tables = match (quality, given, jpeg) {
                (Some(q), _, _) => {
                    let [h, v] = sampling.unwrap_or([2, 2]);
                    own = crate::jpeg::standard_tables(*q, h, v, 0, 0);
                    &own
                }
                (None, Some(t), _) => {
                    own = t.to_tables()?;
                    &own
                }
                (None, None, Some(t)) => t,
                (None, None, None) => {
                    return Err(OperatorError::Invalid(
                        "JPEG 'auto' needs the input file's tables (the input must be a JPEG)"
                            .into(),
                    ))
                }
            };
            Box::new(jpeg::Jpeg::new(tables, shape, inner)?)
        }
        Task::Inpaint => Box::new(inpaint::Inpaint::new(
            shape,
            mask.ok_or(OperatorError::MissingMask)?,
        )?),
        Task::Sr { scale, downsample } => Box::new(sr::build(shape, *scale, *downsample)?),
        Task::Deblur(blur) => blur::build(shape, blur)?,
        Task::Denoise { sigma } => Box::new(denoise::Denoise::new(shape, *sigma)?),
        Task::Colorize => Box::new(colorize::Colorize::new(shape)?),
    })
}

/// The image shape `(C, H, W)` whose measurement has shape `y_shape` under `task`: what
/// the filter builds the operator with when it is handed a measurement to restore.
pub fn x_shape_for(task: &Task, y_shape: [i64; 3]) -> Result<[i64; 3], OperatorError> {
    check_shape(y_shape)?;
    let [c, h, w] = y_shape;
    Ok(match task {
        Task::Sr { scale, .. } => {
            task.validate()?;
            let s = i64::from(*scale);
            [c, h * s, w * s]
        }
        Task::Colorize => [3, h, w],
        Task::Jpeg { inner: Some(t), .. } => x_shape_for(t, y_shape)?,
        _ => y_shape,
    })
}

/// `y = H x + σ n` with `n ~ N(0, I)` drawn from `seed` on the host, so the same seed
/// gives the same measurement on every device, and `σ = measurement_sigma(op, σ_y)` (the
/// denoising task brings its own noise). Noise only enters the measured entries (for
/// inpainting, unknown pixels stay exactly 0). A σ that is not a positive finite number
/// adds no noise.
pub fn degrade(x: &Tensor, op: &dyn Operator, sigma_y: f64, seed: u64) -> Tensor {
    if let Some(y) = op.measure(x, sigma_y, seed) {
        return y;
    }
    let y = op.forward(x);
    let sigma = measurement_sigma(op, sigma_y);
    if !(sigma.is_finite() && sigma > 0.0) {
        return y;
    }
    let n = project_measurement(op, &noise_like(&y, seed));
    y + n * sigma
}

/// `gaussian_noise` of `t`'s shape, on its device and in its kind.
pub(crate) fn noise_like(t: &Tensor, seed: u64) -> Tensor {
    gaussian_noise(&t.size(), seed)
        .to_device(t.device())
        .to_kind(t.kind())
}

/// `H⁺ y` damped for measurement noise of standard deviation `sigma`:
/// `V diag(s / (s² + σ²)) Uᵀ y` with σ at least the 8-bit rounding of a stored image.
/// Where to start an iterative solver: a blur's near-zero singular values turn the exact
/// `H⁺` of a noisy or rounded measurement into noise of huge amplitude, while singular
/// values well above σ (inpainting, SR, colorization) are inverted as by `H⁺`. Operators
/// without an SVD use `H⁺`.
pub fn damped_pinv(op: &dyn Operator, y: &Tensor, sigma: f64) -> Tensor {
    let Some(svd) = op.svd() else {
        return op.pinv(y);
    };
    damped_inverse(svd, op, y, &Tensor::from(at_least_rounding(sigma)))
}

/// σ floored at the 8-bit rounding of a stored image (a non-finite σ counts as 0): a
/// stored measurement is never noiseless.
fn at_least_rounding(sigma: f64) -> f64 {
    let q = classical::QUANTISATION_STD;
    if sigma.is_finite() {
        sigma.max(q)
    } else {
        q
    }
}

/// The proximal step of the data term at `x0`,
/// `argmin_x ‖y − Hx‖²/(2σ²) + ‖x − x0‖²/(2τ²) = x0 + V diag(s / (s² + σ²/τ²)) Uᵀ (y − H x0)`,
/// with σ at least the 8-bit rounding (as in [`damped_pinv`]) and, per image, the τ the
/// residual implies: if `x0` is off by white error of variance τ², then
/// `E‖y − H x0‖² = mσ² + τ² Σ s_k²` over the m measured dimensions, so
/// `τ² = max(0, ‖y − H x0‖² − mσ²) / Σ s_k²`. An `x0` that already explains `y` to within
/// the noise is left alone (a denoised image), one far from it is pulled onto it (SR after
/// a few steps); the null space of `H` is never touched. An operator without an SVD gives
/// its [`Operator::consistent`] projection (the prox of a data term that is an indicator:
/// JPEG's quantisation), or `None`.
pub fn data_prox(op: &dyn Operator, x0: &Tensor, y: &Tensor, sigma: f64) -> Option<Tensor> {
    let Some(svd) = op.svd() else {
        return op.consistent(x0, y);
    };
    let sigma = at_least_rounding(sigma);
    let r = y - op.forward(x0);
    let n = r.size()[0];
    let s = svd
        .singular_values()
        .to_kind(r.kind())
        .to_device(r.device());
    let s2 = s.square().sum(r.kind());
    // The measured dimensions: a mask's y holds zeros, free of noise, where it measures
    // nothing.
    let m = s.gt(0.0).sum(Kind::Double).double_value(&[]);
    let excess = (r
        .square()
        .reshape([n, -1])
        .sum_dim_intlist(1, true, r.kind())
        - m * sigma * sigma)
        .clamp_min(0.0);
    // δ = σ/τ; τ = 0 (the residual within the noise) gives δ = ∞: no step.
    let delta = (excess / s2).reciprocal().sqrt() * sigma;
    Some(x0 + damped_inverse(svd, op, &r, &delta))
}

/// `V diag(s / (s² + δ²)) Uᵀ y`, δ `(N, 1)` per image (or a scalar tensor), δ > 0 or +∞.
fn damped_inverse(svd: &dyn Svd, op: &dyn Operator, y: &Tensor, delta: &Tensor) -> Tensor {
    let n = y.size()[0];
    let [c, h, w] = op.x_shape();
    let d = c * h * w;
    let s = svd
        .singular_values()
        .to_kind(y.kind())
        .to_device(y.device())
        .flatten(0, -1);
    let m = s.size()[0].min(d);
    let s = s.narrow(0, 0, m);
    let gain = (&s / (s.square() + delta.square())).nan_to_num(0.0, 0.0, 0.0);
    let coef = svd.ut(y).reshape([n, -1]).narrow(1, 0, m) * gain;
    let coef = Tensor::cat(
        &[coef, Tensor::zeros([n, d - m], (y.kind(), y.device()))],
        1,
    );
    svd.v(&coef).reshape([n, c, h, w])
}

/// `‖H‖²`, the largest eigenvalue of `HᵀH`: the curvature of the data term `‖y − Hx‖²/2`
/// along its stiffest direction, which sets a stable gradient step. 1 for masks, blurs
/// with unit gain and denoising, 1/s² for s×s average pooling, 1/3 for colorization. From
/// the singular values when the operator has an SVD, else by power iteration.
pub fn norm_squared(op: &dyn Operator) -> f64 {
    if let Some(g) = op.gain_squared() {
        return g;
    }
    if let Some(svd) = op.svd() {
        let s = svd.singular_values();
        if s.numel() > 0 {
            let top = s.abs().max().double_value(&[]);
            return top * top;
        }
    }
    let f = |x: &Tensor| op.forward(x);
    let b = |y: &Tensor| op.adjoint(y);
    power_iteration(&f, &b, op.x_shape(), op.y_shape())
}

/// The largest eigenvalue of `BF` for a linear `F` (image `x_shape` → `y_shape`) and its
/// transpose `B`, by 50 steps of power iteration.
pub(crate) fn power_iteration(
    forward: &dyn Fn(&Tensor) -> Tensor,
    adjoint: &dyn Fn(&Tensor) -> Tensor,
    x_shape: [i64; 3],
    y_shape: [i64; 3],
) -> f64 {
    let [c, h, w] = x_shape;
    // Start from Hᵀ1, the top direction of masks, pooling, colorization and unit-gain
    // blurs (a random start converges slowly when the top eigenvalues cluster, as a mild
    // blur's do), plus a little noise so no direction is missed.
    let [yc, yh, yw] = y_shape;
    let ones = Tensor::ones([1, yc, yh, yw], (Kind::Float, Device::Cpu));
    let noise = gaussian_noise(&[1, c, h, w], 0).to_kind(Kind::Float);
    let mut x = adjoint(&ones) + noise * 1e-3;
    let mut lambda = 0.0;
    for _ in 0..50 {
        let norm = x.norm().double_value(&[]);
        if norm == 0.0 {
            break;
        }
        x /= norm;
        // The Rayleigh quotient ‖Hx‖² converges twice as fast as ‖HᵀHx‖ when the top
        // eigenvalues are close (a smooth blur's low frequencies).
        let hx = forward(&x);
        lambda = hx.square().sum(Kind::Double).double_value(&[]);
        x = adjoint(&hx);
    }
    lambda
}

/// Standard deviation of the noise in a measurement made with `op` and extra noise σ_y:
/// `√(σ² + σ_y²)` for denoising with task σ (independent noises add in variance), σ_y for
/// every other operator. What `degrade` adds, and the σ_y a solver should be given.
pub fn measurement_sigma(op: &dyn Operator, sigma_y: f64) -> f64 {
    let sigma_y = if sigma_y.is_finite() {
        sigma_y.max(0.0)
    } else {
        0.0
    };
    // hypot(0, σ_y) is σ_y exactly.
    op.own_noise().hypot(sigma_y)
}

/// The measurement as an image to write: `degrade`'s output clamped to [-1, 1] and kept at
/// its own size: the small image for super-resolution, one gray channel for colorization,
/// the masked image with unknown pixels at 0 (mid-gray) for inpainting, the blurred or
/// noisy image otherwise.
pub fn measurement_to_image(y: &Tensor) -> Tensor {
    y.clamp(-1.0, 1.0)
}

/// Reads an image `(N, C, H, W)` back as a measurement for `op`, the inverse of
/// `measurement_to_image`. For colorization a 3-channel picture is turned gray by the
/// operator's own rule (mean of R, G, B); for inpainting the values under the mask are
/// ignored (set to 0).
pub fn measurement_from_image(img: &Tensor, op: &dyn Operator) -> Result<Tensor, OperatorError> {
    let size = img.size();
    if size.len() != 4 {
        return Err(OperatorError::Invalid(format!(
            "measurement must be (N, C, H, W), got {size:?}"
        )));
    }
    let [c, h, w] = op.y_shape();
    let img = if size[1] == 3 && c == 1 && op.x_shape()[0] == 3 {
        img.mean_dim(1, true, img.kind())
    } else {
        img.shallow_clone()
    };
    if img.size()[1..] != [c, h, w] {
        return Err(OperatorError::Invalid(format!(
            "measurement is {}×{} with {} channel(s) but the operator expects {w}×{h} with {c}",
            size[3], size[2], size[1]
        )));
    }
    Ok(project_measurement(op, &img))
}

/// Projects a measurement-shaped tensor onto the measurement subspace `U Uᵀ` when the
/// measurement space is larger than the range (inpainting); otherwise returns it as is.
fn project_measurement(op: &dyn Operator, t: &Tensor) -> Tensor {
    if let Some(svd) = op.svd() {
        let [c, h, w] = op.y_shape();
        if svd.singular_values().numel() < (c * h * w) as usize {
            return svd.u(&svd.ut(t));
        }
    }
    t.shallow_clone()
}

/// Standard normal noise of `shape`, f64 on the CPU, from the seed alone (`crate::rng`):
/// reproducible for a seed whatever the device or thread.
pub fn gaussian_noise(shape: &[i64], seed: u64) -> Tensor {
    let v = crate::rng::SplitMix64::new(seed).normals(crate::rng::numel(shape));
    Tensor::from_slice(&v).reshape(shape)
}

pub(crate) fn check_shape(shape: [i64; 3]) -> Result<(), OperatorError> {
    if shape.iter().any(|&d| d <= 0) {
        return Err(OperatorError::Invalid(format!(
            "image shape {shape:?} has an empty dimension"
        )));
    }
    Ok(())
}

/// A dense f64 table on the host, turned into a tensor on the device and in the kind of
/// the data it meets. The converted copies are kept (one per device and kind), so an
/// operator applied in a loop on the GPU uploads its tables once. Callers only read them.
#[derive(Debug)]
pub(crate) struct Host {
    data: Vec<f64>,
    shape: Vec<i64>,
    cache: Cache,
}

/// Converted copies of a host table; `Tensor` is `Send`, so the mutex makes this `Sync`.
#[derive(Debug, Default)]
struct Cache(Mutex<Vec<(Device, Kind, Tensor)>>);

impl Cache {
    fn get(&self, device: Device, kind: Kind, make: impl FnOnce() -> Tensor) -> Tensor {
        // A poisoned lock only means another thread panicked mid-insert; the list is
        // still valid.
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, t)) = list.iter().find(|(d, k, _)| *d == device && *k == kind) {
            return t.shallow_clone();
        }
        let t = make();
        list.push((device, kind, t.shallow_clone()));
        t
    }
}

impl Host {
    pub(crate) fn new(data: Vec<f64>, shape: &[i64]) -> Self {
        debug_assert_eq!(data.len() as i64, shape.iter().product::<i64>());
        Host {
            data,
            shape: shape.to_vec(),
            cache: Cache::default(),
        }
    }
    pub(crate) fn from_tensor(t: &Tensor) -> Result<Self, OperatorError> {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
        let data = Vec::<f64>::try_from(&t.reshape([-1]))
            .map_err(|e| OperatorError::Invalid(e.to_string()))?;
        Ok(Host::new(data, &t.size()))
    }
    pub(crate) fn data(&self) -> &[f64] {
        &self.data
    }
    /// f64 on the CPU (a fresh tensor).
    pub(crate) fn tensor(&self) -> Tensor {
        Tensor::from_slice(&self.data).reshape(self.shape.as_slice())
    }
    /// On `like`'s device, in `like`'s kind.
    pub(crate) fn like(&self, like: &Tensor) -> Tensor {
        let (device, kind) = (like.device(), like.kind());
        self.cache.get(device, kind, || {
            self.tensor().to_device(device).to_kind(kind)
        })
    }
}

/// Index list on the host, for `index_select` / `index_copy` on the device of `like`.
#[derive(Debug, Default)]
pub(crate) struct Indices(pub(crate) Vec<i64>, Cache);

impl Indices {
    pub(crate) fn new(v: Vec<i64>) -> Self {
        Indices(v, Cache::default())
    }
    pub(crate) fn on(&self, like: &Tensor) -> Tensor {
        let device = like.device();
        self.1.get(device, Kind::Int64, || {
            Tensor::from_slice(&self.0).to_device(device)
        })
    }
    pub(crate) fn len(&self) -> i64 {
        self.0.len() as i64
    }
}

/// `1/s` where `s > tol · max(s)`, else 0: the pseudo-inverse of a diagonal. The relative
/// tolerance is `PINV_RTOL` for every operator.
pub(crate) fn pinv_diag(s: &[f64]) -> Vec<f64> {
    let max = s.iter().cloned().fold(0.0, f64::max);
    s.iter()
        .map(|&v| {
            if v > PINV_RTOL * max && v > 0.0 {
                1.0 / v
            } else {
                0.0
            }
        })
        .collect()
}

/// Singular values below this fraction of the largest are treated as 0 by `pinv`.
pub const PINV_RTOL: f64 = 1e-6;
