//! The journal: JSON lines in OUTDIR, one file per shard (`journal.jsonl`,
//! `journal-I-of-N.jsonl`), appended and synced one record at a time. A `start` record
//! lists the files of the run, a `file` record says how one ended, an `end` record closes
//! a run that was not killed. Readers skip a line that does not parse (the torn last line
//! of a process killed while writing it); the writer starts a fresh line after one.
//!
//! A run holds an exclusive `flock` on its journal for as long as it runs, so two batches
//! of the same shard on one OUTDIR cannot interleave: the second one refuses to start.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Failed,
}

/// One file's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The input as listed (command line, folder walk or manifest).
    pub input: String,
    /// Its relative path: the file's key.
    pub rel: String,
    /// The output, relative to OUTDIR.
    pub output: String,
    pub status: Status,
    /// The exit code the plain filter would have ended with (0 when done).
    pub exit_code: i32,
    /// The protocol's error code (`bad_input`, `out_of_memory`, …), when failed.
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub seconds: f64,
    pub method: String,
    /// The `--quality` preset (`normal` when none was given).
    pub preset: String,
    /// The file's own seed (derived from the batch seed and `rel`).
    pub seed: u64,
    /// The model's name or path, and the sha256 of its weights; `null` without a network.
    pub model: Option<String>,
    pub model_sha256: Option<String>,
    /// sha256 of the input bytes that were read.
    pub input_sha256: Option<String>,
    /// Size and sha256 of the output written (done only).
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// A hash of everything that decides the output's bytes: the input and mask bytes,
    /// the task, the settings, the format. A rerun redoes a file when it differs.
    pub fingerprint: Option<String>,
    /// Seconds since the Unix epoch.
    pub time: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Start {
        time: u64,
        shard: String,
        pid: u32,
        /// The relative paths of this run's files.
        files: Vec<String>,
    },
    File(Box<FileRecord>),
    End {
        time: u64,
        done: usize,
        skipped: usize,
        failed: usize,
        pending: usize,
        interrupted: bool,
    },
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The journal a run appends to, locked for the run.
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creates) and locks `path`; refuses when another process holds it.
    pub fn open(path: &Path) -> Result<Journal> {
        let io = |e: std::io::Error| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("journal '{}': {e}", path.display()),
            ))
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                    Error::Usage(format!(
                        "another batch is running on '{}' (its journal is locked); wait for \
                         it, or give this one another OUTDIR or --shard",
                        path.display()
                    ))
                } else {
                    io(e)
                });
            }
        }
        // After a torn last line, start a fresh one.
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        Ok(Journal {
            file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line and syncs it to disk.
    pub fn append(&mut self, r: &Record) -> Result<()> {
        let mut line =
            serde_json::to_vec(r).map_err(|e| Error::Internal(format!("journal record: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("writing the journal '{}': {e}", self.path.display()),
                ))
            })
    }
}

/// Whether `name` is a journal's file name.
fn is_journal(name: &str) -> bool {
    name.starts_with("journal") && name.ends_with(".jsonl")
}

/// Every journal in `outdir` with its records, by file name; the count of lines that did
/// not parse.
pub fn read_all(outdir: &Path) -> Result<(BTreeMap<String, Vec<Record>>, usize)> {
    let mut out = BTreeMap::new();
    let mut bad = 0;
    let entries = match std::fs::read_dir(outdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((out, 0)),
        Err(e) => {
            return Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!("reading '{}': {e}", outdir.display()),
            )))
        }
    };
    for e in entries {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_journal(&name) {
            continue;
        }
        let text = std::fs::read(e.path())?;
        let mut records = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => records.push(r),
                Err(_) => bad += 1,
            }
        }
        out.insert(name, records);
    }
    Ok((out, bad))
}

/// The `done` records of every journal, by relative path.
pub fn done_records(journals: &BTreeMap<String, Vec<Record>>) -> BTreeMap<String, Vec<FileRecord>> {
    let mut out: BTreeMap<String, Vec<FileRecord>> = BTreeMap::new();
    for r in journals.values().flatten() {
        if let Record::File(f) = r {
            if f.status == Status::Done {
                out.entry(f.rel.clone())
                    .or_default()
                    .push(f.as_ref().clone());
            }
        }
    }
    out
}

/// A failure in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub rel: String,
    pub exit_code: i32,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// `batch --status`: every journal of an OUTDIR merged.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub journals: Vec<String>,
    /// Files named by a run's `start` record or by a `file` record.
    pub files: usize,
    /// Whose latest record is `done` and whose output is there with its recorded size.
    pub done: usize,
    /// Whose latest record is `failed`.
    pub failed: usize,
    /// Neither: not reached yet, interrupted, or an output that went missing.
    pub pending: usize,
    /// Journal lines that did not parse (a run killed while writing one).
    pub unreadable_lines: usize,
    pub failures: Vec<Failure>,
}

/// Merges the journals of `outdir`. A file's latest record wins (by time, then by order
/// within its journal).
pub fn summary(outdir: &Path) -> Result<Summary> {
    let (journals, bad) = read_all(outdir)?;
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut latest: BTreeMap<String, (u64, usize, FileRecord)> = BTreeMap::new();
    let mut order = 0usize;
    for records in journals.values() {
        // Only the latest run's plan counts: an older run may have had other inputs.
        if let Some(Record::Start { files: f, .. }) = records
            .iter()
            .rev()
            .find(|r| matches!(r, Record::Start { .. }))
        {
            files.extend(f.iter().cloned());
        }
        for r in records {
            if let Record::File(f) = r {
                order += 1;
                files.insert(f.rel.clone());
                let newer = latest
                    .get(&f.rel)
                    .is_none_or(|(t, o, _)| (f.time, order) >= (*t, *o));
                if newer {
                    latest.insert(f.rel.clone(), (f.time, order, f.as_ref().clone()));
                }
            }
        }
    }
    let (mut done, mut failed) = (0, 0);
    let mut failures = Vec::new();
    for (_, _, f) in latest.values() {
        match f.status {
            Status::Done => {
                let present = std::fs::metadata(outdir.join(&f.output))
                    .is_ok_and(|m| Some(m.len()) == f.bytes);
                if present {
                    done += 1;
                }
            }
            Status::Failed => {
                failed += 1;
                failures.push(Failure {
                    rel: f.rel.clone(),
                    exit_code: f.exit_code,
                    error_code: f.error_code.clone(),
                    message: f.message.clone(),
                });
            }
        }
    }
    Ok(Summary {
        journals: journals.keys().cloned().collect(),
        files: files.len(),
        done,
        failed,
        pending: files.len() - done - failed,
        unreadable_lines: bad,
        failures,
    })
}
