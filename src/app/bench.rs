//! `vml-filter bench`: every method against every degradation on a folder of clean photos,
//! in one run, so that quality and cost are compared on the same machine, network,
//! operators and measurements (docs/benchmarks.md).
//!
//! A run is (image, task, σ_y, method spec). Each one appends a row to `results.csv` as soon
//! as it finishes, so a long benchmark can be interrupted and resumed (`--resume` skips the
//! rows already there) and the summary is always rebuilt from every row on disk.
//! `--overhead` instead measures what the engine and the binary add on top of the network.

mod overhead;
mod report;

use crate::device::parse_device;
use crate::diffusion::{Denoiser, EpsDenoiser};
use crate::error::{Error, Result};
use crate::metrics::{psnr, ssim};
use crate::model::Precision;
use crate::operators::{self, inpaint};
use crate::pipeline::signals;
use crate::registry;
use crate::solvers::{self, Control, Method, Problem, Progress, SigmaY, SolverOptions};
use crate::task::{Blur, SrKind, Task};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub use report::Row;

/// The degradations of the benchmark, in the order of the issue that asked for them.
pub const DEFAULT_TASKS: &str =
    "sr:4,sr-bicubic:4,gauss:3,uniform:9,box,random:0.7,half,colorize,denoise:0.2";
/// Every method at its default settings.
pub const DEFAULT_METHODS: &str =
    "vml-map,vml-map-pre,dps,ddrm,pigdm,diffpir,red-diff,daps,classical";

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Folder of clean photos (any format the filter reads); each is centre-cropped to --size
    /// (photos smaller than that are skipped).
    #[arg(long, required_unless_present = "overhead")]
    pub images: Option<PathBuf>,
    /// Output folder: results.csv, results.json, summary.md, images/ and grids/.
    #[arg(long)]
    pub out: PathBuf,
    /// Side of the square crops, a multiple of 32.
    #[arg(long, default_value_t = 256)]
    pub size: i64,
    /// Degradations: sr:S, sr-bicubic:S, gauss:SIGMA, uniform:SIZE, motion:LEN:ANGLE,
    /// box[:SIDE] (default side: half the crop), random:FRACTION, half, colorize, denoise:SIGMA,
    /// jpeg:QUALITY[:TASK] (a JPEG of the photo, or of TASK's measurement: jpeg:30:sr:2).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_TASKS)]
    pub tasks: Vec<String>,
    /// Measurement noise levels σ_y (on the [-1, 1] scale). Denoising runs once, at the
    /// first, since it brings its own noise.
    #[arg(long = "sigma-y", value_delimiter = ',', default_value = "0,0.01,0.05")]
    pub sigma_y: Vec<f64>,
    /// Methods, each optionally with its steps (and VML-MAP iterations): `vml-map:50x3`,
    /// `dps:250`. Several specs of one method make a quality–cost sweep.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_METHODS)]
    pub methods: Vec<String>,
    /// Model name or checkpoint path (default: the shipped default model).
    #[arg(long)]
    pub model: Option<String>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// fp32, fp16 or bf16 (half precisions on CUDA).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// Seed of the measurements' noise, the masks and the solvers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use at most this many photos (sorted by name).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Keep the rows already in <out>/results.csv and run only the missing ones.
    #[arg(long)]
    pub resume: bool,
    /// LibTorch intra-op threads (default: LibTorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Measure the engine's and the binary's overhead over the bare network instead.
    #[arg(long)]
    pub overhead: bool,
    /// With --overhead: thread counts whose forward+VJP time is compared.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub thread_counts: Vec<i32>,
    /// With --overhead: repetitions of each timing (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
}

/// A degradation of the benchmark: its label (file names, tables) and how to build it.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub label: String,
    pub task: Task,
    /// Inpainting masks, built for the crop size.
    mask: Option<MaskSpec>,
}

#[derive(Clone, Copy, Debug)]
enum MaskSpec {
    Box(Option<i64>),
    Random(f64),
    Half,
}

fn parse_number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Usage(format!("bad {what} '{s}' in --tasks")))
}

