//! Picks the Wiener prior scale of the classical baselines (`solvers::classical`) and
//! prints the classical PSNRs on photos of your choice:
//! `cargo run --release --example calibrate_classical -- 0.1 0.2 0.3 a.png b.png …`
//! Measurements are rounded to 8 bits, as a stored image would be.

use tch::{Kind, Tensor};
use vml::operators;
use vml::operators::classical;
use vml::task::{Blur, SrKind, Task};

fn load(p: &str) -> Tensor {
    let img = match image::open(p) {
        Ok(img) => img.to_rgb8(),
        Err(e) => {
            eprintln!("{p}: {e}");
            std::process::exit(1)
        }
    };
    let (w, h) = img.dimensions();
    if w < 256 || h < 256 {
        eprintln!("{p}: needs at least 256×256");
        std::process::exit(1)
    }
    let t = Tensor::from_slice(img.as_raw())
        .reshape([h as i64, w as i64, 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        / 127.5
        - 1.0;
    let (top, left) = ((h as i64 - 256) / 2, (w as i64 - 256) / 2);
    t.narrow(1, top, 256).narrow(2, left, 256).unsqueeze(0)
}
fn q8(t: &Tensor) -> Tensor {
    ((t.clamp(-1.0, 1.0) + 1.0) * 127.5).round() / 127.5 - 1.0
}
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a.clamp(-1.0, 1.0) - b)
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    10.0 * (4.0 / mse).log10()
}
fn main() {
    // Arguments: the prior scales g to try, then the photos (at least 256×256).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gs: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let xs: Vec<Tensor> = args
        .iter()
        .filter(|a| a.parse::<f64>().is_err())
        .map(|p| load(p.as_str()))
        .collect();
    let n = xs.len() as f64;
    let tasks: Vec<(Task, f64)> = vec![
        (Task::Deblur(Blur::Gaussian { sigma: 3.0 }), 0.0),
        (Task::Deblur(Blur::Gaussian { sigma: 3.0 }), 0.05),
        (
            Task::Deblur(Blur::Motion {
                length: 9.0,
                angle: 30.0,
            }),
            0.01,
        ),
        (Task::Denoise { sigma: 0.1 }, 0.1),
        (Task::Denoise { sigma: 0.2 }, 0.2),
    ];
    for (task, sy) in &tasks {
        for g in &gs {
            let mut tot = (0.0, 0.0);
            for (i, x) in xs.iter().enumerate() {
                let op = operators::build(task, [3, 256, 256], None).unwrap();
                let y = q8(&operators::degrade(x, op.as_ref(), *sy, i as u64));
                let r = classical::wiener_with_prior(
                    op.as_ref(),
                    &y,
                    match task {
                        Task::Denoise { sigma } => *sigma,
                        _ => *sy,
                    },
                    *g,
                );
                tot.0 += psnr(&r, x);
                tot.1 += psnr(&y.clamp(-1.0, 1.0), x);
            }
            println!(
                "{:?} σy={sy} g={g}: wiener {:.2} dB, measurement {:.2} dB",
                task,
                tot.0 / n,
                tot.1 / n
            );
        }
    }
    // SR and inpaint
    for ds in [SrKind::Avgpool, SrKind::Bicubic] {
        let task = Task::Sr {
            scale: 4,
            downsample: ds,
        };
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for x in &xs {
            let op = operators::build(&task, [3, 256, 256], None).unwrap();
            let y = q8(&op.forward(x));
            a += psnr(&classical::restore(op.as_ref(), &y, 0.0), x);
            b += psnr(&y.upsample_nearest2d([256, 256], None, None), x);
            c += psnr(&op.pinv(&y), x);
        }
        println!(
            "SR4 {ds:?}: bicubic {:.2} nearest {:.2} pinv {:.2}",
            a / n,
            b / n,
            c / n
        );
    }
    let m = operators::box_mask(256, 256, 128).unwrap();
    let op = operators::build(&Task::Inpaint, [3, 256, 256], Some(&m)).unwrap();
    let (mut a, mut b) = (0.0, 0.0);
    let t = std::time::Instant::now();
    for x in &xs {
        let y = q8(&op.forward(x));
        a += psnr(&classical::restore(op.as_ref(), &y, 0.0), x);
        b += psnr(&y, x);
    }
    println!(
        "inpaint box128: harmonic {:.2} zero-fill {:.2} ({:?})",
        a / n,
        b / n,
        t.elapsed()
    );
}
