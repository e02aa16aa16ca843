//! Reading the checkpoint files users have, unchanged.
//!
//! PyTorch writes `torch.save(obj)` in one of two containers, both holding a pickle of
//! `obj` whose tensors point at storages by key:
//!
//! - the zip format (PyTorch ≥ 1.6): `<prefix>/data.pkl` and one stored (uncompressed)
//!   entry `<prefix>/data/<key>` per storage;
//! - the legacy format (`_use_new_zipfile_serialization=False`, and every file before 1.6):
//!   four pickles in a row (magic number, protocol version, system info, `obj`), a fifth
//!   listing the storage keys, then each storage as a little-endian element count and its
//!   bytes, in the order of that list.
//!
//! LibTorch's own reader (`Tensor::loadz_multi`) accepts neither a `collections.OrderedDict`
//! (what `model.state_dict()` returns) nor the legacy format, so both are read here: the
//! pickle by a restricted unpickler ([`pickle`]), the storages by the zip crate or by
//! offset. `.safetensors` files go to the safetensors reader LibTorch's binding carries.
//!
//! Files often wrap the state dict one level down (`{"state_dict": …}`, `{"model": …,
//! "optimizer": …}`, `{"model": …, "ema": …}`). [`Checkpoint::entries`] lists every dict of
//! tensors found at the top or one level down; [`Checkpoint::select`] takes the one whose
//! names and shapes fit the architecture and refuses to guess between several. A path of
//! the form `FILE#ENTRY` picks an entry by name.
//!
//! Nothing is allocated from a size in the file before it is checked against the file:
//! storage sizes against the archive entry or the bytes left, tensor views against their
//! storage.

mod pickle;

use pickle::{Dtype, PickleError, StorageRef, TensorRef, Unpickled, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Why a checkpoint could not be read (wrapped in `LoadError::Checkpoint` with its path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("{0}")]
    Pickle(#[from] PickleError),
    #[error("truncated or damaged archive: {0}")]
    Archive(String),
    #[error("not a PyTorch checkpoint: {0}")]
    NotTorch(String),
    #[error("{0}")]
    Layout(String),
    #[error("entries {} all fit the architecture; choose one with FILE#ENTRY (e.g. {}#{})", .entries.join(", "), .file, .entries[0])]
    Ambiguous { file: String, entries: Vec<String> },
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("safetensors: {0}")]
    Safetensors(String),
}

/// One dict of tensors in a file: the state dict itself, or an entry of a wrapper.
#[derive(Debug)]
pub struct Entry {
    /// `None` for the top level; the wrapper's key otherwise.
    pub name: Option<String>,
    /// Names (with any `module.` prefix removed) and tensors, in file order.
    pub tensors: Vec<(String, TensorInfo)>,
}

impl Entry {
    /// How a message names this entry.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("'{n}'"),
            None => "the top level".into(),
        }
    }
}

/// What a tensor is without reading its data.
#[derive(Debug)]
pub struct TensorInfo {
    pub shape: Vec<i64>,
    pub kind: tch::Kind,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Pickled(TensorRef),
    /// Safetensors are read whole; the tensor is already in memory.
    Loaded(Tensor),
}

enum Container {
    Zip {
        archive: zip::ZipArchive<BufReader<File>>,
        prefix: String,
        /// The file's length, which no storage can exceed.
        len: u64,
    },
    /// Storage key → (offset of its bytes in the file, element count).
    Legacy {
        file: File,
        at: HashMap<String, (u64, u64)>,
    },
    Safetensors,
}