impl TaskSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let parts: Vec<&str> = spec.split(':').collect();
        let arg = |i: usize, what: &str| -> Result<&str> {
            parts
                .get(i)
                .copied()
                .ok_or_else(|| Error::Usage(format!("task '{spec}' needs a {what}")))
        };
        let (task, mask) = match parts[0] {
            "sr" | "sr-bicubic" => {
                let scale = parse_number(arg(1, "scale")?, "scale")?;
                let downsample = if parts[0] == "sr" {
                    SrKind::Avgpool
                } else {
                    SrKind::Bicubic
                };
                (Task::Sr { scale, downsample }, None)
            }
            "gauss" => (
                Task::Deblur(Blur::Gaussian {
                    sigma: parse_number(arg(1, "sigma")?, "sigma")?,
                }),
                None,
            ),
            "uniform" => (
                Task::Deblur(Blur::Uniform {
                    size: parse_number(arg(1, "size")?, "size")?,
                }),
                None,
            ),
            "motion" => (
                Task::Deblur(Blur::Motion {
                    length: parse_number(arg(1, "length")?, "length")?,
                    angle: parse_number(arg(2, "angle")?, "angle")?,
                }),
                None,
            ),
            "box" => {
                let side = parts
                    .get(1)
                    .map(|s| parse_number(s, "box side"))
                    .transpose()?;
                (Task::Inpaint, Some(MaskSpec::Box(side)))
            }
            "random" => (
                Task::Inpaint,
                Some(MaskSpec::Random(parse_number(
                    arg(1, "fraction")?,
                    "fraction",
                )?)),
            ),
            "half" => (Task::Inpaint, Some(MaskSpec::Half)),
            "colorize" => (Task::Colorize, None),
            "denoise" => (
                Task::Denoise {
                    sigma: parse_number(arg(1, "sigma")?, "sigma")?,
                },
                None,
            ),
            // jpeg:Q alone, or jpeg:Q:TASK for a JPEG of that task's measurement
            // (jpeg:30:sr:2). libjpeg's standard tables at Q with 4:2:0 chroma, as
            // ImageMagick, GIMP and cameras save by default.
            "jpeg" => {
                let quality = parse_number(arg(1, "quality")?, "quality")?;
                let inner = match parts.get(2..) {
                    Some(rest) if !rest.is_empty() => Some(Self::parse(&rest.join(":"))?),
                    _ => None,
                };
                let mask = inner.as_ref().and_then(|t| t.mask);
                let task = Task::Jpeg {
                    quality: Some(quality),
                    sampling: None,
                    tables: None,
                    inner: inner.map(|t| Box::new(t.task)),
                };
                task.validate().map_err(|e| Error::Usage(e.to_string()))?;
                (task, mask)
            }
            other => {
                return Err(Error::Usage(format!(
                    "unknown benchmark task '{other}'; known: sr, sr-bicubic, gauss, uniform, motion, box, random, half, colorize, denoise, jpeg"
                )))
            }
        };
        Ok(Self {
            label: spec.replace(':', "-"),
            task,
            mask,
        })
    }

    /// The mask `(S, S)` (1 = unknown) for inpainting tasks.
    fn mask(&self, size: i64, seed: u64) -> Result<Option<Tensor>> {
        let m = match self.mask {
            None => return Ok(None),
            Some(MaskSpec::Box(side)) => inpaint::box_mask(size, size, side.unwrap_or(size / 2)),
            Some(MaskSpec::Random(f)) => inpaint::random_mask(size, size, f, seed),
            Some(MaskSpec::Half) => inpaint::half_mask(size, size),
        };
        Ok(Some(m?))
    }

    /// Whether the measurement is itself an image to score (a decoded JPEG: what every
    /// restoration has to beat).
    fn scores_measurement(&self) -> bool {
        matches!(self.task, Task::Jpeg { inner: None, .. })
    }

    fn is_denoise(&self) -> bool {
        matches!(self.task, Task::Denoise { .. })
    }
}

/// A method with optional steps, iterations and settings: `vml-map:50x3`, `dps:1000`,
/// `vml-map:20x3/sigma_max=10/init=noise` (any `SolverOptions` field), `classical`.
/// `/sigma_y=auto` gives the method the σ_y estimated from the measurement
/// (`--sigma-y auto`) instead of the true one, `/sigma_y=0.02` that value (what a user who
/// guesses wrong, or gives none, tells it).
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSpec {
    pub label: String,
    pub method: Method,
    pub options: SolverOptions,
    /// The σ_y the method is told, where it is not the true one.
    pub told_sigma_y: Option<SigmaY>,
}

