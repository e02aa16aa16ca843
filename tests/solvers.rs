//! Schedules, the VP → VE conversion of an ε-network, and the solver registry.

mod common;

use common::*;
use tch::{Kind, Tensor};
use vml::diffusion::schedule::evenly_spaced_timesteps;
use vml::diffusion::{karras, Denoiser, EpsDenoiser, GaussianPrior, VpSchedule};
use vml::operators::Operator;
use vml::solvers::{self, Control, Problem, SolverOptions};

#[test]
fn sigma_of_t_round_trips() {
    let s = VpSchedule::ddpm();
    for t in [0.0, 0.25, 1.0, 17.5, 250.0, 499.9, 998.5, 999.0] {
        let back = s.t_of_sigma(s.sigma_at(t));
        assert!((back - t).abs() < 1e-6, "t = {t}: got {back}");
    }
    for t in [0usize, 1, 10, 500, 999] {
        assert!((s.sigma_at(t as f64) - s.sigmas()[t]).abs() <= 1e-12 * s.sigmas()[t]);
        assert!((s.t_of_sigma(s.sigmas()[t]) - t as f64).abs() < 1e-9);
    }
    // Outside the table t is clamped.
    assert_eq!(s.t_of_sigma(1e-6), 0.0);
    assert_eq!(s.t_of_sigma(1e6), 999.0);
}

#[test]
fn ddpm_sigmas_increase_and_match_alpha_bar() {
    let s = VpSchedule::ddpm();
    assert!(s.sigmas().windows(2).all(|w| w[0] < w[1]));
    // ᾱ_T for linear betas is about 4.0e-5 (known value for this schedule).
    let abar = VpSchedule::alpha_bar_of_sigma(s.sigma_max());
    assert!((abar - 4.04e-5).abs() < 0.05e-5, "ᾱ_T = {abar}");
}

#[test]
fn karras_endpoints_and_monotonic() {
    let k = karras(40, 0.01, 80.0, 7.0);
    assert_eq!(k.len(), 40);
    assert!((k[0] - 80.0).abs() < 1e-9 && (k[39] - 0.01).abs() < 1e-12);
    assert!(k.windows(2).all(|w| w[0] > w[1]));
    // The middle of 41 levels is the ρ-mean of the endpoints, between the geometric
    // (ρ → ∞) and arithmetic (ρ = 1) means.
    let k41 = karras(41, 0.01, 80.0, 7.0);
    let want = ((80f64.powf(1.0 / 7.0) + 0.01f64.powf(1.0 / 7.0)) / 2.0).powi(7);
    assert!((k41[20] - want).abs() < 1e-9 * want);
    assert!(k41[20] > (0.01f64 * 80.0).sqrt() && k41[20] < (0.01 + 80.0) / 2.0);
    assert_eq!(karras(1, 0.01, 80.0, 7.0), vec![80.0]);
}

#[test]
fn evenly_spaced_steps() {
    assert_eq!(
        evenly_spaced_timesteps(1000, 5),
        vec![999, 749, 500, 250, 0]
    );
    let all = evenly_spaced_timesteps(10, 20);
    assert_eq!(all, (0..10).rev().collect::<Vec<_>>());
}

/// An ε-network that is exact for a Gaussian prior in the VP form:
/// `ε(z, t) = (z − √ᾱ E[x0|z]) / √(1 − ᾱ)`, with `E[x0|z]` the prior's VE denoiser at
/// `x = z/√ᾱ`, σ(t). EpsDenoiser must then reproduce the VE denoiser, also between table
/// entries (real t) and with a learn_sigma-style 6-channel output.
#[test]
fn eps_denoiser_converts_vp_to_ve() {
    let _serial = serial();
    let prior = std::rc::Rc::new(GaussianPrior::smooth([3, 8, 8], cpu()).unwrap());
    let sched = VpSchedule::ddpm();
    for six in [false, true] {
        let p = prior.clone();
        let sc = sched.clone();
        let model = move |z: &Tensor, t: &Tensor| {
            let t0 = t.double_value(&[0]);
            let sigma = sc.sigma_at(t0);
            let abar = VpSchedule::alpha_bar_of_sigma(sigma);
            let x0 = p.denoise(&(z / abar.sqrt()), sigma);
            let eps = (z - x0 * abar.sqrt()) / (1.0 - abar).sqrt();
            if six {
                Tensor::cat(&[eps.shallow_clone(), Tensor::ones_like(&eps) * 5.0], 1)
            } else {
                eps
            }
        };
        let den = EpsDenoiser::new(model);
        tch::manual_seed(0);
        let x0 = prior.sample(2);
        for sigma in [0.0123, 0.3, 1.7, 42.0] {
            let x = &x0 + Tensor::randn_like(&x0) * sigma;
            let got = den.denoise(&x, sigma);
            let want = prior.denoise(&x, sigma);
            let e = rel_err(&got, &want);
            assert!(e < 1e-4, "σ = {sigma}, six = {six}: rel. error {e:.2e}");
        }
        assert_eq!(den.discrete_sigmas().map(|v| v.len()), Some(1000));
        assert!((den.sigma_min() - sched.sigma_min()).abs() < 1e-15);
    }
}

