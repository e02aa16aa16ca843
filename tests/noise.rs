//! `--sigma-y auto`: the noise estimate (`operators::noise`) on photos with synthetic
//! Gaussian noise of σ 0.005–0.1 on the [-1, 1] scale (unclipped, as the operators add
//! it). The photos are the standard evaluation sets beside the project
//! (`../shared/eval/Kodak24`, `CBSD68`), read here when that folder exists and never
//! copied; without it the test says so and checks the synthetic case only.

use std::path::Path;
use tch::{Kind, Tensor};
use vml::io::{self, Limits};
use vml::operators::noise::{estimate_sigma, mad_sigma};

fn photo(path: &Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap();
    let p = io::decode(&bytes, &Limits::default(), "photo")
        .unwrap()
        .picture;
    Tensor::from_slice(&p.color)
        .view([1, p.channels as i64, p.height as i64, p.width as i64])
        .to_kind(Kind::Double)
        * 2.0
        - 1.0
}

const SIGMAS: [f64; 6] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.1];

#[test]
fn estimate_is_within_a_fifth_of_the_truth_above_0_01() {
    tch::set_num_threads(2);
    let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval");
    let mut images: Vec<(String, Tensor)> = Vec::new();
    for (set, names) in [
        (
            "Kodak24",
            ["kodim01.png", "kodim05.png", "kodim13.png", "kodim23.png"].as_slice(),
        ),
        ("CBSD68", ["101087.png", "102061.png"].as_slice()),
    ] {
        for n in names {
            let p = eval.join(set).join(n);
            if p.exists() {
                images.push((format!("{set}/{n}"), photo(&p)));
            }
        }
    }
    if images.is_empty() {
        println!("{} is absent: synthetic images only", eval.display());
    }
    // A smooth synthetic image stands in (and always runs): gradients and a few edges.
    let ramp = Tensor::linspace(-0.8, 0.8, 256, (Kind::Double, tch::Device::Cpu));
    let synth = (ramp.view([1, 1, 1, 256]) * ramp.view([1, 1, 256, 1]).cos()).repeat([1, 3, 1, 1]);
    images.push(("synthetic".into(), synth));
    let mut worst: f64 = 0.0;
    for (name, x) in &images {
        let mut line = format!("{name:>22}:");
        for (k, &s) in SIGMAS.iter().enumerate() {
            tch::manual_seed(100 + k as i64);
            let y = x + Tensor::randn_like(x) * s;
            let est = estimate_sigma(&y, None).expect("big enough");
            let mad = mad_sigma(&y).unwrap();
            line += &format!("  {s}: {est:.4} (MAD {mad:.4})");
            if s > 0.01 {
                worst = worst.max((est / s - 1.0).abs());
                assert!(
                    (est / s - 1.0).abs() <= 0.2,
                    "{name} σ={s}: estimated {est}"
                );
            }
        }
        println!("{line}");
    }
    println!("worst relative error for σ > 0.01: {:.1} %", 100.0 * worst);
}