impl MethodSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let mut parts = spec.split('/');
        let head = parts.next().unwrap_or_default();
        let (method, budget) = match head.split_once(':') {
            Some((m, b)) => (m, Some(b)),
            None => (head, None),
        };
        let method: Method = method.parse().map_err(|_| {
            Error::Usage(format!(
                "unknown method '{method}' in --methods; known: {}",
                Method::names().join(", ")
            ))
        })?;
        let mut fields = serde_json::Map::new();
        if let Some(b) = budget {
            let bad = || Error::Usage(format!("bad budget in '{spec}': use STEPS or STEPSxITERS"));
            let (steps, iters) = match b.split_once('x') {
                Some((s, k)) => (s, Some(k)),
                None => (b, None),
            };
            let steps: usize = steps.parse().map_err(|_| bad())?;
            fields.insert("steps".into(), steps.into());
            if let Some(k) = iters {
                let k: usize = k.parse().map_err(|_| bad())?;
                fields.insert("iters".into(), k.into());
            }
        }
        let mut told_sigma_y = None;
        for setting in parts {
            let (k, v) = setting.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "bad setting '{setting}' in '{spec}': use NAME=VALUE"
                ))
            })?;
            let k = k.replace('-', "_");
            if k == "sigma_y" {
                let told: SigmaY = v
                    .parse()
                    .map_err(|e: String| Error::Usage(format!("bad sigma_y in '{spec}': {e}")))?;
                if let Some(v) = told.invalid() {
                    return Err(Error::Usage(format!(
                        "sigma_y in '{spec}' must be ≥ 0 or auto, got {v}"
                    )));
                }
                told_sigma_y = Some(told);
                continue;
            }
            // Numbers and booleans as JSON, anything else (renoise=deterministic) as a string.
            let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::from(v));
            // SolverOptions ignores unknown fields (the protocol must); a typo here must not.
            if serde_json::to_value(SolverOptions::default())
                .ok()
                .and_then(|d| d.get(&k).cloned())
                .is_none()
            {
                return Err(Error::Usage(format!("unknown setting '{k}' in '{spec}'")));
            }
            fields.insert(k, value);
        }
        let options: SolverOptions = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| Error::Usage(format!("bad settings in '{spec}': {e}")))?;
        // Fail now, not after an hour of other methods.
        solvers::build(method, &options)?;
        Ok(Self {
            label: spec.to_string(),
            method,
            options,
            told_sigma_y,
        })
    }
}

