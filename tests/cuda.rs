//! The same code on a CUDA GPU: the network, the binary end to end, and training.
//!
//! Each test skips, saying so on stderr, when LibTorch sees no CUDA device (CI has none).
//! `VML_REQUIRE_CUDA=1` turns the skip into a failure: the GPU run (tests/gpu/device-run.sh)
//! sets it, so a broken CUDA build cannot pass as "skipped". The closed-form MAP tests run on
//! the GPU too, with `VML_TEST_DEVICE=cuda` (tests/gaussian_map.rs).

mod cli_common;

use cli_common::*;
use image::GenericImageView;
use tch::{Device, Kind, Tensor};
use vml::model::Precision;
use vml::registry;

fn cuda() -> Option<Device> {
    if tch::Cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    assert!(
        std::env::var_os("VML_REQUIRE_CUDA").is_none(),
        "VML_REQUIRE_CUDA is set but LibTorch sees no CUDA device"
    );
    eprintln!("skipped: LibTorch sees no CUDA device");
    None
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}

#[test]
fn network_on_cuda_matches_cpu() {
    let Some(gpu) = cuda() else { return };
    tch::manual_seed(3);
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[40i64, 700]);
    let reference = registry::open("default", None, Device::Cpu, Precision::Fp32)
        .unwrap()
        .forward(&x, &t);
    // cuDNN may run float32 convolutions in TF32 (10-bit mantissa): hence 5e-3, not 1e-6.
    for (precision, tol) in [
        (Precision::Fp32, 5e-3),
        (Precision::Fp16, 2e-2),
        (Precision::Bf16, 5e-2),
    ] {
        let net = registry::open("default", None, gpu, precision).unwrap();
        let err = rel_err(&net.forward(&x, &t), &reference);
        eprintln!(
            "{}: relative error against the CPU {err:.2e}",
            precision.name()
        );
        assert!(err < tol, "{}: {err} ≥ {tol}", precision.name());
    }
}

#[test]
fn binary_restores_on_cuda_as_on_cpu() {
    if cuda().is_none() {
        return;
    }
    let photo = demo_photo();
    let (w, h) = photo.dimensions();
    let clean = photo.crop_imm(w / 2 - 48, h / 2 - 48, 96, 96);
    let low = run(
        &["degrade", "--sr", "2", "--sigma-y", "0.01", "--seed", "1"],
        &png(&clean),
    );
    assert_eq!(low.code, 0, "{}", low.context());
    let restore = |device: &str, precision: &str| {
        let r = run(
            &[
                "--sr",
                "2",
                "--sigma-y",
                "0.01",
                "--method",
                "vml-map",
                "--steps",
                "10",
                "--iters",
                "2",
                "--seed",
                "4",
                "--device",
                device,
                "--precision",
                precision,
            ],
            &low.stdout,
        );
        assert_eq!(r.code, 0, "{device} {precision}: {}", r.context());
        let out = decode(&r.stdout);
        assert_eq!(out.dimensions(), (96, 96));
        psnr8(&out, &clean)
    };
    let on_cpu = restore("cpu", "fp32");
    // Seeds reproduce a run on one device; across devices the noise streams differ, so
    // the results are compared by their quality, not pixel by pixel.
    for precision in ["fp32", "fp16"] {
        let on_gpu = restore("cuda", precision);
        eprintln!("PSNR: cpu {on_cpu:.2} dB, cuda {precision} {on_gpu:.2} dB");
        assert!(
            (on_gpu - on_cpu).abs() < 1.0,
            "cuda {precision} {on_gpu:.2} dB vs cpu {on_cpu:.2} dB"
        );
    }
}

#[test]
fn training_runs_on_cuda_and_its_model_opens_on_the_cpu() {
    if cuda().is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Photos of two colours split by a diagonal: a few steps must lower the loss.
    for (split, count) in [("train", 3u8), ("val", 1)] {
        let dir = root.path().join("pack").join(split);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..count {
            let img = image::RgbImage::from_fn(40, 40, |x, y| {
                let c = 60 * i + if x > y { 200 } else { 20 };
                image::Rgb([c, 255 - c, c / 2])
            });
            img.save(dir.join(format!("p{i}.png"))).unwrap();
        }
    }
    let mut args = vml::app::train::TrainArgs::new(root.path().join("run"));
    args.data = Some(root.path().join("pack"));
    args.steps = Some(40);
    args.batch = 8;
    args.crop = 32;
    args.lr = 2e-3;
    args.warmup = 5;
    args.log_every = 10;
    args.val_crops = 8;
    args.device = "cuda".into();
    let summary = vml::app::train::train(&args).unwrap();
    let (first, last) = (summary.losses[0].1, summary.losses.last().unwrap().1);
    assert!(last < first, "loss {first} → {last}");
    let run_dir = root.path().join("run");
    let cfg = vml::model::UNetConfig::from_file(&run_dir.join("config.json")).unwrap();
    let net = vml::model::Network::open(
        &run_dir.join("ema.safetensors"),
        &cfg,
        Device::Cpu,
        Precision::Fp32,
    )
    .unwrap();
    let y = net.forward(
        &Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
        &Tensor::from_slice(&[10i64]),
    );
    assert!(y.isfinite().all().int64_value(&[]) == 1);
}
