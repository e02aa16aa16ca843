//! The `classical` method: the classical estimate of `operators::classical` (no network),
//! clamped to [-1, 1].

use super::{check_problem, Control, Problem, Progress, Solver};
use crate::diffusion::Denoiser;
use crate::error::Result;
use crate::operators::classical::restore;
use tch::Tensor;

/// The classical estimate takes no settings: any field set is a usage error.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

#[derive(Clone, Copy, Debug, Default)]
pub struct Classical;

impl Solver for Classical {
    fn name(&self) -> &'static str {
        "classical"
    }

    fn solve_seeded(
        &self,
        _denoiser: &dyn Denoiser,
        problem: &Problem,
        _seeds: &[u64],
        on_progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Option<Tensor>> {
        check_problem(problem)?;
        let x = restore(problem.op, &problem.y, problem.sigma_y);
        let done = Progress {
            step: 1,
            steps: 1,
            forwards: 0,
            vjps: 0,
        };
        Ok(match on_progress(done) {
            Control::Continue => Some(x.clamp(-1.0, 1.0)),
            Control::Stop => None,
        })
    }
}
