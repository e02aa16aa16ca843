//! `train` on a toy set: a tiny ADM config, flat-colour 24×24 photos, a few dozen steps.
//! Checks that the loss is finite and falls, that the run directory holds a loadable
//! model, and that a resumed run continues the step counter and ends in exactly the state
//! of an uninterrupted one.

use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;
use vml::app::train::{train, TrainArgs};

const TINY: &str = r#"{"image_size":16,"in_channels":3,"num_channels":32,"num_res_blocks":1,
"channel_mult":[1,2],"attention_resolutions":[],"num_heads":1,"num_head_channels":-1,
"num_heads_upsample":-1,"use_scale_shift_norm":true,"resblock_updown":false,
"learn_sigma":false,"dropout":0.0,"class_cond":false,"num_classes":null,
"use_new_attention_order":false}"#;

/// A pack of flat-colour photos: the optimal ε-predictor is a simple function of x_t,
/// so even a few steps must lower the loss.
fn toy_pack(dir: &Path) {
    let colours: [[u8; 3]; 4] = [[200, 40, 40], [30, 160, 60], [40, 60, 210], [220, 220, 200]];
    for (split, list) in [("train", &colours[..3]), ("val", &colours[3..])] {
        std::fs::create_dir_all(dir.join(split)).unwrap();
        for (i, c) in list.iter().enumerate() {
            let img = image::RgbImage::from_pixel(24, 24, image::Rgb(*c));
            img.save(dir.join(split).join(format!("flat{i}.png")))
                .unwrap();
        }
    }
}

fn args(root: &Path, out: &str, steps: i64) -> TrainArgs {
    let mut a = TrainArgs::new(root.join(out));
    a.data = Some(root.join("pack"));
    a.arch = root.join("tiny.json").to_string_lossy().into_owned();
    a.steps = Some(steps);
    a.batch = 8;
    a.crop = 16;
    a.lr = 2e-3;
    a.warmup = 5;
    a.log_every = 5;
    a.val_crops = 8;
    a.device = "cpu".into();
    a.threads = Some(1);
    a.seed = 7;
    a
}

fn setup() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    toy_pack(&root.path().join("pack"));
    std::fs::write(root.path().join("tiny.json"), TINY).unwrap();
    root
}

fn read_state(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn loss_is_finite_and_falls_and_the_run_is_a_model_dir() {
    let root = setup();
    let s = train(&args(root.path(), "run", 30)).unwrap();
    assert_eq!(s.step, 30);
    assert_eq!(s.losses.len(), 6);
    assert!(
        s.losses.iter().all(|(_, l)| l.is_finite()),
        "{:?}",
        s.losses
    );
    let first = s.losses[0].1;
    let last = s.losses[s.losses.len() - 2..]
        .iter()
        .map(|x| x.1)
        .sum::<f64>()
        / 2.0;
    // At initialisation the output head is zero, so the loss starts at E[ε²] ≈ 1.
    assert!((0.6..1.4).contains(&first), "first window loss {first}");
    assert!(
        last < 0.6 * first,
        "loss did not fall: first {first}, last {last}"
    );
    assert!(s.val_loss.is_some_and(f64::is_finite));

    let run = root.path().join("run");
    let log = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "step,loss,images_per_s,wall_s");
    assert_eq!(lines.len(), 7);
    assert!(lines[6].starts_with("30,"));
    // The fp16 EMA and config.json next to it load as a network.
    let net = vml::registry::open_path(
        &run.join("ema.safetensors"),
        None,
        tch::Device::Cpu,
        vml::model::Precision::Fp32,
    )
    .unwrap();
    let y = net.forward(
        &Tensor::zeros([1, 3, 16, 16], (tch::Kind::Float, tch::Device::Cpu)),
        &Tensor::from_slice(&[10.0f32]),
    );
    assert_eq!(y.size(), [1, 3, 16, 16]);
}

