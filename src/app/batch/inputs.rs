//! What a batch restores: files, folders (walked recursively) and manifests, each file with
//! its path relative to where it was found. That relative path names the file everywhere
//! else: in the journal, in the shard and seed hashes, and under OUTDIR.
//!
//! - A file on the command line: its name.
//! - A file found in a folder: its path below the folder. Hidden names (`.x`) are skipped,
//!   symbolic links to folders are not followed, OUTDIR is never entered. Without `--glob`
//!   only names with an image extension are taken.
//! - A manifest line: the path as written, less its root, `.` and `..` parts; relative
//!   paths are relative to the manifest's folder.

use super::glob::Glob;
use crate::error::{Error, Result};
use crate::io::Format;
use crate::protocol;
use crate::task::Task;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One file to restore.
#[derive(Clone, Debug)]
pub struct Item {
    pub input: PathBuf,
    /// `/`-separated path relative to where the input was found.
    pub rel: String,
    /// The output's path under OUTDIR (`rel`, with the extension of an explicit format).
    pub output_rel: String,
    /// The file's own mask and task (manifest lines); `None`: the command line's.
    pub mask: Option<PathBuf>,
    pub task: Option<Task>,
    /// The file's own options (manifest lines), laid over the command line's.
    pub options: protocol::Options,
}

/// A JSON manifest line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    input: PathBuf,
    #[serde(default)]
    mask: Option<PathBuf>,
    #[serde(default)]
    task: Option<Task>,
    #[serde(default)]
    options: protocol::Options,
}

