//! Developer commands over raw networks: `eval-net` (the numerical-parity hook) and
//! `models inspect` (names and shapes in a checkpoint).

use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::model::Precision;
use crate::registry::open_path;
use std::path::PathBuf;
use tch::{Kind, Tensor};

/// `vml-filter eval-net`: evaluates the raw network on a `.npy` batch.
#[derive(Debug, clap::Args)]
pub struct EvalNetArgs {
    /// Checkpoint (.pt, .pth, .bin or .safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Architecture: ffhq-256, imagenet-256, default, or a config JSON file.
    #[arg(long)]
    pub arch: Option<String>,
    /// N×C×H×W float32 .npy input.
    #[arg(long)]
    pub input: PathBuf,
    /// Integer timestep, the same for the whole batch.
    #[arg(long)]
    pub timestep: i64,
    /// Class labels (.npy of N integers) for class-conditional models.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Output .npy (raw network output, float32).
    #[arg(long)]
    pub output: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// fp32, fp16 or bf16 (half precisions on CUDA).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
}

pub fn eval_net(args: &EvalNetArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let precision = args.precision;
    crate::device::check_precision(device, precision)?;
    let net = open_path(&args.model, args.arch.as_deref(), device, precision)?;
    let x = read_npy(&args.input)?;
    let cfg = net.config();
    let size = x.size();
    if size.len() != 4 || size[1] != cfg.in_channels {
        return Err(Error::Input(format!(
            "input must be N×{}×H×W, got {size:?}",
            cfg.in_channels
        )));
    }
    let m = cfg.size_multiple();
    if size[2] % m != 0 || size[3] % m != 0 {
        return Err(Error::Input(format!(
            "H and W must be multiples of {m}, got {}×{}",
            size[2], size[3]
        )));
    }
    let labels = args.labels.as_ref().map(|p| read_npy(p)).transpose()?;
    let t = Tensor::full([size[0]], args.timestep as f64, (Kind::Float, device));
    let x = x.to_kind(Kind::Float).to_device(device);
    let y = tch::no_grad(|| match &labels {
        Some(l) => net
            .unet()
            .forward_t(&x, &t, Some(&l.to_device(device)), false),
        None => net.forward(&x, &t),
    });
    y.to_kind(Kind::Float)
        .to_device(tch::Device::Cpu)
        .write_npy(&args.output)
        .map_err(|e| {
            Error::Io(std::io::Error::other(format!(
                "{}: {e}",
                args.output.display()
            )))
        })
}

fn read_npy(path: &std::path::Path) -> Result<Tensor> {
    Tensor::read_npy(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))
}

/// `vml-filter models inspect FILE[#ENTRY]`: one line per tensor, `name<TAB>shape<TAB>dtype`,
/// after a `#` line with the counts. A file wrapping its state dict names the entry in a
/// `# entry` line first; a file with several dicts of tensors lists each (`#ENTRY`: that
/// one). No tensor data is read.
pub fn inspect(path: &std::path::Path) -> Result<String> {
    let ck = crate::model::load::open_checkpoint(path)?;
    let entries = ck
        .named_entries()
        .map_err(|source| crate::model::LoadError::Checkpoint {
            path: ck.path().to_owned(),
            source,
        })?;
    // Entries are numbered among all those of the file, also when `#ENTRY` picks one.
    let all = ck.entries();
    let mut out = String::new();
    for e in entries {
        if let Some(name) = &e.name {
            let n = all.iter().position(|x| std::ptr::eq(x, e)).unwrap_or(0) + 1;
            let of = all.len();
            out.push_str(&format!("# entry '{name}' ({n} of {of} holding tensors)\n"));
        }
        let mut rows: Vec<_> = e.tensors.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = rows
            .iter()
            .map(|(_, t)| t.shape.iter().product::<i64>())
            .sum();
        out.push_str(&format!("# {} tensors, {total} parameters\n", rows.len()));
        for (name, t) in rows {
            let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            out.push_str(&format!("{name}\t{}\t{:?}\n", shape.join(","), t.kind));
        }
    }
    Ok(out)
}

/// `vml-filter compare`: PSNR and SSIM of an image against a reference.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The image to judge.
    pub image: PathBuf,
    /// The clean reference (same size).
    pub reference: PathBuf,
}

/// Prints `{"psnr":…,"ssim":…}` for `args.image` against `args.reference`.
pub fn compare(args: &CompareArgs) -> Result<String> {
    let load = |p: &std::path::Path| -> Result<Tensor> {
        let limits = crate::io::Limits::from_env()?;
        let bytes = crate::io::read_file(p, limits.max_bytes, "image")?;
        let pic = crate::io::decode(&bytes, &limits, "image")?.picture;
        let shape = [pic.channels as i64, pic.height as i64, pic.width as i64];
        Ok(Tensor::from_slice(&pic.color).view(shape))
    };
    let (a, b) = (load(&args.image)?, load(&args.reference)?);
    if a.size() != b.size() {
        return Err(Error::Input(format!(
            "sizes differ: {:?} and {:?} (channels, height, width)",
            a.size(),
            b.size()
        )));
    }
    let psnr = crate::metrics::psnr(&a, &b);
    let ssim = crate::metrics::ssim(&a, &b);
    // Identical images have infinite PSNR, which JSON cannot carry: null stands for it.
    let psnr = if psnr.is_finite() {
        format!("{psnr:.4}")
    } else {
        "null".into()
    };
    Ok(format!("{{\"psnr\":{psnr},\"ssim\":{ssim:.5}}}"))
}
