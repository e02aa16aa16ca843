//! `vml-filter batch INPUT… -o OUTDIR`: restores many files with one loaded model, the
//! outputs mirroring the inputs' relative paths under OUTDIR (docs/batch.md).
//!
//! 1. List the inputs (`inputs`), keep this shard's share (`shard`), lock the journal.
//! 2. For each file: read it, skip it when a journal says it is done and its output still
//!    hashes as recorded, else restore it on `pipeline::restore` (the model cache keeps the
//!    network loaded) and write it with `io::write_atomic`; append a record either way.
//! 3. A file that fails (unreadable, not an image, over a limit, out of memory) is recorded
//!    and the batch goes on; what concerns every file (OUTDIR cannot be written, a signal)
//!    stops it, after the journal is written.

mod glob;
mod inputs;
pub mod journal;
mod shard;

use crate::app::cli::{CommonArgs, EncodeArgs, SolveArgs, TaskArgs};
use crate::error::{exit, Error, Result};
use crate::io::{self, Format, Limits};
use crate::pipeline::progress::{ProgressKind, Reporter};
use crate::pipeline::{self, signals, ModelCache, Settings};
use crate::solvers::{Control, Quality};
use crate::task::Task;
use clap::Args;
use journal::{FileRecord, Journal, Record, Status};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Restores image files and folders (recursively) into OUTDIR, mirroring their \
                  relative paths. A journal in OUTDIR makes a rerun skip what is done; \
                  --shard splits the files between machines. See docs/batch.md.\n\nExamples:\n  \
                  vml-filter batch --sr 4 photos/ -o restored/\n  \
                  vml-filter batch --deblur gaussian:2 --manifest list.jsonl -o out/ --shard auto\n  \
                  vml-filter batch --status out/"
)]
pub struct BatchArgs {
    /// Image files and folders; folders are walked recursively (hidden names skipped).
    #[arg(value_name = "INPUT", required_unless_present_any = ["manifest", "status"])]
    pub inputs: Vec<PathBuf>,
    /// The output folder (created if missing); outputs mirror the inputs' relative paths.
    #[arg(short, long, value_name = "OUTDIR", required_unless_present = "status")]
    pub output: Option<PathBuf>,
    /// A list of inputs: one path per line, or JSON lines
    /// `{"input": "...", "mask": "...", "task": {...}, "options": {...}}`; relative paths
    /// are relative to the manifest's folder.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Take only the files in folders whose relative path (or, for a pattern without `/`,
    /// whose name) matches: `*.png`, `**/*.{jpg,jpeg}`. Default: image extensions.
    #[arg(long, value_name = "PATTERN")]
    pub glob: Option<String>,
    /// One mask for every file (white = restore); manifest lines may give their own.
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Worker threads, each restoring whole files with its own copy of the network; the
    /// cores are split between them unless --threads (per worker) is given. Default: on a
    /// CPU, one per core (at most 4, and no more than files), each with one thread (the
    /// faster layout, docs/batch.md); on a GPU, one.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// The most files of equal size (and equal settings, no mask) restored as one batch,
    /// one network call per step for all of them, each with its own seed, record and
    /// output (docs/batch.md, "Grouping"). A worker takes this many files of the list at a
    /// time. Default: 8 on a CUDA device, 1 on the CPU (where grouping did not help).
    #[arg(long, value_name = "N")]
    pub group: Option<usize>,
    /// Redo every file, even those a journal says are done.
    #[arg(long)]
    pub force: bool,
    /// Take only share I of N (0 ≤ I < N, by a stable hash of the relative path), or
    /// `auto`: from a Slurm array's SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX (give
    /// --shard-count).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// The number of shards for `--shard auto`: a Slurm array's task IDs 0..N-1 are then
    /// the shard indexes, so a task resubmitted alone keeps its share (without it, the
    /// index counts from the array's first task and N is the array's size). Kubernetes:
    /// the Job's completions.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shard_count: Option<u64>,
    /// Summarise the journals of OUTDIR (done, failed, pending) instead of restoring.
    #[arg(long, value_name = "OUTDIR", conflicts_with_all = ["inputs", "output", "manifest"])]
    pub status: Option<PathBuf>,
    /// With --status: the summary as one JSON object on stdout.
    #[arg(long, requires = "status")]
    pub json: bool,
    #[command(flatten)]
    pub task: TaskArgs,
    #[command(flatten)]
    pub solve: SolveArgs,
    #[command(flatten)]
    pub encode: EncodeArgs,
}

