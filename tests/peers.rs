//! DiffPIR, RED-diff and DAPS: the pieces whose target is known in closed form (DiffPIR's
//! proximal step, RED-diff's optimum at one noise level, the Gaussian that DAPS's Langevin
//! stage samples), DAPS against statistics of the authors' own sampler
//! (tests/fixtures/make_daps.py), and the contract every solver keeps (same seed, same
//! result; Stop stops; bad settings are usage errors). The samplers' behaviour on the
//! Gaussian prior is checked with the other baselines in tests/gaussian_map.rs.

mod common;

use common::*;
use tch::{Kind, Tensor};
use vml::diffusion::{Denoiser, GaussianPrior};
use vml::operators::Operator;
use vml::solvers::{self, daps, diffpir, red_diff, Control, Method, Problem, SolverOptions};

const SHAPE: [i64; 3] = [3, 8, 8];

fn flat(t: &Tensor) -> Tensor {
    t.reshape([t.size()[0], -1]).to_kind(Kind::Double)
}

/// `(HᵀH + ρI)⁻¹(Hᵀy + ρz)` with the dense matrix of `op`.
fn dense_prox(
    prior: &GaussianPrior,
    op: &dyn Operator,
    y: &Tensor,
    z: &Tensor,
    rho: f64,
) -> Tensor {
    let h = prior.dense_operator(op);
    let d = h.size()[1];
    let a = h.tr().matmul(&h) + Tensor::eye(d, (Kind::Double, h.device())) * rho;
    let b = flat(y).matmul(&h) + flat(z) * rho;
    Tensor::linalg_solve(&a, &b.tr(), true)
        .tr()
        .to_kind(Kind::Float)
        .reshape(z.size().as_slice())
}

/// The proximal step through the SVD, and by conjugate gradients without one, equals the
/// dense linear solve, for a ρ of the σ_y = 0 floor's size and one of a noisy measurement's.
#[test]
fn diffpir_data_step_is_the_proximal_point() {
    let _serial = serial();
    tch::manual_seed(2);
    let prior = GaussianPrior::smooth(SHAPE, cpu()).unwrap();
    let ops: Vec<Box<dyn Operator>> = vec![
        Box::new(sr_avgpool(SHAPE, 2)),
        Box::new(inpaint_box(SHAPE, 2..6, 2..6)),
        Box::new(blur_gaussian(SHAPE, 1.0)),
    ];
    for op in &ops {
        let y = op.forward(&prior.sample(2));
        let z = prior.sample(2);
        for rho in [1e-3, 0.3] {
            let want = dense_prox(&prior, op.as_ref(), &y, &z, rho);
            let svd = diffpir::data_prox(op.as_ref(), &y, &z, rho);
            let cg = diffpir::data_prox(&NoSvd(op.as_ref()), &y, &z, rho);
            let (e_svd, e_cg) = (rel_err(&svd, &want), rel_err(&cg, &want));
            println!("{} ρ={rho}: SVD {e_svd:.1e}, CG {e_cg:.1e}", op.name());
            assert!(e_svd < 1e-4, "{}: SVD prox off by {e_svd:.2e}", op.name());
            assert!(e_cg < 1e-3, "{}: CG prox off by {e_cg:.2e}", op.name());
        }
    }
}

/// ρ_t follows the reference's scales and floor; the timesteps its quadratic spacing.
#[test]
fn diffpir_rho_and_timesteps() {
    let s = diffpir::Diffpir::new(&Default::default()).unwrap();
    // σ_y = 0.1 on [-1, 1] is 0.05 on [0, 1]: ρ = 1 · 0.05² / σ_t².
    assert!((s.rho(0.1, 0.5) - 0.01).abs() < 1e-12);
    assert!((s.rho(0.0, 1.0) - 1e-6).abs() < 1e-15);
    let ts = diffpir::quadratic_timesteps(1000, 100).unwrap();
    assert_eq!(ts.len(), 100);
    // s_1 = ⌊1000 √(1/99)⌋ = 100; the last step is timestep 0.
    assert_eq!((ts[0], ts[1], ts[99]), (999, 899, 0));
    assert!(ts.windows(2).all(|w| w[0] >= w[1]));
    assert!(diffpir::quadratic_timesteps(1000, 1).is_err());
    assert!(diffpir::quadratic_timesteps(1000, 1001).is_err());
}