/// An opened checkpoint: its entries are known, no tensor data has been read yet.
pub struct Checkpoint {
    path: PathBuf,
    entries: Vec<Entry>,
    /// The `#ENTRY` part of the path, if any.
    wanted: Option<String>,
    container: Container,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Splits `FILE#ENTRY` when `FILE` is an existing file and the whole path is not.
pub fn split_entry(path: &Path) -> (PathBuf, Option<String>) {
    if !path.exists() {
        if let Some((file, entry)) = path.to_str().and_then(|s| s.rsplit_once('#')) {
            if !entry.is_empty() && Path::new(file).is_file() {
                return (PathBuf::from(file), Some(entry.to_owned()));
            }
        }
    }
    (path.to_owned(), None)
}

/// The kinds of file this reader knows, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Torch,
    Safetensors,
}

impl Format {
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "pt" | "pth" | "bin" => Some(Self::Torch),
            "safetensors" => Some(Self::Safetensors),
            _ => None,
        }
    }
}

impl Checkpoint {
    /// Opens `path` (a file, or `FILE#ENTRY`): reads the pickle and the archive directory,
    /// not the tensor data. The format is told by the file's first bytes.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let (path, wanted) = split_entry(path);
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        let mut magic = [0u8; 4];
        let got = read_up_to(&mut file, &mut magic)?;
        file.seek(SeekFrom::Start(0))?;
        let (entries, container) = if got == 4 && &magic == b"PK\x03\x04" {
            open_zip(file, len)?
        } else if got >= 2 && magic[0] == 0x80 && magic[1] <= 5 {
            open_legacy(file, len)?
        } else if Format::of(&path) == Some(Format::Safetensors) {
            drop(file);
            open_safetensors(&path)?
        } else {
            return Err(CheckpointError::NotTorch(
                "neither a zip archive, a pickle nor a .safetensors file".into(),
            ));
        };
        Ok(Self {
            path,
            entries,
            wanted,
            container,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every dict of tensors in the file.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries a choice is made among: all, or the one `#ENTRY` named.
    fn candidates(&self) -> Result<Vec<usize>, CheckpointError> {
        let Some(want) = &self.wanted else {
            return Ok((0..self.entries.len()).collect());
        };
        match self
            .entries
            .iter()
            .position(|e| e.name.as_deref() == Some(want.as_str()))
        {
            Some(i) => Ok(vec![i]),
            None => Err(CheckpointError::Layout(format!(
                "no entry '{want}' holding tensors (entries: {})",
                self.entry_names()
            ))),
        }
    }

    fn entry_names(&self) -> String {
        let names: Vec<String> = self.entries.iter().map(Entry::label).collect();
        names.join(", ")
    }

    /// The entry whose names and shapes are exactly `want`, if there is one; otherwise the
    /// only entry (so that the caller can report how it differs), or the one sharing most
    /// names when there are several. Several exact fits are an error.
    pub fn select(&self, want: &BTreeMap<String, Vec<i64>>) -> Result<usize, CheckpointError> {
        let candidates = self.candidates()?;
        let fits = |e: &Entry| {
            e.tensors.len() == want.len()
                && e.tensors
                    .iter()
                    .all(|(k, t)| want.get(k).is_some_and(|s| *s == t.shape))
        };
        let exact: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| fits(&self.entries[i]))
            .collect();
        match exact.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            many => {
                return Err(CheckpointError::Ambiguous {
                    file: self.path.display().to_string(),
                    entries: many
                        .iter()
                        .filter_map(|&i| self.entries[i].name.clone())
                        .collect(),
                })
            }
        }
        let shared = |i: &usize| {
            let e = &self.entries[*i];
            e.tensors
                .iter()
                .filter(|(k, _)| want.contains_key(k))
                .count()
        };
        candidates
            .into_iter()
            .max_by_key(shared)
            .ok_or_else(|| CheckpointError::Layout("no tensors in the file".into()))
    }

    /// The entries a path names: all of them, or the one of `FILE#ENTRY`.
    pub fn named_entries(&self) -> Result<Vec<&Entry>, CheckpointError> {
        Ok(self
            .candidates()?
            .into_iter()
            .map(|i| &self.entries[i])
            .collect())
    }