/// `vml-filter bench`.
/// `progress`: print one JSON line per finished run on stderr (`--progress`, or a terminal).
pub fn run(args: &BenchArgs, progress: bool) -> Result<()> {
    if args.size <= 0 || args.size % 32 != 0 {
        return Err(Error::Usage(format!(
            "--size must be a positive multiple of 32, got {}",
            args.size
        )));
    }
    crate::device::set_threads(args.threads)?;
    signals::install();
    std::fs::create_dir_all(&args.out)?;
    let device = parse_device(&args.device)?;
    let precision = args.precision;
    crate::device::check_precision(device, precision)?;
    if args.overhead {
        return overhead::run(args, device, precision);
    }
    let tasks = args
        .tasks
        .iter()
        .map(|s| TaskSpec::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let methods = args
        .methods
        .iter()
        .map(|s| MethodSpec::parse(s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(s) = args.sigma_y.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(Error::Usage(format!("σ_y must be ≥ 0, got {s}")));
    }
    let folder = args
        .images
        .as_deref()
        .ok_or_else(|| Error::Usage("--images is required".into()))?;
    let photos = load_photos(folder, args.size, args.max_images)?;
    let network_needed = methods.iter().any(|m| m.method.needs_network());
    let denoiser: Box<dyn Denoiser> = if network_needed {
        let spec = args
            .model
            .as_deref()
            .unwrap_or(crate::pipeline::DEFAULT_MODEL);
        Box::new(EpsDenoiser::new(registry::open(
            spec, None, device, precision,
        )?))
    } else {
        Box::new(crate::pipeline::NoNetwork)
    };

    let csv = args.out.join("results.csv");
    let mut rows = if args.resume {
        report::read_csv(&csv)?
    } else {
        Vec::new()
    };
    report::write_csv(&csv, &rows)?;
    let images_dir = args.out.join("images");
    std::fs::create_dir_all(&images_dir)?;

    // Denoising brings its own noise: it runs at the first σ_y only.
    let levels_of = |task: &TaskSpec| -> &[f64] {
        match (args.sigma_y.is_empty(), task.is_denoise()) {
            (true, _) => &[0.0],
            (false, true) => &args.sigma_y[..1],
            (false, false) => &args.sigma_y,
        }
    };
    let per_photo: usize = tasks.iter().map(|t| levels_of(t).len()).sum();
    let total = photos.len() * per_photo * methods.len();
    let mut done = 0usize;
    'all: for (pi, (name, x)) in photos.iter().enumerate() {
        for (ti, task) in tasks.iter().enumerate() {
            let levels = levels_of(task);
            for (si, &sigma_y) in levels.iter().enumerate() {
                let meas_seed = args
                    .seed
                    .wrapping_add(1_000_003 * pi as u64 + 1009 * ti as u64 + si as u64);
                let mask = task.mask(args.size, meas_seed)?;
                let op = operators::build(&task.task, [3, args.size, args.size], mask.as_ref())?;
                let x = x.to_device(device);
                let y = operators::degrade(&x, op.as_ref(), sigma_y, meas_seed);
                let key = report::Key::new(name, &task.label, sigma_y);
                save_image(&images_dir.join(key.file_name("clean")), &x)?;
                save_image(
                    &images_dir.join(key.file_name("measurement")),
                    &show_measurement(&y, args.size),
                )?;
                let problem = Problem {
                    op: op.as_ref(),
                    y,
                    sigma_y: operators::measurement_sigma(op.as_ref(), sigma_y),
                };
                // One estimate per measurement, shared by every `sigma_y=auto` spec.
                let estimated = methods
                    .iter()
                    .any(|m| m.told_sigma_y == Some(SigmaY::Auto))
                    .then(|| {
                        let s =
                            crate::pipeline::estimate_noise(&task.task, &problem.y, mask.as_ref());
                        told_sigma(&problem, s)
                    });
                if task.scores_measurement()
                    && !rows.iter().any(|r| r.key == key && r.method == DECODED)
                {
                    let row = score_measurement(&problem.y, &x, key.clone());
                    report::append_csv(&csv, &row)?;
                    rows.push(row);
                }
                for m in &methods {
                    done += 1;
                    if rows.iter().any(|r| r.key == key && r.method == m.label) {
                        continue;
                    }
                    let told;
                    let problem = match (m.told_sigma_y, &estimated) {
                        (Some(SigmaY::Auto), Some(p)) => p,
                        (Some(SigmaY::Value(v)), _) => {
                            told = told_sigma(&problem, v);
                            &told
                        }
                        _ => &problem,
                    };
                    match run_one(problem, &x, m, denoiser.as_ref(), args.seed, device)? {
                        None => break 'all,
                        Some((row_data, xhat)) => {
                            let row = Row {
                                key: key.clone(),
                                method: m.label.clone(),
                                ..row_data
                            };
                            if let Some(xhat) = xhat {
                                save_image(&images_dir.join(key.file_name(&m.label)), &xhat)?;
                            }
                            if progress {
                                eprintln!("{}", report::progress_line(&row, done, total));
                            }
                            report::append_csv(&csv, &row)?;
                            rows.push(row);
                        }
                    }
                }
            }
        }
    }
    let interrupted = signals::interrupted();
    report::write_all(
        &args.out,
        &rows,
        &tasks,
        &methods,
        &describe_run(args, device),
    )?;
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// One restoration, timed and scored. `Ok(None)`: interrupted. A method that cannot run
/// on this operator (no SVD) gives a row with status `n/a` and no picture.
fn run_one(
    problem: &Problem,
    x: &Tensor,
    m: &MethodSpec,
    denoiser: &dyn Denoiser,
    seed: u64,
    device: Device,
) -> Result<Option<(Row, Option<Tensor>)>> {
    let solver = solvers::build(m.method, &m.options)?;
    let mut last = Progress {
        step: 0,
        steps: 0,
        forwards: 0,
        vjps: 0,
    };
    reset_peak_rss();
    sync(device);
    let start = Instant::now();
    let result = solver.solve(denoiser, problem, seed, &mut |p| {
        last = p;
        if signals::interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    });
    sync(device);
    let wall_s = start.elapsed().as_secs_f64();
    let xhat = match result {
        Ok(Some(xhat)) => xhat.clamp(-1.0, 1.0),
        Ok(None) => return Ok(None),
        Err(e @ (Error::Usage(_) | Error::Input(_))) => {
            log::info!("{}: {e}", m.label);
            return Ok(Some((
                Row::not_applicable(m.method.name(), &e.to_string()),
                None,
            )));
        }
        Err(e) => return Err(e),
    };
    let (psnr, ssim) = score(&xhat, x);
    let residual = &problem.y - problem.op.forward(&xhat.to_kind(problem.y.kind()));
    let row = Row {
        method_name: m.method.name().into(),
        status: "ok".into(),
        psnr,
        ssim,
        consistency: residual
            .square()
            .mean(Kind::Double)
            .double_value(&[])
            .sqrt(),
        steps: last.steps,
        forwards: last.forwards,
        vjps: last.vjps,
        wall_s,
        peak_rss_mb: peak_rss_mb(),
        ..Row::default()
    };
    Ok(Some((row, Some(xhat))))
}

/// `problem` with the solver told sensor noise `s` rather than the truth (an estimate, or
/// a `/sigma_y=VALUE` spec), added to the operator's own noise as `measurement_sigma` adds
/// the true one.
fn told_sigma<'a>(problem: &Problem<'a>, s: f64) -> Problem<'a> {
    Problem {
        op: problem.op,
        y: problem.y.shallow_clone(),
        sigma_y: operators::measurement_sigma(problem.op, s),
    }
}

