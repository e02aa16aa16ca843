//! vml-filter: image restoration with pretrained diffusion models.
//!
//! The engine estimates the MAP image of a linear inverse problem `y = H x + η` by
//! minimising the variational mode-seeking loss (VML-MAP) at each reverse diffusion step,
//! and implements the baselines it is judged against (DPS, DDRM, ΠGDM) on the same
//! operators and networks.
//!
//! Module tree (one way): `model` (ADM UNet, checkpoints) is used by `diffusion`
//! (schedules, the denoiser `D(x, σ)`), which `solvers` uses together with `operators`.
//! `io`, `protocol` and the binary sit on top.

pub mod atomic;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod io;
pub mod jpeg;
pub mod metrics;
pub mod model;
pub mod operators;
pub mod pipeline;
pub mod protocol;
pub mod registry;
pub mod rng;
pub mod solvers;
pub mod task;

#[cfg(feature = "cli")]
pub mod app;

pub use error::{Error, Result};