    /// Reads the tensors of entry `i` onto `device`, each contiguous.
    pub fn read(
        &mut self,
        i: usize,
        device: Device,
    ) -> Result<Vec<(String, Tensor)>, CheckpointError> {
        let entry = &self.entries[i];
        let mut storages: HashMap<std::rc::Rc<str>, Tensor> = HashMap::new();
        let mut out = Vec::with_capacity(entry.tensors.len());
        for (name, info) in &entry.tensors {
            let t = match &info.source {
                Source::Loaded(t) => t.shallow_clone(),
                Source::Pickled(r) => {
                    if !storages.contains_key(&r.storage.key) {
                        let s = read_storage(&mut self.container, &r.storage)?;
                        storages.insert(r.storage.key.clone(), s);
                    }
                    let s = &storages[&r.storage.key];
                    s.as_strided(r.size.as_slice(), r.stride.as_slice(), r.offset)
                        .contiguous()
                }
            };
            out.push((name.clone(), t.to_device(device)));
        }
        Ok(out)
    }
}

/// One storage as a 1-D tensor, its size checked against the archive first.
fn read_storage(container: &mut Container, s: &StorageRef) -> Result<Tensor, CheckpointError> {
    let bytes = s.numel.checked_mul(s.dtype.size()).ok_or_else(|| {
        CheckpointError::Archive(format!("storage {} is impossibly large", s.key))
    })?;
    let data = match container {
        Container::Zip {
            archive,
            prefix,
            len,
        } => {
            if bytes > *len {
                return Err(CheckpointError::Archive(format!(
                    "storage {} claims {bytes} bytes in a {len}-byte file",
                    s.key
                )));
            }
            let name = format!("{prefix}/data/{}", s.key);
            let mut f = archive
                .by_name(&name)
                .map_err(|e| CheckpointError::Archive(format!("storage {name}: {e}")))?;
            if f.compression() != zip::CompressionMethod::Stored {
                return Err(CheckpointError::Archive(format!(
                    "storage {name} is compressed; torch.save writes stored entries only"
                )));
            }
            if f.size() != bytes {
                return Err(CheckpointError::Archive(format!(
                    "storage {name} holds {} bytes, its tensors need {bytes}",
                    f.size()
                )));
            }
            let mut buf = vec![0u8; bytes as usize];
            f.read_exact(&mut buf)
                .map_err(|e| CheckpointError::Archive(format!("storage {name}: {e}")))?;
            // Reading to the end makes the zip reader check the CRC.
            let mut rest = Vec::new();
            f.read_to_end(&mut rest)
                .map_err(|e| CheckpointError::Archive(format!("storage {name}: {e}")))?;
            buf
        }
        Container::Legacy { file, at } => {
            let &(offset, numel) = at.get(&*s.key).ok_or_else(|| {
                CheckpointError::Archive(format!("storage {} is not in the file", s.key))
            })?;
            if numel != s.numel {
                return Err(CheckpointError::Archive(format!(
                    "storage {} holds {numel} elements, its tensors say {}",
                    s.key, s.numel
                )));
            }
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; bytes as usize];
            file.read_exact(&mut buf)
                .map_err(|e| CheckpointError::Archive(format!("storage {}: {e}", s.key)))?;
            buf
        }
        Container::Safetensors => unreachable!("safetensors tensors are loaded on open"),
    };
    Tensor::f_from_data_size(&data, &[s.numel as i64], s.dtype.kind())
        .map_err(|e| CheckpointError::Layout(format!("storage {}: {e}", s.key)))
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the file.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open_zip(file: File, len: u64) -> Result<(Vec<Entry>, Container), CheckpointError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| CheckpointError::Archive(e.to_string()))?;
    let pickles: Vec<String> = archive
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(str::to_owned)
        .collect();
    let [pkl] = pickles.as_slice() else {
        return Err(CheckpointError::NotTorch(format!(
            "a zip archive with {} data.pkl entries (PyTorch writes one)",
            pickles.len()
        )));
    };
    let prefix = pkl.trim_end_matches("/data.pkl").to_owned();
    if let Ok(mut f) = archive.by_name(&format!("{prefix}/byteorder")) {
        let mut order = String::new();
        f.by_ref().take(16).read_to_string(&mut order).ok();
        if order.trim() != "little" {
            return Err(CheckpointError::NotTorch(format!(
                "byte order '{}' (only little-endian files are read)",
                order.trim()
            )));
        }
    }
    let unpickled = {
        let f = archive
            .by_name(pkl)
            .map_err(|e| CheckpointError::Archive(e.to_string()))?;
        if f.size() > len {
            return Err(CheckpointError::Archive(format!(
                "{pkl} claims {} bytes in a {len}-byte file",
                f.size()
            )));
        }
        let budget = f.size();
        pickle::load(&mut BufReader::new(f), budget)?
    };
    let entries = entries_of(&unpickled)?;
    Ok((
        entries,
        Container::Zip {
            archive,
            prefix,
            len,
        },
    ))
}

