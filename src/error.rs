//! The top-level error and the exit codes the binary maps it to.
//!
//! Each layer has its own error type (`model::LoadError`, `operators::OperatorError`, …);
//! they are gathered here so that the binary and the protocol can name a code for each.

use crate::operators::OperatorError;
use std::fmt;

/// Exit codes, documented in docs/protocol.md. Stable: scripts depend on them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const BAD_INPUT: i32 = 3;
    pub const MODEL: i32 = 4;
    pub const DEVICE: i32 = 5;
    pub const OUT_OF_MEMORY: i32 = 6;
    /// A failure of vml-filter itself (a broken invariant, a panic, an unexpected LibTorch
    /// error): not the user's doing, worth a bug report.
    pub const INTERNAL: i32 = 7;
    /// `batch`: the run ended, but some files failed (each is in the journal with its own
    /// code); `batch --status`: some files failed or are not done yet (docs/batch.md).
    pub const SOME_FAILED: i32 = 8;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Wrong flags or arguments.
    Usage(String),
    /// The image, mask or request cannot be used.
    Input(String),
    /// A model file is missing, corrupt or does not fit its architecture.
    Model(crate::model::LoadError),
    /// A model name the registry does not know or cannot provide, a download that failed,
    /// a file that does not match its card: `model` errors too.
    Registry(Box<crate::registry::RegistryError>),
    /// The requested device does not exist or failed.
    Device(String),
    /// LibTorch could not allocate memory.
    OutOfMemory(String),
    /// SIGINT / SIGTERM, or a cancel from the caller, between two steps.
    Interrupted,
    /// An operator could not be built for this image.
    Operator(crate::operators::OperatorError),
    /// Reading or writing a file or stream.
    Io(std::io::Error),
    /// A LibTorch failure that fits none of the above.
    Torch(tch::TchError),
    /// vml-filter's own failure: an invariant that does not hold, a panic.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Operator(OperatorError::Task(_)) => exit::USAGE,
            Error::Input(_) | Error::Operator(_) => exit::BAD_INPUT,
            Error::Model(_) | Error::Registry(_) => exit::MODEL,
            Error::Device(_) => exit::DEVICE,
            Error::OutOfMemory(_) => exit::OUT_OF_MEMORY,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Io(_) => exit::FAILURE,
            Error::Torch(e) if is_oom(e) => exit::OUT_OF_MEMORY,
            Error::Torch(_) | Error::Internal(_) => exit::INTERNAL,
        }
    }

    /// Short machine-readable code for the protocol's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Usage(_) | Error::Operator(OperatorError::Task(_)) => "usage",
            Error::Input(_) | Error::Operator(_) => "bad_input",
            Error::Model(_) | Error::Registry(_) => "model",
            Error::Device(_) => "device",
            Error::OutOfMemory(_) => "out_of_memory",
            Error::Interrupted => "interrupted",
            Error::Io(_) => "io",
            Error::Torch(e) if is_oom(e) => "out_of_memory",
            Error::Torch(_) | Error::Internal(_) => "internal",
        }
    }
}

fn is_oom(e: &tch::TchError) -> bool {
    let s = e.to_string();
    s.contains("out of memory") || s.contains("DefaultCPUAllocator: can't allocate")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage: {m}"),
            Error::Input(m) => write!(f, "bad input: {m}"),
            Error::Model(e) => write!(f, "model: {e}"),
            Error::Registry(e) => write!(f, "model: {e}"),
            Error::Device(m) => write!(f, "device: {m}"),
            Error::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Error::Interrupted => write!(f, "interrupted"),
            Error::Operator(e @ OperatorError::Task(_)) => write!(f, "usage: {e}"),
            Error::Operator(e) => write!(f, "bad input: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::Torch(e) => write!(f, "torch: {e}"),
            Error::Internal(m) => write!(f, "internal error (please report): {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Model(e) => Some(e),
            Error::Registry(e) => Some(e.as_ref()),
            Error::Operator(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Torch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::model::LoadError> for Error {
    fn from(e: crate::model::LoadError) -> Self {
        Error::Model(e)
    }
}
impl From<crate::registry::RegistryError> for Error {
    fn from(e: crate::registry::RegistryError) -> Self {
        match e {
            // One class per failure whichever layer passed it on.
            crate::registry::RegistryError::Load(e) => Error::Model(e),
            // Boxed: the registry's messages carry lists of paths, and the error travels
            // in every `Result` of the crate.
            e => Error::Registry(Box::new(e)),
        }
    }
}
/// A task's parameters are the user's words (flags, request fields): a usage error.
impl From<crate::task::TaskError> for Error {
    fn from(e: crate::task::TaskError) -> Self {
        Error::Usage(e.to_string())
    }
}
impl From<crate::operators::OperatorError> for Error {
    fn from(e: crate::operators::OperatorError) -> Self {
        Error::Operator(e)
    }
}
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}
