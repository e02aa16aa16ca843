//! The command line: clap types, their translation into a [`Task`] and pipeline
//! [`Settings`], progress reporting on stderr, and the plain-filter and `degrade` runs.
//! The protocol and `serve` live in `crate::app::serve`; `main.rs` only parses and maps errors
//! to exit codes (docs/protocol.md lists them).

use crate::error::{Error, Result};
use crate::io::{self, Format, Limits};
use crate::model::Precision;
use crate::pipeline::progress::{ProgressKind, Reporter};
use crate::pipeline::{self, signals, ModelCache, Settings};
use crate::solvers::{Control, Method, Quality, SigmaY, SolverOptions};
use crate::task::{Blur, SrKind, Task};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Exit status when stdout was closed by the reader (like a process killed by SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 141;

#[derive(Parser, Debug)]
#[command(
    name = "vml-filter",
    version,
    about = "Image restoration with pretrained diffusion models (VML-MAP), as a Unix filter",
    long_about = "Reads an image (or a JSON-header protocol request, see docs/protocol.md) on stdin or -i, \
                  restores it and writes the result to stdout or -o.\n\nExamples:\n  \
                  vml-filter --sr 4 < low.png > high.png\n  \
                  vml-filter --inpaint --mask holes.png -i photo.jpg -o fixed.jpg\n  \
                  vml-filter degrade --deblur gaussian:3 --sigma-y 0.02 < clean.png > blurred.png\n  \
                  vml-filter serve < requests.bin > responses.bin",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub restore: RestoreArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Cli {
    /// Whether this run does parallel LibTorch work for long enough that the way OpenMP's
    /// threads wait matters (the binary then asks for passive waiting, docs/benchmarks.md
    /// "Threads under contention"): restores with a network, serving, batches, training and
    /// benchmarks, unless on one thread. The rest (classical, degrade, compare, models) is
    /// over before a second start-up would pay for itself.
    pub fn runs_parallel_torch(&self) -> bool {
        let parallel = |t: Option<i32>| t != Some(1);
        let network =
            |s: &SolveArgs| s.method.is_none_or(|m| m.needs_network()) && parallel(s.threads);
        match &self.command {
            None => network(&self.restore.solve),
            // Requests may ask for a network whatever the default method is.
            Some(Command::Serve(a)) => parallel(a.solve.threads),
            Some(Command::Batch(a)) => network(&a.solve),
            Some(Command::Train(a)) => parallel(a.threads),
            Some(Command::Bench(a)) => parallel(a.threads),
            Some(_) => false,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply the forward model to a clean image: y = H x + σ_y·noise.
    Degrade(DegradeArgs),
    /// Answer protocol requests one after another on stdin, keeping networks loaded.
    Serve(ServeArgs),
    /// Restore files and folders into an output folder: resumable, sharded (docs/batch.md).
    Batch(Box<crate::app::batch::BatchArgs>),
    /// Train a diffusion model (the default model's recipe) on a folder of photos.
    Train(crate::app::train::TrainArgs),
    /// Every method against every degradation on a folder of photos: quality, time,
    /// memory (docs/benchmarks.md).
    Bench(crate::app::bench::BenchArgs),
    /// Developer: evaluate the raw network on a .npy batch (numerical parity hook).
    EvalNet(crate::app::inspect::EvalNetArgs),
    /// PSNR and SSIM of an image against a clean reference, as one JSON line.
    Compare(crate::app::inspect::CompareArgs),
    /// The model registry: list, fetch, verify, inspect, path (docs/models.md).
    Models(crate::app::models::ModelsArgs),
}

/// The degradation, as flags. At most one.
#[derive(Args, Debug, Clone, Default)]
#[group(id = "task", multiple = false)]
pub struct TaskArgs {
    /// Super-resolution by a factor of 2, 4 or 8.
    #[arg(long, value_name = "N")]
    pub sr: Option<u32>,
    /// How the low-resolution image was made.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SrMode::Avgpool, requires = "sr")]
    pub sr_mode: SrMode,
    /// Fill the pixels that --mask marks white.
    #[arg(long, requires = "mask")]
    pub inpaint: bool,
    /// Deblur: gaussian:SIGMA, uniform:SIZE, motion:LENGTH:ANGLE or kernel:FILE (an image or a
    /// text file of rows of numbers; normalised to sum 1).
    #[arg(long, value_name = "SPEC")]
    pub deblur: Option<String>,
    /// Remove Gaussian noise of standard deviation S on the [-1, 1] pixel scale (S = 0.1 is
    /// about 13 levels of 255).
    #[arg(long, value_name = "S")]
    pub denoise: Option<f64>,
    /// Colour a gray image.
    #[arg(long)]
    pub colorize: bool,
    #[command(flatten)]
    pub jpeg: JpegArg,
}

/// `--jpeg`, apart from the task group because it combines with the other tasks.
#[derive(Args, Debug, Clone, Default)]
pub struct JpegArg {
    /// Undo JPEG compression: `auto` with the input file's own tables, or a quality 1–100
    /// (libjpeg's standard tables, 4:2:0). With --sr, --deblur or --inpaint: the JPEG of
    /// that degradation's result.
    #[arg(long, value_name = "auto|Q")]
    pub jpeg: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrMode {
    #[default]
    Avgpool,
    Bicubic,
}

/// Where pixels come from and go to.
#[derive(Args, Debug, Clone, Default)]
pub struct IoArgs {
    /// Input file; `-` or absent: stdin.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Output file, written atomically; `-` or absent: stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Mask image: white = restore (inpainting) or where the result may replace the input
    /// (other tasks, feathered edge).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    #[command(flatten)]
    pub encode: EncodeArgs,
}

/// How outputs are encoded: shared by the filter, `degrade` and `batch`.
#[derive(Args, Debug, Clone, Default)]
pub struct EncodeArgs {
    /// Output format: png, jpeg, pnm, tiff, webp, bmp. Default: the output file's extension,
    /// else the input's format.
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// Write no metadata. By default the input's ICC profile, EXIF (orientation reset), XMP
    /// and comment go to the output where its format holds them.
    #[arg(long)]
    pub strip: bool,
}

impl EncodeArgs {
    /// The metadata to write with the output.
    pub fn metadata(&self, decoded: &io::Decoded) -> io::Metadata {
        if self.strip {
            io::Metadata::default()
        } else {
            decoded.metadata.clone()
        }
    }
}

/// How to restore; also the defaults of requests in protocol and serve modes.
#[derive(Args, Debug, Clone, Default)]
pub struct SolveArgs {
    /// Restoration method (default vml-map; docs/algorithm.md describes each).
    #[arg(long, value_name = "NAME")]
    pub method: Option<Method>,
    /// Model name or checkpoint path (`FILE#ENTRY` picks one state dict of a file holding
    /// several).
    #[arg(long, value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// Architecture of a checkpoint that has no config beside it: ffhq-256, imagenet-256,
    /// default, or a config JSON file.
    #[arg(long, value_name = "NAME|CONFIG")]
    pub arch: Option<String>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, value_name = "DEV", default_value = "auto")]
    pub device: String,
    /// The network's float type: fp32, or fp16 / bf16 on a CUDA device.
    #[arg(long, value_name = "P", default_value = "fp32")]
    pub precision: Precision,
    /// Budget preset of the method: fast, normal (its defaults) or best; --steps and
    /// --iters override it.
    #[arg(long, value_name = "Q")]
    pub quality: Option<Quality>,
    /// Reverse diffusion steps (default: the method's, or the --quality preset's).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Inner iterations per step (VML-MAP).
    #[arg(long, value_name = "K")]
    pub iters: Option<usize>,
    /// VML-MAP: average this many restorations, each from its own seed (N times the
    /// network passes; lower error, a little less detail; docs/algorithm.md, "Averaged
    /// samples"). Default 1.
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Random seed; the same seed on the same device gives the same output.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Measurement noise σ_y of the input on the [-1, 1] scale, or `auto` (the default) to
    /// estimate it from the input (patch PCA; the value used is logged and in the
    /// response's stats; 0 for an image under about 14×14). Give 0 for a noise-free input.
    #[arg(long, value_name = "S|auto", default_value = "auto")]
    pub sigma_y: SigmaY,
    /// Tile side in output pixels (0 = never tile). Default: tile only when the memory
    /// estimate exceeds --max-memory.
    #[arg(long, value_name = "N")]
    pub tile: Option<u32>,
    /// Memory budget for one restore, e.g. 8G.
    #[arg(long, value_name = "BYTES", value_parser = parse_size_arg)]
    pub max_memory: Option<u64>,
    /// LibTorch threads (default: one per core; they wait passively, so other busy
    /// processes slow them less). With every core busy, 1 is often faster.
    #[arg(long, value_name = "N")]
    pub threads: Option<i32>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    #[command(flatten)]
    pub io: IoArgs,
    #[command(flatten)]
    pub solve: SolveArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DegradeArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    #[command(flatten)]
    pub io: IoArgs,
    /// Standard deviation of the Gaussian noise added, on the [-1, 1] scale.
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub sigma_y: f64,
    /// Seed of the noise.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub solve: SolveArgs,
    /// The most pipelined requests (written before their answers are read) restored
    /// together: those of equal size and settings, no mask, share one solve, and each is
    /// answered in order as if alone (docs/protocol.md §3). Default: 8 on a CUDA device, 1
    /// on the CPU.
    #[arg(long, value_name = "N")]
    pub group: Option<usize>,
}

/// Flags every mode takes.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Progress on stderr. Default: bar on a terminal; otherwise none, but json in protocol
    /// and serve mode and for `batch` (whose log is often a file).
    #[arg(long, value_enum, value_name = "KIND", global = true)]
    pub progress: Option<ProgressKind>,
    /// Largest accepted image width [env: VML_MAX_WIDTH].
    #[arg(long, value_name = "PX", global = true)]
    pub max_width: Option<u32>,
    /// Largest accepted image height [env: VML_MAX_HEIGHT].
    #[arg(long, value_name = "PX", global = true)]
    pub max_height: Option<u32>,
    /// Largest accepted pixel count [env: VML_MAX_PIXELS].
    #[arg(long, value_name = "N", global = true, value_parser = parse_size_arg)]
    pub max_pixels: Option<u64>,
    /// Largest accepted encoded input and decoded image, in bytes [env: VML_MAX_BYTES].
    #[arg(long, value_name = "BYTES", global = true, value_parser = parse_size_arg)]
    pub max_bytes: Option<u64>,
}

fn parse_size_arg(s: &str) -> std::result::Result<u64, String> {
    io::parse_size(s)
}

impl CommonArgs {
    /// Limits from the environment, then the flags.
    pub fn limits(&self) -> Result<Limits> {
        let mut l = Limits::from_env()?;
        if let Some(v) = self.max_width {
            l.max_width = v;
        }
        if let Some(v) = self.max_height {
            l.max_height = v;
        }
        if let Some(v) = self.max_pixels {
            l.max_pixels = v;
        }
        if let Some(v) = self.max_bytes {
            l.max_bytes = v;
        }
        Ok(l)
    }

    /// The log filter `-v`/`-q` ask for, unless RUST_LOG is set.
    pub fn log_level(&self) -> log::LevelFilter {
        match (self.quiet, self.verbose) {
            (true, _) => log::LevelFilter::Error,
            (false, 0) => log::LevelFilter::Warn,
            (false, 1) => log::LevelFilter::Info,
            (false, 2) => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }

    /// Whether line-by-line progress is wanted where there is no bar (`bench`): asked for
    /// with `--progress json|bar`, or stderr is a terminal and `-q` was not given.
    fn wants_progress(&self) -> bool {
        match self.progress {
            Some(k) => k != ProgressKind::None,
            None => !self.quiet && std::io::stderr().is_terminal(),
        }
    }

    fn reporter(&self, protocol: bool) -> Reporter {
        let kind = match self.progress {
            Some(k) => k,
            None if protocol => ProgressKind::Json,
            None if self.quiet => ProgressKind::None,
            None if std::io::stderr().is_terminal() => ProgressKind::Bar,
            None => ProgressKind::None,
        };
        Reporter::new(kind)
    }
}

impl TaskArgs {
    /// The task the flags name, `None` when none is given: `--jpeg` around the others.
    /// Checked by `Task::validate`.
    pub fn task(&self) -> Result<Option<Task>> {
        let task = self.unchecked_task()?;
        if let Some(t) = &task {
            t.validate()?;
        }
        Ok(task)
    }

    fn unchecked_task(&self) -> Result<Option<Task>> {
        let inner = self.base_task()?;
        let Some(spec) = &self.jpeg.jpeg else {
            return Ok(inner);
        };
        let quality = match spec.as_str() {
            "auto" => None,
            q => Some(q.parse::<u32>().map_err(|_| {
                Error::Usage(format!("--jpeg {q}: expected auto or a quality 1–100"))
            })?),
        };
        Ok(Some(Task::Jpeg {
            quality,
            sampling: None,
            tables: None,
            inner: inner.map(Box::new),
        }))
    }

    /// The task of the flags other than `--jpeg`.
    fn base_task(&self) -> Result<Option<Task>> {
        if let Some(scale) = self.sr {
            let downsample = match self.sr_mode {
                SrMode::Avgpool => SrKind::Avgpool,
                SrMode::Bicubic => SrKind::Bicubic,
            };
            return Ok(Some(Task::Sr { scale, downsample }));
        }
        if self.inpaint {
            return Ok(Some(Task::Inpaint));
        }
        if let Some(spec) = &self.deblur {
            return parse_deblur(spec).map(|b| Some(Task::Deblur(b)));
        }
        if let Some(sigma) = self.denoise {
            return Ok(Some(Task::Denoise { sigma }));
        }
        if self.colorize {
            return Ok(Some(Task::Colorize));
        }
        Ok(None)
    }
}

/// The largest custom kernel side accepted.
const MAX_KERNEL_SIDE: u32 = 255;

/// Parses `gaussian:SIGMA`, `uniform:SIZE`, `motion:LENGTH:ANGLE` or `kernel:FILE`; the
/// values' ranges are `Blur::validate`'s.
pub fn parse_deblur(spec: &str) -> Result<Blur> {
    let usage = |m: &str| Error::Usage(format!("--deblur {spec}: {m}"));
    let number = |s: &str, what: &str| -> Result<f64> {
        s.trim()
            .parse::<f64>()
            .map_err(|_| usage(&format!("{what} must be a number, got '{s}'")))
    };
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let blur = match kind.to_ascii_lowercase().as_str() {
        "gaussian" => Blur::Gaussian {
            sigma: number(rest, "sigma")?,
        },
        "uniform" | "box" => Blur::Uniform {
            size: rest
                .trim()
                .parse::<u32>()
                .map_err(|_| usage(&format!("size must be a whole number ≥ 1, got '{rest}'")))?,
        },
        "motion" => {
            let (len, angle) = rest
                .split_once(':')
                .ok_or_else(|| usage("expected motion:LENGTH:ANGLE"))?;
            Blur::Motion {
                length: number(len, "length")?,
                angle: number(angle, "angle (degrees)")?,
            }
        }
        "kernel" if !rest.is_empty() => return read_kernel(Path::new(rest)),
        _ => {
            return Err(usage(
                "expected gaussian:SIGMA, uniform:SIZE, motion:LENGTH:ANGLE or kernel:FILE",
            ))
        }
    };
    blur.validate().map_err(|e| usage(&e.to_string()))?;
    Ok(blur)
}

/// A kernel from an image (its gray levels) or from text (rows of numbers).
fn read_kernel(path: &Path) -> Result<Blur> {
    let bytes = io::read_file(path, 4 << 20, "kernel file")?;
    let limits = Limits {
        max_width: MAX_KERNEL_SIDE,
        max_height: MAX_KERNEL_SIDE,
        ..Limits::default()
    };
    let (width, height, weights) = if io::sniff(&bytes).is_some() {
        let p = io::decode(&bytes, &limits, "kernel image")?.picture;
        (p.width, p.height, p.gray_plane())
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            Error::Input(format!(
                "kernel file '{}' is neither an image nor text",
                path.display()
            ))
        })?;
        let mut rows: Vec<Vec<f32>> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let row = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<f32>())
                .collect::<std::result::Result<Vec<f32>, _>>()
                .map_err(|e| {
                    Error::Input(format!(
                        "kernel file '{}' line {}: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
            rows.push(row);
        }
        let h = rows.len();
        let w = rows.first().map_or(0, |r| r.len());
        if h == 0 || w == 0 || rows.iter().any(|r| r.len() != w) {
            return Err(Error::Input(format!(
                "kernel file '{}' must hold a rectangle of numbers, one row per line",
                path.display()
            )));
        }
        if w as u32 > MAX_KERNEL_SIDE || h as u32 > MAX_KERNEL_SIDE {
            return Err(Error::Input(format!(
                "kernel is {w}×{h}, larger than {MAX_KERNEL_SIDE}×{MAX_KERNEL_SIDE}"
            )));
        }
        (w as u32, h as u32, rows.concat())
    };
    let blur = Blur::Custom {
        width,
        height,
        weights,
    };
    // A file's numbers are input data, not the user's flags: a bad-input error.
    blur.validate()
        .map_err(|e| Error::Input(format!("kernel file '{}': {e}", path.display())))?;
    Ok(blur)
}

impl SolveArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            method: self.method.unwrap_or_default(),
            model: self.model.clone(),
            arch: self.arch.clone(),
            device: self.device.clone(),
            precision: self.precision,
            seed: self.seed,
            sigma_y: self.sigma_y,
            jpeg_tables: None,
            input_orientation: io::Orientation::NoTransforms,
            tile: self.tile,
            max_memory: self.max_memory.unwrap_or(pipeline::DEFAULT_MAX_MEMORY),
            solver: SolverOptions {
                quality: self.quality,
                steps: self.steps,
                iters: self.iters,
                samples: self.samples,
                ..SolverOptions::default()
            },
        }
    }
}

