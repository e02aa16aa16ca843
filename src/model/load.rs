//! Strict checkpoint loading.
//!
//! `VarStore::load` stops at the first missing name, ignores extra keys and copies with
//! broadcasting; a checkpoint for the wrong architecture can then "load" and give noise.
//! Here the key sets are compared in both directions and every shape is checked, and all
//! mismatches are reported in one error. Only the dtype may differ (fp16 files load into
//! fp32 variables).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Tensor};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("model file {0} not found")]
    NotFound(PathBuf),
    #[error("cannot read model file {path} (truncated or not a PyTorch/safetensors checkpoint): {source}")]
    Read {
        path: PathBuf,
        source: tch::TchError,
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
    /// Registry lookups, downloads and checks (`model::registry`).
    #[error(transparent)]
    Registry(#[from] super::registry::RegistryError),
}

/// Reads all named tensors of a checkpoint onto `device`.
pub fn read_tensors(path: &Path, device: Device) -> Result<Vec<(String, Tensor)>, LoadError> {
    if !path.is_file() {
        return Err(LoadError::NotFound(path.to_owned()));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let read = match ext.as_str() {
        "pt" | "pth" | "bin" => Tensor::loadz_multi_with_device(path, device),
        "safetensors" => Tensor::read_safetensors(path),
        _ => {
            return Err(LoadError::Format {
                path: path.to_owned(),
            })
        }
    };
    let tensors = read.map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(tensors
        .into_iter()
        .map(|(k, t)| (strip_wrapper_prefix(k), t))
        .collect())
}

/// Checkpoints saved from `DataParallel` prefix every key with `module.`.
fn strip_wrapper_prefix(key: String) -> String {
    match key.strip_prefix("module.") {
        Some(k) => k.to_owned(),
        None => key,
    }
}

/// Copies the checkpoint at `path` into `vs`, requiring an exact match of names and shapes.
pub fn load_strict(vs: &mut VarStore, path: &Path) -> Result<(), LoadError> {
    let tensors: BTreeMap<String, Tensor> = read_tensors(path, vs.device())?.into_iter().collect();
    let vars = vs.variables();
    let want: BTreeSet<&String> = vars.keys().collect();
    let have: BTreeSet<&String> = tensors.keys().collect();
    let missing: Vec<String> = want.difference(&have).map(|s| s.to_string()).collect();
    let unexpected: Vec<String> = have.difference(&want).map(|s| s.to_string()).collect();
    let shapes: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let t = tensors.get(k)?;
            (t.size() != v.size())
                .then(|| format!("{k}: file {:?}, model {:?}", t.size(), v.size()))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && shapes.is_empty()) {
        let summary = mismatch_summary(&missing, &unexpected, &shapes);
        return Err(LoadError::Mismatch {
            path: path.to_owned(),
            summary,
            missing,
            unexpected,
            shapes,
        });
    }
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