/// Runs `batch`; returns the exit code: 0 when every file is done, [`exit::SOME_FAILED`]
/// when some failed.
pub fn run(args: &BatchArgs, common: &CommonArgs, limits: &Limits) -> Result<i32> {
    if let Some(dir) = &args.status {
        return status(dir, args.json, common.quiet);
    }
    crate::device::set_threads(args.solve.threads)?;
    if args.jobs == Some(0) {
        return Err(Error::Usage("--jobs must be at least 1".into()));
    }
    if args.group == Some(0) {
        return Err(Error::Usage("--group must be at least 1".into()));
    }
    let outdir = args
        .output
        .clone()
        .ok_or_else(|| Error::Usage("batch needs -o OUTDIR".into()))?;
    let task = args.task.task()?;
    let format = match &args.encode.format {
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown format '{name}': expected png, jpeg, pnm, tiff, webp or bmp"
            ))
        })?),
        None => None,
    };
    let glob = args.glob.as_deref().map(glob::Glob::new).transpose()?;
    let env = |k: &str| std::env::var(k).ok();
    let shard = match &args.shard {
        Some(spec) => shard::parse(spec, args.shard_count, &env)?,
        None => shard::Shard::ALL,
    };
    make_outdir(&outdir)?;
    let all = inputs::list(
        &args.inputs,
        args.manifest.as_deref(),
        glob.as_ref(),
        format,
        &outdir,
    )?;
    let listed = all.len();
    if listed == 0 {
        log::warn!("no input files found (folders take image extensions, or --glob)");
    }
    let items: Vec<inputs::Item> = all.into_iter().filter(|i| shard.takes(&i.rel)).collect();
    if let Some(i) = items.iter().find(|i| i.task.is_none() && task.is_none()) {
        return Err(Error::Usage(format!(
            "no task for '{}': give one (--sr N, --inpaint --mask FILE, --deblur SPEC, \
             --denoise S, --colorize, --jpeg auto|Q) or a \"task\" in its manifest line",
            i.rel
        )));
    }
    let base = args.solve.settings();
    // What concerns every file is checked once, before any work: the device, the model.
    let device = crate::device::parse_device(&base.device)?;
    crate::device::check_precision(device, base.precision)?;
    let mut models = ModelIds::default();
    models.identify(&base)?;

    let mut journal = Journal::open(&outdir.join(shard.journal_name()))?;
    let (journals, _) = journal::read_all(&outdir)?;
    let done_before = journal::done_records(&journals);
    journal.append(&Record::Start {
        time: journal::now(),
        shard: shard.label(),
        pid: std::process::id(),
        files: items.iter().map(|i| i.rel.clone()).collect(),
    })?;
    log::info!(
        "batch: {} of {listed} files in shard {}, journal {}",
        items.len(),
        shard.label(),
        journal.path().display()
    );

    let shared = Shared {
        args,
        task: task.as_ref(),
        format,
        base,
        limits,
        outdir: &outdir,
        models: Mutex::new(models),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| default_jobs(&args.solve.device, args.solve.threads, items.len()));
    let group = args
        .group
        .unwrap_or_else(|| default_group(&args.solve.device));
    log::info!("{jobs} worker(s), groups of up to {group} files");
    let board = Mutex::new(Board {
        journal,
        reporter: Reporter::new(progress_kind(common)),
        count: Counts::default(),
        total: items.len(),
        finished: 0,
        current: vec![0.0; jobs],
        started: Instant::now(),
        stop: None,
    });
    let next = AtomicUsize::new(0);
    let threads = worker_threads(jobs, args.solve.threads);
    std::thread::scope(|scope| {
        for w in 0..jobs {
            let (shared, board, next, items, done_before) =
                (&shared, &board, &next, &items, &done_before);
            scope.spawn(move || {
                if let Some(t) = threads {
                    tch::set_num_threads(t);
                }
                // Each worker has its own loaded network: models are not shared across threads.
                let mut cache = ModelCache::default();
                loop {
                    if signals::interrupted() {
                        lock(board).stop.get_or_insert(Error::Interrupted);
                        return;
                    }
                    if lock(board).stop.is_some() {
                        return;
                    }
                    // The next `group` files of the list: those of equal size among them
                    // share a solve.
                    let first = next.fetch_add(group, Ordering::SeqCst);
                    let Some(claimed) = items.get(first..items.len().min(first + group)) else {
                        return;
                    };
                    if claimed.is_empty() {
                        return;
                    }
                    let outcomes = shared.some(&mut cache, board, w, claimed, done_before);
                    for outcome in outcomes {
                        lock(board).record(w, outcome);
                    }
                }
            });
        }
    });
    let Board {
        mut journal,
        mut reporter,
        count,
        stop,
        ..
    } = board.into_inner().unwrap_or_else(|e| e.into_inner());
    reporter.finish();
    let pending = items.len() - count.done - count.skipped - count.failed;
    let interrupted = matches!(stop, Some(Error::Interrupted));
    // A journal that cannot take the last record is not retried: the error says why.
    let end = journal.append(&Record::End {
        time: journal::now(),
        done: count.done,
        skipped: count.skipped,
        failed: count.failed,
        pending,
        interrupted,
    });
    if !common.quiet {
        let _ = writeln!(
            std::io::stderr(),
            "vml-filter: batch: {} done ({} restored, {} already done), {} failed, {pending} \
             pending; journal {}",
            count.done + count.skipped,
            count.done,
            count.skipped,
            count.failed,
            journal.path().display()
        );
    }
    if let Some(e) = stop {
        return Err(e);
    }
    end?;
    Ok(if count.failed > 0 {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

#[derive(Default)]
struct Counts {
    done: usize,
    skipped: usize,
    failed: usize,
}

/// Bar on a terminal, JSON lines otherwise (a batch's log is often a file), as asked.
fn progress_kind(common: &CommonArgs) -> ProgressKind {
    match common.progress {
        Some(k) => k,
        None if common.quiet => ProgressKind::None,
        None if std::io::stderr().is_terminal() => ProgressKind::Bar,
        None => ProgressKind::Json,
    }
}

/// Creates OUTDIR and checks that it takes new files.
fn make_outdir(dir: &Path) -> Result<()> {
    let cannot = |why: String| {
        Error::Io(std::io::Error::other(format!(
            "cannot write to OUTDIR '{}': {why}",
            dir.display()
        )))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(cannot("it is not a folder".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| cannot(e.to_string()))?;
    tempfile::Builder::new()
        .prefix(".vml-filter-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| cannot(e.to_string()))
}

/// Names and weight hashes of the models the batch uses, each computed once.
#[derive(Default)]
struct ModelIds {
    known: HashMap<(Option<String>, Option<String>), (String, String)>,
}

impl ModelIds {
    /// The model's name (or path) and sha256, `None` for a method without a network.
    fn identify(&mut self, s: &Settings) -> Result<Option<(String, String)>> {
        if !s.method.needs_network() {
            return Ok(None);
        }
        let key = (s.model.clone(), s.arch.clone());
        if let Some(id) = self.known.get(&key) {
            return Ok(Some(id.clone()));
        }
        let spec = s.model.as_deref().unwrap_or(pipeline::DEFAULT_MODEL);
        let registry = crate::registry::Registry::from_env();
        let resolved = registry.resolve(spec, s.arch.as_deref())?;
        let (file, _) = crate::model::checkpoint::split_entry(&resolved.weights);
        let sha = crate::registry::sha256_file(&file)?;
        let id = (resolved.name.unwrap_or_else(|| spec.to_string()), sha);
        self.known.insert(key, id.clone());
        Ok(Some(id))
    }
}

enum Outcome {
    /// A journal says it is done, and its output is as recorded.
    Skipped,
    /// Restored or failed: the record to append.
    Finished(Box<FileRecord>),
}

/// What every worker reads.
struct Shared<'a> {
    args: &'a BatchArgs,
    task: Option<&'a Task>,
    format: Option<Format>,
    base: Settings,
    limits: &'a Limits,
    outdir: &'a Path,
    models: Mutex<ModelIds>,
}

/// What the workers update, under one lock: the journal, the progress, the counts.
struct Board {
    journal: Journal,
    reporter: Reporter,
    count: Counts,
    total: usize,
    /// Files finished in this run: done, skipped or failed.
    finished: usize,
    /// The fraction done of the file each worker has in flight.
    current: Vec<f64>,
    started: Instant,
    /// What stops the batch (the first one, when several workers meet one).
    stop: Option<Error>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Workers when `--jobs` is not given. On a CPU, one per core of `--threads` (default 1)
/// up to 4 and the number of files: on two cores two workers of one thread were 3–5×
/// faster than one of two (LibTorch's threads spin against other processes; docs/batch.md),
/// and the cap bounds memory, each worker holding its own network. On a GPU one, so that
/// one device does not hold several copies.
fn default_jobs(device: &str, threads: Option<i32>, files: usize) -> usize {
    let on_cpu = crate::device::parse_device(device).is_ok_and(|d| d == tch::Device::Cpu);
    if !on_cpu {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_worker = threads.map_or(1, |t| t.max(1) as usize);
    (cores / per_worker).clamp(1, 4).min(files.max(1))
}

/// `--group` when not given: 8 on a CUDA device, where one network call on a batch of small
/// pictures costs little more than on one until the device is busy, and 8 keeps the list's
/// claim per worker short (a group is also cut so that its pictures' estimated peak memory
/// fits --max-memory); 1 on the CPU, where a batch took as long as its pictures one after
/// another (docs/batch.md, "Grouping").
pub(crate) fn default_group(device: &str) -> usize {
    match crate::device::parse_device(device) {
        Ok(tch::Device::Cuda(_)) => 8,
        _ => 1,
    }
}

/// LibTorch threads per worker: `--threads`, else the cores split between the workers
/// (one worker: LibTorch's own choice).
fn worker_threads(jobs: usize, threads: Option<i32>) -> Option<i32> {
    match (threads, jobs) {
        (Some(t), _) => Some(t),
        (None, 1) => None,
        (None, j) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some((cores / j).max(1) as i32)
        }
    }
}

impl Board {
    /// Progress: files finished, the fractions of those in flight, and files restored
    /// per second of wall time so far.
    fn progress(&mut self, worker: usize, fraction: f64) -> Control {
        if let Some(c) = self.current.get_mut(worker) {
            *c = fraction;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = (self.count.done > 0 && seconds > 0.0).then(|| self.count.done as f64 / seconds);
        let current = self.current.iter().sum();
        self.reporter
            .report_files(self.finished, self.total, current, rate)
    }

    /// Counts and journals how one file ended; keeps what stops the batch.
    fn record(&mut self, worker: usize, outcome: Result<Outcome>) {
        match outcome {
            Ok(Outcome::Skipped) => self.count.skipped += 1,
            Ok(Outcome::Finished(record)) => {
                match record.status {
                    Status::Done => self.count.done += 1,
                    Status::Failed => {
                        log::warn!(
                            "{}: {}",
                            record.rel,
                            record.message.as_deref().unwrap_or("failed")
                        );
                        self.count.failed += 1;
                    }
                }
                if let Err(e) = self.journal.append(&Record::File(record)) {
                    self.stop.get_or_insert(e);
                }
            }
            Err(e) => {
                self.stop.get_or_insert(e);
                return;
            }
        }
        self.finished += 1;
        self.progress(worker, 0.0);
    }
}

/// The bytes a file's restore starts from, read once.
struct Read {
    input: Vec<u8>,
    mask: Option<Vec<u8>>,
}

/// A file read, decoded and ready for the engine.
struct Ready {
    record: FileRecord,
    started: Instant,
    task: Task,
    settings: Settings,
    decoded: io::Decoded,
    mask: Option<crate::io::Picture>,
    format: Format,
}

/// How a file's first half ended: ready to restore, or already over (skipped, failed).
enum Begun {
    Ready(Box<Ready>),
    Over(Result<Outcome>),
}

impl Shared<'_> {
    /// Some consecutive files of the list, restored together where they can share a solve
    /// (`pipeline::restore_all`); an outcome for each, in order. `Err` only for what stops
    /// the batch: a signal, OUTDIR not writable.
    fn some(
        &self,
        cache: &mut ModelCache,
        board: &Mutex<Board>,
        worker: usize,
        items: &[inputs::Item],
        done_before: &std::collections::BTreeMap<String, Vec<FileRecord>>,
    ) -> Vec<Result<Outcome>> {
        let begun: Vec<(&inputs::Item, Begun)> = items
            .iter()
            .map(|item| {
                let prior: &[FileRecord] = match self.args.force {
                    true => &[],
                    false => done_before.get(&item.rel).map_or(&[], Vec::as_slice),
                };
                (item, self.begin(item, prior))
            })
            .collect();
        let ready: Vec<&Ready> = begun
            .iter()
            .filter_map(|(_, b)| match b {
                Begun::Ready(r) => Some(r.as_ref()),
                Begun::Over(_) => None,
            })
            .collect();
        let jobs: Vec<pipeline::Item> = ready
            .iter()
            .map(|r| pipeline::Item {
                task: &r.task,
                image: &r.decoded.picture,
                mask: r.mask.as_ref(),
                settings: &r.settings,
            })
            .collect();
        // The worker claimed at most `--group` files.
        let group = items.len();
        let mut restored = pipeline::restore_all(&jobs, group, self.limits, cache, &mut |f, _| {
            lock(board).progress(worker, f)
        })
        .into_iter();
        drop(jobs);
        drop(ready);
        begun
            .into_iter()
            .map(|(item, b)| match b {
                Begun::Over(outcome) => outcome,
                Begun::Ready(r) => {
                    let restored = restored
                        .next()
                        .unwrap_or(Err(Error::Internal("a file lost its result".into())));
                    let encoded = restored.and_then(|outcome| {
                        let work = std::panic::AssertUnwindSafe(|| {
                            io::encode_with(
                                &outcome.picture,
                                r.format,
                                &self.args.encode.metadata(&r.decoded),
                            )
                        });
                        std::panic::catch_unwind(work).map_err(pipeline::panic_error)?
                    });
                    self.conclude(item, r.record, r.started, encoded.map(Some))
                }
            })
            .collect()
    }

    /// A file up to the restore: its settings and seed, the model's identity, the bytes
    /// read and hashed, the skip when a journal says it is done, the decode.
    fn begin(&self, item: &inputs::Item, prior: &[FileRecord]) -> Begun {
        let started = Instant::now();
        let settings = serve_settings(item, &self.base).map(|mut s| {
            s.seed = shard::file_seed(s.seed, &item.rel);
            s
        });
        let mut record = FileRecord {
            input: item.input.display().to_string(),
            rel: item.rel.clone(),
            output: item.output_rel.clone(),
            status: Status::Failed,
            exit_code: 0,
            error_code: None,
            message: None,
            seconds: 0.0,
            method: self.base.method.name().to_string(),
            preset: self
                .base
                .solver
                .quality
                .unwrap_or(Quality::Normal)
                .name()
                .into(),
            seed: 0,
            model: None,
            model_sha256: None,
            input_sha256: None,
            bytes: None,
            sha256: None,
            fingerprint: None,
            time: 0,
        };
        let result = settings.and_then(|mut s| {
            record.method = s.method.name().to_string();
            record.preset = s.solver.quality.unwrap_or(Quality::Normal).name().into();
            record.seed = s.seed;
            if let Some((name, sha)) = lock(&self.models).identify(&s)? {
                record.model = Some(name);
                record.model_sha256 = Some(sha);
            }
            let read = self.read(item)?;
            record.input_sha256 = Some(sha256_hex(&read.input));
            let fingerprint = self.fingerprint(item, &s, &read);
            record.fingerprint = Some(fingerprint.clone());
            if prior.iter().any(|p| self.verified(p, &fingerprint)) {
                return Ok(None);
            }
            let task = item
                .task
                .as_ref()
                .or(self.task)
                .ok_or_else(|| Error::Internal("a file without a task".into()))?
                .clone();
            s.jpeg_tables = pipeline::jpeg_tables(&task, &read.input)?;
            let limits = self.limits;
            let work = std::panic::AssertUnwindSafe(|| -> Result<_> {
                let decoded = io::decode(&read.input, limits, "input image")?;
                let mask = match &read.mask {
                    Some(m) => Some(io::decode(m, limits, "mask")?.picture),
                    None => None,
                };
                Ok((decoded, mask))
            });
            let (decoded, mask) =
                std::panic::catch_unwind(work).map_err(pipeline::panic_error)??;
            s.input_orientation =
                crate::app::serve::input_orientation(&item.options, decoded.orientation)?;
            let format = item
                .options
                .format
                .or(self.format)
                .or_else(|| Format::from_path(Path::new(&item.output_rel)))
                .unwrap_or(decoded.format);
            Ok(Some((task, s, decoded, mask, format)))
        });
        match result {
            Ok(Some((task, settings, decoded, mask, format))) => Begun::Ready(Box::new(Ready {
                record,
                started,
                task,
                settings,
                decoded,
                mask,
                format,
            })),
            Ok(None) => Begun::Over(Ok(Outcome::Skipped)),
            Err(e) => Begun::Over(self.conclude(item, record, started, Err(e))),
        }
    }

    /// How a file ends: its output written (`Some` bytes), skipped (`None`), or failed.
    fn conclude(
        &self,
        item: &inputs::Item,
        mut record: FileRecord,
        started: Instant,
        result: Result<Option<Vec<u8>>>,
    ) -> Result<Outcome> {
        record.seconds = started.elapsed().as_secs_f64();
        record.time = journal::now();
        match result {
            Ok(None) => Ok(Outcome::Skipped),
            Ok(Some(encoded)) => {
                // What fails from here on fails for every file: stop the batch.
                let out = self.outdir.join(&item.output_rel);
                if let Some(dir) = out.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("cannot create '{}': {e}", dir.display()),
                        ))
                    })?;
                }
                io::write_atomic(&out, &encoded, &signals::interrupted)?;
                record.status = Status::Done;
                record.bytes = Some(encoded.len() as u64);
                record.sha256 = Some(sha256_hex(&encoded));
                record.seconds = started.elapsed().as_secs_f64();
                Ok(Outcome::Finished(Box::new(record)))
            }
            Err(e) if matches!(e, Error::Interrupted) || signals::interrupted() => {
                Err(Error::Interrupted)
            }
            Err(e) => {
                record.exit_code = e.exit_code();
                record.error_code = Some(e.code().to_string());
                record.message = Some(e.to_string());
                Ok(Outcome::Finished(Box::new(record)))
            }
        }
    }

    /// The input and mask bytes; any failure is this file's (a missing or unreadable
    /// file, one over `--max-bytes`).
    fn read(&self, item: &inputs::Item) -> Result<Read> {
        let as_input = |e: Error| match e {
            Error::Io(e) => Error::Input(format!("reading '{}': {e}", item.input.display())),
            other => other,
        };
        let input = io::read_file(&item.input, self.limits.max_bytes, "input").map_err(as_input)?;
        let mask = match item.mask.as_ref().or(self.args.mask.as_ref()) {
            Some(m) => Some(io::read_file(m, self.limits.max_bytes, "mask").map_err(as_input)?),
            None => None,
        };
        Ok(Read { input, mask })
    }

    /// A hash of everything that decides the output's bytes.
    fn fingerprint(&self, item: &inputs::Item, s: &Settings, read: &Read) -> String {
        let task = item.task.as_ref().or(self.task);
        let text = format!(
            "v1|{task:?}|{s:?}|{:?}|{:?}|{}|{}|{}|{}",
            self.format,
            item.options.format,
            item.output_rel,
            self.args.encode.strip,
            sha256_hex(&read.input),
            read.mask.as_deref().map(sha256_hex).unwrap_or_default()
        );
        sha256_hex(text.as_bytes())
    }

    /// Whether `p` is a done record for these settings whose output is still as written.
    fn verified(&self, p: &FileRecord, fingerprint: &str) -> bool {
        if p.fingerprint.as_deref() != Some(fingerprint) {
            return false;
        }
        let out = self.outdir.join(&p.output);
        let Ok(meta) = std::fs::metadata(&out) else {
            return false;
        };
        if Some(meta.len()) != p.bytes {
            return false;
        }
        match std::fs::read(&out) {
            Ok(bytes) => Some(sha256_hex(&bytes)) == p.sha256,
            Err(_) => false,
        }
    }
}