/// At a fixed noise level σ and on a Gaussian prior N(m, Σ), E[ε̂(x_t) − ε] = σ(Σ + σ²I)⁻¹(μ − m),
/// so the expected RED-diff gradient vanishes at
/// `μ* = (HᵀH/M + (λσ²/D) C⁻¹)⁻¹ (Hᵀy/M + (λσ²/D) C⁻¹ m)` with `C = Σ + σ²I`. Adam driven by
/// the solver's own gradient and step, with fresh noise each step, must hover around μ*: the
/// mean of its last 2000 iterates is compared with it. The noise of that mean is about
/// lr/√(2000 / correlation time) ≪ the 2 % bound; a gradient with a wrong weight (λσ instead
/// of λσ², or the data mean over D instead of M) moves μ* by far more.
#[test]
fn red_diff_hovers_at_its_gaussian_optimum() {
    let _serial = serial();
    tch::manual_seed(4);
    let prior = GaussianPrior::smooth(SHAPE, cpu()).unwrap();
    let op = sr_avgpool(SHAPE, 2);
    let y = op.forward(&prior.sample(1));
    let (lambda, sigma) = (0.25, 0.3);
    let measured = red_diff::measured_entries(&op, &y);
    assert_eq!(measured, 48);
    let d = 192.0;
    // Closed form.
    let h = prior.dense_operator(&op);
    let c = prior.cov() + Tensor::eye(192, (Kind::Double, cpu())) * (sigma * sigma);
    let cinv = c.inverse();
    let w = lambda * sigma * sigma / d;
    let a = h.tr().matmul(&h) / measured as f64 + &cinv * w;
    let b = flat(&y).matmul(&h) / measured as f64 + flat(&prior.mean()).matmul(&cinv) * w;
    let want = Tensor::linalg_solve(&a, &b.tr(), true)
        .tr()
        .to_kind(Kind::Float);
    // The solver's gradient and Adam step at fixed σ.
    let mut mu = op.pinv(&y);
    let mut m = mu.zeros_like();
    let mut v = mu.zeros_like();
    let mut sum = mu.zeros_like();
    let (iters, keep) = (6000i32, 2000i32);
    for k in 1..=iters {
        let eps = Tensor::randn_like(&mu);
        let x = &mu + &eps * sigma;
        let eps_hat = (&x - prior.denoise(&x, sigma)) / sigma;
        let g = red_diff::loss_gradient(&op, &y, &mu, &(eps_hat - &eps), lambda * sigma, measured);
        red_diff::adam_step(&mut mu, &mut m, &mut v, &g, 1e-3, k);
        if k > iters - keep {
            sum += &mu;
        }
    }
    let got = flat(&(sum / f64::from(keep))).to_kind(Kind::Float);
    let err = rel_err(&got, &want);
    let moved = rel_err(&flat(&op.pinv(&y)).to_kind(Kind::Float), &want);
    println!("RED-diff mean iterate vs optimum {err:.2e} (start {moved:.2e})");
    assert!(err < 2e-2, "{err:.3e}");
}

/// DAPS's Langevin stage samples `exp(−‖y − Hx‖²/τ² − ‖x − x̂0‖²/(2σ²))`, a Gaussian with
/// precision P = 2HᵀH/τ² + I/σ² and mean P⁻¹(2Hᵀy/τ² + x̂0/σ²). Unadjusted Langevin with step γ
/// leaves the mean exact and inflates the covariance to (P(I − γP/2))⁻¹, which is what the
/// 4000 independent chains are compared with: per pixel, the mean within 5 of its standard
/// errors (√(var/4000)), the variances within 15 % (the relative standard error of a sample
/// variance is √(2/4000) = 2.2 %); and the covariance matrix within 10 % in Frobenius norm.
#[test]
fn daps_langevin_samples_its_gaussian_target() {
    let _serial = serial();
    tch::manual_seed(6);
    let shape = [1, 4, 4];
    let prior = GaussianPrior::smooth(shape, cpu()).unwrap();
    let op = sr_avgpool(shape, 2);
    let chains = 4000;
    let x0hat = prior.sample(1);
    let y = op.forward(&prior.sample(1));
    let (sigma, tau, lr) = (0.3, 0.1, 2e-3);
    let s = daps::Daps::new(&daps::Options {
        iters: Some(1500),
        tau: Some(tau),
        ..Default::default()
    })
    .unwrap();
    let x = s.langevin_seeded(
        &op,
        &y.repeat([chains, 1, 1, 1]),
        &x0hat.repeat([chains, 1, 1, 1]),
        sigma,
        lr,
        9,
    );
    let samples = flat(&x);
    let h = prior.dense_operator(&op);
    let eye = Tensor::eye(16, (Kind::Double, cpu()));
    let p = h.tr().matmul(&h) * (2.0 / (tau * tau)) + &eye * (1.0 / (sigma * sigma));
    let rhs = flat(&y).matmul(&h) * (2.0 / (tau * tau)) + flat(&x0hat) / (sigma * sigma);
    let mean = rhs.matmul(&p.inverse());
    let cov = (p.matmul(&(&eye - &p * (lr / 2.0)))).inverse();
    let got_mean = samples.mean_dim([0i64].as_slice(), true, Kind::Double);
    let centred = &samples - &got_mean;
    let got_cov = centred.tr().matmul(&centred) / (chains - 1) as f64;
    let var = cov.diagonal(0, 0, 1);
    let z = ((&got_mean - &mean).squeeze() / (&var / chains as f64).sqrt())
        .abs()
        .max()
        .double_value(&[]);
    let var_err = (got_cov.diagonal(0, 0, 1) / &var - 1.0)
        .abs()
        .max()
        .double_value(&[]);
    let cov_err = rel_err(&got_cov, &cov);
    println!("Langevin: mean z {z:.2}, variance {var_err:.3}, covariance {cov_err:.3}");
    assert!(z < 5.0, "mean off by {z:.2} standard errors");
    assert!(var_err < 0.15, "variance off by {var_err:.3}");
    assert!(cov_err < 0.1, "covariance off by {cov_err:.3}");
}

