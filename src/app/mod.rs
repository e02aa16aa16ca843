//! The application: the commands of the `vml-filter` binary on top of the engine — the
//! command line and the plain filter (`cli`), `serve` (the protocol over stdin/stdout),
//! `batch` (many files into a folder, resumable and sharded), `bench`, `train`,
//! `eval-net`/`compare` (`inspect`) and `models` (the registry's commands). Only this
//! layer knows clap; it is built with the default-on `cli` feature, and nothing in the
//! engine depends on it (docs/architecture.md).

pub mod batch;
pub mod bench;
pub mod cli;
pub mod inspect;
pub mod models;
pub mod serve;
pub mod train;