/// Magic number of the legacy format: `0x1950a86a20f9469cfc6c`, as a pickled int.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

fn open_legacy(file: File, len: u64) -> Result<(Vec<Entry>, Container), CheckpointError> {
    let mut r = CountingReader {
        inner: BufReader::new(file),
        pos: 0,
    };
    let next = |r: &mut CountingReader| -> Result<Unpickled, CheckpointError> {
        let budget = len - r.pos;
        Ok(pickle::load(r, budget)?)
    };
    let magic = next(&mut r)?;
    if !matches!(&magic.root, Value::BigInt(b) if **b == LEGACY_MAGIC) {
        return Err(CheckpointError::NotTorch(
            "a pickle without PyTorch's magic number".into(),
        ));
    }
    let version = next(&mut r)?;
    if !matches!(version.root, Value::Int(1001)) {
        return Err(CheckpointError::NotTorch(format!(
            "legacy format version {:?} (1001 is read)",
            version.root
        )));
    }
    let info = next(&mut r)?;
    let little = info.dict(&info.root).and_then(|d| {
        d.iter().find_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Bool(b)) if &**k == "little_endian" => Some(*b),
            _ => None,
        })
    });
    if little != Some(true) {
        return Err(CheckpointError::NotTorch(
            "legacy file not written on a little-endian machine".into(),
        ));
    }
    let main = next(&mut r)?;
    let keys = next(&mut r)?;
    let keys: Vec<String> = match keys.obj(&keys.root) {
        Some(pickle::Obj::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.to_string()),
                _ => Err(CheckpointError::NotTorch(
                    "storage key list holds a non-string".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(CheckpointError::NotTorch("no storage key list".into())),
    };
    let dtypes: HashMap<&str, Dtype> = main.storages.iter().map(|s| (&*s.key, s.dtype)).collect();
    // Walk the storages, checking each header against the bytes left, without reading data.
    let mut at = HashMap::new();
    let mut pos = r.pos;
    let mut file = r.inner.into_inner();
    for key in keys {
        let dtype = *dtypes.get(key.as_str()).ok_or_else(|| {
            CheckpointError::Archive(format!("storage {key} is listed but no tensor uses it"))
        })?;
        file.seek(SeekFrom::Start(pos))?;
        let mut n = [0u8; 8];
        if read_up_to(&mut file, &mut n)? != 8 {
            return Err(CheckpointError::Archive(format!(
                "file ends before storage {key}"
            )));
        }
        let numel = u64::from_le_bytes(n);
        let bytes = numel
            .checked_mul(dtype.size())
            .filter(|&b| b <= len - pos - 8);
        let Some(bytes) = bytes else {
            return Err(CheckpointError::Archive(format!(
                "storage {key} claims {numel} elements, more than the file holds"
            )));
        };
        at.insert(key, (pos + 8, numel));
        pos += 8 + bytes;
    }
    let entries = entries_of(&main)?;
    Ok((entries, Container::Legacy { file, at }))
}

struct CountingReader {
    inner: BufReader<File>,
    pos: u64,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::BufRead for CountingReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt)
    }
}