fn json_f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Our DAPS against the authors' `DAPS.sample` on the same tiny problem and reduced settings
/// (tests/fixtures/make_daps.py): per-pixel means and standard deviations over 4000 chains
/// each. Both are estimates; the difference of two means has standard error
/// √(2 var/4000) ≈ 0.004 at the measured std ≈ 0.18, so 0.02 is 5 of them; a standard
/// deviation's relative standard error is √(1/8000) ≈ 1.1 % for each, so 6 % is > 3.5 of
/// the difference's. A missing factor 2 in the data term, a wrong step decay or ODE grid
/// shift the means or spreads by more than that.
#[test]
fn daps_matches_the_reference_sampler() {
    let _serial = serial();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/daps/reference.json"
    ))
    .unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let chains = r["chains"].as_i64().unwrap();
    let mean = Tensor::from_slice(&json_f64s(&r["prior_mean"])).reshape([1, 4, 4]);
    let cov = Tensor::from_slice(&json_f64s(&r["prior_cov"])).reshape([16, 16]);
    let prior = GaussianPrior::new(&mean, &cov).unwrap();
    let h = Tensor::from_slice(&json_f64s(&r["h"])).reshape([4, 16]);
    let op = Dense::new("block-mean", [1, 4, 4], [1, 2, 2], h);
    let y = Tensor::from_slice(&json_f64s(&r["y"]))
        .to_kind(Kind::Float)
        .reshape([1, 1, 2, 2])
        .repeat([chains, 1, 1, 1]);
    let (a, dif, mc) = (&r["annealing"], &r["diffusion"], &r["mcmc"]);
    assert_eq!(dif["sigma_min"].as_f64(), Some(daps::Daps::ODE_SIGMA_MIN));
    assert_eq!(a["timestep"].as_str(), Some("poly-7"));
    let s = daps::Daps::new(&daps::Options {
        steps: a["num_steps"].as_u64().map(|v| v as usize),
        ode_steps: dif["num_steps"].as_u64().map(|v| v as usize),
        iters: mc["num_steps"].as_u64().map(|v| v as usize),
        step_size: mc["lr"].as_f64(),
        lr_min_ratio: mc["lr_min_ratio"].as_f64(),
        tau: mc["tau"].as_f64(),
        sigma_max: a["sigma_max"].as_f64(),
        sigma_min: a["sigma_min"].as_f64(),
        rho: Some(7.0),
    })
    .unwrap();
    let problem = Problem {
        op: &op,
        y,
        sigma_y: 0.05,
    };
    use vml::solvers::Solver;
    let out = s
        .solve(&prior, &problem, 1, &mut |_| Control::Continue)
        .unwrap()
        .unwrap();
    let out = flat(&out);
    let got_mean = out.mean_dim([0i64].as_slice(), false, Kind::Double);
    let got_std = out.std_dim([0i64].as_slice(), true, false);
    let want_mean = Tensor::from_slice(&json_f64s(&r["sample_mean"]));
    let want_std = Tensor::from_slice(&json_f64s(&r["sample_std"]));
    let dm = (&got_mean - &want_mean).abs().max().double_value(&[]);
    let ds = (&got_std / &want_std - 1.0).abs().max().double_value(&[]);
    println!("DAPS vs reference: mean {dm:.4}, std {ds:.3}");
    assert!(dm < 0.02, "means differ by up to {dm:.4}");
    assert!(ds < 0.06, "standard deviations differ by up to {ds:.3}");
}

fn problem_on(prior: &GaussianPrior, op: &dyn Operator, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    op.forward(&prior.sample(1))
}

