//! The model registry: model cards, the model search path, and `resolve`/`open` from a
//! registry name or a weights file.
//!
//! A card (`models/<name>/card.json`, format in docs/models.md) names a weights file, where
//! to download it, its sha256, its architecture and its licence. Weights are looked for in
//! the search path, in this order:
//!
//! 1. each directory of `$VML_MODELS` (colon-separated),
//! 2. the user's data directory, `$XDG_DATA_HOME/vml-filter/models` or
//!    `~/.local/share/vml-filter/models` (where `models fetch` writes),
//! 3. the source tree's `models/` (the build-time `CARGO_MANIFEST_DIR`), if it still exists,
//! 4. next to the installed binary: `<exe dir>/models` and `<exe dir>/../share/vml-filter/models`.
//!
//! In each directory a model's file is `<dir>/<name>/<file>` or, for hand-placed files,
//! `<dir>/<file>`. Cards are read from `<dir>/<name>/card.json` in the same order (the first
//! card of a name wins) and, last, from the cards compiled into the binary, so an installed
//! binary knows every model even without its source tree.

pub mod fetch;

use crate::model::{LoadError, Network, Precision, UNetConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tch::Device;

/// Cards compiled into the binary (the ones in the source tree's `models/`).
const BUILTIN_CARDS: [&str; 3] = [
    include_str!("../../models/default/card.json"),
    include_str!("../../models/ffhq-256/card.json"),
    include_str!("../../models/imagenet-256/card.json"),
];

/// File name of a card inside its model directory.
pub const CARD_FILE: &str = "card.json";
/// Name of the verified-hash cache in the user's data directory.
const HASH_CACHE: &str = "hashes.json";

/// A model card: everything needed to find, fetch, check and build one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// Registry name (`--model NAME`); equal to the name of the card's directory.
    pub name: String,
    /// One or two sentences for `models list`.
    pub description: String,
    /// File name of the weights (.pt, .pth, .bin or .safetensors), without directories.
    pub file: String,
    /// Download locations, tried in order; empty when the model ships with the project.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Lower-case hex sha256 of the file; `null` when no checksum is known.
    pub sha256: Option<String>,
    /// Where the checksum comes from, or why there is none.
    #[serde(default)]
    pub sha256_note: Option<String>,
    /// Size in bytes, when known; a cheap first check before hashing.
    #[serde(default)]
    pub size: Option<u64>,
    /// A named architecture (`ffhq-256`, `imagenet-256`, `default`) or a config JSON file
    /// relative to the directory of the weights (then of the card).
    pub architecture: String,
    /// The terms under which the weights are published.
    pub licence: String,
    /// Project page of the weights.
    #[serde(default)]
    pub homepage: Option<String>,
    /// What to do by hand when `models fetch` cannot download the file.
    #[serde(default)]
    pub manual_download: Option<String>,
}

impl Card {
    /// Parses and checks a card; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let bad = |message: String| RegistryError::Card {
            path: path.to_owned(),
            message,
        };
        let mut card: Card = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        card.validate().map_err(bad)?;
        if let Some(h) = card.sha256.as_mut() {
            *h = h.to_ascii_lowercase();
        }
        Ok(card)
    }

    /// The checks that keep a card from pointing outside its directory or at garbage.
    pub fn validate(&self) -> Result<(), String> {
        let plain = |s: &str| {
            !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\\')
        };
        if !plain(&self.name) {
            return Err(format!(
                "name {:?} must be a plain directory name",
                self.name
            ));
        }
        if !plain(&self.file) {
            return Err(format!("file {:?} must be a plain file name", self.file));
        }
        if let Some(h) = &self.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("sha256 {h:?} is not 64 hex digits"));
            }
        }
        for u in &self.urls {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!("url {u:?} is not http(s)"));
            }
        }
        if self.architecture.is_empty() {
            return Err("architecture is empty".into());
        }
        Ok(())
    }

    /// The line that tells a user how to get the file.
    pub fn how_to_get(&self) -> String {
        if self.urls.is_empty() {
            self.manual_download
                .clone()
                .unwrap_or_else(|| "this model has no download location".into())
        } else {
            format!("get it with `vml-filter models fetch {}`", self.name)
        }
    }
}

