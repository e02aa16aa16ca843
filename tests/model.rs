//! The ADM UNet against the reference implementation: checkpoint key names and shapes,
//! numerical parity on fixtures made with guided-diffusion, and the strict loader's errors.

mod cli_common;

use cli_common::rel_l2;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};
use vml::model::{load::load_strict, LoadError, Network, Precision, UNet, UNetConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `key<TAB>d0,d1,…` lines as written by tests/fixtures/make_parity.py from the reference.
fn reference_keys(name: &str) -> Vec<(String, Vec<i64>)> {
    let text =
        std::fs::read_to_string(fixtures().join("keys").join(format!("{name}.txt"))).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, s) = l.split_once('\t').unwrap();
            let shape = s
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.trim().parse().unwrap())
                .collect();
            (k.to_string(), shape)
        })
        .collect()
}

fn our_keys(cfg: &UNetConfig) -> Vec<(String, Vec<i64>)> {
    // Shapes only: the meta-free way is a CPU store; the big one costs ~400 MB briefly.
    let vs = VarStore::new(Device::Cpu);
    let _net = UNet::new(&vs.root(), cfg).unwrap();
    let mut keys: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn key_names_and_shapes_match_published_checkpoints() {
    for (name, cfg) in [
        ("ffhq-256", UNetConfig::ffhq_256()),
        ("imagenet-256-uncond", UNetConfig::imagenet_256_uncond()),
    ] {
        let mut want = reference_keys(name);
        want.sort();
        let have = our_keys(&cfg);
        let missing: Vec<_> = want.iter().filter(|k| !have.contains(k)).collect();
        let extra: Vec<_> = have.iter().filter(|k| !want.contains(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
    }
}

#[test]
fn parity_with_reference_outputs() {
    let root = fixtures().join("parity");
    let mut cases = 0;
    for entry in std::fs::read_dir(&root).expect("parity fixtures present") {
        let dir = entry.unwrap().path();
        if !dir.join("model.pt").is_file() {
            continue;
        }
        let cfg = UNetConfig::from_file(&dir.join("config.json")).unwrap();
        let net = Network::open(&dir.join("model.pt"), &cfg, Device::Cpu, Precision::Fp32).unwrap();
        let x = Tensor::read_npy(dir.join("x.npy")).unwrap();
        let labels = dir.join("y.npy");
        let labels = labels.is_file().then(|| Tensor::read_npy(&labels).unwrap());
        for out in std::fs::read_dir(&dir).unwrap() {
            let out = out.unwrap().path();
            let name = out.file_name().unwrap().to_string_lossy().to_string();
            let Some(t) = name
                .strip_prefix("out_t")
                .and_then(|s| s.strip_suffix(".npy"))
            else {
                continue;
            };
            let t: f64 = t.parse().unwrap();
            let want = Tensor::read_npy(&out).unwrap();
            let tt = Tensor::full([x.size()[0]], t, (Kind::Float, Device::Cpu));
            let got = tch::no_grad(|| net.unet().forward_t(&x, &tt, labels.as_ref(), false));
            assert_eq!(got.size(), want.size(), "{}: t={t}", dir.display());
            let err = rel_l2(&got, &want);
            assert!(
                err < 1e-4,
                "{}: t={t}: relative L2 error {err:e}",
                dir.display()
            );
            cases += 1;
        }
    }
    assert!(
        cases >= 8,
        "expected parity fixtures for several configs and timesteps, found {cases}"
    );
}

fn save_random(cfg: &UNetConfig, path: &Path) {
    let vs = VarStore::new(Device::Cpu);
    let _ = UNet::new(&vs.root(), cfg).unwrap();
    vs.save(path).unwrap();
}

#[test]
fn full_ffhq_shape_checkpoint_loads_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ffhq.safetensors");
    let cfg = UNetConfig::ffhq_256();
    save_random(&cfg, &path);
    let saved: Vec<(String, Tensor)> = Tensor::read_safetensors(&path).unwrap();
    let net = Network::open(&path, &cfg, Device::Cpu, Precision::Fp32).unwrap();
    assert_eq!(saved.len(), 362);
    // Every tensor arrived under its own name.
    let mut vs = VarStore::new(Device::Cpu);
    let _ = UNet::new(&vs.root(), &cfg).unwrap();
    load_strict(&mut vs, &path).unwrap();
    let vars = vs.variables();
    for (k, t) in &saved {
        assert!(vars[k].equal(t), "{k} differs after loading");
    }
    let x = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| net.forward(&x, &Tensor::from_slice(&[10f32])));
    assert_eq!(y.size(), vec![1, 6, 32, 32]);
    assert!(y.isfinite().all().int64_value(&[]) == 1);
}

#[test]
fn loader_reports_every_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    let small = UNetConfig::shipped_default();
    save_random(&small, &path);
    // Same file, architecture with more channels: shapes differ.
    let wider = UNetConfig {
        num_channels: 64,
        ..small.clone()
    };
    let err = Network::open(&path, &wider, Device::Cpu, Precision::Fp32).unwrap_err();
    match &err {
        LoadError::Mismatch {
            shapes,
            missing,
            unexpected,
            ..
        } => {
            assert!(
                !shapes.is_empty() && missing.is_empty() && unexpected.is_empty(),
                "{err}"
            );
            assert!(
                shapes
                    .iter()
                    .any(|s| s.starts_with("input_blocks.0.0.weight")),
                "{shapes:?}"
            );
        }
        other => panic!("expected a mismatch, got {other}"),
    }
    // Architecture with attention: keys missing from the file.
    let attn = UNetConfig {
        attention_resolutions: vec![8],
        ..small.clone()
    };
    match Network::open(&path, &attn, Device::Cpu, Precision::Fp32).unwrap_err() {
        LoadError::Mismatch { missing, .. } => {
            assert!(missing.iter().any(|k| k.contains(".qkv.")), "{missing:?}")
        }
        other => panic!("expected missing keys, got {other}"),
    }
    // Fewer res blocks: keys in the file the model does not have.
    let two = UNetConfig {
        num_res_blocks: 2,
        ..small.clone()
    };
    let p2 = dir.path().join("two.safetensors");
    save_random(&two, &p2);
    match Network::open(&p2, &small, Device::Cpu, Precision::Fp32).unwrap_err() {
        LoadError::Mismatch { unexpected, .. } => assert!(!unexpected.is_empty()),
        other => panic!("expected unexpected keys, got {other}"),
    }
}

