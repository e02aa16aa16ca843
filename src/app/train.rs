//! `vml-filter train`: trains the default model, an ADM ε-prediction UNet, on random crops
//! of natural photos.
//!
//! DDPM (Ho et al. 2020, Algorithm 1) with the linear schedule β = 1e-4 … 0.02 over
//! T = 1000 steps, so that the engine treats the result exactly like the published
//! checkpoints: t ~ U{0, …, 999}, ε ~ N(0, I),
//! `x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε`, loss `‖ε − ε_θ(x_t, t)‖²` (mean over pixels).
//! Adam with linear warm-up and global-norm clipping, an exponential moving average of
//! the weights (the EMA is what ships), the guided-diffusion initialisation (the last
//! convolution of every residual block and the output head start at zero).
//!
//! Run directory (`--out`):
//! - `state.safetensors`: raw weights (`model.*`), EMA (`ema.*`), Adam moments
//!   (`adam_m.*`, `adam_v.*`) and counters (`meta.*`), all float32, written atomically.
//!   `--resume` continues from it exactly: the crops, timesteps and noise of step k depend
//!   only on `(seed, k)`, and the Adam state is restored, so no re-warm-up is needed.
//! - `ema.safetensors`: the EMA weights in float16 with the checkpoint key names, plus
//!   `config.json`: together a model directory that `registry::open_path` opens.
//! - `loss.csv` (step, loss, images/s, wall time), `val.csv` (loss of the EMA weights on a fixed
//!   set of validation crops, timesteps and noise), and JSON progress lines on stderr (stdout stays free, as for every command of the binary).

mod adam;
mod data;

pub use adam::Adam;
use data::Prefetch;
pub use data::{mix_seed, read_rgb, Augment, Photos, SplitMix};

use crate::device::parse_device;
use crate::diffusion::schedule::linear_alphas_cumprod;
use crate::error::{Error, Result};
use crate::model::{UNet, UNetConfig};
use crate::pipeline::signals;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Number of diffusion steps of the linear schedule.
pub const NUM_TIMESTEPS: i64 = 1000;

const TAG_TRAIN: u64 = 0x7472_6169_6e00_0001;
const TAG_VAL: u64 = 0x7661_6c00_0000_0002;
const TAG_INIT: u64 = 0x696e_6974_0000_0003;

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training pack: a folder with `train/` (and optionally `val/`) images, as written by
    /// models/default/make-data.sh. Default: $VML_DATA_DIR/pack, else
    /// $XDG_CACHE_HOME/vml-filter/data/pack (~/.cache when unset).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Architecture: `default` (models/default/config.json), another named one, or a
    /// config JSON file.
    #[arg(long, default_value = "default")]
    pub arch: String,
    /// Run directory for checkpoints and logs.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from `<out>/state.safetensors`.
    #[arg(long)]
    pub resume: bool,
    /// Stop when the step counter reaches this total (counted across resumes).
    #[arg(long)]
    pub steps: Option<i64>,
    /// Stop after this many minutes of this invocation (a checkpoint is written first).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Crops per step.
    #[arg(long, default_value_t = 16)]
    pub batch: i64,
    /// Side of the square training crops, in pixels.
    #[arg(long, default_value_t = 64)]
    pub crop: i64,
    /// Largest random downscale of a training crop (a square of up to this many crop sides,
    /// averaged down), so that textures appear at several scales; 1 = none.
    #[arg(long, value_name = "F", default_value_t = 4.0)]
    pub max_downscale: f64,
    /// Flip training crops horizontally only, instead of the 8 flips and quarter turns.
    #[arg(long)]
    pub hflip_only: bool,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear learning-rate warm-up, in Adam updates.
    #[arg(long, default_value_t = 50)]
    pub warmup: i64,
    /// Clip gradients to this global L2 norm (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// EMA decay (ramped up as min(decay, (1+k)/(10+k)) over the first steps).
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Seed of every random draw (crops, timesteps, noise, initial weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Torch intra-op threads (default: LibTorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Minutes between checkpoints.
    #[arg(long, default_value_t = 5.0)]
    pub checkpoint_minutes: f64,
    /// Steps between loss-log lines.
    #[arg(long, default_value_t = 10)]
    pub log_every: i64,
    /// Validation crops evaluated at each checkpoint (0 disables).
    #[arg(long, default_value_t = 64)]
    pub val_crops: i64,
    /// Threads that cut crops and draw noise ahead of the steps (default: 1 on a CPU, 6 on
    /// a GPU). The draws do not depend on it.
    #[arg(long)]
    pub loader_threads: Option<usize>,
}

impl TrainArgs {
    /// Arguments with the defaults of the command line, for library callers and tests.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            data: None,
            arch: "default".into(),
            out: out.into(),
            resume: false,
            steps: None,
            minutes: None,
            batch: 16,
            crop: 64,
            max_downscale: 4.0,
            hflip_only: false,
            lr: 1e-3,
            warmup: 50,
            clip: 1.0,
            ema: 0.999,
            seed: 0,
            threads: None,
            device: "auto".into(),
            checkpoint_minutes: 5.0,
            log_every: 10,
            val_crops: 64,
            loader_threads: None,
        }
    }
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Step counter at the end (across resumes).
    pub step: i64,
    /// Steps made by this invocation.
    pub steps_run: i64,
    /// Mean training loss of each logged window of this invocation, `(step, loss)`.
    pub losses: Vec<(i64, f64)>,
    /// EMA validation loss at the last checkpoint, if there is a validation set.
    pub val_loss: Option<f64>,
}