/// Runs what the command line asks for; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let limits = cli.common.limits()?;
    match cli.command {
        Some(Command::Serve(args)) => {
            crate::device::set_threads(args.solve.threads)?;
            let mut reporter = cli.common.reporter(true);
            if args.group == Some(0) {
                return Err(Error::Usage("--group must be at least 1".into()));
            }
            let group = args
                .group
                .unwrap_or_else(|| crate::app::batch::default_group(&args.solve.device));
            // A buffer of our own, which serve looks into to tell whether the client has
            // pipelined more requests (larger than stdin's, which it then bypasses).
            let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
            let mut output = std::io::stdout().lock();
            crate::app::serve::serve(
                &mut input,
                &mut output,
                &args.solve.settings(),
                &limits,
                &mut reporter,
                group,
            )
        }
        Some(Command::Batch(args)) => crate::app::batch::run(&args, &cli.common, &limits),
        Some(Command::Degrade(args)) => {
            let mut reporter = cli.common.reporter(false);
            run_degrade(&args, &limits, &mut reporter).map(|()| 0)
        }
        Some(Command::Train(args)) => crate::app::train::run(&args).map(|()| 0),
        Some(Command::Bench(args)) => {
            crate::app::bench::run(&args, cli.common.wants_progress()).map(|()| 0)
        }
        Some(Command::EvalNet(args)) => crate::app::inspect::eval_net(&args).map(|()| 0),
        Some(Command::Compare(args)) => {
            let line = crate::app::inspect::compare(&args)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
            Ok(0)
        }
        Some(Command::Models(args)) => {
            use crate::registry::fetch::ProgressFormat as Fetch;
            // Downloads report in lines by default, terminal or not.
            let progress = match (cli.common.quiet, cli.common.progress) {
                (true, _) | (_, Some(ProgressKind::None)) => Fetch::Quiet,
                (_, Some(ProgressKind::Json)) => Fetch::Json,
                _ => Fetch::Human,
            };
            crate::app::models::run(&args, progress).map(|()| 0)
        }
        None => run_restore(&cli.restore, &cli.common, &limits),
    }
}

