//! Cost of one network evaluation, per architecture: forward and forward + VJP (what one
//! VML-MAP iteration needs), at a given image size, on this machine.
//!
//! `cargo bench --bench network -- [SIZE] [REPEATS]` (default 256, 3). Prints a markdown
//! table; the ratios between rows are what to compare, the absolute times depend on load.

use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};
use vml::model::{UNet, UNetConfig};

fn time<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    f(); // warm-up: first call allocates and picks kernels
    let start = Instant::now();
    for _ in 0..repeats {
        f();
    }
    start.elapsed().as_secs_f64() / repeats as f64
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with('-')).collect();
    let size: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let base = UNetConfig::shipped_default();
    let configs = [
        ("default (32 ch)", base.clone()),
        (
            "32 ch, mult 1,2,4,4",
            UNetConfig {
                channel_mult: vec![1, 2, 4, 4],
                ..base.clone()
            },
        ),
        (
            "64 ch",
            UNetConfig {
                num_channels: 64,
                ..base.clone()
            },
        ),
        (
            "32 ch, 2 res blocks",
            UNetConfig {
                num_res_blocks: 2,
                ..base.clone()
            },
        ),
        ("ffhq-256", UNetConfig::ffhq_256()),
    ];
    println!(
        "threads: {}, image {size}×{size}, mean of {repeats}",
        tch::get_num_threads()
    );
    println!("| network | params | forward s | forward+VJP s | ratio to default fwd+VJP |");
    println!("|---|---|---|---|---|");
    let mut reference = None;
    for (name, cfg) in configs {
        let mut vs = VarStore::new(Device::Cpu);
        let net = UNet::new(&vs.root(), &cfg).expect("valid config");
        vs.freeze();
        let params: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        let x = Tensor::randn([1, 3, size, size], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[500f32]);
        let fwd = time(repeats, || {
            let _ = tch::no_grad(|| net.forward(&x, &t));
        });
        let vjp = time(repeats, || {
            let xg = x.detach().set_requires_grad(true);
            let y = net.forward(&xg, &t);
            // A random cotangent, as in VML-MAP (Jᵀv for a data-dependent v).
            let v = Tensor::randn_like(&y);
            let _g = Tensor::run_backward(&[(&y * &v).sum(Kind::Float)], &[&xg], false, false);
        });
        let r = *reference.get_or_insert(vjp);
        println!(
            "| {name} | {:.2} M | {fwd:.3} | {vjp:.3} | {:.2} |",
            params as f64 / 1e6,
            vjp / r
        );
    }
}