fn few(method: Method) -> SolverOptions {
    match method {
        Method::Daps => SolverOptions {
            steps: Some(6),
            ode_steps: Some(2),
            iters: Some(5),
            ..Default::default()
        },
        _ => SolverOptions {
            steps: Some(6),
            ..Default::default()
        },
    }
}

const PEERS: [Method; 3] = [Method::Diffpir, Method::RedDiff, Method::Daps];

/// Same seed, same result; another seed, another; Stop after step 3 returns None there.
#[test]
fn peers_are_reproducible_and_stop_when_asked() {
    let _serial = serial();
    let prior = GaussianPrior::smooth(SHAPE, cpu()).unwrap();
    let op = sr_avgpool(SHAPE, 2);
    let y = problem_on(&prior, &op, 3);
    for m in PEERS {
        let solver = solvers::build(m, &few(m)).unwrap();
        assert_eq!(solver.name(), m.name());
        let problem = Problem {
            op: &op,
            y: y.shallow_clone(),
            sigma_y: 0.05,
        };
        let mut go = |_| Control::Continue;
        let a = solver
            .solve(&prior, &problem, 11, &mut go)
            .unwrap()
            .unwrap();
        let b = solver
            .solve(&prior, &problem, 11, &mut go)
            .unwrap()
            .unwrap();
        let c = solver
            .solve(&prior, &problem, 12, &mut go)
            .unwrap()
            .unwrap();
        assert!(a.equal(&b), "{m}: same seed, different result");
        assert!(!a.equal(&c), "{m}: another seed, same result");
        let mut seen = 0;
        let out = solver
            .solve(&prior, &problem, 1, &mut |p| {
                seen = p.step;
                if p.step == 3 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        assert!(out.is_none(), "{m}");
        assert_eq!(seen, 3, "{m}");
    }
}

/// Out-of-range settings are usage errors at build time, naming the setting.
#[test]
fn bad_peer_settings_are_usage_errors() {
    let o = |f: fn(&mut SolverOptions)| {
        let mut o = SolverOptions::default();
        f(&mut o);
        o
    };
    let cases: Vec<(Method, SolverOptions, &str)> = vec![
        (Method::Diffpir, o(|o| o.steps = Some(1)), "steps"),
        (Method::Diffpir, o(|o| o.zeta = Some(1.5)), "zeta"),
        (Method::Diffpir, o(|o| o.eta = Some(-0.1)), "eta"),
        (Method::Diffpir, o(|o| o.lambda = Some(0.0)), "lambda"),
        (Method::RedDiff, o(|o| o.steps = Some(0)), "steps"),
        (
            Method::RedDiff,
            o(|o| o.step_size = Some(f64::NAN)),
            "step_size",
        ),
        (Method::RedDiff, o(|o| o.lambda = Some(-1.0)), "lambda"),
        (Method::Daps, o(|o| o.ode_steps = Some(0)), "ode_steps"),
        (Method::Daps, o(|o| o.tau = Some(0.0)), "tau"),
        (Method::Daps, o(|o| o.sigma_min = Some(1e-3)), "sigma_min"),
        (Method::Daps, o(|o| o.sigma_max = Some(0.05)), "sigma_max"),
        (Method::Daps, o(|o| o.step_size = Some(-1e-4)), "step_size"),
    ];
    for (m, opts, word) in cases {
        match solvers::build(m, &opts) {
            Err(vml::Error::Usage(msg)) => assert!(msg.contains(word), "{m}: {msg}"),
            Err(e) => panic!("{m} {word}: not a usage error: {e}"),
            Ok(_) => panic!("{m} {word}: accepted"),
        }
    }
    // More steps than the network has timesteps is found when solving.
    let prior = GaussianPrior::smooth(SHAPE, cpu()).unwrap();
    let op = sr_avgpool(SHAPE, 2);
    let problem = Problem {
        op: &op,
        y: problem_on(&prior, &op, 1),
        sigma_y: 0.0,
    };
    for m in [Method::Diffpir, Method::RedDiff] {
        let s = solvers::build(
            m,
            &SolverOptions {
                steps: Some(5000),
                ..Default::default()
            },
        )
        .unwrap();
        let r = s.solve(&prior, &problem, 0, &mut |_| Control::Continue);
        assert!(matches!(r, Err(vml::Error::Usage(_))), "{m}");
    }
    // A Langevin step far past stability diverges; that is reported, not returned.
    let s = solvers::build(
        Method::Daps,
        &SolverOptions {
            steps: Some(3),
            iters: Some(50),
            step_size: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    match s.solve(&prior, &problem, 0, &mut |_| Control::Continue) {
        Err(vml::Error::Usage(msg)) => assert!(msg.contains("step_size"), "{msg}"),
        other => panic!(
            "expected a usage error, got {:?}",
            other.map(|o| o.is_some())
        ),
    }
}