fn open_input(path: Option<&Path>) -> Result<Box<dyn BufRead>> {
    match path {
        None => Ok(Box::new(BufReader::new(std::io::stdin()))),
        Some(p) if p == Path::new("-") => Ok(Box::new(BufReader::new(std::io::stdin()))),
        // A folder opens fine on Linux and only fails on the first read, without its name.
        Some(p) if p.is_dir() => Err(Error::Input(format!(
            "input '{}' is a folder, not an image file",
            p.display()
        ))),
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| Error::Input(format!("cannot open input '{}': {e}", p.display())))?;
            Ok(Box::new(BufReader::new(f)))
        }
    }
}

fn is_stdout(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p == Path::new("-"))
}

/// The output format that `--format` or the output file's extension ask for; `None` means
/// "the input's". An extension that names no format we write is an error unless `--format`
/// is given: writing PNG bytes into `x.gif` would be a silent lie.
fn requested_format(flag: Option<&str>, output: Option<&Path>) -> Result<Option<Format>> {
    const KNOWN: &str = "png, jpeg, pnm, tiff, webp or bmp";
    if let Some(name) = flag {
        return Format::from_name(name)
            .map(Some)
            .ok_or_else(|| Error::Usage(format!("unknown format '{name}': expected {KNOWN}")));
    }
    let Some(p) = output.filter(|p| !is_stdout(Some(p))) else {
        return Ok(None);
    };
    match p.extension().and_then(|e| e.to_str()) {
        None => Ok(None),
        Some(ext) => Format::from_name(ext).map(Some).ok_or_else(|| {
            Error::Usage(format!(
                "cannot write '{}': '.{ext}' is not a format this program writes ({KNOWN}); \
                 use one of their extensions or --format",
                p.display()
            ))
        }),
    }
}

