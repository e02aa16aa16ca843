//! The checkpoint reader on files saved the way users save them (tests/fixtures/checkpoints,
//! made by make_checkpoints.py with guided-diffusion's create_model and torch.save): each
//! layout loads and reproduces guided-diffusion's output; damaged and hostile files are
//! refused with one line and the model exit code.

mod cli_common;

use cli_common::rel_l2;

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use vml::model::checkpoint::CheckpointError;
use vml::model::{LoadError, Network, Precision, UNetConfig};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

fn config() -> UNetConfig {
    UNetConfig::from_file(&dir().join("config.json")).unwrap()
}

fn open(name: &str) -> Result<Network, LoadError> {
    Network::open(&dir().join(name), &config(), Device::Cpu, Precision::Fp32)
}

fn output(net: &Network, t: i64) -> Tensor {
    let x = Tensor::read_npy(dir().join("x.npy")).unwrap();
    let ts = Tensor::full([x.size()[0]], t as f64, (Kind::Float, Device::Cpu));
    tch::no_grad(|| net.forward(&x, &ts))
}

fn reference(name: &str) -> Tensor {
    Tensor::read_npy(dir().join(name)).unwrap()
}

/// Every fp32 layout against guided-diffusion's own output at T = 10, 500, 999, and against
/// the plain `torch.save(model.state_dict())` file read by the same reader.
#[test]
fn every_layout_reproduces_guided_diffusion() {
    // (file, reference outputs' prefix): the optimizer step of wrapped_model_legacy moved
    // two parameters, so it and the files saved after it (module_prefix and later) have
    // their own references.
    let cases = [
        ("state_dict.pt", "out_t"),
        ("no_metadata.pt", "out_t"),
        ("legacy.pt", "out_t"),
        ("wrapped_state_dict.pt", "out_t"),
        ("module_prefix.pt", "out_opt_t"),
        ("wrapped_model_legacy.pt", "out_opt_t"),
        ("shared_views.pt", "out_opt_t"),
        ("model.safetensors", "out_opt_t"),
    ];
    let base = open("state_dict.pt").unwrap();
    for (file, prefix) in cases {
        let net = open(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        for t in [10, 500, 999] {
            let out = output(&net, t);
            let err = rel_l2(&out, &reference(&format!("{prefix}{t}.npy")));
            assert!(
                err < 1e-4,
                "{file} T={t}: rel L2 {err:.2e} against guided-diffusion"
            );
            if prefix == "out_t" {
                let same = rel_l2(&out, &output(&base, t));
                assert!(
                    same < 1e-6,
                    "{file} T={t}: rel L2 {same:.2e} against state_dict.pt"
                );
            }
        }
    }
}

#[test]
fn half_precision_files_load_into_fp32() {
    for kind in ["fp16", "bf16"] {
        let net = open(&format!("{kind}.pt")).unwrap();
        let err = rel_l2(
            &output(&net, 10),
            &reference(&format!("out_{kind}_t10.npy")),
        );
        assert!(err < 1e-4, "{kind}: rel L2 {err:.2e}");
    }
}

#[test]
fn two_fitting_entries_are_refused_and_one_can_be_named() {
    let err = open("wrapped_ambiguous.pt").unwrap_err();
    match &err {
        LoadError::Checkpoint {
            source: CheckpointError::Ambiguous { entries, .. },
            ..
        } => assert_eq!(entries, &["model", "ema"]),
        other => panic!("expected an ambiguity error, got {other}"),
    }
    assert!(err.to_string().contains("#model"), "{err}");

    // "model" holds the fp16 weights of fp16.pt; "ema" the same halved.
    let model = open("wrapped_ambiguous.pt#model").unwrap();
    let fp16 = reference("out_fp16_t10.npy");
    assert!(rel_l2(&output(&model, 10), &fp16) < 1e-4);
    let ema = open("wrapped_ambiguous.pt#ema").unwrap();
    assert!(rel_l2(&output(&ema, 10), &fp16) > 1e-2);

    let none = open("wrapped_ambiguous.pt#nope").unwrap_err().to_string();
    assert!(
        none.contains("no entry 'nope'") && none.contains("'ema'"),
        "{none}"
    );
}

#[test]
fn wrong_architecture_reports_the_mismatch() {
    let err = Network::open(
        &dir().join("wrapped_state_dict.pt"),
        &UNetConfig::shipped_default(),
        Device::Cpu,
        Precision::Fp32,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("(entry 'state_dict')"), "{err}");
}

/// `eval-net` on a file: (exit code, stderr).
fn eval_net(model: &Path) -> (i32, String) {
    let out = tempfile::tempdir().unwrap();
    let (config, x, y) = (
        dir().join("config.json"),
        dir().join("x.npy"),
        out.path().join("y.npy"),
    );
    let args = [
        "eval-net",
        "--model",
        model.to_str().unwrap(),
        "--arch",
        config.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--timestep",
        "10",
        "--output",
        y.to_str().unwrap(),
    ];
    let r = cli_common::run(&args, b"");
    (r.code, r.stderr)
}

fn assert_one_model_error(what: &str, code: i32, stderr: &str) {
    assert_eq!(code, 4, "{what}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    assert!(
        stderr.starts_with("vml-filter: model: "),
        "{what}: {stderr}"
    );
    assert!(
        !stderr.contains("INTERNAL ASSERT") && !stderr.contains("frame #"),
        "{what}: {stderr}"
    );
}

#[test]
fn hostile_pickle_is_refused_by_name() {
    let (code, stderr) = eval_net(&dir().join("hostile_global.pt"));
    assert_one_model_error("hostile", code, &stderr);
    assert!(stderr.contains("posix.system"), "{stderr}");
}

#[test]
fn truncated_files_are_one_line_model_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for file in ["state_dict.pt", "legacy.pt", "wrapped_model_legacy.pt"] {
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let n = bytes.len();
        for keep in [0, 1, 100, n / 10, n / 2, n - 300, n - 1] {
            let p = tmp.path().join(format!("cut-{keep}-{file}"));
            std::fs::write(&p, &bytes[..keep]).unwrap();
            let err = open_path(&p).unwrap_err();
            assert!(
                matches!(err, LoadError::Checkpoint { .. }),
                "{file} cut at {keep}: {err}"
            );
        }
        let p = tmp.path().join(format!("cut-{file}"));
        std::fs::write(&p, &bytes[..n / 2]).unwrap();
        let (code, stderr) = eval_net(&p);
        assert_one_model_error(file, code, &stderr);
    }
}

