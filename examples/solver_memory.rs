//! Peak memory of the solvers on one 256×256 image with the ffhq-256 architecture (random
//! weights: memory does not depend on their values), SR×4 by average pooling. Prints the
//! process's resident set (VmRSS) and its high-water mark (VmHWM, Linux) after building the
//! network and after each reverse step; a flat VmRSS across steps means one autograd graph
//! at a time. On CUDA, read the GPU's memory with `nvidia-smi` alongside.
//!
//! `cargo run --release --example solver_memory -- [METHOD] [STEPS] [ITERS] [cpu|cuda]`
//! (defaults: vml-map 3 2 cpu).

use tch::{nn::VarStore, Device, Kind, Tensor};
use vml::diffusion::EpsDenoiser;
use vml::model::{UNet, UNetConfig};
use vml::solvers::{self, Control, Problem, SolverOptions};
use vml::task::{SrKind, Task};

fn mem_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let method = args.first().map_or("vml-map", |s| s.as_str());
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let device = match args.get(3).map(|s| s.as_str()) {
        Some("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };
    let (rss, hwm) = mem_mib();
    println!("start: RSS {rss:.0} MiB, peak {hwm:.0} MiB");
    let mut vs = VarStore::new(device);
    let net = UNet::new(&vs.root(), &UNetConfig::ffhq_256()).expect("ffhq-256 config");
    vs.freeze();
    let den = EpsDenoiser::new(&net);
    let (rss, hwm) = mem_mib();
    println!("network built: RSS {rss:.0} MiB, peak {hwm:.0} MiB");

    let op = vml::operators::build(
        &Task::Sr {
            scale: 4,
            downsample: SrKind::Avgpool,
        },
        [3, 256, 256],
        None,
    )
    .expect("operator");
    tch::manual_seed(0);
    let x = Tensor::rand([1, 3, 256, 256], (Kind::Float, device)) * 1.6 - 0.8;
    let y = op.forward(&x);
    let problem = Problem {
        op: op.as_ref(),
        y,
        sigma_y: 0.0,
    };
    let opts = SolverOptions {
        steps: Some(steps),
        iters: Some(iters),
        ..Default::default()
    };
    let solver = solvers::build(method.parse().expect("method"), &opts).expect("method");
    let start = std::time::Instant::now();
    let out = solver.solve(&den, &problem, 0, &mut |p| {
        let (rss, hwm) = mem_mib();
        println!(
            "step {}/{}: {} forwards, {} VJPs, {:.1} s, RSS {rss:.0} MiB, peak {hwm:.0} MiB",
            p.step,
            p.steps,
            p.forwards,
            p.vjps,
            start.elapsed().as_secs_f64()
        );
        Control::Continue
    });
    match out {
        Ok(Some(t)) => println!("done: output {:?}", t.size()),
        Ok(None) => println!("stopped"),
        Err(e) => println!("error: {e}"),
    }
}