/// Checks, before any work, that the output can be written: raw image bytes are not about
/// to fill a terminal, and an output file's folder exists and takes new files (the file is
/// written atomically through a temporary file there) and the path is not a folder.
fn check_output_target(output: Option<&Path>) -> Result<()> {
    if is_stdout(output) {
        if std::io::stdout().is_terminal() {
            return Err(Error::Usage(
                "refusing to write image data to a terminal: redirect stdout or use -o FILE".into(),
            ));
        }
        return Ok(());
    }
    let path = output.expect("not stdout");
    let cannot = |why: String| {
        Error::Io(std::io::Error::other(format!(
            "cannot write output '{}': {why}",
            path.display()
        )))
    };
    if path.is_dir() {
        return Err(cannot("it is a folder; give a file name".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(cannot(format!("folder '{}' does not exist", dir.display())));
    }
    tempfile::Builder::new()
        .prefix(".vml-filter-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| cannot(format!("cannot create files in '{}': {e}", dir.display())))
}

/// Writes the encoded output: atomically to a file, or to stdout, flushed and checked.
pub fn write_output(output: Option<&Path>, bytes: &[u8]) -> Result<()> {
    if signals::interrupted() {
        return Err(Error::Interrupted);
    }
    match output {
        Some(p) if p != Path::new("-") => io::write_atomic(p, bytes, &signals::interrupted),
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

fn read_mask(path: Option<&Path>, limits: &Limits) -> Result<Option<io::Picture>> {
    match path {
        None => Ok(None),
        Some(p) => {
            let bytes = io::read_file(p, limits.max_bytes, "mask")?;
            Ok(Some(io::decode(&bytes, limits, "mask")?.picture))
        }
    }
}

fn run_restore(args: &RestoreArgs, common: &CommonArgs, limits: &Limits) -> Result<i32> {
    crate::device::set_threads(args.solve.threads)?;
    let task = args.task.task()?;
    let format = requested_format(args.io.encode.format.as_deref(), args.io.output.as_deref())?;
    let mut input = open_input(args.io.input.as_deref())?;
    let first = {
        let _wait = signals::InputWait::begin()?;
        input.fill_buf()?.first().copied()
    };
    if first == Some(b'{') {
        if args
            .io
            .output
            .as_deref()
            .is_some_and(|p| p != Path::new("-"))
        {
            return Err(Error::Usage(
                "protocol requests answer on stdout; -o cannot be used with them".into(),
            ));
        }
        let mut reporter = common.reporter(true);
        let mut out = std::io::stdout().lock();
        if task.is_some() {
            log::warn!("the request's task is used; the task flags are ignored in protocol mode");
        }
        return crate::app::serve::answer_one(
            &mut input,
            &mut out,
            &args.solve.settings(),
            limits,
            &mut reporter,
        );
    }
    let task = task.ok_or_else(|| {
        Error::Usage(
            "no task given: use one of --sr N, --inpaint --mask FILE, --deblur SPEC, --denoise S, --colorize, --jpeg auto|Q \
             (or send a protocol request; see --help)"
                .into(),
        )
    })?;
    check_output_target(args.io.output.as_deref())?;
    let bytes = {
        let _wait = signals::InputWait::begin()?;
        io::read_bounded(&mut input, limits.max_bytes, "input")?
    };
    drop(input);
    // The same stages as a protocol request reports (docs/protocol.md, "Progress").
    let mut reporter = common.reporter(false);
    if reporter.report(0.0, "decode") == Control::Stop {
        return Err(Error::Interrupted);
    }
    let decoded = io::decode(&bytes, limits, "input image")?;
    let mask = read_mask(args.io.mask.as_deref(), limits)?;
    let format = format.unwrap_or(decoded.format);
    let mut settings = args.solve.settings();
    settings.jpeg_tables = pipeline::jpeg_tables(&task, &bytes)?;
    settings.input_orientation = decoded.orientation;
    let mut models = ModelCache::default();
    let outcome = pipeline::restore(
        &task,
        &decoded.picture,
        mask.as_ref(),
        &settings,
        limits,
        &mut models,
        &mut |f, s| reporter.report(f, s),
    )?;
    reporter.finish();
    let encoded = io::encode_with(&outcome.picture, format, &args.io.encode.metadata(&decoded))?;
    log::info!(
        "restored {}×{} in {:.2} s ({} tiles, {} forwards, {} vjps)",
        outcome.picture.width,
        outcome.picture.height,
        outcome.stats.seconds,
        outcome.stats.tiles,
        outcome.stats.forwards,
        outcome.stats.vjps
    );
    write_output(args.io.output.as_deref(), &encoded)?;
    reporter.report(1.0, "done");
    reporter.finish();
    Ok(0)
}

fn run_degrade(args: &DegradeArgs, limits: &Limits, reporter: &mut Reporter) -> Result<()> {
    let task = args.task.task()?.ok_or_else(|| {
        Error::Usage("degrade needs a task: --sr N, --inpaint --mask FILE, --deblur SPEC, --denoise S, --colorize or --jpeg Q".into())
    })?;
    let format = requested_format(args.io.encode.format.as_deref(), args.io.output.as_deref())?;
    check_output_target(args.io.output.as_deref())?;
    let mut input = open_input(args.io.input.as_deref())?;
    let bytes = io::read_bounded(&mut input, limits.max_bytes, "input")?;
    let decoded = io::decode(&bytes, limits, "input image")?;
    let mask = read_mask(args.io.mask.as_deref(), limits)?;
    let format = format.unwrap_or(decoded.format);
    // For denoising, `operators::degrade` adds the task's σ itself (and σ_y on top).
    let sigma_y = args.sigma_y;
    let out = pipeline::degrade(&task, &decoded.picture, mask.as_ref(), sigma_y, args.seed)?;
    if reporter.report(1.0, "degrade") == Control::Stop {
        return Err(Error::Interrupted);
    }
    let encoded = io::encode_with(&out, format, &args.io.encode.metadata(&decoded))?;
    write_output(args.io.output.as_deref(), &encoded)
}