/// The command line's settings with a manifest line's options laid over them.
fn serve_settings(item: &inputs::Item, base: &Settings) -> Result<Settings> {
    crate::app::serve::with_options(&item.options, base)
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::registry::sha256_reader(bytes).unwrap_or_default()
}

/// `batch --status OUTDIR`: the merged journals, as text on stderr or JSON on stdout.
fn status(dir: &Path, json: bool, quiet: bool) -> Result<i32> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--status {}: no such folder",
            dir.display()
        )));
    }
    let s = journal::summary(dir)?;
    if s.journals.is_empty() {
        return Err(Error::Usage(format!(
            "--status {}: no journal there (not a batch OUTDIR?)",
            dir.display()
        )));
    }
    if json {
        let line =
            serde_json::to_string(&s).map_err(|e| Error::Internal(format!("summary: {e}")))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    } else if !quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{} files: {} done, {} failed, {} pending ({} journals)",
            s.files,
            s.done,
            s.failed,
            s.pending,
            s.journals.len()
        )?;
        for f in &s.failures {
            writeln!(
                out,
                "failed: {}: {}",
                f.rel,
                f.message.as_deref().unwrap_or("?")
            )?;
        }
        out.flush()?;
    }
    Ok(if s.failed > 0 || s.pending > 0 {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}
