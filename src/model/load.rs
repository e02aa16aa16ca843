//! Strict checkpoint loading: every key present, no extra key, every shape equal.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: tch::TchError },
    #[error("{0}")]
    Other(String),
}
