//! The JPEG operator (`operators::jpeg`) and the marker reader (`jpeg`) against files
//! ImageMagick 6 (libjpeg-turbo) made from `tests/jpeg/orig.png` (`tests/jpeg/make.sh`):
//! the exact round trip with a file's own tables applied to the original must give the
//! pixels the library decodes from that file; the surrogate's gradients must match finite
//! differences; composition with a linear operator must reduce to it where JPEG does
//! nothing.

mod cli_common;

use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use vml::io::{self, Limits};
use vml::jpeg::{read_tables, standard_tables, Tables};
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
        let exact = Jpeg::new(&t, [3, 75, 100], None).unwrap().forward(&x);
        if exact.size()[1] == 3 {
            let (amax, amean, _) = level_diff(&exact, &want);
            println!("   with the exact DCT: max {amax}, mean {amean:.4}");
        }
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

mod common;
use vml::diffusion::GaussianPrior;
use vml::solvers::{self, Control, Method, Problem, Renoise, SolverOptions};

// The test matches on the error's kind, so it takes the library's error as it is.
#[allow(clippy::result_large_err)]
fn solve(
    method: Method,
    op: &dyn Operator,
    y: &Tensor,
    prior: &GaussianPrior,
    opts: &SolverOptions,
) -> vml::Result<Tensor> {
    solve_s(method, op, y, prior, opts, 0.0)
}

#[allow(clippy::result_large_err)]
fn solve_s(
    method: Method,
    op: &dyn Operator,
    y: &Tensor,
    prior: &GaussianPrior,
    opts: &SolverOptions,
    sigma_y: f64,
) -> vml::Result<Tensor> {
    let solver = solvers::build(method, opts)?;
    let problem = Problem {
        op,
        y: y.shallow_clone(),
        sigma_y,
    };
    Ok(solver
        .solve(prior, &problem, 3, &mut |_| Control::Continue)?
        .expect("not stopped"))
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a - b).square().mean(Kind::Double).double_value(&[]);
    10.0 * (4.0 / mse).log10()
}

#[test]
fn methods_that_need_a_linear_operator_refuse_jpeg() {
    let _serial = common::serial();
    let shape = [3, 8, 8];
    let prior = GaussianPrior::smooth(shape, tch::Device::Cpu).unwrap();
    let op = Jpeg::new(&standard_tables(30, 2, 2, 8, 8), shape, None).unwrap();
    let y = op.forward(&prior.sample(1));
    for m in [Method::Ddrm, Method::Pigdm, Method::VmlMapPre] {
        let e = solve(m, &op, &y, &prior, &SolverOptions::default()).unwrap_err();
        assert!(
            matches!(&e, vml::Error::Usage(s) if s.contains("linear")),
            "{m}: {e:?}"
        );
    }
    // (The classical estimate, POCS deblocking, is tested on a larger image in
    // a_jpeg_measurement_is_the_round_trip_and_deblocking_stays_consistent_with_it: on
    // 8×8 pixels most of each 16×16 MCU is padding the projection cannot keep.)
}