/// The default training pack location (see make-data.sh).
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VML_DATA_DIR") {
        return PathBuf::from(d).join("pack");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("vml-filter").join("data").join("pack")
}

/// SIGINT/SIGTERM end the run after the current step, with a checkpoint (the process's one
/// signal flag, `pipeline::signals`; a second signal exits at once as everywhere else). A
/// training run is meant to outlive the shell that started it, so the parent's death does
/// not stop it.
fn install_stop_handler() {
    signals::install();
    signals::outlive_parent();
}

/// A network with its own variable store, variables listed in name order.
struct Net {
    vs: VarStore,
    unet: UNet,
    names: Vec<String>,
    params: Vec<Tensor>,
}

impl Net {
    fn new(cfg: &UNetConfig, device: Device) -> Result<Self> {
        let vs = VarStore::new(device);
        let unet =
            UNet::new(&vs.root(), cfg).map_err(|m| Error::Usage(format!("architecture: {m}")))?;
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let (names, params) = vars.into_iter().unzip();
        Ok(Self {
            vs,
            unet,
            names,
            params,
        })
    }

    /// The initialisation of guided-diffusion, drawn from `seed` alone (not from
    /// LibTorch's global generator, so concurrent runs in one process stay reproducible):
    /// PyTorch's defaults for convolutions and linear layers (weights and biases uniform
    /// in ±1/√fan_in), normalisation scale 1 and shift 0, and its `zero_module` — the last
    /// conv of each residual block, the attention output projection and the output head
    /// start at zero, so every residual block is the identity at first.
    fn init(&mut self, seed: u64) {
        let shapes: BTreeMap<String, Vec<i64>> = self
            .names
            .iter()
            .cloned()
            .zip(self.params.iter().map(Tensor::size))
            .collect();
        tch::no_grad(|| {
            for (i, (name, p)) in self.names.iter().zip(&mut self.params).enumerate() {
                let shape = p.size();
                let zero = name.starts_with("out.2.")
                    || name.contains(".out_layers.3.")
                    || name.contains(".proj_out.");
                let weight_shape = match name.strip_suffix(".bias") {
                    Some(stem) => shapes.get(&format!("{stem}.weight")).cloned(),
                    None => Some(shape.clone()),
                };
                let value = match weight_shape {
                    _ if zero => p.zeros_like(),
                    // 1-D weights are normalisation scales; their shifts are 1-D "biases"
                    // whose weight is 1-D too.
                    Some(w) if w.len() == 1 && name.ends_with(".weight") => p.ones_like(),
                    Some(w) if w.len() >= 2 => {
                        let fan_in: i64 = w[1..].iter().product();
                        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                        SplitMix::new(mix_seed(seed, TAG_INIT, i as u64))
                            .uniform_tensor(&shape, bound)
                            .to_device(p.device())
                    }
                    _ => p.zeros_like(),
                };
                p.copy_(&value);
            }
        });
    }