/// The Gaussian prior's denoiser is differentiable and its Jacobian is Σ(Σ + σ²I)⁻¹.
#[test]
fn gaussian_denoiser_jacobian() {
    let prior = GaussianPrior::smooth([1, 4, 4], cpu()).unwrap();
    let sigma = 0.4;
    let x = Tensor::zeros([1, 1, 4, 4], (Kind::Float, cpu())).set_requires_grad(true);
    let d = prior.denoise(&x, sigma).reshape([16]);
    let cov = prior.cov();
    let jac =
        cov.matmul(&(cov + Tensor::eye(16, (Kind::Double, cpu())) * (sigma * sigma)).inverse());
    for i in [0i64, 5, 15] {
        let g = Tensor::run_backward(&[d.get(i)], &[&x], true, false)
            .pop()
            .unwrap()
            .reshape([16]);
        let want = jac.get(i).to_kind(Kind::Float);
        assert!(rel_err(&g, &want) < 1e-4);
    }
}

/// `map_estimate` with σ_y = 0 satisfies the constraint and with σ_y > 0 zeroes the gradient
/// of the posterior log-density.
#[test]
fn gaussian_map_is_the_map() {
    let _serial = serial();
    let shape = [1, 6, 6];
    let prior = GaussianPrior::smooth(shape, cpu()).unwrap();
    let op = sr_avgpool(shape, 2);
    tch::manual_seed(5);
    let y = op.forward(&prior.sample(1));
    let m0 = prior.map_estimate(&op, &y, 0.0);
    assert!((op.forward(&m0) - &y).norm().double_value(&[]) < 1e-5);
    let sy = 0.1;
    let m = prior.map_estimate(&op, &y, sy);
    let hm = prior.dense_operator(&op);
    let mv = m.reshape([-1]).to_kind(Kind::Double);
    let mu = prior.mean().reshape([-1]).to_kind(Kind::Double);
    let yv = y.reshape([-1]).to_kind(Kind::Double);
    let grad = prior.cov().inverse().matmul(&(&mv - mu))
        - hm.tr().matmul(&(yv - hm.matmul(&mv))) / (sy * sy);
    assert!(grad.norm().double_value(&[]) < 1e-3 * mv.norm().double_value(&[]) / (sy * sy));
}

#[test]
fn build_knows_the_methods() {
    for m in ["vml-map", "vml-map-pre"] {
        assert_eq!(
            solvers::build(m.parse().unwrap(), &SolverOptions::default())
                .unwrap()
                .name(),
            m
        );
    }
    assert!("nope".parse::<solvers::Method>().is_err());
    let bad = SolverOptions {
        steps: Some(0),
        ..Default::default()
    };
    assert!(solvers::build(solvers::Method::VmlMap, &bad).is_err());
}