/// Lists every input, in order of relative path. `format` is `--format`. Refuses (usage
/// error) two inputs with one relative path or one output path, and an output that is an
/// input.
pub fn list(
    paths: &[PathBuf],
    manifest: Option<&Path>,
    glob: Option<&Glob>,
    format: Option<Format>,
    outdir: &Path,
) -> Result<Vec<Item>> {
    let outdir_id = file_id(outdir);
    let mut items = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| Error::Input(format!("input '{}': {e}", p.display())))?;
        if meta.is_dir() {
            if outdir_id.is_some() && file_id(p) == outdir_id {
                return Err(Error::Usage(format!(
                    "OUTDIR '{}' is the input folder '{}': outputs would replace inputs; \
                     give another OUTDIR",
                    outdir.display(),
                    p.display()
                )));
            }
            walk(p, p, glob, outdir_id, &mut items)?;
        } else {
            let rel = utf8_name(p)?;
            items.push(plain(p.clone(), rel));
        }
    }
    if let Some(m) = manifest {
        read_manifest(m, &mut items)?;
    }
    for item in &mut items {
        let explicit = item.options.format.or(format);
        item.output_rel = match explicit {
            Some(f) => with_extension(&item.rel, f),
            None => item.rel.clone(),
        };
    }
    items.sort_by(|a, b| a.rel.cmp(&b.rel));
    // The same file named twice (a folder and a file in it) counts once.
    items.dedup_by(|b, a| a.rel == b.rel && same_file(&a.input, &b.input));
    let mut by_rel: BTreeMap<&str, &Item> = BTreeMap::new();
    let mut by_out: BTreeMap<&str, &Item> = BTreeMap::new();
    for item in &items {
        if let Some(other) = by_rel.insert(&item.rel, item) {
            return Err(Error::Usage(format!(
                "'{}' and '{}' have the same relative path '{}': their outputs would collide",
                other.input.display(),
                item.input.display(),
                item.rel
            )));
        }
        if let Some(other) = by_out.insert(&item.output_rel, item) {
            return Err(Error::Usage(format!(
                "'{}' and '{}' would both be written to '{}'",
                other.input.display(),
                item.input.display(),
                item.output_rel
            )));
        }
        let out = outdir.join(&item.output_rel);
        for input in std::iter::once(&item.input).chain(item.mask.as_ref()) {
            if same_file(&out, input) {
                return Err(Error::Usage(format!(
                    "the output '{}' is the input '{}': give another OUTDIR (or --format)",
                    out.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(items)
}

fn plain(input: PathBuf, rel: String) -> Item {
    Item {
        input,
        output_rel: rel.clone(),
        rel,
        mask: None,
        task: None,
        options: protocol::Options::default(),
    }
}

fn utf8_name(p: &Path) -> Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Input(format!("input '{}' has no UTF-8 file name", p.display())))
}

/// `a/b.jpg` with format png: `a/b.png`.
fn with_extension(rel: &str, f: Format) -> String {
    let ext = match f {
        Format::Jpeg => "jpg",
        Format::Pnm => "pnm",
        Format::Tiff => "tif",
        other => other.name(),
    };
    // Keep an extension that already names the format (`x.jpeg` stays `x.jpeg`).
    if Format::from_path(Path::new(rel)) == Some(f) {
        return rel.to_string();
    }
    let path = Path::new(rel);
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if path.extension().is_some() => {
            let cut = rel.len() - path.file_name().map_or(0, |n| n.len());
            format!("{}{stem}.{ext}", &rel[..cut])
        }
        _ => format!("{rel}.{ext}"),
    }
}

/// Device and inode, to recognise a folder or file however it is named.
fn file_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((file_id(a), file_id(b)), (Some(x), Some(y)) if x == y)
}

fn walk(
    root: &Path,
    dir: &Path,
    glob: Option<&Glob>,
    outdir: Option<(u64, u64)>,
    out: &mut Vec<Item>,
) -> Result<()> {
    if outdir.is_some() && file_id(dir) == outdir {
        return Ok(());
    }
    let cannot = |e: std::io::Error| Error::Input(format!("folder '{}': {e}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(cannot)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(cannot)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            log::warn!("skipping '{}': not a UTF-8 name", path.display());
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let kind = e.file_type().map_err(cannot)?;
        if kind.is_dir() {
            walk(root, &path, glob, outdir, out)?;
            continue;
        }
        // A link is taken when it leads to a file; links to folders are not followed.
        if kind.is_symlink() && !path.is_file() {
            continue;
        }
        let rel = match path.strip_prefix(root).ok().and_then(|r| r.to_str()) {
            Some(r) => r.replace(std::path::MAIN_SEPARATOR, "/"),
            None => continue,
        };
        let wanted = match glob {
            Some(g) => g.matches(&rel),
            None => Format::from_path(&path).is_some(),
        };
        if wanted {
            out.push(plain(path, rel));
        }
    }
    Ok(())
}

/// The normal parts of `p` joined by `/`: `/data/./x/../a.png` → `data/x/a.png`.
fn mirrored(p: &Path) -> Option<String> {
    let parts: Vec<&str> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_str()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn read_manifest(path: &Path, out: &mut Vec<Item>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("manifest '{}': {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new(""));
    for (i, line) in text.lines().enumerate() {
        let bad =
            |m: String| Error::Usage(format!("manifest '{}' line {}: {m}", path.display(), i + 1));
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = if line.starts_with('{') {
            serde_json::from_str::<Line>(line).map_err(|e| bad(e.to_string()))?
        } else {
            Line {
                input: PathBuf::from(line),
                mask: None,
                task: None,
                options: protocol::Options::default(),
            }
        };
        let rel = mirrored(&parsed.input)
            .ok_or_else(|| bad(format!("'{}' names no file", parsed.input.display())))?;
        out.push(Item {
            input: base.join(&parsed.input),
            output_rel: rel.clone(),
            rel,
            mask: parsed.mask.map(|m| base.join(m)),
            task: parsed.task,
            options: parsed.options,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_mirrors() {
        assert_eq!(with_extension("a/b.jpg", Format::Png), "a/b.png");
        assert_eq!(with_extension("a/b.jpeg", Format::Jpeg), "a/b.jpeg");
        assert_eq!(with_extension("a.b/c", Format::Png), "a.b/c.png");
        assert_eq!(
            mirrored(Path::new("/data/./x/../a.png")).as_deref(),
            Some("data/x/a.png")
        );
        assert_eq!(mirrored(Path::new("..")), None);
    }
}
