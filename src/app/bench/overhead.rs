//! `vml-filter bench --overhead`: what the engine and the binary add on top of the network.
//!
//! - the bare network: one forward, and one forward + vector-Jacobian product with respect
//!   to the input, at each LibTorch thread count asked for;
//! - the engine: a VML-MAP solve (SR×4) divided by the network evaluations it made, each
//!   priced at the bare time (target ≤ 1.10), and the engine's own denoiser + VJP call;
//! - the binary: `vml-filter --sr 4` run as a process on the same measurement written as a
//!   PNG, divided by the engine's solve time for it (target ≤ 1.05). It pays for the process
//!   start, LibTorch's start, loading the model, decoding and encoding.
//!
//! Every figure is the median of `--repeats` timings taken in this one run.

use super::{peak_rss_mb, sync, BenchArgs, MethodSpec};
use crate::diffusion::EpsDenoiser;
use crate::error::{Error, Result};
use crate::model::{Network, Precision};
use crate::operators;
use crate::registry;
use crate::solvers::{self, Control, Method, Problem, Progress};
use crate::task::{SrKind, Task};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median seconds of each job, timed in turn within every repeat (after one warm-up round),
/// so that a slow spell of the machine weighs on all of them alike and their ratios hold.
type Job<'a> = Box<dyn FnMut() -> Result<()> + 'a>;

fn time_interleaved(repeats: usize, device: Device, jobs: &mut [Job]) -> Result<Vec<f64>> {
    for job in jobs.iter_mut() {
        job()?;
    }
    let mut times = vec![Vec::with_capacity(repeats); jobs.len()];
    for _ in 0..repeats.max(1) {
        for (job, v) in jobs.iter_mut().zip(times.iter_mut()) {
            sync(device);
            let t = Instant::now();
            job()?;
            sync(device);
            v.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times.into_iter().map(median).collect())
}

/// One bare forward of `net` at input `z` and timestep `t`.
fn forward_job<'a>(net: &'a Network, z: &'a Tensor, t: &'a Tensor) -> Job<'a> {
    Box::new(move || {
        let _ = tch::no_grad(|| net.forward(z, t));
        Ok(())
    })
}

/// One bare forward + VJP (with respect to the input) of `net` at `z`, `t`.
fn forward_vjp_job<'a>(net: &'a Network, z: &'a Tensor, t: &'a Tensor, g: &'a Tensor) -> Job<'a> {
    Box::new(move || {
        let zr = z.detach().set_requires_grad(true);
        let s = (net.forward(&zr, t) * g).sum(Kind::Double);
        let grads = Tensor::f_run_backward(&[s], &[&zr], false, false)?;
        drop(grads);
        Ok(())
    })
}

/// Seconds of one bare forward and of one forward + VJP of `net` at `x`.
fn network_times(net: &Network, x: &Tensor, repeats: usize, device: Device) -> Result<(f64, f64)> {
    let t = Tensor::full([x.size()[0]], 500.0, (Kind::Float, device));
    let g = Tensor::randn(x.size(), (x.kind(), device));
    let m = time_interleaved(
        repeats,
        device,
        &mut [forward_job(net, x, &t), forward_vjp_job(net, x, &t, &g)],
    )?;
    Ok((m[0], m[1]))
}

