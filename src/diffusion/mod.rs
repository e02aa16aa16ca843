//! The denoiser `D(x, σ) ≈ E[x0 | x0 + σ n]` and σ schedules (variance-exploding form).
//!
//! Solvers see only the `Denoiser` trait, so they run unchanged over a pretrained
//! ε-prediction network (VP → VE conversion in docs/derivation.md) or over the
//! exact denoiser of a Gaussian prior used in the closed-form tests.

pub mod eps;
pub mod gaussian;
pub mod schedule;

pub use eps::{EpsDenoiser, EpsModel};
pub use gaussian::GaussianPrior;
pub use schedule::{karras, VpSchedule};

use tch::Tensor;

/// `D(x, σ)`, differentiable with respect to `x`.
pub trait Denoiser {
    /// Denoises a batch `(N, C, H, W)` at noise level `sigma` (same σ for the batch).
    /// Must be differentiable w.r.t. `x` when `x` requires grad.
    fn denoise(&self, x: &Tensor, sigma: f64) -> Tensor;
    /// Smallest σ the denoiser was trained for.
    fn sigma_min(&self) -> f64;
    /// Largest σ the denoiser was trained for.
    fn sigma_max(&self) -> f64;
    /// The σ of the network's own discrete timesteps, ascending, if it has them.
    fn discrete_sigmas(&self) -> Option<Vec<f64>> {
        None
    }
    /// Estimated peak bytes of one forward with autograd plus its VJP on an `h × w` image,
    /// if known; the pipeline tiles images whose estimate exceeds `--max-memory`.
    fn iteration_bytes(&self, _h: i64, _w: i64) -> Option<u64> {
        None
    }
}
