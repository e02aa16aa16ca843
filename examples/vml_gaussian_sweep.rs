//! The measurements behind VML-MAP's Gaussian-prior defaults in docs/algorithm.md: relative
//! L2 error to the exact MAP on a 3×8×8 Gaussian prior for several settings of the
//! measurement-noise floor c, the re-noising rule and the step counts.
//!
//! `cargo run --release --example vml_gaussian_sweep` (about a minute on one core).

use tch::{Device, Kind, Tensor};
use vml::diffusion::GaussianPrior;
use vml::operators::Operator;
use vml::solvers::{self, Control, Problem, Renoise, SolverOptions};
use vml::task::{Blur, SrKind, Task};

const SHAPE: [i64; 3] = [3, 8, 8];

fn error(method: &str, op: &dyn Operator, sigma_y: f64, opts: &SolverOptions) -> f64 {
    tch::manual_seed(1);
    let prior = GaussianPrior::smooth(SHAPE, Device::Cpu).expect("prior");
    let x = prior.sample(1);
    let hx = op.forward(&x);
    let y = &hx + Tensor::randn_like(&hx) * sigma_y;
    let map = prior.map_estimate(op, &y, sigma_y);
    let solver = solvers::build(method.parse().expect("method"), opts).expect("options");
    let problem = Problem { op, y, sigma_y };
    match solver.solve(&prior, &problem, 7, &mut |_| Control::Continue) {
        Ok(Some(out)) => (out - &map).norm().double_value(&[]) / map.norm().double_value(&[]),
        _ => f64::NAN,
    }
}

fn main() {
    tch::set_num_threads(1);
    let mask = Tensor::zeros([8, 8], (Kind::Float, Device::Cpu));
    let _ = mask.narrow(0, 2, 4).narrow(1, 2, 4).fill_(1.0);
    let build =
        |t: Task, m: Option<&Tensor>| vml::operators::build(&t, SHAPE, m).expect("operator");
    let ops: Vec<(&str, Box<dyn Operator>, f64)> = vec![
        ("inpaint box, σ_y=0", build(Task::Inpaint, Some(&mask)), 0.0),
        (
            "inpaint box, σ_y=0.05",
            build(Task::Inpaint, Some(&mask)),
            0.05,
        ),
        (
            "SR×2 avgpool, σ_y=0",
            build(
                Task::Sr {
                    scale: 2,
                    downsample: SrKind::Avgpool,
                },
                None,
            ),
            0.0,
        ),
        (
            "SR×2 avgpool, σ_y=0.05",
            build(
                Task::Sr {
                    scale: 2,
                    downsample: SrKind::Avgpool,
                },
                None,
            ),
            0.05,
        ),
        (
            "blur gauss σ=1, σ_y=0.05",
            build(Task::Deblur(Blur::Gaussian { sigma: 1.0 }), None),
            0.05,
        ),
    ];
    let settings: Vec<(&str, usize, usize, f64, Renoise)> = vec![
        ("N=100 K=10 c=0 det.", 100, 10, 0.0, Renoise::Deterministic),
        (
            "N=100 K=10 c=0.1 det.",
            100,
            10,
            0.1,
            Renoise::Deterministic,
        ),
        ("N=100 K=10 c=1 det.", 100, 10, 1.0, Renoise::Deterministic),
        ("N=100 K=10 c=0.1 stoch.", 100, 10, 0.1, Renoise::Stochastic),
        ("N=50 K=3 c=0.1 det.", 50, 3, 0.1, Renoise::Deterministic),
        ("N=50 K=3 c=0.1 stoch.", 50, 3, 0.1, Renoise::Stochastic),
    ];
    print!("| method | setting |");
    for (name, _, _) in &ops {
        print!(" {name} |");
    }
    println!();
    println!("|---|---|{}", "---|".repeat(ops.len()));
    for method in ["vml-map", "vml-map-pre"] {
        for (label, steps, iters, c, renoise) in &settings {
            let opts = SolverOptions {
                steps: Some(*steps),
                iters: Some(*iters),
                sigma_y_floor: Some(*c),
                renoise: Some(*renoise),
                sigma_min: Some(1e-3),
                ..Default::default()
            };
            print!("| {method} | {label} |");
            for (_, op, sigma_y) in &ops {
                let e = error(method, op.as_ref(), *sigma_y, &opts);
                if e.is_nan() {
                    print!(" – |");
                } else {
                    print!(" {e:.1e} |");
                }
            }
            println!();
        }
    }
}
