//! The one atomic file write: a temporary file in the destination's folder, renamed over
//! the destination only once everything is written and synced. Used for every file the
//! program writes (restored images, training checkpoints and logs, the registry's hash
//! cache), through `io::write_atomic` where a `crate::Error` is wanted. At the bottom of the
//! module graph: it knows nothing but the file system.

use std::io::{Error, Write};
use std::path::Path;

/// Writes `path` through `write`, which gets the open temporary file and its path (for
/// libraries that only write to a path, which then replace its content in place). Returns
/// `Ok(false)` when `cancelled` says so just before the rename; on that and on any failure
/// the temporary file is removed and `path` is left as it was. Errors name the path.
pub fn write_with(
    path: &Path,
    cancelled: &dyn Fn() -> bool,
    write: impl FnOnce(&mut std::fs::File, &Path) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".vml-filter-").suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The umask still applies, so the file ends up as a plain `File::create` would.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        Error::new(
            e.kind(),
            format!("cannot create a file in '{}': {e}", dir.display()),
        )
    })?;
    let tmp_path = tmp.path().to_owned();
    let written = write(tmp.as_file_mut(), &tmp_path).and_then(|()| {
        let f = tmp.as_file_mut();
        f.flush()?;
        f.sync_all()
    });
    written.map_err(|e| Error::new(e.kind(), format!("writing '{}': {e}", path.display())))?;
    if cancelled() {
        return Ok(false);
    }
    tmp.persist(path).map_err(|e| {
        Error::new(
            e.error.kind(),
            format!("renaming onto '{}': {}", path.display(), e.error),
        )
    })?;
    Ok(true)
}

/// [`write_with`] for bytes already in memory.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, &|| false, |f, _| f.write_all(bytes)).map(|_| ())
}
