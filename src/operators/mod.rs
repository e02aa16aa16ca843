//! Linear degradation operators `H` with `Hᵀ`, `H⁺` and, where cheap, the SVD.
//!
//! Conventions shared by every operator:
//! - An operator is built for one image shape `(C, H, W)` (masks and blur matrices depend
//!   on it); the batch dimension `N` is free. Building is cheap, so tiles build their own.
//! - Images are `(N, C, H, W)` float tensors in [-1, 1]; measurements are image-shaped
//!   tensors `(N, C', H', W')` (for inpainting, the masked image with zeros where unknown).
//! - `H = U Σ Vᵀ`: `vt` maps an image to `D = C·H·W` spectral coefficients, `ut` maps a
//!   measurement to `M ≤ D` coefficients, and `H x = u(s ⊙ vt(x)[.., ..M])` where `s` are
//!   the `M` singular values (zeros allowed).

use crate::task::Task;
use tch::Tensor;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
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
    /// The `M` singular values, pairing with the first `M` entries of `vt`.
    fn singular_values(&self) -> Tensor;
}

/// A linear operator `H` built for one image shape.
pub trait Operator: Send + Sync {
    /// Short description for logs.
    fn name(&self) -> String;
    /// `(C, H, W)` of the images it takes.
    fn x_shape(&self) -> [i64; 3];
    /// `(C', H', W')` of the measurements it gives.
    fn y_shape(&self) -> [i64; 3];
    /// `H x`.
    fn forward(&self, x: &Tensor) -> Tensor;
    /// `Hᵀ y`.
    fn adjoint(&self, y: &Tensor) -> Tensor;
    /// Moore–Penrose pseudo-inverse `H⁺ y`.
    fn pinv(&self, y: &Tensor) -> Tensor;
    /// The SVD, when the operator has a cheap one.
    fn svd(&self) -> Option<&dyn Svd> {
        None
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
    let _ = (task, shape, mask);
    Err(OperatorError::Invalid(
        "operators are not implemented yet".into(),
    ))
}