/// JPEG at quality 100 with 4:4:4 chroma only rounds `A x` to 8 bits, and the
/// straight-through VJP of `jpeg ∘ A` is `Aᵀ`: VML-MAP on it must find the closed-form
/// Gaussian MAP of `A` alone (from the same measurement, σ_y = 0).
#[test]
fn jpeg_after_a_linear_operator_reduces_to_it_where_jpeg_does_nothing() {
    let _serial = common::serial();
    tch::set_num_threads(1);
    let shape = [3, 16, 16];
    let prior = GaussianPrior::smooth(shape, tch::Device::Cpu).unwrap();
    tch::manual_seed(4);
    let x = prior.sample(1);
    let sr = common::sr_avgpool(shape, 2);
    let t = standard_tables(100, 1, 1, 8, 8);
    let op = Jpeg::new(&t, shape, Some(Box::new(common::sr_avgpool(shape, 2)))).unwrap();
    let g = Tensor::randn([1, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
    let diff = (op.vjp(&x, &g) - sr.adjoint(&g))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "VJP of jpeg∘A differs from Aᵀ by {diff}");
    let y = op.forward(&x);
    // Rounding to 8-bit YCbCr and back moves a pixel by up to 2 levels, 3 with the
    // rounding of RGB before it.
    let ax = sr.forward(&x).clamp(-1.0, 1.0);
    let off = ((&y - ax) * 127.5).abs().max().double_value(&[]);
    assert!(off <= 3.0, "quality 100 moved a pixel {off} levels");
    let opts = SolverOptions {
        steps: Some(200),
        iters: Some(20),
        renoise: Some(Renoise::Deterministic),
        sigma_min: Some(1e-3),
        ..Default::default()
    };
    let out = solve(Method::VmlMap, &op, &y, &prior, &opts).unwrap();
    let map = prior.map_estimate(&sr, &y, 0.0);
    let err = common::rel_err(&out, &map);
    println!("VML-MAP on jpeg(q100, 4:4:4) ∘ sr2 against the MAP of sr2: rel. error {err:.2e}");
    // The residual VML-MAP fits is that of the rounded round trip: its 8-bit rounding
    // (RMS ≈ 0.005 against pixels of RMS ≈ 0.3) is what keeps it from the MAP of A.
    assert!(err < 5e-2, "{err}");
}

/// End to end on a prior the solvers can use exactly, at quality 10 with 4:2:0 chroma and
/// σ_y the operator's own error level. This prior is weak on JPEG (its exact MAP for the
/// linear-Gaussian model of the error gains less than 1 dB over the decoded image), so
/// the test asks that the solvers stay near the decoded image they start from (within
/// 1 dB: a diverging step or a NaN gradient falls far below) rather than beat it; the real
/// comparison is on photos with the network (docs/benchmarks.md). Prints the comparison of
/// surrogates docs/operators.md quotes.
#[test]
fn vml_map_and_dps_restore_through_jpeg() {
    let _serial = common::serial();
    tch::set_num_threads(1);
    let shape = [3, 16, 16];
    let prior = GaussianPrior::smooth(shape, tch::Device::Cpu).unwrap();
    let t = standard_tables(10, 2, 2, 16, 16);
    let mut rows = Vec::new();
    for (name, s) in [
        ("straight-through", Surrogate::StraightThrough),
        ("smooth α=0.5", Surrogate::Smooth { alpha: 0.5 }),
        ("smooth α=1", Surrogate::Smooth { alpha: 1.0 }),
    ] {
        let op = Jpeg::new(&t, shape, None).unwrap().with_surrogate(s);
        let sigma = vml::operators::measurement_sigma(&op, 0.0);
        let (mut decoded, mut vml, mut dps) = (0.0, 0.0, 0.0);
        let images = 4;
        for seed in 0..images {
            tch::manual_seed(10 + seed);
            let x = prior.sample(1);
            let y = op.forward(&x);
            let opts = SolverOptions {
                steps: Some(30),
                iters: Some(5),
                ..Default::default()
            };
            let v = solve_s(Method::VmlMap, &op, &y, &prior, &opts, sigma).unwrap();
            let dopts = SolverOptions {
                steps: Some(100),
                ..Default::default()
            };
            let d = solve_s(Method::Dps, &op, &y, &prior, &dopts, sigma).unwrap();
            let k = images as f64;
            decoded += psnr(&y, &x) / k;
            vml += psnr(&v, &x) / k;
            dps += psnr(&d, &x) / k;
        }
        println!(
            "{name} (σ_y {sigma:.3}): decoded {decoded:.2} dB, vml-map 30×5 {vml:.2} dB, dps-100 {dps:.2} dB"
        );
        rows.push((decoded, vml, dps));
    }
    let (decoded, vml, dps) = rows[0];
    assert!(vml > decoded - 1.0, "vml-map {vml} vs decoded {decoded}");
    assert!(dps > decoded - 4.0, "dps {dps} vs decoded {decoded}");
}

/// The binary: `--jpeg auto` restores a JPEG with its own tables (classical: the decoded
/// image), combines with `--sr`, and refuses what it cannot model with the documented
/// exit codes, writing nothing.
#[test]
fn command_line_jpeg() {
    let bin = env!("CARGO_BIN_EXE_vml-filter");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], out: &Path| {
        std::process::Command::new(bin)
            .args(args)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap()
    };
    let q10 = fixture("q10-420.jpg");
    let out = dir.path().join("a.png");
    let r = run(
        &[
            "--jpeg",
            "auto",
            "--method",
            "classical",
            "-i",
            q10.to_str().unwrap(),
        ],
        &out,
    );
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let got = {
        let b = std::fs::read(&out).unwrap();
        let p = io::decode(&b, &Limits::default(), "out").unwrap().picture;
        Tensor::from_slice(&p.color) * 2.0 - 1.0
    };
    // The classical estimate is POCS deblocking of the decoded file: nearer the original
    // than libjpeg's decoding, and moved from it only within the quantisation steps.
    let decoded = image("q10-420.png").reshape([-1]);
    let orig = image("orig.png").reshape([-1]);
    let (p_dec, p_deb) = (psnr(&decoded, &orig), psnr(&got, &orig));
    let mean = ((&got - &decoded) * 127.5)
        .abs()
        .mean(Kind::Double)
        .double_value(&[]);
    println!(
        "classical --jpeg auto: {p_deb:.2} dB, libjpeg's decoding {p_dec:.2} dB, {mean:.2} levels apart"
    );
    assert!(p_deb > p_dec + 0.1 && mean < 6.0, "{p_deb} {p_dec} {mean}");
    let out = dir.path().join("b.png");
    let r = run(
        &[
            "--sr",
            "2",
            "--jpeg",
            "auto",
            "--method",
            "classical",
            "-i",
            q10.to_str().unwrap(),
        ],
        &out,
    );
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let b = std::fs::read(&out).unwrap();
    let p = io::decode(&b, &Limits::default(), "out").unwrap().picture;
    assert_eq!((p.width, p.height), (200, 150));
    // A PNG has no tables; DDRM needs a linear operator; a 12-bit file is refused.
    let twelve = dir.path().join("12.jpg");
    let mut b = std::fs::read(&q10).unwrap();
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    b[sof + 4] = 12;
    std::fs::write(&twelve, &b).unwrap();
    let orig = fixture("orig.png");
    for (args, code) in [
        (vec!["--jpeg", "auto", "-i", orig.to_str().unwrap()], 2),
        (
            vec![
                "--jpeg",
                "auto",
                "--method",
                "ddrm",
                "-i",
                q10.to_str().unwrap(),
            ],
            2,
        ),
        (vec!["--jpeg", "0", "-i", orig.to_str().unwrap()], 2),
        (
            vec![
                "--jpeg",
                "auto",
                "--method",
                "classical",
                "-i",
                twelve.to_str().unwrap(),
            ],
            3,
        ),
    ] {
        let out = dir.path().join("refused.png");
        let r = run(&args, &out);
        assert_eq!(
            r.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(!out.exists(), "{args:?} wrote an output");
    }
}

/// The GIMP plug-in sends decoded pixels, so it reads the tables of the image's JPEG file
/// itself (`jpeg_file_tables`, Python) and sends them as the task's `tables`; they must be
/// what the engine's own reader finds in the same file, sampling included, and restoring
/// with them must equal restoring the file with `--jpeg auto`'s tables.
#[test]
fn the_gimp_plugins_table_reader_agrees_with_the_engines() {
    let root = env!("CARGO_MANIFEST_DIR");
    let plugin =
        std::fs::read_to_string(format!("{root}/plugin/gimp/vml-restore/vml-restore.py")).unwrap();
    let start = plugin.find("# Position in natural").unwrap();
    let end = plugin.find("def image_file").unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(format!("{root}/tests/fuzz-corpus"))
        .unwrap()
        .chain(std::fs::read_dir(format!("{root}/tests/jpeg")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let script = format!(
        "import json, sys\nclass RestoreError(Exception): pass\n{}\nprint(json.dumps([jpeg_file_tables(p) for p in sys.argv[1:]]))",
        &plugin[start..end]
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<vml::task::JpegTables> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(files.len() >= 10, "{files:?}");
    for (path, wire) in files.iter().zip(&sent) {
        let file = read_tables(&std::fs::read(path).unwrap()).unwrap();
        let from_wire = wire.to_tables().unwrap();
        assert_eq!(from_wire.components, file.components, "{}", path.display());
    }
}

/// `{"kind":"jpeg","quality":Q,"sampling":[h,v]}` (what the GIMP plug-in sends for a file
/// GIMP loaded with libjpeg's standard tables) is the operator of those tables at that
/// sampling; without `sampling` it is 4:2:0.
#[test]
fn a_quality_with_its_sampling_is_the_standard_tables_at_that_sampling() {
    let x = Tensor::rand([1, 3, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let task = |sampling| vml::task::Task::Jpeg {
        quality: Some(40),
        sampling,
        tables: None,
        inner: None,
    };
    let y = |t: &vml::task::Task| {
        vml::operators::build(t, [3, 32, 32], None)
            .unwrap()
            .forward(&x)
    };
    let direct = |h, v| {
        Jpeg::new(&standard_tables(40, h, v, 0, 0), [3, 32, 32], None)
            .unwrap()
            .forward(&x)
    };
    let (y444, y420) = (y(&task(Some([1, 1]))), y(&task(None)));
    assert!(y444.allclose(&direct(1, 1), 0.0, 0.0, false));
    assert!(y420.allclose(&direct(2, 2), 0.0, 0.0, false));
    assert!(
        !y444.allclose(&y420, 1e-3, 1e-3, false),
        "sampling changed nothing"
    );
}

/// The data fit for JPEG (`data_prox` → `Codec::project`): an image consistent with `y`
/// (its own decoding's source) is left nearly as it is, and the projection of an image
/// that is not (here a smoothed one) re-encodes to `y` to within a level or two, while
/// moving it closer to the source than `y` was never required.
#[test]
fn the_jpeg_data_fit_projects_onto_the_images_that_code_to_the_same_file() {
    for (q, h, v) in [(10, 2, 2), (30, 1, 1), (50, 2, 1)] {
        let shape = [3, 32, 48];
        let op = Jpeg::new(&standard_tables(q, h, v, 48, 32), shape, None).unwrap();
        // A smooth random picture, as photos are smooth at the scale of a block.
        let x = Tensor::rand([1, 3, 8, 12], (Kind::Float, tch::Device::Cpu)).upsample_bilinear2d(
            [32, 48],
            false,
            None,
            None,
        ) * 1.6
            - 0.8;
        let y = op.forward(&x);
        let own = vml::operators::data_prox(&op, &x, &y, 0.0).expect("JPEG has a data fit");
        let moved = (&own - &x).abs().max().double_value(&[]) * 127.5;
        assert!(
            moved < 3.0,
            "q{q}: a consistent image moved by {moved:.2} levels"
        );
        let z = (&x * 0.5).shallow_clone();
        let p = vml::operators::data_prox(&op, &z, &y, 0.0).unwrap();
        let before = (op.forward(&z) - &y)
            .abs()
            .mean(Kind::Float)
            .double_value(&[])
            * 127.5;
        let after = (op.forward(&p) - &y)
            .abs()
            .mean(Kind::Float)
            .double_value(&[])
            * 127.5;
        assert!(
            after < 1.0 && after < before / 5.0,
            "q{q} {h}×{v}: re-encoding is off by {after:.2} levels on average (before {before:.2})"
        );
    }
}

#[test]
fn a_jpeg_measurement_is_the_round_trip_and_deblocking_stays_consistent_with_it() {
    let shape = [3, 64, 64];
    let op = Jpeg::new(&standard_tables(10, 2, 2, 64, 64), shape, None).unwrap();
    let x = smooth_image(shape, 3);
    let y = op.forward(&x);
    // The compression error is in the round trip: degrading adds no noise on top (it
    // once added the error's σ again as Gaussian noise, `own_noise`).
    let made = vml::operators::degrade(&x, &op, 0.0, 7);
    assert_eq!(
        (&made - &y).abs().max().double_value(&[]),
        0.0,
        "degrade ≠ the round trip"
    );
    // Sensor noise goes in before the compression: the measurement is a decoded image,
    // so coding it again changes it by far less than the noise it carries.
    let noisy = vml::operators::degrade(&x, &op, 0.1, 7);
    let recoded = (op.forward(&noisy) - &noisy)
        .abs()
        .mean(Kind::Float)
        .double_value(&[]);
    let noise = (&noisy - &y).abs().mean(Kind::Float).double_value(&[]);
    assert!(
        recoded < noise / 3.0,
        "a noisy measurement is not a decoded JPEG: re-coding moves it by {recoded:.4}, the noise is {noise:.4}"
    );

    // The classical estimate (POCS deblocking) beats the decoded image and still codes
    // to the same file, to within a level on average.
    let xhat = vml::operators::classical::restore(&op, &y, 0.0);
    let (p_dec, p_deb) = (psnr(&y, &x), psnr(&xhat, &x));
    assert!(
        p_deb > p_dec + 0.3,
        "deblocking {p_deb:.2} dB against decoded {p_dec:.2} dB"
    );
    let off = (op.forward(&xhat) - &y)
        .abs()
        .mean(Kind::Float)
        .double_value(&[])
        * 127.5;
    assert!(
        off < 1.0,
        "the deblocked image re-codes {off:.2} levels away"
    );
}

#[test]
fn vml_map_on_a_jpeg_starts_near_the_compression_error() {
    use vml::solvers::vml_map::{Options, VmlMap};
    let shape = [3, 16, 16];
    let d = (3 * 16 * 16) as i64;
    let prior = GaussianPrior::new(
        &Tensor::zeros([3, 16, 16], (Kind::Double, tch::Device::Cpu)),
        &(Tensor::eye(d, (Kind::Double, tch::Device::Cpu)) * 0.1),
    )
    .unwrap();
    let jpeg = Jpeg::new(&standard_tables(10, 2, 2, 16, 16), shape, None).unwrap();
    let start = jpeg.start_sigma().expect("JPEG alone names a start");
    let err = jpeg.codec().error_std();
    assert!(
        start > 0.5 * err && start < err,
        "start {start} against the error {err}"
    );
    let sched = |opts: Options, op: &dyn Operator| {
        VmlMap::new(&opts, false)
            .unwrap()
            .sigmas(&prior, op)
            .unwrap()
    };
    let normal = sched(Options::default(), &jpeg);
    let full = VmlMap::DEFAULT_STEPS;
    assert!((normal[0] - start).abs() < 1e-12, "{normal:?}");
    assert!(
        normal.len() >= VmlMap::MIN_LEVELS_FROM_START && normal.len() < full,
        "{} levels from the start, {full} in the full schedule",
        normal.len()
    );
    assert!(normal.windows(2).all(|w| w[0] > w[1]));
    let lo = vml::diffusion::Denoiser::sigma_min(&prior);
    assert!((normal.last().unwrap() / lo - 1.0).abs() < 1e-9);
    // A short budget still gets its fewest levels; an explicit σ_max wins over the hint.
    let fast = Options {
        steps: Some(5),
        ..Options::default()
    };
    assert_eq!(sched(fast, &jpeg).len(), 5);
    let own = Options {
        sigma_max: Some(2.0),
        ..Options::default()
    };
    let s = sched(own, &jpeg);
    assert_eq!(s.len(), VmlMap::DEFAULT_STEPS);
    assert!((s[0] - 2.0).abs() < 1e-12);
    // After SR the null space needs the whole schedule.
    let task = vml::Task::Jpeg {
        quality: Some(30),
        sampling: None,
        tables: None,
        inner: Some(Box::new(vml::Task::Sr {
            scale: 2,
            downsample: vml::task::SrKind::Avgpool,
        })),
    };
    let sr = vml::operators::build(&task, shape, None).unwrap();
    assert!(sr.start_sigma().is_none());
    assert_eq!(sched(Options::default(), sr.as_ref()).len(), full);
}

/// Hostile JPEGs made from a real file (its segments: APP0 at 2, DQT at 20 and 89, SOF0
/// at 158, length 17): each is refused by `--jpeg auto` as bad input (exit 3) with nothing
/// on stdout, and no panic.
#[test]
fn hostile_jpegs_are_refused_cleanly() {
    let bin = env!("CARGO_BIN_EXE_vml-filter");
    let good = std::fs::read(fixture("q10-420.jpg")).unwrap();
    assert_eq!(
        (good[20..22].to_vec(), good[158..160].to_vec()),
        (vec![0xFF, 0xDB], vec![0xFF, 0xC0])
    );
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let adobe = |transform: u8| {
        with(&|b| {
            let app14 = [
                &[0xFF, 0xEE, 0, 14][..],
                b"Adobe",
                &[0, 100, 0, 0, 0, 0, transform],
            ]
            .concat();
            b.splice(20..20, app14);
        })
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "DQT too short",
            with(&|b| b[22..24].copy_from_slice(&3u16.to_be_bytes())),
            "DQT",
        ),
        (
            "DQT past its data",
            with(&|b| b[22..24].copy_from_slice(&300u16.to_be_bytes())),
            "DQT",
        ),
        ("DQT of zeros", with(&|b| b[25..89].fill(0)), "zero step"),
        ("no SOF", with(&|b| drop(b.drain(158..177))), "SOF"),
        (
            "60000² in 4 kB",
            with(&|b| {
                b[163..165].copy_from_slice(&60000u16.to_be_bytes());
                b[165..167].copy_from_slice(&60000u16.to_be_bytes());
            }),
            "limit",
        ),
        (
            "CMYK",
            with(&|b| {
                b[160..162].copy_from_slice(&20u16.to_be_bytes());
                b[167] = 4;
                b.splice(177..177, [4, 0x11, 1]);
            }),
            "4 components",
        ),
        ("Adobe RGB-coded", adobe(0), "RGB-coded"),
    ];
    for (what, bytes, says) in cases {
        let mut child = std::process::Command::new(bin)
            .args(["--jpeg", "auto", "--method", "classical", "--device", "cpu"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // The filter may refuse before it has read everything.
        let _ = child.stdin.take().unwrap().write_all(&bytes);
        let r = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(3), "{what}: {err}");
        assert!(
            r.stdout.is_empty(),
            "{what}: {} bytes on stdout",
            r.stdout.len()
        );
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{what}: {err}"
        );
    }
    // libjpeg reads a 3-component file with Adobe transform 1 as YCbCr, and so do we.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("adobe1.jpg");
    std::fs::write(&input, adobe(1)).unwrap();
    let ok = std::process::Command::new(bin)
        .args([
            "--jpeg",
            "auto",
            "--method",
            "classical",
            "--device",
            "cpu",
            "-q",
        ])
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("a.png"))
        .status()
        .unwrap();
    assert_eq!(ok.code(), Some(0));
    assert!(dir.path().join("a.png").exists());
}

/// `jpeg` with an APP1 EXIF block as cameras write it (a little-endian TIFF header and
/// IFD0 holding the Orientation tag 0x0112 as one SHORT) right after the start of image.
fn with_exif_orientation(jpeg: &[u8], value: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(value.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_le_bytes());
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(tiff);
    out.extend(&jpeg[2..]);
    out
}

/// A phone's JPEG is compressed as the sensor stored it and shown turned by its EXIF
/// orientation. Upright, the 100×75 fixture's block grid no longer starts at the top-left
/// corner (75 and 100 are not multiples of 16) and a quarter turn transposes the tables,
/// so the filter solves in the stored orientation: for each of the seven turns and flips
/// the output is the untagged file's restoration turned upright, to the last bit, and it
/// says it is upright. Before, the half turn scored 0.1 dB lower (21.42 against 21.52 dB).
#[test]
fn a_turned_jpeg_is_restored_in_the_orientation_it_was_stored_in() {
    use vml::io::{inverse, Orientation};
    let bin = env!("CARGO_BIN_EXE_vml-filter");
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("q10-420.jpg")).unwrap();
    let restore = |bytes: &[u8], name: &str, task: &[&str]| {
        let (input, output) = (
            dir.path().join(name),
            dir.path().join(format!("{name}.png")),
        );
        std::fs::write(&input, bytes).unwrap();
        let r = std::process::Command::new(bin)
            .args(task)
            .args(["--method", "classical", "--device", "cpu", "-q"])
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .unwrap();
        assert_eq!(
            r.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        io::decode(&std::fs::read(&output).unwrap(), &Limits::default(), name).unwrap()
    };
    for task in [
        &["--jpeg", "auto"][..],
        &["--sr", "2", "--jpeg", "auto"][..],
    ] {
        let want = restore(&plain, "plain.jpg", task).picture;
        for value in 2..=8u16 {
            let o = Orientation::from_exif(value as u8).unwrap();
            let tagged = with_exif_orientation(&plain, value);
            let name = format!("o{value}.jpg");
            // The input really is turned when decoded, as a viewer shows it.
            let shown = io::decode(&tagged, &Limits::default(), &name).unwrap();
            assert_eq!(shown.orientation, o);
            let got = restore(&tagged, &name, task);
            assert_eq!(got.orientation, Orientation::NoTransforms, "{task:?} {o:?}");
            assert!(
                got.picture.oriented(inverse(o)) == want,
                "{task:?} {o:?}: not the stored restoration turned upright"
            );
        }
    }
}

/// The same through `serve`, which decodes the request's image itself: the tagged file's
/// answer is the plain file's turned a quarter clockwise (EXIF 6), pixel for pixel. A
/// client that decoded and turned the file itself (GIMP) sends the upright pixels, the
/// file's tables and `orientation`, and gets the same answer; an orientation outside 1–8
/// is refused.
#[test]
fn serve_restores_a_turned_jpeg_in_the_orientation_it_was_stored_in() {
    let plain = std::fs::read(fixture("q10-420.jpg")).unwrap();
    let header = serde_json::json!({"vml":1,"task":{"kind":"jpeg"},
                                    "options":{"method":"classical","format":"png"}});
    let t = read_tables(&plain).unwrap();
    let (y, c) = (&t.components[0], &t.components[1]);
    let tables =
        serde_json::json!({"sampling": [y.h, y.v], "quant": [y.quant.to_vec(), c.quant.to_vec()]});
    let client = |orientation: u8| {
        serde_json::json!({"vml":1,"task":{"kind":"jpeg","tables":tables},
                           "options":{"method":"classical","format":"png","orientation":orientation}})
    };
    let decoded_by_client = cli_common::png(&cli_common::decode(&plain).rotate90());
    let mut stream: Vec<u8> = [plain.clone(), with_exif_orientation(&plain, 6)]
        .iter()
        .flat_map(|b| cli_common::request(&header, b, None))
        .collect();
    stream.extend(cli_common::request(&client(6), &decoded_by_client, None));
    stream.extend(cli_common::request(&client(9), &decoded_by_client, None));
    let r = cli_common::run(&["serve"], &stream);
    assert_eq!(r.code, 0, "{}", r.context());
    let (h, upright, rest) = cli_common::split_response(&r.stdout);
    assert_eq!(h["ok"], true, "{h}");
    let (h, turned, rest) = cli_common::split_response(&rest);
    assert_eq!(h["ok"], true, "{h}");
    let (h, from_client, rest) = cli_common::split_response(&rest);
    assert_eq!(h["ok"], true, "{h}");
    let (h, _, rest) = cli_common::split_response(&rest);
    assert_eq!(h["ok"], false, "{h}");
    assert!(
        h["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orientation"),
        "{h}"
    );
    assert!(rest.is_empty());
    let (upright, turned) = (cli_common::decode(&upright), cli_common::decode(&turned));
    assert_eq!(turned.to_rgb8().dimensions(), (75, 100));
    assert!(turned.to_rgb8() == upright.rotate90().to_rgb8());
    assert!(cli_common::decode(&from_client).to_rgb8() == turned.to_rgb8());
}
