//! Strict checkpoint loading.
//!
//! `VarStore::load` stops at the first missing name, ignores extra keys and copies with
//! broadcasting; a checkpoint for the wrong architecture can then "load" and give noise.
//! Here the key sets are compared in both directions and every shape is checked, and all
//! mismatches are reported in one error. Only the dtype may differ (fp16 files load into
//! fp32 variables). Files are read by `model::checkpoint`.

use super::checkpoint::{split_entry, Checkpoint, CheckpointError, Format};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("model file {0} not found")]
    NotFound(PathBuf),
    /// The file could not be read as a checkpoint: damaged, hostile, or an unknown layout.
    #[error("cannot read model file {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        source: CheckpointError,
    },
    #[error(
        "model file {path} has unsupported extension (expected .pt, .pth, .bin or .safetensors)"
    )]
    Format { path: PathBuf },
    #[error("architecture config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path} does not fit the architecture: {summary}")]
    Mismatch {
        path: PathBuf,
        summary: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
        shapes: Vec<String>,
    },
    #[error("{0}")]
    Other(String),
}

/// Opens a checkpoint (`FILE` or `FILE#ENTRY`), checking existence and extension first.
pub fn open_checkpoint(path: &Path) -> Result<Checkpoint, LoadError> {
    let (file, _) = split_entry(path);
    if !file.is_file() {
        return Err(LoadError::NotFound(path.to_owned()));
    }
    if Format::of(&file).is_none() {
        return Err(LoadError::Format { path: file });
    }
    Checkpoint::open(path).map_err(|source| LoadError::Checkpoint { path: file, source })
}

/// Copies the checkpoint at `path` into `vs`, requiring an exact match of names and shapes.
/// Of a file wrapping several state dicts, the one that fits is taken.
pub fn load_strict(vs: &mut VarStore, path: &Path) -> Result<(), LoadError> {
    let vars = vs.variables();
    let want: BTreeMap<String, Vec<i64>> =
        vars.iter().map(|(k, v)| (k.clone(), v.size())).collect();
    let mut ck = open_checkpoint(path)?;
    let file = ck.path().to_owned();
    let failed = |source| LoadError::Checkpoint {
        path: file.clone(),
        source,
    };
    let i = ck.select(&want).map_err(failed)?;
    let entry = &ck.entries()[i];
    let have: BTreeMap<&str, &[i64]> = entry
        .tensors
        .iter()
        .map(|(k, t)| (k.as_str(), t.shape.as_slice()))
        .collect();
    let missing: Vec<String> = want
        .keys()
        .filter(|k| !have.contains_key(k.as_str()))
        .cloned()
        .collect();
    let unexpected: Vec<String> = have
        .keys()
        .filter(|k| !want.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    let shapes: Vec<String> = want
        .iter()
        .filter_map(|(k, v)| {
            let t = have.get(k.as_str())?;
            (*t != v.as_slice()).then(|| format!("{k}: file {t:?}, model {v:?}"))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && shapes.is_empty()) {
        let mut summary = mismatch_summary(&missing, &unexpected, &shapes);
        if entry.name.is_some() {
            summary = format!("{} (entry {})", summary, entry.label());
        }
        return Err(LoadError::Mismatch {
            path: file,
            summary,
            missing,
            unexpected,
            shapes,
        });
    }
    let tensors: BTreeMap<String, Tensor> = ck
        .read(i, vs.device())
        .map_err(failed)?
        .into_iter()
        .collect();
    tch::no_grad(|| {
        for (k, mut v) in vars {
            let src = &tensors[&k];
            v.copy_(&src.to_kind(v.kind()).to_device(v.device()));
        }
    });
    Ok(())
}

fn mismatch_summary(missing: &[String], unexpected: &[String], shapes: &[String]) -> String {
    fn first(v: &[String]) -> String {
        let shown: Vec<&str> = v.iter().take(5).map(String::as_str).collect();
        let more = if v.len() > 5 {
            format!(", … ({} more)", v.len() - 5)
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing key(s): {}",
            missing.len(),
            first(missing)
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected key(s): {}",
            unexpected.len(),
            first(unexpected)
        ));
    }
    if !shapes.is_empty() {
        parts.push(format!(
            "{} shape mismatch(es): {}",
            shapes.len(),
            first(shapes)
        ));
    }
    parts.join("; ")
}