/// The method label of the row that scores a decoded JPEG as it is.
const DECODED: &str = "decoded";

/// The row of a measurement scored as a restoration (`TaskSpec::scores_measurement`).
fn score_measurement(y: &Tensor, x: &Tensor, key: report::Key) -> Row {
    let (psnr, ssim) = score(y, x);
    Row {
        key,
        method: DECODED.into(),
        method_name: DECODED.into(),
        status: "ok".into(),
        psnr,
        ssim,
        ..Row::default()
    }
}

/// PSNR and SSIM of `xhat` against the clean `x`, both on [0, 1] pixels.
fn score(xhat: &Tensor, x: &Tensor) -> (f64, f64) {
    let to01 = |t: &Tensor| ((t.to_kind(Kind::Float) + 1.0) * 0.5).to_device(Device::Cpu);
    let (xhat, x) = (to01(xhat), to01(x));
    (psnr(&xhat, &x), ssim(&xhat, &x))
}

/// Waits for queued CUDA work so that timings cover it.
pub(crate) fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Resets the kernel's peak-RSS mark of this process (Linux; elsewhere nothing happens and
/// the peak is the process's peak so far).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MiB (`VmHWM`), if the system reports it.
pub(crate) fn peak_rss_mb() -> Option<f64> {
    proc_status_kib("VmHWM").map(|k| k as f64 / 1024.0)
}

/// A `kB` field of /proc/self/status.
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The photos of `folder`, sorted by name, centre-cropped to `size`² and scaled to
/// [-1, 1] as `(1, 3, S, S)`; files that are not images or are too small are skipped with
/// a note on stderr.
fn load_photos(folder: &Path, size: i64, max: Option<usize>) -> Result<Vec<(String, Tensor)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| Error::Input(format!("cannot read --images '{}': {e}", folder.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let limits = crate::io::Limits::default();
    let mut photos = Vec::new();
    for p in paths {
        if max.is_some_and(|m| photos.len() >= m) {
            break;
        }
        let bytes = crate::io::read_file(&p, limits.max_bytes, "benchmark photo")?;
        let pic = match crate::io::decode(&bytes, &limits, "benchmark photo") {
            Ok(d) => d.picture,
            Err(e) => {
                eprintln!("skipping {}: {e}", p.display());
                continue;
            }
        };
        let (w, h) = (pic.width as i64, pic.height as i64);
        if w < size || h < size {
            eprintln!("skipping {}: smaller than {size}×{size}", p.display());
            continue;
        }
        let t = crate::pipeline::to_tensor(&pic)
            .narrow(2, (h - size) / 2, size)
            .narrow(3, (w - size) / 2, size)
            .contiguous();
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().replace([',', ' '], "_"))
            .unwrap_or_default();
        photos.push((name, t));
    }
    if photos.is_empty() {
        return Err(Error::Input(format!(
            "no photo of at least {size}×{size} in '{}'",
            folder.display()
        )));
    }
    Ok(photos)
}