    fn copy_from(&mut self, other: &[Tensor]) {
        tch::no_grad(|| {
            for (p, o) in self.params.iter_mut().zip(other) {
                p.copy_(o);
            }
        });
    }
}

/// Checkpoints, logs and configs go through the one atomic write (`io::write_atomic_with`):
/// a crash or a full disk never leaves a partial file under the real name.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut failed = None;
    let done = crate::io::write_atomic_with(path, &|| false, |_, tmp| {
        write(tmp).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            failed = Some(e);
            io
        })
    });
    match (done, failed) {
        (Err(_), Some(e)) => Err(e),
        (r, _) => r,
    }
}

fn scalar_i64(v: i64) -> Tensor {
    Tensor::from_slice(&[v])
}

fn scalar_f64(v: f64) -> Tensor {
    Tensor::from_slice(&[v])
}

/// Counters kept in the state file next to the tensors.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    step: i64,
    wall_s: f64,
}

fn save_state(path: &Path, model: &Net, ema: &Net, adam: &Adam, c: Counters) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (n, p) in model.names.iter().zip(&model.params) {
        named.push((format!("model.{n}"), p.detach().to_device(Device::Cpu)));
    }
    for (n, p) in ema.names.iter().zip(&ema.params) {
        named.push((format!("ema.{n}"), p.detach().to_device(Device::Cpu)));
    }
    for (i, n) in model.names.iter().enumerate() {
        named.push((format!("adam_m.{n}"), adam.m[i].to_device(Device::Cpu)));
        named.push((format!("adam_v.{n}"), adam.v[i].to_device(Device::Cpu)));
    }
    named.push(("meta.step".into(), scalar_i64(c.step)));
    named.push(("meta.adam_t".into(), scalar_i64(adam.t)));
    named.push(("meta.wall_s".into(), scalar_f64(c.wall_s)));
    write_atomic(path, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))
}

fn load_state(path: &Path, model: &mut Net, ema: &mut Net, adam: &mut Adam) -> Result<Counters> {
    let bad = |m: String| Error::Input(format!("{}: {m}", path.display()));
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| bad(format!("cannot read training state: {e}")))?
        .into_iter()
        .collect();
    let get = |key: &str, like: Option<&Tensor>| -> Result<Tensor> {
        let t = tensors
            .get(key)
            .ok_or_else(|| bad(format!("missing {key} (state of another architecture?)")))?;
        if let Some(like) = like {
            if t.size() != like.size() {
                return Err(bad(format!(
                    "{key} has shape {:?}, the model {:?}",
                    t.size(),
                    like.size()
                )));
            }
        }
        Ok(t.shallow_clone())
    };
    tch::no_grad(|| -> Result<()> {
        for i in 0..model.names.len() {
            let n = model.names[i].clone();
            let device = model.params[i].device();
            let raw = get(&format!("model.{n}"), Some(&model.params[i]))?.to_device(device);
            model.params[i].copy_(&raw);
            let avg = get(&format!("ema.{n}"), Some(&ema.params[i]))?.to_device(device);
            ema.params[i].copy_(&avg);
            adam.m[i] = get(&format!("adam_m.{n}"), Some(&model.params[i]))?.to_device(device);
            adam.v[i] = get(&format!("adam_v.{n}"), Some(&model.params[i]))?.to_device(device);
        }
        Ok(())
    })?;
    adam.t = get("meta.adam_t", None)?.int64_value(&[0]);
    Ok(Counters {
        step: get("meta.step", None)?.int64_value(&[0]),
        wall_s: get("meta.wall_s", None)?.double_value(&[0]),
    })
}

fn save_ema_fp16(path: &Path, ema: &Net) -> Result<()> {
    let named: Vec<(String, Tensor)> = ema
        .names
        .iter()
        .zip(&ema.params)
        .map(|(n, p)| {
            (
                n.clone(),
                p.detach().to_device(Device::Cpu).to_kind(Kind::Half),
            )
        })
        .collect();
    write_atomic(path, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))
}