/// Where a card was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardSource {
    /// Compiled into the binary.
    Builtin,
    /// A `card.json` in a search directory.
    File(PathBuf),
}

/// A card and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub card: Card,
    pub source: CardSource,
}

impl Entry {
    /// The directory holding the card file, for cards read from disk.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            CardSource::Builtin => None,
            CardSource::File(p) => p.parent(),
        }
    }
}

/// Why a directory is in the search path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `$VML_MODELS`.
    Env,
    /// The user's data directory.
    UserData,
    /// The source tree's `models/`.
    Source,
    /// Next to the installed binary.
    Installed,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Env => "$VML_MODELS",
            Origin::UserData => "user data",
            Origin::Source => "source tree",
            Origin::Installed => "installation",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchDir {
    pub path: PathBuf,
    pub origin: Origin,
}

/// The inputs of the search path, separated from the process so that tests can give them.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `$VML_MODELS`.
    pub vml_models: Option<OsString>,
    /// `$XDG_DATA_HOME`.
    pub xdg_data_home: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
    /// The source tree's `models/`, when it exists.
    pub source_models: Option<PathBuf>,
    /// The running binary.
    pub exe: Option<PathBuf>,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        Self {
            vml_models: std::env::var_os("VML_MODELS"),
            xdg_data_home: std::env::var_os("XDG_DATA_HOME"),
            home: std::env::var_os("HOME"),
            source_models: source.is_dir().then_some(source),
            exe: std::env::current_exe().ok(),
        }
    }
}

/// The ordered model directories and the directory `models fetch` writes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPath {
    pub dirs: Vec<SearchDir>,
    /// The user's data directory (also the first writable place for downloads).
    pub data_dir: Option<PathBuf>,
}

impl SearchPath {
    pub fn from_env() -> Self {
        Self::from_environment(&Environment::current())
    }

    pub fn from_environment(env: &Environment) -> Self {
        let mut dirs = Vec::new();
        if let Some(list) = &env.vml_models {
            for p in std::env::split_paths(list) {
                // An empty entry ("a::b", a trailing colon) would mean the current
                // directory; that is never what a user means by it.
                if !p.as_os_str().is_empty() {
                    dirs.push(SearchDir {
                        path: p,
                        origin: Origin::Env,
                    });
                }
            }
        }
        let data_dir = user_data_dir(env.xdg_data_home.as_deref(), env.home.as_deref());
        if let Some(d) = &data_dir {
            dirs.push(SearchDir {
                path: d.clone(),
                origin: Origin::UserData,
            });
        }
        if let Some(s) = &env.source_models {
            dirs.push(SearchDir {
                path: s.clone(),
                origin: Origin::Source,
            });
        }
        if let Some(exe_dir) = env.exe.as_deref().and_then(Path::parent) {
            for p in [
                exe_dir.join("models"),
                exe_dir.join("../share/vml-filter/models"),
            ] {
                if p.is_dir() {
                    dirs.push(SearchDir {
                        path: p,
                        origin: Origin::Installed,
                    });
                }
            }
        }
        Self::new(dirs, data_dir)
    }

    /// A search path from explicit directories; later duplicates of a directory are dropped.
    pub fn new(dirs: Vec<SearchDir>, data_dir: Option<PathBuf>) -> Self {
        let mut seen = Vec::new();
        let mut kept = Vec::new();
        for d in dirs {
            let key = std::fs::canonicalize(&d.path).unwrap_or_else(|_| d.path.clone());
            if !seen.contains(&key) {
                seen.push(key);
                kept.push(d);
            }
        }
        Self {
            dirs: kept,
            data_dir,
        }
    }
}

/// `$XDG_DATA_HOME/vml-filter/models`, else `$HOME/.local/share/vml-filter/models`.
fn user_data_dir(xdg: Option<&std::ffi::OsStr>, home: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    // The XDG spec says relative values are invalid and must be ignored.
    let base = match xdg.map(Path::new) {
        Some(x) if x.is_absolute() => x.to_owned(),
        _ => {
            let h = Path::new(home?);
            if h.as_os_str().is_empty() {
                return None;
            }
            h.join(".local/share")
        }
    };
    Some(base.join("vml-filter").join("models"))
}