#[test]
fn options_round_trip_through_json() {
    let o = SolverOptions {
        steps: Some(12),
        renoise: Some(solvers::Renoise::Deterministic),
        eta: Some(0.5),
        ..Default::default()
    };
    let s = serde_json::to_string(&o).unwrap();
    assert!(s.contains("\"renoise\":\"deterministic\""));
    let back: SolverOptions = serde_json::from_str(&s).unwrap();
    assert_eq!(back, o);
    let partial: SolverOptions = serde_json::from_str(r#"{"iters": 4}"#).unwrap();
    assert_eq!(partial.iters, Some(4));
}

/// A measurement of the wrong shape is an input error, not a panic.
#[test]
fn wrong_measurement_shape_is_an_error() {
    let shape = [3, 8, 8];
    let prior = GaussianPrior::smooth(shape, cpu()).unwrap();
    let op = sr_avgpool(shape, 2);
    let problem = Problem {
        op: &op,
        y: Tensor::zeros([1, 3, 8, 8], (Kind::Float, cpu())),
        sigma_y: 0.0,
    };
    let solver = solvers::build(solvers::Method::VmlMap, &SolverOptions::default()).unwrap();
    let r = solver.solve(&prior, &problem, 0, &mut |_| Control::Continue);
    assert!(matches!(r, Err(vml::Error::Input(_))));
}

/// Every method runs end to end on a real (small, random-weight) ADM UNet through
/// `EpsDenoiser` and a production operator: right shape, finite values in [-1, 1], the
/// expected number of network evaluations, and the same result for the same seed.
#[test]
fn every_method_runs_on_a_unet() {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(cpu());
    let cfg = vml::model::UNetConfig::shipped_default();
    let net = vml::model::UNet::new(&vs.root(), &cfg).unwrap();
    let den = EpsDenoiser::new(&net);
    let shape = [3, 16, 16];
    let task = vml::task::Task::Sr {
        scale: 2,
        downsample: vml::task::SrKind::Avgpool,
    };
    let op = vml::operators::build(&task, shape, None).unwrap();
    let y = op.forward(&(Tensor::rand([1, 3, 16, 16], (Kind::Float, cpu())) * 1.6 - 0.8));
    let problem = Problem {
        op: op.as_ref(),
        y,
        sigma_y: 0.01,
    };
    // VML-MAP takes iterations, the samplers only steps.
    let few = |steps, iters| SolverOptions {
        steps: Some(steps),
        iters,
        ..Default::default()
    };
    // (method, options, steps reported, forwards, VJPs)
    let cases = [
        ("vml-map", few(3, Some(2)), 3, 9, 6),
        ("vml-map-pre", few(3, Some(2)), 3, 9, 6),
        ("dps", few(4, None), 4, 4, 4),
        ("ddrm", few(4, None), 4, 4, 0),
        ("pigdm", few(4, None), 4, 4, 4),
        ("diffpir", few(4, None), 4, 4, 0),
        ("red-diff", few(4, None), 4, 4, 0),
        // DAPS: 5 ODE forwards per level; `iters` is its Langevin steps.
        ("daps", few(4, Some(2)), 4, 20, 0),
    ];
    for (method, o, steps, forwards, vjps) in cases {
        let solver = solvers::build(method.parse().unwrap(), &o).unwrap();
        let mut last = None;
        let mut run = |seed| {
            solver
                .solve(&den, &problem, seed, &mut |p| {
                    last = Some(p);
                    Control::Continue
                })
                .unwrap()
                .unwrap()
        };
        let a = run(5);
        let b = run(5);
        assert_eq!(a.size(), [1, 3, 16, 16], "{method}");
        assert!(a.isfinite().all().int64_value(&[]) == 1, "{method}");
        assert!(a.abs().max().double_value(&[]) <= 1.0, "{method}");
        assert!(a.equal(&b), "{method}: same seed, different result");
        let p = last.unwrap();
        assert_eq!(
            (p.step, p.steps, p.forwards, p.vjps),
            (steps, steps, forwards, vjps),
            "{method}"
        );
    }
}

/// The crate root's names are enough for a caller's whole job: bytes in, a method run on a
/// task, bytes out (the classical method, so no network is needed).
#[test]
fn the_root_api_restores_an_encoded_picture() {
    let (w, h) = (24u32, 16u32);
    let n = (w * h) as usize;
    // 8-bit levels, which a PNG keeps exactly.
    let color: Vec<f32> = (0..3 * n)
        .map(|i| ((i * 37) % 256) as f32 / 255.0)
        .collect();
    let picture = vml::Picture {
        width: w,
        height: h,
        channels: 3,
        color,
        alpha: None,
        sixteen_bit: false,
    };
    let png = vml::encode(&picture, vml::Format::Png).unwrap();
    let decoded = vml::decode(&png, &vml::Limits::default(), "input").unwrap();
    assert_eq!(decoded.picture, picture);
    let task = vml::Task::Sr {
        scale: 2,
        downsample: Default::default(),
    };
    let settings = vml::Settings {
        method: vml::Method::Classical,
        device: "cpu".into(),
        ..Default::default()
    };
    let restore = |task: &vml::Task| {
        vml::restore(
            task,
            &decoded.picture,
            None,
            &settings,
            &vml::Limits::default(),
            &mut vml::ModelCache::default(),
            &mut |_, _| Control::Continue,
        )
    };
    let out = restore(&task).unwrap();
    assert_eq!((out.picture.width, out.picture.height), (2 * w, 2 * h));
    assert_eq!(out.stats.method, vml::Method::Classical);
    let bytes = vml::encode(&out.picture, vml::Format::Png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    // An invalid task is refused by the same check wherever it enters.
    let bad = vml::Task::Sr {
        scale: 3,
        downsample: Default::default(),
    };
    assert!(vml::build_operator(&bad, [3, 48, 48], None).is_err());
    let e = restore(&bad).err().unwrap();
    assert_eq!(e.exit_code(), 2, "{e}");
}

/// Every method that batches ([`solvers::Method::batches`]) gives each image of a batch,
/// solved with one seed per image, what it gives that image alone with its seed: the
/// per-image noise streams and the audit of batch-wide reductions. A real (small,
/// random-weight) UNet, so batched convolutions are in the loop; they may differ from
/// single ones in the last bits, hence the tolerance. Two operators: SR (SVD) and a
/// Gaussian blur, whose classical start (Wiener, conjugate gradients) used to couple the
/// images of a batch.
#[test]
fn batched_images_come_out_as_they_do_alone() {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(cpu());
    let cfg = vml::model::UNetConfig::shipped_default();
    let net = vml::model::UNet::new(&vs.root(), &cfg).unwrap();
    let den = EpsDenoiser::new(&net);
    let shape = [3, 16, 16];
    let sr = vml::task::Task::Sr {
        scale: 2,
        downsample: vml::task::SrKind::Avgpool,
    };
    let blur = vml::task::Task::Deblur(vml::task::Blur::Gaussian { sigma: 1.0 });
    let x = Tensor::rand([3, 3, 16, 16], (Kind::Float, cpu())) * 1.6 - 0.8;
    let seeds = [11u64, 5, 1 << 40];
    let few = |steps, iters| SolverOptions {
        steps: Some(steps),
        iters,
        ..Default::default()
    };
    let classical_start = SolverOptions {
        init: Some(solvers::Init::Classical),
        ..few(3, Some(1))
    };
    let mut cases = vec![(solvers::Method::VmlMap, blur.clone(), classical_start)];
    for &m in solvers::Method::ALL.iter().filter(|m| m.batches()) {
        let o = match m {
            solvers::Method::VmlMap | solvers::Method::VmlMapPre => few(3, Some(1)),
            solvers::Method::Daps => few(3, Some(2)),
            _ => few(4, None),
        };
        cases.push((m, sr.clone(), o));
    }
    assert!(cases.len() >= 9, "every method but classical batches");
    for (method, task, o) in cases {
        let op = vml::operators::build(&task, shape, None).unwrap();
        let y = op.forward(&x);
        let solver = solvers::build(method, &o).unwrap();
        let solve = |y: Tensor, seeds: &[u64]| {
            let problem = Problem {
                op: op.as_ref(),
                y,
                sigma_y: 0.02,
            };
            solver
                .solve_seeded(&den, &problem, seeds, &mut |_| Control::Continue)
                .unwrap()
                .unwrap()
        };
        let batched = solve(y.shallow_clone(), &seeds);
        for (i, &seed) in seeds.iter().enumerate() {
            let alone = solve(y.narrow(0, i as i64, 1), &[seed]);
            let got = batched.narrow(0, i as i64, 1);
            let diff = (&got - &alone).abs().max().double_value(&[]);
            // A quarter of an 8-bit level (2/255 on this scale); seen: up to 4e-4.
            assert!(
                diff < 2e-3,
                "{method} image {i}: off by {diff:.2e} in a batch"
            );
        }
        // The images differ, so a mix-up of rows or streams would show above.
        let spread = (batched.narrow(0, 0, 1) - batched.narrow(0, 1, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(spread > 1e-2, "{method}: images of the batch are alike");
    }
    // A seed count that is neither 1 nor N is refused.
    let op = vml::operators::build(&sr, shape, None).unwrap();
    let problem = Problem {
        op: op.as_ref(),
        y: op.forward(&x),
        sigma_y: 0.02,
    };
    let solver = solvers::build(solvers::Method::Dps, &few(2, None)).unwrap();
    let r = solver.solve_seeded(&den, &problem, &[1, 2], &mut |_| Control::Continue);
    assert!(matches!(r, Err(vml::Error::Usage(_))));
}
