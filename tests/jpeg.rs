//! The JPEG operator (`operators::jpeg`) and the marker reader (`io::jpeg`) against files
//! ImageMagick 6 (libjpeg-turbo) made from `tests/jpeg/orig.png` (`tests/jpeg/make.sh`):
//! the exact round trip with a file's own tables applied to the original must give the
//! pixels the library decodes from that file; the surrogate's gradients must match finite
//! differences; composition with a linear operator must reduce to it where JPEG does
//! nothing.

use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use vml::io::jpeg::{read_tables, standard_tables, Tables};
use vml::io::{self, Limits};
use vml::operators::jpeg::{Fdct, Jpeg, Surrogate};
use vml::operators::Operator;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/jpeg")
        .join(name)
}

/// `(1, C, H, W)` in [-1, 1], as the pipeline reads pictures (gray repeated to 3).
fn image(name: &str) -> Tensor {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let p = io::decode(&bytes, &Limits::default(), name)
        .unwrap()
        .picture;
    let t =
        Tensor::from_slice(&p.color).view([1, p.channels as i64, p.height as i64, p.width as i64])
            * 2.0
            - 1.0;
    if p.channels == 1 {
        t.repeat([1, 3, 1, 1])
    } else {
        t
    }
}

fn tables(name: &str) -> Tables {
    read_tables(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// `|a − b|` in levels of 255: (max, mean, share of values more than one level apart).
fn level_diff(a: &Tensor, b: &Tensor) -> (f64, f64, f64) {
    let d = ((a - b) * 127.5).abs().round();
    let max = d.max().double_value(&[]);
    let mean = d.mean(Kind::Double).double_value(&[]);
    let over = d
        .gt(1.0)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    (max, mean, over)
}

const FILES: [&str; 7] = [
    "q10-420",
    "q30-420",
    "q75-420",
    "q30-422",
    "q30-444",
    "q50-progressive",
    "q50-gray",
];

#[test]
fn exact_round_trip_matches_libjpeg() {
    let x = image("orig.png");
    let mut worst = 0.0f64;
    let mut bad = Vec::new();
    for f in FILES {
        let t = tables(&format!("{f}.jpg"));
        // ImageMagick encodes with libjpeg's fast integer DCT below quality 90.
        let op = Jpeg::new(&t, [3, 75, 100], None)
            .unwrap()
            .with_fdct(Fdct::Fast);
        let x = if f.contains("gray") {
            image("orig-gray.png")
        } else {
            x.shallow_clone()
        };
        let want = image(&format!("{f}.png"));
        let got = op.forward(&x);
        let got = if got.size()[1] == 1 {
            got.repeat([1, 3, 1, 1])
        } else {
            got
        };
        let (max, mean, over) = level_diff(&got, &want);
        println!(
            "{f} ({}): max {max} levels, mean {mean:.4}, {:.3} % more than one level off",
            t.sampling_name(),
            100.0 * over
        );
        // Against the decoded file, JPEG's own error is what our model must not show.
        let (_, jpeg_mean, _) = level_diff(&x, &want);
        println!("   JPEG's own error: mean {jpeg_mean:.3}");
        bad.push((f, mean, over, jpeg_mean));
        worst = worst.max(max);
    }
    for (f, mean, over, jpeg_mean) in bad {
        assert!(
            mean < 0.1 * jpeg_mean,
            "{f}: {mean} against JPEG's {jpeg_mean}"
        );
        assert!(over < 0.01, "{f}: {over}");
    }
    assert!(worst <= 6.0, "worst pixel {worst} levels off");
}

#[test]
fn markers_of_imagemagick_files() {
    for (f, sampling, quality) in [
        ("q10-420", "4:2:0", 10),
        ("q30-420", "4:2:0", 30),
        ("q75-420", "4:2:0", 75),
        ("q30-422", "4:2:2", 30),
        ("q30-444", "4:4:4", 30),
        ("q50-progressive", "4:2:0", 50),
    ] {
        let t = tables(&format!("{f}.jpg"));
        assert_eq!(t.sampling_name(), sampling, "{f}");
        assert_eq!((t.width, t.height), (100, 75), "{f}");
        assert_eq!(t.progressive, f.contains("progressive"), "{f}");
        // ImageMagick scales libjpeg's standard tables to its quality: the tables read
        // back (de-zig-zagged) must be those.
        let std = standard_tables(quality, 1, 1, 100, 75);
        for k in 0..3 {
            assert_eq!(t.components[k].quant, std.components[k].quant, "{f} {k}");
        }
    }
    let g = tables("q50-gray.jpg");
    assert_eq!((g.sampling_name(), g.components.len()), ("gray", 1));
    // Truncated files are refused, wherever the cut falls.
    let bytes = std::fs::read(fixture("q50-progressive.jpg")).unwrap();
    for cut in [1, 100, bytes.len() / 2, bytes.len() - 2] {
        let e = read_tables(&bytes[..cut]).unwrap_err().to_string();
        assert!(
            e.contains("truncated") || e.contains("not a JPEG"),
            "{cut}: {e}"
        );
    }
}

/// A smooth random image in [-0.8, 0.8] of `shape`.
fn smooth_image(shape: [i64; 3], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let [c, h, w] = shape;
    let t = Tensor::randn(
        [1, c, h / 4 + 1, w / 4 + 1],
        (Kind::Double, tch::Device::Cpu),
    );
    let t = t.upsample_bicubic2d([h, w], false, None, None);
    (t * 0.4).clamp(-0.8, 0.8)
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    (a * b).sum(Kind::Double).double_value(&[])
}

#[test]
fn surrogate_gradients_match_finite_differences() {
    let shape = [3, 24, 32];
    let t = standard_tables(30, 2, 2, 32, 24);
    let x = smooth_image(shape, 1);
    tch::manual_seed(2);
    let g = Tensor::randn([1, 3, 24, 32], (Kind::Double, tch::Device::Cpu));
    let dir = Tensor::randn([1, 3, 24, 32], (Kind::Double, tch::Device::Cpu));
    // Smooth rounding: differentiable everywhere, so central differences of ⟨H̃(x), g⟩
    // along a direction must give ⟨vjp, dir⟩.
    let smooth = Jpeg::new(&t, shape, None)
        .unwrap()
        .with_surrogate(Surrogate::Smooth { alpha: 0.5 });
    let eps = 1e-4;
    let f = |x: &Tensor| dot(&smooth.forward_surrogate(x), &g);
    let fd = (f(&(&x + &dir * eps)) - f(&(&x - &dir * eps))) / (2.0 * eps);
    let an = dot(&smooth.vjp(&x, &g), &dir);
    println!("smooth surrogate: finite difference {fd:.6}, vjp {an:.6}");
    assert!((fd - an).abs() < 1e-5 * an.abs().max(1.0), "{fd} vs {an}");
    // Straight through: the gradient is that of L, the same at every x; a step small
    // enough to cross no rounding boundary changes the exact round trip not at all.
    let ste = Jpeg::new(&t, shape, None).unwrap();
    let lin = |x: &Tensor| dot(&ste.linearised(x), &g);
    let fd = (lin(&(&x + &dir * eps)) - lin(&(&x - &dir * eps))) / (2.0 * eps);
    let an = dot(&ste.vjp(&x, &g), &dir);
    println!("straight-through: finite difference of L {fd:.6}, vjp {an:.6}");
    assert!((fd - an).abs() < 1e-6 * an.abs().max(1.0), "{fd} vs {an}");
    let other = ste.vjp(&smooth_image(shape, 9), &g);
    assert!((other - ste.vjp(&x, &g)).abs().max().double_value(&[]) < 1e-9);
    // Its value is the exact round trip's.
    let diff = (ste.forward_surrogate(&x) - ste.forward(&x)).abs().max();
    assert!(diff.double_value(&[]) < 1e-9);
    // And the adjoint is L's: ⟨L x, y⟩ = ⟨x, Lᵀ y⟩.
    let (l, r) = (dot(&ste.linearised(&x), &g), dot(&x, &ste.adjoint(&g)));
    assert!((l - r).abs() < 1e-9 * l.abs().max(1.0), "{l} vs {r}");
}