#[test]
fn resume_continues_and_matches_an_uninterrupted_run() {
    let root = setup();
    let straight = train(&args(root.path(), "a", 10)).unwrap();
    assert_eq!(straight.step, 10);

    let first = train(&args(root.path(), "b", 4)).unwrap();
    assert_eq!(first.step, 4);
    // Without --resume an existing run is not overwritten.
    assert!(train(&args(root.path(), "b", 10)).is_err());
    let mut resume = args(root.path(), "b", 10);
    resume.resume = true;
    let second = train(&resume).unwrap();
    assert_eq!(second.step, 10);
    assert_eq!(second.steps_run, 6);

    let a = read_state(&root.path().join("a/state.safetensors"));
    let b = read_state(&root.path().join("b/state.safetensors"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert_eq!(a["meta.step"].int64_value(&[0]), 10);
    assert_eq!(b["meta.step"].int64_value(&[0]), 10);
    for (k, ta) in &a {
        if k == "meta.wall_s" {
            continue;
        }
        let diff = (ta - &b[k]).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-6,
            "{k} differs by {diff} between the straight and resumed runs"
        );
    }
    // The resumed loss log continues where the first part stopped, without repeats.
    let log = std::fs::read_to_string(root.path().join("b/loss.csv")).unwrap();
    let steps: Vec<i64> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, vec![5, 10]);
}

/// Scale and dihedral augmentation: crops of a fine checkerboard lose their contrast when
/// they are downscaled, and crops of a ramp come in all 8 orientations; without
/// augmentation neither happens.
#[test]
fn crops_vary_in_scale_and_orientation() {
    use vml::app::train::{Augment, Photos, SplitMix};
    let dir = tempfile::tempdir().unwrap();
    // 96×96: a 1-pixel checkerboard in red, a ramp along x in green, along y in blue.
    let img = image::RgbImage::from_fn(96, 96, |x, y| {
        image::Rgb([
            if (x + y) % 2 == 0 { 255 } else { 0 },
            (x * 2) as u8,
            (y * 2) as u8,
        ])
    });
    img.save(dir.path().join("a.png")).unwrap();
    let crops = |aug: Augment| {
        let photos = Photos::load(dir.path(), 16, aug).unwrap();
        let b = photos.batch(&mut SplitMix::new(3), 200);
        assert_eq!(b.size(), [200, 3, 16, 16]);
        assert!(b.min().double_value(&[]) >= -1.0 && b.max().double_value(&[]) <= 1.0);
        b
    };
    let orientations = |b: &tch::Tensor| {
        // Direction of the green ramp (x in the photo) and the blue one (y), per crop.
        let g = b.select(1, 1);
        let bl = b.select(1, 2);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..b.size()[0] {
            let slope = |t: &tch::Tensor, dim: i64| {
                let t = t.get(i);
                (t.narrow(dim, 15, 1).mean(tch::Kind::Float)
                    - t.narrow(dim, 0, 1).mean(tch::Kind::Float))
                .double_value(&[])
            };
            // Which output axis the green ramp runs along, and the sign of each ramp.
            let (gx, gy) = (slope(&g, 1), slope(&g, 0));
            let (bx, by) = (slope(&bl, 1), slope(&bl, 0));
            let dominant = |a: f64, b: f64| if a.abs() > b.abs() { a > 0.0 } else { b > 0.0 };
            let key = (gx.abs() > gy.abs(), dominant(gx, gy), dominant(bx, by));
            seen.insert(key);
        }
        seen.len()
    };
    let low_contrast = |b: &tch::Tensor| {
        let red = b.select(1, 0);
        (0..b.size()[0])
            .filter(|&i| red.get(i).std(true).double_value(&[]) < 0.5)
            .count()
    };
    let plain = crops(Augment::NONE);
    assert_eq!(low_contrast(&plain), 0, "plain crops keep the checkerboard");
    assert_eq!(
        orientations(&plain),
        2,
        "plain crops: a horizontal flip only"
    );
    let aug = crops(Augment {
        max_downscale: 4.0,
        dihedral: true,
    });
    assert!(
        low_contrast(&aug) > 100,
        "most crops are downscaled: {}",
        low_contrast(&aug)
    );
    assert_eq!(orientations(&aug), 8, "all 8 orientations");
}