/// Errors of the registry: cards, lookup, downloads and checks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Loading the file the registry found (or was given) failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("unknown model '{spec}': no such file, and no model card of that name (known models: {})", .known.join(", "))]
    Unknown { spec: String, known: Vec<String> },
    #[error("model '{name}' is not installed: {file} was not found in any model directory; {hint}\n  looked in:\n{}", list_paths(.searched))]
    NotInstalled {
        name: String,
        file: String,
        searched: Vec<PathBuf>,
        hint: String,
    },
    #[error("model card {path}: {message}")]
    Card { path: PathBuf, message: String },
    #[error("cannot download {url}: {message}\n  {hint}")]
    Network {
        url: String,
        message: String,
        hint: String,
    },
    #[error("cannot download {url}: the server answered HTTP {status}\n  {hint}")]
    Http {
        url: String,
        status: u16,
        hint: String,
    },
    #[error("{url} answered with a web page instead of the model file (a download quota or a sign-in page?)\n  {hint}")]
    WebPage { url: String, hint: String },
    #[error("sha256 of {path} is {actual}, but the card of '{name}' says {expected}; the file is corrupt or not the published one")]
    HashMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} has {actual} bytes, but the card of '{name}' says {expected}")]
    SizeMismatch {
        name: String,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("model '{name}' cannot be downloaded: {hint}")]
    NoUrl { name: String, hint: String },
    #[error("no user data directory (neither XDG_DATA_HOME nor HOME is set): give --dir DIR")]
    NoDataDir,
    #[error("another `models fetch` is writing {0}")]
    Busy(PathBuf),
    #[error("verification failed for: {}", .0.join(", "))]
    VerifyFailed(Vec<String>),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "    (no model directory: set VML_MODELS or HOME)".into();
    }
    let lines: Vec<String> = paths
        .iter()
        .map(|p| format!("    {}", p.display()))
        .collect();
    lines.join("\n")
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a spec resolved to: the weights file and the architecture to build for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The registry name, when the spec was one (or the file is a registered model's).
    pub name: Option<String>,
    pub weights: PathBuf,
    pub config: UNetConfig,
}

/// The state of one model file against its card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Check {
    /// No file in the search path.
    Absent,
    /// Present; its hash is not known yet (`models verify` computes it). Called `present`
    /// in `models list`, text and JSON alike.
    #[serde(rename = "present")]
    NotChecked,
    /// The sha256 matches the card.
    Verified { sha256: String },
    /// The card has no sha256; the file's hash, when computed, is given for the record.
    NoPublishedHash { sha256: Option<String> },
    /// The size differs from the card's: no need to hash.
    WrongSize { expected: u64, actual: u64 },
    /// The sha256 differs from the card's.
    Mismatch { expected: String, actual: String },
}

impl Check {
    pub fn is_failure(&self) -> bool {
        matches!(self, Check::WrongSize { .. } | Check::Mismatch { .. })
    }
}

/// One row of `models list` / `models verify`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub name: String,
    pub file: String,
    /// Where the file was found.
    pub path: Option<PathBuf>,
    /// Size on disk when present, else the card's size.
    pub size: Option<u64>,
    pub check: Check,
    pub licence: String,
    pub description: String,
    /// The card file, or `null` for a card compiled into the binary.
    pub card: Option<PathBuf>,
}

/// The cards and the search path of one process.
#[derive(Debug)]
pub struct Registry {
    search: SearchPath,
    entries: Vec<Entry>,
    problems: Vec<RegistryError>,
}

impl Registry {
    /// The registry of this process's environment.
    pub fn from_env() -> Self {
        Self::new(SearchPath::from_env())
    }