/// Keeps the rows of a CSV log up to `step` (a resumed run rewrites what came after its
/// checkpoint); creates it with `header` when missing.
fn prepare_log(path: &Path, header: &str, step: i64) -> Result<std::fs::File> {
    let kept: Vec<String> = match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .skip(1)
            .filter(|l| {
                l.split(',')
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|s| s <= step)
            })
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut text = format!("{header}\n");
    for l in kept {
        text.push_str(&l);
        text.push('\n');
    }
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, &text)?))?;
    Ok(std::fs::OpenOptions::new().append(true).open(path)?)
}

/// Fixed validation batches: crops, timesteps spread over the whole range, and noise, all
/// drawn once from the seed.
struct ValSet {
    batches: Vec<(Tensor, Tensor, Tensor)>,
}

impl ValSet {
    fn new(photos: &Photos, count: i64, batch: i64, seed: u64, device: Device) -> Self {
        let mut rng = SplitMix::new(mix_seed(seed, TAG_VAL, 0));
        let mut batches = Vec::new();
        let mut done = 0;
        while done < count {
            let n = batch.min(count - done);
            let x0 = photos.batch(&mut rng, n);
            // Crop i of the whole set gets t = ⌊i·T/count⌋: the range is covered evenly.
            let t: Vec<i64> = (done..done + n)
                .map(|i| i * NUM_TIMESTEPS / count)
                .collect();
            let t = Tensor::from_slice(&t);
            let noise = rng.normal(&x0.size());
            batches.push((
                x0.to_device(device),
                t.to_device(device),
                noise.to_device(device),
            ));
            done += n;
        }
        Self { batches }
    }

    fn loss(&self, net: &Net, ab: &Tensor) -> f64 {
        tch::no_grad(|| {
            let mut sum = 0.0;
            let mut n = 0;
            for (x0, t, noise) in &self.batches {
                let l = diffusion_loss(&net.unet, x0, t, noise, ab, false);
                sum += l.double_value(&[]) * x0.size()[0] as f64;
                n += x0.size()[0];
            }
            sum / n.max(1) as f64
        })
    }
}

/// `mean ‖ε − ε_θ(√ᾱ_t x₀ + √(1 − ᾱ_t) ε, t)‖²`.
fn diffusion_loss(
    unet: &UNet,
    x0: &Tensor,
    t: &Tensor,
    noise: &Tensor,
    ab: &Tensor,
    train: bool,
) -> Tensor {
    let a = ab.index_select(0, t).view([-1, 1, 1, 1]);
    let xt = x0 * a.sqrt() + noise * a.neg().g_add_scalar(1.0).sqrt();
    let eps = unet.forward_t(&xt, &t.to_kind(Kind::Float), None, train);
    (eps - noise).square().mean(Kind::Float)
}

fn check_args(args: &TrainArgs, cfg: &UNetConfig) -> Result<()> {
    let usage = |m: String| Err(Error::Usage(m));
    if cfg.learn_sigma {
        return usage("train fits ε only: use an architecture with learn_sigma false".into());
    }
    if cfg.class_cond {
        return usage("train does not support class-conditional architectures".into());
    }
    let m = cfg.size_multiple();
    if args.crop <= 0 || args.crop % m != 0 {
        return usage(format!(
            "--crop {} must be a positive multiple of {m}",
            args.crop
        ));
    }
    if args.batch <= 0 {
        return usage("--batch must be positive".into());
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        return usage("--lr must be positive".into());
    }
    if !(0.0..1.0).contains(&args.ema) {
        return usage("--ema must be in [0, 1)".into());
    }
    if args.clip < 0.0 || args.warmup < 0 || args.log_every <= 0 || args.val_crops < 0 {
        return usage("--clip, --warmup and --val-crops must be ≥ 0, --log-every > 0".into());
    }
    if args.minutes.is_some_and(|m| m.is_nan() || m < 0.0) || args.checkpoint_minutes.is_nan() {
        return usage("--minutes and --checkpoint-minutes must be ≥ 0".into());
    }
    if !(args.max_downscale >= 1.0 && args.max_downscale.is_finite()) {
        return usage("--max-downscale must be a finite number ≥ 1".into());
    }
    if args.threads.is_some_and(|t| t < 1) {
        return usage("--threads must be at least 1".into());
    }
    Ok(())
}

/// `vml-filter train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    train(args).map(|_| ())
}