#[test]
fn loader_rejects_missing_truncated_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = UNetConfig::shipped_default();
    let missing = dir.path().join("nope.pt");
    assert!(matches!(
        Network::open(&missing, &cfg, Device::Cpu, Precision::Fp32),
        Err(LoadError::NotFound(_))
    ));

    let good = dir.path().join("m.safetensors");
    save_random(&cfg, &good);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Network::open(&cut, &cfg, Device::Cpu, Precision::Fp32),
        Err(LoadError::Checkpoint { .. })
    ));

    let garbage = dir.path().join("junk.pt");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    assert!(matches!(
        Network::open(&garbage, &cfg, Device::Cpu, Precision::Fp32),
        Err(LoadError::Checkpoint { .. })
    ));

    let wrong_ext = dir.path().join("m.ckpt");
    std::fs::write(&wrong_ext, &bytes).unwrap();
    assert!(matches!(
        Network::open(&wrong_ext, &cfg, Device::Cpu, Precision::Fp32),
        Err(LoadError::Format { .. })
    ));
}

#[test]
fn named_configs_are_valid_and_files_round_trip() {
    for name in ["ffhq-256", "imagenet-256", "default"] {
        let cfg = UNetConfig::from_name_or_file(name).unwrap();
        cfg.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(UNetConfig::from_file(&p).unwrap(), cfg);
    }
    for name in ["ffhq-256", "imagenet-256"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name)
            .join("config.json");
        let named = UNetConfig::from_name_or_file(name).unwrap();
        assert_eq!(UNetConfig::from_file(&p).unwrap(), named, "{name}");
    }
}

/// The `eval-net` command (the parity hook users run) reproduces the reference outputs.
#[test]
fn eval_net_command_matches_reference() {
    let dir = fixtures().join("parity/attn_ss_updown_sigma");
    let out = tempfile::tempdir().unwrap();
    let y = out.path().join("y.npy");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_vml-filter"))
        .args(["eval-net", "--timestep", "500", "--device", "cpu"])
        .arg("--model")
        .arg(dir.join("model.pt"))
        .arg("--arch")
        .arg(dir.join("config.json"))
        .arg("--input")
        .arg(dir.join("x.npy"))
        .arg("--output")
        .arg(&y)
        .status()
        .unwrap();
    assert!(status.success());
    let got = Tensor::read_npy(&y).unwrap();
    let want = Tensor::read_npy(dir.join("out_t500.npy")).unwrap();
    assert_eq!(got.size(), want.size());
    let err = rel_l2(&got, &want);
    assert!(err < 1e-4, "relative L2 error {err:e}");
}