fn open_safetensors(path: &Path) -> Result<(Vec<Entry>, Container), CheckpointError> {
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| CheckpointError::Safetensors(e.to_string()))?;
    let tensors = tensors
        .into_iter()
        .map(|(k, t)| {
            let info = TensorInfo {
                shape: t.size(),
                kind: t.kind(),
                source: Source::Loaded(t),
            };
            (strip_wrapper_prefix(k), info)
        })
        .collect();
    Ok((
        vec![Entry {
            name: None,
            tensors,
        }],
        Container::Safetensors,
    ))
}

/// `DataParallel` and `DistributedDataParallel` prefix every key with `module.`.
fn strip_wrapper_prefix(key: String) -> String {
    match key.strip_prefix("module.") {
        Some(k) => k.to_owned(),
        None => key,
    }
}

/// The dicts of tensors at the top of the pickle and one level down.
fn entries_of(u: &Unpickled) -> Result<Vec<Entry>, CheckpointError> {
    let Some(top) = u.dict(&u.root) else {
        return Err(CheckpointError::Layout(
            "the file holds no dict (a state dict or a dict wrapping one)".into(),
        ));
    };
    if let Some(tensors) = tensor_map(top)? {
        return Ok(vec![Entry {
            name: None,
            tensors,
        }]);
    }
    let mut out = Vec::new();
    for (k, v) in top {
        if let (Value::Str(name), Some(d)) = (k, u.dict(v)) {
            if let Some(tensors) = tensor_map(d)? {
                out.push(Entry {
                    name: Some(name.to_string()),
                    tensors,
                });
            }
        }
    }
    if out.is_empty() {
        let keys: Vec<String> = top
            .iter()
            .take(8)
            .map(|(k, _)| match k {
                Value::Str(s) => format!("'{s}'"),
                other => format!("{other:?}"),
            })
            .collect();
        return Err(CheckpointError::Layout(format!(
            "no dict of tensors at the top or one level down (top-level keys: {})",
            keys.join(", ")
        )));
    }
    Ok(out)
}

/// `Some` when every key is a string and every value a tensor (and there is at least one).
fn tensor_map(d: &[(Value, Value)]) -> Result<Option<Vec<(String, TensorInfo)>>, CheckpointError> {
    let mut out = Vec::with_capacity(d.len());
    let mut seen = std::collections::HashSet::new();
    for (k, v) in d {
        let (Value::Str(k), Value::Tensor(t)) = (k, v) else {
            return Ok(None);
        };
        check_view(t)?;
        let name = strip_wrapper_prefix(k.to_string());
        if !seen.insert(name.clone()) {
            return Err(CheckpointError::Layout(format!(
                "tensor {name} appears twice"
            )));
        }
        let info = TensorInfo {
            shape: t.size.clone(),
            kind: t.storage.dtype.kind(),
            source: Source::Pickled((**t).clone()),
        };
        out.push((name, info));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// A view must stay inside its storage: offset + Σ (size − 1) · stride < numel.
fn check_view(t: &TensorRef) -> Result<(), CheckpointError> {
    if t.size.contains(&0) {
        return Ok(());
    }
    let mut last = t.offset as i128;
    for (&n, &s) in t.size.iter().zip(&t.stride) {
        if s < 0 {
            return Err(CheckpointError::Layout("negative tensor stride".into()));
        }
        last += (n as i128 - 1) * s as i128;
    }
    let elements: i128 = t.size.iter().map(|&n| n as i128).product();
    if last >= t.storage.numel as i128 || elements > i64::MAX as i128 {
        return Err(CheckpointError::Layout(format!(
            "a tensor of size {:?} at offset {} reaches past its storage {} of {} elements",
            t.size, t.offset, t.storage.key, t.storage.numel
        )));
    }
    Ok(())
}
