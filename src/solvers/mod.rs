//! Restoration algorithms over a `Denoiser` and an `Operator`: VML-MAP, preconditioned
//! VML-MAP, and the baselines DPS, DDRM and ΠGDM.

use crate::diffusion::Denoiser;
use crate::operators::Operator;
use tch::Tensor;

/// One inverse problem: `y = H x + η`, `η ~ N(0, σ_y² I)`, on the [-1, 1] scale.
pub struct Problem<'a> {
    pub op: &'a dyn Operator,
    /// Measurement, `(N, C', H', W')`.
    pub y: Tensor,
    /// Measurement noise standard deviation σ_y ≥ 0.
    pub sigma_y: f64,
}

/// Where a solver stands; sent after every reverse step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    /// Network evaluations so far: forward passes and vector-Jacobian products.
    pub forwards: usize,
    pub vjps: usize,
}

/// What the caller answers to a progress report: stop lets Ctrl-C and cancel end a
/// solve cleanly between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// A restoration method.
pub trait Solver {
    /// Short name (`vml-map`, `dps`, …).
    fn name(&self) -> &'static str;
    /// Restores `problem` with `denoiser`. Returns the estimate `(N, C, H, W)` in [-1, 1],
    /// or `None` when `on_progress` asked to stop.
    fn solve(
        &self,
        denoiser: &dyn Denoiser,
        problem: &Problem,
        seed: u64,
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Option<Tensor>;
}

/// Settings common to the methods; `None` means the method's own default (documented in
/// docs/algorithm.md). Method-specific knobs are added here as named fields.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SolverOptions {
    /// Number of reverse diffusion steps N.
    pub steps: Option<usize>,
    /// Inner iterations K per step (VML-MAP).
    pub iters: Option<usize>,
}

/// Method names accepted by `build`, in the order the CLI lists them.
pub const METHODS: &[&str] = &[
    "vml-map",
    "vml-map-pre",
    "dps",
    "ddrm",
    "pigdm",
    "classical",
];

/// Builds the solver called `method`.
pub fn build(method: &str, opts: &SolverOptions) -> crate::Result<Box<dyn Solver>> {
    let _ = opts;
    Err(crate::Error::Usage(format!(
        "method '{method}' is not available yet; known methods: {}",
        METHODS.join(", ")
    )))
}