fn open_path(p: &Path) -> Result<Network, LoadError> {
    Network::open(p, &config(), Device::Cpu, Precision::Fp32)
}

#[test]
fn inspect_names_the_entry() {
    let r = cli_common::run(
        &[
            "models",
            "inspect",
            dir().join("wrapped_model_legacy.pt").to_str().unwrap(),
        ],
        b"",
    );
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("# entry 'model' (1 of 1 holding tensors)")
    );
    assert!(
        lines.next().unwrap().starts_with("# 88 tensors, "),
        "{text}"
    );
    assert!(text.contains("out.2.weight\t6,32,3,3\tFloat"), "{text}");

    // FILE#ENTRY shows that entry alone.
    let both = dir().join("wrapped_ambiguous.pt");
    let r = cli_common::run(&["models", "inspect", both.to_str().unwrap()], b"");
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(text.matches("# entry ").count(), 2, "{text}");
    let ema = format!("{}#ema", both.display());
    let r = cli_common::run(&["models", "inspect", &ema], b"");
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        text.starts_with("# entry 'ema' (2 of 2 holding tensors)\n"),
        "{text}"
    );
    assert_eq!(text.matches("# entry ").count(), 1, "{text}");
}

/// The published architectures at full size, as the venv's torch saves a state dict
/// (an OrderedDict with `_metadata`; ffhq-256 in the legacy format, imagenet-256 zipped
/// in fp16 to halve its 2.2 GB), with the key list guided-diffusion's create_model gives
/// (tests/fixtures/keys). The outputs of real guided-diffusion networks at this size were
/// checked by hand (docs/models.md, "Formats").
#[test]
fn published_architectures_load_at_full_size() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let tmp = tempfile::tempdir().unwrap();
    for (keys, cfg, file, legacy, half) in [
        ("ffhq-256", UNetConfig::ffhq_256(), "ffhq.pt", true, false),
        (
            "imagenet-256-uncond",
            UNetConfig::imagenet_256_uncond(),
            "imagenet.pt",
            false,
            true,
        ),
    ] {
        let path = tmp.path().join(file);
        let script = format!(
            r##"
import collections, sys, torch
sd = collections.OrderedDict()
sd._metadata = collections.OrderedDict([("", {{"version": 1}})])
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    k, s = line.rstrip("\n").split("\t")
    shape = [int(d) for d in s.split(",") if d]
    sd[k] = torch.full(shape, 0.5, dtype=torch.float16 if {half} else torch.float32)
torch.save(sd, sys.argv[2], _use_new_zipfile_serialization={zip})
"##,
            half = if half { "True" } else { "False" },
            zip = if legacy { "False" } else { "True" },
        );
        let keys_file = root.join(format!("tests/fixtures/keys/{keys}.txt"));
        let status = std::process::Command::new(&python)
            .args(["-c", &script])
            .arg(&keys_file)
            .arg(&path)
            .status()
            .expect("the venv's python (make setup)");
        assert!(status.success());
        let net = Network::open(&path, &cfg, Device::Cpu, Precision::Fp32)
            .unwrap_or_else(|e| panic!("{keys}: {e}"));
        drop(net);
    }
}