    /// Reads the cards of every search directory, then the built-in ones.
    pub fn new(search: SearchPath) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        let mut problems = Vec::new();
        let add = |entry: Entry, entries: &mut Vec<Entry>| {
            if !entries.iter().any(|e| e.card.name == entry.card.name) {
                entries.push(entry);
            }
        };
        for dir in &search.dirs {
            for path in card_files(&dir.path) {
                match read_card(&path) {
                    Ok(card) => add(
                        Entry {
                            card,
                            source: CardSource::File(path),
                        },
                        &mut entries,
                    ),
                    Err(e) => problems.push(e),
                }
            }
        }
        for text in BUILTIN_CARDS {
            match Card::parse(text, Path::new("<built-in card>")) {
                Ok(card) => add(
                    Entry {
                        card,
                        source: CardSource::Builtin,
                    },
                    &mut entries,
                ),
                Err(e) => problems.push(e),
            }
        }
        entries.sort_by(|a, b| a.card.name.cmp(&b.card.name));
        Self {
            search,
            entries,
            problems,
        }
    }

    pub fn search_path(&self) -> &SearchPath {
        &self.search
    }

    /// Every known model, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Cards that could not be read (shown as warnings, never fatal for other models).
    pub fn problems(&self) -> &[RegistryError] {
        &self.problems
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.card.name == name)
    }

    fn get_or_unknown(&self, name: &str) -> Result<&Entry, RegistryError> {
        self.get(name).ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, spec: &str) -> RegistryError {
        RegistryError::Unknown {
            spec: spec.to_owned(),
            known: self.entries.iter().map(|e| e.card.name.clone()).collect(),
        }
    }

    /// The places a card's file may be, in search order.
    pub fn candidates(&self, card: &Card) -> Vec<PathBuf> {
        self.search
            .dirs
            .iter()
            .flat_map(|d| {
                [
                    d.path.join(&card.name).join(&card.file),
                    d.path.join(&card.file),
                ]
            })
            .collect()
    }

    /// The first existing file of a card.
    pub fn locate(&self, card: &Card) -> Option<PathBuf> {
        self.candidates(card).into_iter().find(|p| p.is_file())
    }

    /// Like `locate`, but a missing file is an error that says where it looked.
    pub fn require(&self, card: &Card) -> Result<PathBuf, RegistryError> {
        self.locate(card)
            .ok_or_else(|| RegistryError::NotInstalled {
                name: card.name.clone(),
                file: card.file.clone(),
                searched: self.candidates(card),
                hint: card.how_to_get(),
            })
    }

    /// Resolves `spec` (a registry name or a path to a weights file) and an optional
    /// architecture override (a named architecture or a config JSON).
    pub fn resolve(&self, spec: &str, arch: Option<&str>) -> Result<Resolved, RegistryError> {
        let as_path = Path::new(spec);
        if as_path.is_file() || crate::model::checkpoint::split_entry(as_path).1.is_some() {
            return self.resolve_file(as_path, arch);
        }
        if as_path.is_dir() {
            return self.resolve_file(&weights_in_dir(as_path)?, arch);
        }
        if let Some(entry) = self.get(spec) {
            let weights = self.require(&entry.card)?;
            let config = match arch {
                Some(a) => UNetConfig::from_name_or_file(a)?,
                None => card_config(entry, &weights)?,
            };
            return Ok(Resolved {
                name: Some(entry.card.name.clone()),
                weights,
                config,
            });
        }
        if looks_like_path(spec) {
            return Err(LoadError::NotFound(as_path.to_owned()).into());
        }
        Err(self.unknown(spec))
    }

    /// `weights` is a file, or `FILE#ENTRY` (kept as it is for the loader; the
    /// architecture is looked up beside `FILE`).
    fn resolve_file(&self, spec: &Path, arch: Option<&str>) -> Result<Resolved, RegistryError> {
        let (weights, _) = crate::model::checkpoint::split_entry(spec);
        let weights = weights.as_path();
        let file_name = weights.file_name().and_then(|n| n.to_str());
        let entry = file_name.and_then(|n| self.entries.iter().find(|e| e.card.file == n));
        let config = match arch {
            Some(a) => UNetConfig::from_name_or_file(a)?,
            None => {
                let sidecar = weights.with_extension("json");
                let in_dir = weights.with_file_name("config.json");
                if sidecar.is_file() {
                    UNetConfig::from_file(&sidecar)?
                } else if in_dir.is_file() {
                    UNetConfig::from_file(&in_dir)?
                } else if let Some(e) = entry {
                    card_config(e, weights)?
                } else {
                    return Err(LoadError::Other(format!(
                        "no architecture known for {}: give --arch NAME|CONFIG, or put a config .json next to it",
                        weights.display()
                    ))
                    .into());
                }
            }
        };
        Ok(Resolved {
            name: entry.map(|e| e.card.name.clone()),
            weights: spec.to_owned(),
            config,
        })
    }

    /// Resolves `spec` and loads the network strictly.
    pub fn open(
        &self,
        spec: &str,
        arch: Option<&str>,
        device: Device,
        precision: Precision,
    ) -> Result<Network, RegistryError> {
        let r = self.resolve(spec, arch)?;
        Ok(Network::open(&r.weights, &r.config, device, precision)?)
    }

    /// The state of every model, from the file sizes and the hash cache (no hashing).
    pub fn list(&self) -> Vec<Status> {
        let cache = HashCache::load(self.search.data_dir.as_deref());
        self.entries
            .iter()
            .map(|e| self.status(e, |p, size| cache.lookup(p, size)))
            .collect()
    }

    /// Hashes the present files (all, or the one named) and compares them with the cards.
    /// Naming a model whose file is absent is an error; absent files are otherwise listed.
    pub fn verify(&self, name: Option<&str>) -> Result<Vec<Status>, RegistryError> {
        let entries: Vec<&Entry> = match name {
            Some(n) => {
                let e = self.get_or_unknown(n)?;
                self.require(&e.card)?;
                vec![e]
            }
            None => self.entries.iter().collect(),
        };
        let mut cache = HashCache::load(self.search.data_dir.as_deref());
        let mut out = Vec::new();
        for e in entries {
            let mut failure = None;
            let status = self.status(e, |p, _| match sha256_file(p) {
                Ok(h) => {
                    cache.insert(p, &h);
                    Some(h)
                }
                Err(err) => {
                    failure = Some(err);
                    None
                }
            });
            if let Some(err) = failure {
                return Err(err);
            }
            out.push(status);
        }
        cache.save();
        Ok(out)
    }

    /// A card's state; `hash` gives the file's sha256 when it is known or can be computed.
    fn status(&self, e: &Entry, mut hash: impl FnMut(&Path, u64) -> Option<String>) -> Status {
        let card = &e.card;
        let path = self.locate(card);
        let on_disk = path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len());
        let check = match (&path, on_disk) {
            (Some(p), Some(actual)) => match (card.size, &card.sha256) {
                (Some(expected), _) if expected != actual => Check::WrongSize { expected, actual },
                (_, Some(expected)) => match hash(p, actual) {
                    Some(h) if &h == expected => Check::Verified { sha256: h },
                    Some(h) => Check::Mismatch {
                        expected: expected.clone(),
                        actual: h,
                    },
                    None => Check::NotChecked,
                },
                (_, None) => Check::NoPublishedHash {
                    sha256: hash(p, actual),
                },
            },
            _ => Check::Absent,
        };
        Status {
            name: card.name.clone(),
            file: card.file.clone(),
            path,
            size: on_disk.or(card.size),
            check,
            licence: card.licence.clone(),
            description: card.description.clone(),
            card: match &e.source {
                CardSource::File(p) => Some(p.clone()),
                CardSource::Builtin => None,
            },
        }
    }
}

