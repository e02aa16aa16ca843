//! `vml-filter models …`: the command-line face of the registry (list, fetch, verify,
//! inspect, path). Output formats are documented in docs/models.md.

use crate::error::{Error, Result};
use crate::registry::fetch::{human_bytes, FetchOptions, Fetched, ProgressFormat};
use crate::registry::{Check, Registry, RegistryError, Status};
use std::io::Write;
use std::path::PathBuf;

/// `vml-filter models`: the model registry.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Every known model: present or not, where, size, whether its hash was verified.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download a model into the user's data directory (resumable, sha256-checked).
    Fetch {
        /// Registry name (see `models list`).
        name: String,
        /// Model directory to download into instead of the user's data directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Download even if a file that passes its check is present.
        #[arg(long)]
        force: bool,
    },
    /// Hash present model files and compare them with their cards.
    Verify {
        /// Only this model (its file must be present).
        name: Option<String>,
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Tensors of a checkpoint file: name, shape and dtype, one per line.
    Inspect {
        /// A .pt, .pth, .bin or .safetensors file, or a registry name.
        file: String,
    },
    /// The model search path, in order.
    Path,
}

/// Runs a `models` command with the process's registry, stdout and stderr. `progress` is
/// the binary's global `--progress`/`--quiet` choice, used by `fetch`.
pub fn run(args: &ModelsArgs, progress: ProgressFormat) -> Result<()> {
    let registry = Registry::from_env();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(
        &registry,
        args,
        progress,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// Runs a `models` command: results on `out`, progress and warnings on `err`.
pub fn run_with(
    registry: &Registry,
    args: &ModelsArgs,
    progress: ProgressFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    for p in registry.problems() {
        // A broken card must not hide the others; say so and go on.
        writeln!(err, "warning: {p}")?;
    }
    match &args.command {
        ModelsCommand::List { json } => {
            let rows = registry.list();
            if *json {
                writeln!(out, "{}", to_json(&rows)?)?;
            } else {
                write_table(out, &rows)?;
            }
        }
        ModelsCommand::Fetch { name, dir, force } => {
            let opts = FetchOptions {
                progress,
                force: *force,
                ..FetchOptions::default()
            };
            let fetched = registry.fetch(name, dir.as_deref(), &opts, err)?;
            let path = match &fetched {
                Fetched::AlreadyPresent { path } | Fetched::Downloaded { path, .. } => path,
            };
            writeln!(out, "{}", path.display())?;
        }
        ModelsCommand::Verify { name, json } => {
            let rows = registry.verify(name.as_deref())?;
            if *json {
                writeln!(out, "{}", to_json(&rows)?)?;
            } else {
                for r in &rows {
                    writeln!(out, "{}", verify_line(r))?;
                }
            }
            let failed: Vec<String> = rows
                .iter()
                .filter(|r| r.check.is_failure())
                .map(|r| r.name.clone())
                .collect();
            if !failed.is_empty() {
                return Err(RegistryError::VerifyFailed(failed).into());
            }
        }
        ModelsCommand::Inspect { file } => {
            let path = match registry.get(file) {
                Some(e) if !std::path::Path::new(file).exists() => registry.require(&e.card)?,
                _ => PathBuf::from(file),
            };
            write!(out, "{}", crate::app::inspect::inspect(&path)?)?;
        }
        ModelsCommand::Path => {
            let sp = registry.search_path();
            for d in &sp.dirs {
                let state = if d.path.is_dir() { "" } else { " (absent)" };
                writeln!(out, "{}\t{}{state}", d.path.display(), d.origin)?;
            }
            if sp.dirs.is_empty() {
                writeln!(err, "warning: no model directory (set VML_MODELS or HOME)")?;
            }
        }
    }
    Ok(())
}

fn to_json(rows: &[Status]) -> Result<String> {
    serde_json::to_string_pretty(rows).map_err(|e| Error::Io(std::io::Error::other(e)))
}

/// `models list` as an aligned table: NAME STATE SIZE WHERE.
fn write_table(out: &mut dyn Write, rows: &[Status]) -> Result<()> {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let size = r.size.map_or_else(|| "?".into(), human_bytes);
            let place = match &r.path {
                Some(p) => p.display().to_string(),
                None => format!("{} (vml-filter models fetch {})", r.file, r.name),
            };
            [r.name.clone(), state_word(&r.check).into(), size, place]
        })
        .collect();
    let header = ["NAME", "STATE", "SIZE", "WHERE"].map(String::from);
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        writeln!(
            out,
            "{:w0$}  {:w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    Ok(())
}

/// One word per state, stable for scripts that read the table.
pub fn state_word(c: &Check) -> &'static str {
    match c {
        Check::Absent => "absent",
        Check::NotChecked => "present",
        Check::Verified { .. } => "verified",
        Check::NoPublishedHash { .. } => "unverifiable",
        Check::WrongSize { .. } => "wrong-size",
        Check::Mismatch { .. } => "MISMATCH",
    }
}

fn verify_line(r: &Status) -> String {
    let place = r
        .path
        .as_ref()
        .map_or_else(|| r.file.clone(), |p| p.display().to_string());
    match &r.check {
        Check::Absent => format!("{}: absent ({})", r.name, r.file),
        Check::NotChecked => format!("{}: not checked: {place}", r.name),
        Check::Verified { sha256 } => format!("{}: OK {place} sha256 {sha256}", r.name),
        Check::NoPublishedHash { sha256 } => format!(
            "{}: no published sha256 to check against; {place} has sha256 {}",
            r.name,
            sha256.as_deref().unwrap_or("?")
        ),
        Check::WrongSize { expected, actual } => format!(
            "{}: FAILED {place}: {actual} bytes, the card says {expected}",
            r.name
        ),
        Check::Mismatch { expected, actual } => format!(
            "{}: FAILED {place}: sha256 {actual}, the card says {expected}",
            r.name
        ),
    }
}