pub fn run(args: &BenchArgs, device: Device, precision: Precision) -> Result<()> {
    let spec = args
        .model
        .as_deref()
        .unwrap_or(crate::pipeline::DEFAULT_MODEL);
    let size = args.size;
    let repeats = args.repeats.max(1);
    tch::manual_seed(args.seed as i64);
    // Float input whatever the precision: `Network::forward` casts, as the engine's calls do.
    let x = Tensor::randn([1, 3, size, size], (Kind::Float, device));
    let default_threads = tch::get_num_threads();

    // 1. The bare network at each thread count (CPU only; CUDA ignores them).
    let mut threads = Vec::new();
    let net = registry::open(spec, None, device, precision)?;
    let counts: Vec<i32> = if device == Device::Cpu {
        args.thread_counts
            .iter()
            .copied()
            .filter(|&n| n >= 1)
            .collect()
    } else {
        Vec::new()
    };
    for &n in &counts {
        tch::set_num_threads(n);
        let (fwd, vjp) = network_times(&net, &x, repeats, device)?;
        eprintln!("{{\"event\":\"threads\",\"threads\":{n},\"forward_s\":{fwd:.4},\"forward_vjp_s\":{vjp:.4}}}");
        threads.push(serde_json::json!({"threads": n, "forward_s": fwd, "forward_vjp_s": vjp}));
    }
    tch::set_num_threads(args.threads.unwrap_or(default_threads));

    // 2. The engine: VML-MAP on SR×4 of a smooth picture, priced in bare evaluations.
    let method = args
        .methods
        .iter()
        .find_map(|m| {
            MethodSpec::parse(m)
                .ok()
                .filter(|m| m.method == Method::VmlMap)
        })
        .unwrap_or(MethodSpec::parse("vml-map:10x3")?);
    let task = Task::Sr {
        scale: 4,
        downsample: SrKind::Avgpool,
    };
    let clean = smooth_picture(size, device);
    let op = operators::build(&task, [3, size, size], None)?;
    // Quantised to 8 bits, as the PNG the binary reads.
    let y = ((op.forward(&clean).clamp(-1.0, 1.0) + 1.0) * 127.5).round() / 127.5 - 1.0;
    let denoiser = EpsDenoiser::new(net);
    let solver = solvers::build(method.method, &method.options)?;
    let problem = Problem {
        op: op.as_ref(),
        y: y.shallow_clone(),
        sigma_y: 0.0,
    };
    let mut last = Progress {
        step: 0,
        steps: 0,
        forwards: 0,
        vjps: 0,
    };

    // 3. The binary, as a user runs it, on the same measurement.
    let input = args.out.join("overhead-input.png");
    let output = args.out.join("overhead-output.png");
    super::save_image(&input, &y)?;
    let exe = std::env::current_exe()?;
    let cmd_args = binary_args(&method, spec, &args.device, args.seed, &input, &output);
    if let Some(t) = args.threads {
        std::env::set_var("OMP_NUM_THREADS", t.to_string());
    }

    // The bare network is timed on exactly what the engine's denoiser feeds it at σ = 10
    // (input scaled by 1/√(1+σ²), the real timestep t(σ)), so the two differ only by the
    // engine's own work. Every measurement below is interleaved (see `time_interleaved`).
    let sigma = 10.0;
    let xs = &x * sigma;
    let z = &xs / (1.0 + sigma * sigma).sqrt();
    let t = Tensor::full(
        [1],
        denoiser.schedule().t_of_sigma(sigma),
        (Kind::Float, device),
    );
    let g = Tensor::randn(x.size(), (Kind::Float, device));
    let net = denoiser.model();
    let medians = time_interleaved(
        repeats,
        device,
        &mut [
            forward_job(net, &z, &t),
            forward_vjp_job(net, &z, &t, &g),
            Box::new(|| solvers::denoise_vjp(&denoiser, &xs, sigma, |d| d - &xs).map(|_| ())),
            Box::new(|| {
                solver
                    .solve(&denoiser, &problem, args.seed, &mut |p| {
                        last = p;
                        Control::Continue
                    })
                    .map(|_| ())
            }),
            Box::new(|| run_binary(&exe, &cmd_args)),
        ],
    )?;
    let [fwd, vjp, denoiser_vjp, engine, e2e] = medians[..] else {
        unreachable!("five jobs give five medians")
    };
    // `forwards` counts the forward inside each VJP too: price those with the VJP.
    let plain_forwards = last.forwards.saturating_sub(last.vjps) as f64;
    let priced = last.vjps as f64 * vjp + plain_forwards * fwd;
    let per_iteration = if last.vjps > 0 {
        (engine - plain_forwards * fwd) / last.vjps as f64
    } else {
        f64::NAN
    };

    let report = serde_json::json!({
        "model": spec,
        "device": format!("{device:?}").to_lowercase(),
        "precision": args.precision.name(),
        "size": size,
        "repeats": repeats,
        "threads_default": default_threads,
        "threads_used": tch::get_num_threads(),
        "thread_sweep": threads,
        "forward_s": fwd,
        "forward_vjp_s": vjp,
        "engine": {
            "method": method.label,
            "forwards": last.forwards,
            "vjps": last.vjps,
            "solve_s": engine,
            "priced_s": priced,
            "overhead_ratio": engine / priced,
            "iteration_s": per_iteration,
            "iteration_over_forward_vjp": per_iteration / vjp,
            "denoiser_vjp_s": denoiser_vjp,
            "denoiser_vjp_over_forward_vjp": denoiser_vjp / vjp,
        },
        "binary": {
            "command": format!("vml-filter {}", cmd_args.join(" ")),
            "wall_s": e2e,
            "over_engine": e2e / engine,
        },
        "peak_rss_mb": peak_rss_mb(),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(args.out.join("overhead.json"), &text)?;
    println!("{text}");
    Ok(())
}

/// The arguments of `vml-filter --sr 4 …` on `input` with the engine run's settings.
fn binary_args(
    method: &MethodSpec,
    model: &str,
    device: &str,
    seed: u64,
    input: &std::path::Path,
    output: &std::path::Path,
) -> Vec<String> {
    let steps = method.options.steps.unwrap_or(50).to_string();
    let iters = method.options.iters.unwrap_or(3).to_string();
    let seed = seed.to_string();
    let (input, output) = (input.to_string_lossy(), output.to_string_lossy());
    [
        "--sr",
        "4",
        "--method",
        "vml-map",
        "--steps",
        &steps,
        "--iters",
        &iters,
        "--seed",
        &seed,
        "--model",
        model,
        "--device",
        device,
        "--progress",
        "none",
        "--quiet",
        "-i",
        &input,
        "-o",
        &output,
    ]
    .map(String::from)
    .to_vec()
}

fn run_binary(exe: &std::path::Path, args: &[String]) -> Result<()> {
    let st = std::process::Command::new(exe).args(args).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "{} {} failed: {st}",
            exe.display(),
            args.join(" ")
        )))
    }
}

/// A smooth test picture in [-1, 1] (sums of low-frequency waves), so the measurement is
/// image-like rather than noise.
fn smooth_picture(size: i64, device: Device) -> Tensor {
    let r = Tensor::arange(size, (Kind::Float, device)) / size as f64 * std::f64::consts::TAU;
    let (yy, xx) = (r.view([1, 1, size, 1]), r.view([1, 1, 1, size]));
    let chans: Vec<Tensor> = (1..=3)
        .map(|k| ((&yy * k as f64).sin() * (&xx * (4 - k) as f64).cos()) * 0.6)
        .collect();
    Tensor::cat(&chans, 1)
}