/// `Registry::from_env().resolve(spec, None)`.
pub fn resolve(spec: &str) -> Result<Resolved, RegistryError> {
    Registry::from_env().resolve(spec, None)
}

/// Opens `spec` (a registry name such as `default`, or a weights file) with the process's
/// search path: what `--model NAME|PATH` calls.
pub fn open(
    spec: &str,
    arch: Option<&str>,
    device: Device,
    precision: Precision,
) -> Result<Network, RegistryError> {
    Registry::from_env().open(spec, arch, device, precision)
}

/// [`open`] for a path: a weights file (`FILE` or `FILE#ENTRY`) with an architecture
/// (`ffhq-256`, `imagenet-256`, `default` or a config JSON) or, without one, the
/// architecture found as for `--model PATH` (docs/models.md): a `.json` next to the
/// weights, a `config.json` beside them, or the card of a registered model with that file
/// name.
pub fn open_path(
    weights: &Path,
    arch: Option<&str>,
    device: Device,
    precision: Precision,
) -> Result<Network, RegistryError> {
    let spec = weights.to_str().ok_or_else(|| {
        LoadError::Other(format!("model path {} is not UTF-8", weights.display()))
    })?;
    open(spec, arch, device, precision)
}

/// A card's architecture: a named config, or a JSON file next to the weights or the card.
fn card_config(entry: &Entry, weights: &Path) -> Result<UNetConfig, RegistryError> {
    let arch = &entry.card.architecture;
    if !arch.ends_with(".json") {
        return Ok(UNetConfig::from_name_or_file(arch)?);
    }
    let tried: Vec<PathBuf> = weights
        .parent()
        .into_iter()
        .chain(entry.dir())
        .map(|d| d.join(arch))
        .collect();
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(UNetConfig::from_file(p)?),
        None => Err(LoadError::Config {
            path: PathBuf::from(arch),
            message: format!(
                "architecture file of model '{}' not found; looked at {}",
                entry.card.name,
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
    }
}

/// The weights of a model directory: the file its `card.json` names, else its only
/// weights file.
fn weights_in_dir(dir: &Path) -> Result<PathBuf, RegistryError> {
    let card_path = dir.join(CARD_FILE);
    if card_path.is_file() {
        let text = std::fs::read_to_string(&card_path).map_err(io_err(&card_path))?;
        let weights = dir.join(Card::parse(&text, &card_path)?.file);
        return match weights.is_file() {
            true => Ok(weights),
            false => Err(LoadError::NotFound(weights).into()),
        };
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_weights_file(p))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(LoadError::Other(format!(
            "{} holds no weights file (.pt, .pth, .bin or .safetensors)",
            dir.display()
        ))
        .into()),
        _ => Err(LoadError::Other(format!(
            "{} holds several weights files ({}): name one",
            dir.display(),
            found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

fn is_weights_file(p: &Path) -> bool {
    crate::model::checkpoint::Format::of(p).is_some()
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains('/')
        || spec.contains(std::path::MAIN_SEPARATOR)
        || spec.starts_with('.')
        || spec.starts_with('~')
        || is_weights_file(Path::new(spec))
}

/// `<dir>/*/card.json`, sorted so that discovery does not depend on directory order.
fn card_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(CARD_FILE))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn read_card(path: &Path) -> Result<Card, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let card = Card::parse(&text, path)?;
    let dir_name = path
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str());
    if dir_name != Some(card.name.as_str()) {
        return Err(RegistryError::Card {
            path: path.to_owned(),
            message: format!(
                "the card's name '{}' differs from its directory's name",
                card.name
            ),
        });
    }
    Ok(card)
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, RegistryError> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    sha256_reader(f).map_err(io_err(path))
}

pub(crate) fn sha256_reader(mut r: impl Read) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Hashes computed by `verify` and `fetch`, keyed by file, so that `list` can say
/// "verified" without reading gigabytes. An entry counts only while the file's size and
/// modification time are unchanged.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CachedHash>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CachedHash {
    size: u64,
    modified_ns: u128,
    sha256: String,
}

fn file_stamp(path: &Path) -> Option<(String, u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    let key = std::fs::canonicalize(path).ok()?;
    Some((
        key.to_string_lossy().into_owned(),
        meta.len(),
        modified.as_nanos(),
    ))
}

impl HashCache {
    /// Reads the cache of `data_dir`; a missing or unreadable cache is empty.
    pub(crate) fn load(data_dir: Option<&Path>) -> Self {
        let path = data_dir.map(|d| d.join(HASH_CACHE));
        let entries = path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Self { path, entries }
    }

    fn lookup(&self, file: &Path, size: u64) -> Option<String> {
        let (key, _, modified_ns) = file_stamp(file)?;
        let c = self.entries.get(&key)?;
        (c.size == size && c.modified_ns == modified_ns).then(|| c.sha256.clone())
    }

    pub(crate) fn insert(&mut self, file: &Path, sha256: &str) {
        if let Some((key, size, modified_ns)) = file_stamp(file) {
            self.entries.insert(
                key,
                CachedHash {
                    size,
                    modified_ns,
                    sha256: sha256.to_owned(),
                },
            );
        }
    }

    /// Writes the cache atomically; failures only cost a re-hash later.
    pub(crate) fn save(&self) {
        let Some(path) = &self.path else { return };
        let write = || -> io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let bytes = serde_json::to_vec_pretty(&self.entries).map_err(io::Error::other)?;
            crate::atomic::write(path, &bytes)
        };
        if let Err(e) = write() {
            log::debug!("cannot write {}: {e}", path.display());
        }
    }
}
