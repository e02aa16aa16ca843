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
use crate::model::{registry, Network, Precision};
use crate::operators;
use crate::solvers::{self, Control, Problem, Progress};
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

/// Median seconds of `f` over `repeats` runs, after one warm-up run.
fn time(repeats: usize, device: Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        sync(device);
        let t = Instant::now();
        f()?;
        sync(device);
        v.push(t.elapsed().as_secs_f64());
    }
    Ok(median(v))
}

/// Seconds of one bare forward and of one forward + VJP of `net` at `x`.
fn network_times(net: &Network, x: &Tensor, repeats: usize, device: Device) -> Result<(f64, f64)> {
    let t = Tensor::full([x.size()[0]], 500.0, (Kind::Float, device));
    let fwd = time(repeats, device, || {
        let _ = tch::no_grad(|| net.forward(x, &t));
        Ok(())
    })?;
    let g = Tensor::randn(x.size(), (x.kind(), device));
    let vjp = time(repeats, device, || {
        let xr = x.detach().set_requires_grad(true);
        let s = (net.forward(&xr, &t) * &g).sum(Kind::Double);
        let grads = Tensor::f_run_backward(&[s], &[&xr], false, false)?;
        drop(grads);
        Ok(())
    })?;
    Ok((fwd, vjp))
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
    let (fwd, vjp) = network_times(&net, &x, repeats, device)?;

    // 2. The engine: VML-MAP on SR×4 of a smooth picture, priced in bare evaluations.
    let method = args
        .methods
        .iter()
        .find_map(|m| MethodSpec::parse(m).ok().filter(|m| m.method == "vml-map"))
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
    let solver = solvers::build(&method.method, &method.options)?;
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
    let engine = time(repeats.min(3), device, || {
        solver
            .solve(&denoiser, &problem, args.seed, &mut |p| {
                last = p;
                Control::Continue
            })
            .map(|_| ())
    })?;
    // `forwards` counts the forward inside each VJP too: price those with the VJP.
    let plain_forwards = last.forwards.saturating_sub(last.vjps) as f64;
    let priced = last.vjps as f64 * vjp + plain_forwards * fwd;
    let per_iteration = if last.vjps > 0 {
        (engine - plain_forwards * fwd) / last.vjps as f64
    } else {
        f64::NAN
    };
    // The engine's own D(x, σ) + VJP call (VP→VE scaling and the g of VML-MAP included),
    // to tell the network's cost from the solver's.
    let xs = (&x * 10.0).shallow_clone();
    let denoiser_vjp = time(repeats, device, || {
        solvers::denoise_vjp(&denoiser, &xs, 10.0, |d| d - &xs).map(|_| ())
    })?;

    // 3. The binary, as a user runs it, on the same measurement.
    let input = args.out.join("overhead-input.png");
    let output = args.out.join("overhead-output.png");
    super::save_image(&input, &y)?;
    let exe = std::env::current_exe()?;
    let budget = format!("{}", method.options.steps.unwrap_or(50));
    let iters = format!("{}", method.options.iters.unwrap_or(3));
    let seed = args.seed.to_string();
    let mut cmd_args: Vec<&str> = vec![
        "--sr",
        "4",
        "--method",
        "vml-map",
        "--steps",
        &budget,
        "--iters",
        &iters,
        "--seed",
        &seed,
        "--model",
        spec,
        "--device",
        &args.device,
        "--progress",
        "none",
        "--quiet",
        "-i",
    ];
    let input_s = input.to_string_lossy().to_string();
    let output_s = output.to_string_lossy().to_string();
    cmd_args.extend([input_s.as_str(), "-o", output_s.as_str()]);
    if let Some(t) = args.threads {
        std::env::set_var("OMP_NUM_THREADS", t.to_string());
    }
    let e2e = time(repeats.min(3), device, || {
        let st = std::process::Command::new(&exe).args(&cmd_args).status()?;
        if st.success() {
            Ok(())
        } else {
            Err(Error::Input(format!(
                "{} {} failed: {st}",
                exe.display(),
                cmd_args.join(" ")
            )))
        }
    })?;

    let report = serde_json::json!({
        "model": spec,
        "device": format!("{device:?}").to_lowercase(),
        "precision": args.precision,
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
