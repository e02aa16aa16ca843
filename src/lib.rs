//! vml-filter: image restoration with pretrained diffusion models.
//!
//! The engine estimates the MAP image of an inverse problem `y = H x + η` by minimising
//! the variational mode-seeking loss (VML-MAP) at each reverse diffusion step, and
//! implements the methods it is judged against (DPS, DDRM, ΠGDM, DiffPIR, RED-diff, DAPS)
//! on the same operators and networks.
//!
//! # The API
//!
//! The names re-exported here are the library's interface; the modules below hold them
//! and the pieces a specialist may want (the UNet, the schedules, each operator).
//!
//! - Pixels in, pixels out: [`decode`] a file's bytes, [`restore`] the [`Picture`] for a
//!   [`Task`] with [`Settings`] (method, model, device, σ_y, solver options), [`encode`].
//! - Piece by piece: [`open_model`] loads a network (a registry name such as `default`, or
//!   a checkpoint as guided-diffusion saves it), [`build_operator`] makes `H` from a task
//!   and an image shape, [`build_solver`] makes a [`Method`] with its [`SolverOptions`],
//!   and [`Solver::solve`] runs it on a [`Problem`].
//! - The wire format of serve mode: [`protocol`].
//!
//! Module tree (one way, docs/architecture.md): `task`, `jpeg`, `rng` at the bottom;
//! `model` and `operators`; `registry`; `error`, `device`, `io`; `diffusion` and
//! `solvers`; `pipeline` and `protocol`; the application `app` (the `cli` feature) on top.

/// Serde for a type named by a string: written as its `name()`, read with its `FromStr`
/// (whose error message becomes serde's). One implementation for methods, presets,
/// precisions and formats, so the protocol reads the names the command line takes.
macro_rules! serde_by_name {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize<'de>>::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod atomic;
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
/// The seeded random streams every method, measurement and training run draws from.
pub mod rng;
pub mod solvers;
pub mod task;

#[cfg(feature = "cli")]
pub mod app;

pub use diffusion::Denoiser;
pub use error::{Error, Result};
pub use io::{decode, encode, Format, Limits, Picture};
pub use operators::{build as build_operator, Operator};
pub use pipeline::{restore, ModelCache, Outcome, Settings};
pub use registry::open as open_model;
pub use solvers::{build as build_solver, Method, Problem, Quality, Solver, SolverOptions};
pub use task::Task;