/// The training loop; returns what it did (for tests and callers that log it).
pub fn train(args: &TrainArgs) -> Result<TrainSummary> {
    let cfg = UNetConfig::from_name_or_file(&args.arch)?;
    cfg.validate()
        .map_err(|m| Error::Usage(format!("architecture {}: {m}", args.arch)))?;
    check_args(args, &cfg)?;
    crate::device::set_threads(args.threads)?;
    let device = parse_device(&args.device)?;

    // 1. Run directory: refuse to overwrite a run, and to resume another architecture.
    std::fs::create_dir_all(&args.out)?;
    let state_path = args.out.join("state.safetensors");
    let config_path = args.out.join("config.json");
    if state_path.exists() && !args.resume {
        return Err(Error::Usage(format!(
            "{} already holds a run; pass --resume or choose another --out",
            args.out.display()
        )));
    }
    if args.resume && !state_path.exists() {
        return Err(Error::Usage(format!(
            "--resume: no {} to resume from",
            state_path.display()
        )));
    }
    let cfg_json =
        serde_json::to_string_pretty(&cfg).map_err(|e| Error::Usage(e.to_string()))? + "\n";
    if args.resume {
        if let Ok(old) = UNetConfig::from_file(&config_path) {
            if old != cfg {
                return Err(Error::Usage(format!(
                    "--resume with --arch {} but {} was trained with another architecture",
                    args.arch,
                    args.out.display()
                )));
            }
        }
    }
    write_atomic(&config_path, |tmp| Ok(std::fs::write(tmp, &cfg_json)?))?;

    // 2. Networks, optimiser, data.
    let mut model = Net::new(&cfg, device)?;
    model.init(mix_seed(args.seed, TAG_INIT, 0));
    let mut ema = Net::new(&cfg, device)?;
    ema.vs.freeze();
    ema.copy_from(&model.params);
    let mut adam = Adam::new(&model.params);
    let mut c = Counters::default();
    if args.resume {
        c = load_state(&state_path, &mut model, &mut ema, &mut adam)?;
        log::info!("resumed {} at step {}", args.out.display(), c.step);
    }
    let data_dir = args.data.clone().unwrap_or_else(default_data_dir);
    let augment = data::Augment {
        max_downscale: args.max_downscale,
        dihedral: !args.hflip_only,
    };
    let photos = Photos::load(&data_dir.join("train"), args.crop, augment)?;
    let val_dir = data_dir.join("val");
    let val = if args.val_crops > 0 && val_dir.is_dir() {
        let v = Photos::load(&val_dir, args.crop, data::Augment::NONE)?;
        Some(ValSet::new(
            &v,
            args.val_crops,
            args.batch,
            args.seed,
            device,
        ))
    } else {
        None
    };
    let ab = Tensor::from_slice(&linear_alphas_cumprod(1e-4, 0.02, NUM_TIMESTEPS as usize))
        .to_kind(Kind::Float)
        .to_device(device);
    log::info!(
        "training on {} photos from {}, {} parameters, device {:?}",
        photos.len(),
        data_dir.display(),
        model.params.iter().map(|p| p.numel()).sum::<usize>(),
        device
    );

    // 3. Logs.
    let mut loss_log = prepare_log(
        &args.out.join("loss.csv"),
        "step,loss,images_per_s,wall_s",
        c.step,
    )?;
    let mut val_log = prepare_log(
        &args.out.join("val.csv"),
        "step,val_loss_ema,wall_s",
        c.step,
    )?;

    let loader_threads = match args.loader_threads {
        Some(n) => n,
        // On a CPU the network is the bottleneck and one thread hides the draws; a GPU
        // steps faster than one thread can cut crops and draw noise.
        None if device == Device::Cpu => 1,
        None => 6,
    };
    let mut loader = Prefetch::new(
        &photos,
        (args.seed, TAG_TRAIN),
        c.step,
        args.batch,
        NUM_TIMESTEPS as u64,
        loader_threads,
    );

    install_stop_handler();
    let start = Instant::now();
    let wall0 = c.wall_s;
    let mut last_ckpt = Instant::now();
    let mut window = (0.0f64, 0i64, Instant::now());
    let mut summary = TrainSummary {
        step: c.step,
        steps_run: 0,
        losses: Vec::new(),
        val_loss: None,
    };
    let target = args.steps.unwrap_or(i64::MAX);
    let budget_s = args.minutes.map(|m| m * 60.0).unwrap_or(f64::INFINITY);
    let ckpt_s = args.checkpoint_minutes * 60.0;

    let checkpoint = |model: &Net,
                      ema: &Net,
                      adam: &Adam,
                      c: Counters,
                      val_log: &mut std::fs::File|
     -> Result<Option<f64>> {
        save_state(&state_path, model, ema, adam, c)?;
        save_ema_fp16(&args.out.join("ema.safetensors"), ema)?;
        let v = match &val {
            Some(v) => {
                // EMA only: a validation pass costs several training steps on a CPU.
                let le = v.loss(ema, &ab);
                writeln!(val_log, "{},{le:.6},{:.1}", c.step, c.wall_s)?;
                eprintln!(
                    "{{\"event\":\"checkpoint\",\"step\":{},\"val_loss_ema\":{le:.6},\"wall_s\":{:.1}}}",
                    c.step, c.wall_s
                );
                Some(le)
            }
            None => {
                eprintln!(
                    "{{\"event\":\"checkpoint\",\"step\":{},\"wall_s\":{:.1}}}",
                    c.step, c.wall_s
                );
                None
            }
        };
        std::io::stderr().flush()?;
        Ok(v)
    };

    // 4. The loop.
    while c.step < target && start.elapsed().as_secs_f64() < budget_s && !signals::interrupted() {
        let d = loader.next_draw()?;
        let (x0, t, noise) = (
            d.x0.to_device(device),
            d.t.to_device(device),
            d.noise.to_device(device),
        );
        let loss = diffusion_loss(&model.unet, &x0, &t, &noise, &ab, true);
        let loss_v = loss.double_value(&[]);
        if !loss_v.is_finite() {
            return Err(Error::Input(format!(
                "training diverged at step {} (loss {loss_v}); lower --lr or resume from the last checkpoint",
                c.step
            )));
        }
        loss.backward();
        let scale = if args.clip > 0.0 {
            let norm = Adam::grad_norm(&model.params);
            (args.clip / (norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let lr = if args.warmup > 0 {
            args.lr * ((adam.t + 1) as f64 / args.warmup as f64).min(1.0)
        } else {
            args.lr
        };
        adam.step(&mut model.params, lr, scale);
        let decay = args.ema.min((1.0 + c.step as f64) / (10.0 + c.step as f64));
        tch::no_grad(|| {
            for (e, p) in ema.params.iter_mut().zip(&model.params) {
                let _ = e.lerp_(p, 1.0 - decay);
            }
        });
        c.step += 1;
        summary.steps_run += 1;
        c.wall_s = wall0 + start.elapsed().as_secs_f64();

        window.0 += loss_v;
        window.1 += 1;
        // Log on multiples of --log-every, so a resumed run keeps the same rows.
        if c.step % args.log_every == 0 {
            let mean = window.0 / window.1 as f64;
            let ips = (window.1 * args.batch) as f64 / window.2.elapsed().as_secs_f64().max(1e-9);
            writeln!(loss_log, "{},{mean:.6},{ips:.2},{:.1}", c.step, c.wall_s)?;
            eprintln!(
                "{{\"event\":\"progress\",\"step\":{},\"loss\":{mean:.6},\"lr\":{lr:.3e},\"images_per_s\":{ips:.2},\"wall_s\":{:.1}}}",
                c.step, c.wall_s
            );
            std::io::stderr().flush()?;
            summary.losses.push((c.step, mean));
            window = (0.0, 0, Instant::now());
        }
        if last_ckpt.elapsed().as_secs_f64() >= ckpt_s {
            summary.val_loss = checkpoint(&model, &ema, &adam, c, &mut val_log)?;
            last_ckpt = Instant::now();
        }
    }
    c.wall_s = wall0 + start.elapsed().as_secs_f64();
    summary.val_loss = checkpoint(&model, &ema, &adam, c, &mut val_log)?;
    summary.step = c.step;
    if signals::interrupted() {
        return Err(Error::Interrupted);
    }
    Ok(summary)
}