/// The measurement as a picture of the crop's size: small images (super-resolution) are
/// enlarged by pixel repetition, one channel (colorization) is shown gray.
fn show_measurement(y: &Tensor, size: i64) -> Tensor {
    let y = y.clamp(-1.0, 1.0);
    let y = if y.size()[1] == 1 {
        y.repeat([1, 3, 1, 1])
    } else {
        y
    };
    let s = size / y.size()[2];
    if s > 1 {
        y.repeat_interleave_self_int(s, 2, None)
            .repeat_interleave_self_int(s, 3, None)
    } else {
        y
    }
}

/// Writes `(1, 3, H, W)` in [-1, 1] as an 8-bit PNG.
fn save_image(path: &Path, t: &Tensor) -> Result<()> {
    // A diverged method's NaN pixels are shown black rather than stopping the benchmark.
    let pic = crate::pipeline::from_tensor(&t.nan_to_num(0.0, None, None), 3, None, false)?;
    let bytes = crate::io::encode(&pic, crate::io::Format::Png)?;
    std::fs::write(path, bytes)
        .map_err(|e| Error::Io(std::io::Error::other(format!("{}: {e}", path.display()))))
}

fn describe_run(args: &BenchArgs, device: Device) -> serde_json::Value {
    serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "version": env!("CARGO_PKG_VERSION"),
        "device": format!("{device:?}").to_lowercase(),
        "threads": tch::get_num_threads(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "model": args.model.clone().unwrap_or_else(|| crate::pipeline::DEFAULT_MODEL.into()),
        "precision": args.precision.name(),
        "size": args.size,
        "seed": args.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let t = TaskSpec::parse("sr-bicubic:4").unwrap();
        assert_eq!(
            t.task,
            Task::Sr {
                scale: 4,
                downsample: SrKind::Bicubic
            }
        );
        assert_eq!(t.label, "sr-bicubic-4");
        assert!(TaskSpec::parse("box")
            .unwrap()
            .mask(64, 0)
            .unwrap()
            .is_some());
        assert!(TaskSpec::parse("gauss").is_err());
        assert!(TaskSpec::parse("zoom:2").is_err());
        let t = TaskSpec::parse("jpeg:30:sr:2").unwrap();
        assert_eq!(t.label, "jpeg-30-sr-2");
        assert!(matches!(
            t.task,
            Task::Jpeg { quality: Some(30), inner: Some(ref a), .. } if matches!(**a, Task::Sr { scale: 2, .. })
        ));
        assert!(
            !t.scores_measurement() && TaskSpec::parse("jpeg:10").unwrap().scores_measurement()
        );
        let t = TaskSpec::parse("jpeg:50:box:32").unwrap();
        assert!(t.mask(64, 0).unwrap().is_some());
        assert!(TaskSpec::parse("jpeg:0").is_err());
        let m = MethodSpec::parse("vml-map:5x1/sigma_y=auto").unwrap();
        assert_eq!(m.told_sigma_y, Some(SigmaY::Auto));
        assert_eq!(MethodSpec::parse("vml-map").unwrap().told_sigma_y, None);
        let m = MethodSpec::parse("vml-map/sigma_y=0").unwrap();
        assert_eq!(m.told_sigma_y, Some(SigmaY::Value(0.0)));
        assert!(MethodSpec::parse("vml-map/sigma_y=-0.1").is_err());
        assert!(MethodSpec::parse("vml-map/sigma_y=much").is_err());
        assert!(TaskSpec::parse("jpeg:20:jpeg:30").is_err());
        let m = MethodSpec::parse("vml-map:20x2").unwrap();
        assert_eq!((m.options.steps, m.options.iters), (Some(20), Some(2)));
        assert_eq!(
            MethodSpec::parse("dps:100").unwrap().options.steps,
            Some(100)
        );
        assert!(MethodSpec::parse("dps:x").is_err());
        assert!(MethodSpec::parse("magic").is_err());
        let m = MethodSpec::parse("vml-map:20x3/sigma_max=10/renoise=deterministic").unwrap();
        assert_eq!(m.options.sigma_max, Some(10.0));
        assert_eq!(m.options.renoise, Some(solvers::Renoise::Deterministic));
        assert!(MethodSpec::parse("vml-map/no_such_setting=1").is_err());
    }
}
