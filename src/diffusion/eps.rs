//! `D(x, σ)` over an ε-prediction (VP, DDPM) network.
//!
//! The network was trained on `z = √ᾱ x0 + √(1−ᾱ) n`. For a VE state `x = x0 + σ n` the same
//! noise sits in `z = x / √(1 + σ²)` with `ᾱ = 1/(1+σ²)`, so (docs/derivation.md)
//!
//! ```text
//! D(x, σ) = x − σ ε_θ(x / √(1+σ²), t(σ))
//! ```
//!
//! with `t(σ)` the real timestep from `VpSchedule::t_of_sigma`. Networks trained with
//! `learn_sigma` output `2C` channels; the first `C` are ε.

use super::schedule::VpSchedule;
use super::Denoiser;
use tch::{Kind, Tensor};

/// A raw noise-prediction network `(z, t) → output`, `z` of shape `(N, C, H, W)`, `t` a float
/// tensor `(N,)` of (real-valued) timesteps. The output has `C` channels (ε) or `2C`
/// (ε followed by the variance interpolation of `learn_sigma` networks).
pub trait EpsModel {
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor;
    /// See [`Denoiser::iteration_bytes`]; known for the UNets, from their architecture.
    fn iteration_bytes(&self, _h: i64, _w: i64) -> Option<u64> {
        None
    }
}

impl<F> EpsModel for F
where
    F: Fn(&Tensor, &Tensor) -> Tensor,
{
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self(z, t)
    }
}

impl EpsModel for crate::model::UNet {
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self.forward(z, t)
    }
    fn iteration_bytes(&self, h: i64, w: i64) -> Option<u64> {
        Some(crate::model::memory::iteration_bytes(self.config(), h, w))
    }
}

impl EpsModel for crate::model::Network {
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self.forward(z, t)
    }
    fn iteration_bytes(&self, h: i64, w: i64) -> Option<u64> {
        Some(crate::model::memory::iteration_bytes(self.config(), h, w))
    }
}

impl EpsModel for &crate::model::UNet {
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self.forward(z, t)
    }
    fn iteration_bytes(&self, h: i64, w: i64) -> Option<u64> {
        Some(crate::model::memory::iteration_bytes(self.config(), h, w))
    }
}

impl EpsModel for &crate::model::Network {
    fn forward_eps(&self, z: &Tensor, t: &Tensor) -> Tensor {
        self.forward(z, t)
    }
    fn iteration_bytes(&self, h: i64, w: i64) -> Option<u64> {
        Some(crate::model::memory::iteration_bytes(self.config(), h, w))
    }
}

/// The VE denoiser of an ε-prediction network on a discrete VP schedule.
pub struct EpsDenoiser<M> {
    model: M,
    schedule: VpSchedule,
}

impl<M: EpsModel> EpsDenoiser<M> {
    /// `model` on the DDPM linear schedule (1e-4 … 0.02, 1000 steps) of the guided-diffusion
    /// checkpoints.
    pub fn new(model: M) -> Self {
        Self::with_schedule(model, VpSchedule::ddpm())
    }

    pub fn with_schedule(model: M, schedule: VpSchedule) -> Self {
        EpsDenoiser { model, schedule }
    }

    pub fn schedule(&self) -> &VpSchedule {
        &self.schedule
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    /// ε̂ at VE noise level σ: the network's first `C` output channels.
    pub fn eps(&self, x: &Tensor, sigma: f64) -> Tensor {
        let n = x.size().first().copied().unwrap_or(1);
        let c = x.size().get(1).copied().unwrap_or(1);
        let z = x / (1.0 + sigma * sigma).sqrt();
        let t = Tensor::full(
            [n],
            self.schedule.t_of_sigma(sigma),
            (Kind::Float, x.device()),
        );
        let out = self.model.forward_eps(&z, &t);
        if out.size().get(1).copied() == Some(2 * c) {
            out.narrow(1, 0, c)
        } else {
            out
        }
    }
}

impl<M: EpsModel> Denoiser for EpsDenoiser<M> {
    fn denoise(&self, x: &Tensor, sigma: f64) -> Tensor {
        x - self.eps(x, sigma) * sigma
    }

    fn sigma_min(&self) -> f64 {
        self.schedule.sigma_min()
    }

    fn sigma_max(&self) -> f64 {
        self.schedule.sigma_max()
    }

    fn discrete_sigmas(&self) -> Option<Vec<f64>> {
        Some(self.schedule.sigmas().to_vec())
    }

    fn iteration_bytes(&self, h: i64, w: i64) -> Option<u64> {
        self.model.iteration_bytes(h, w)
    }
}
