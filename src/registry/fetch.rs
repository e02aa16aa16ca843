//! `models fetch`: downloads a model file over HTTP(S) into a model directory.
//!
//! The bytes go to `<dir>/<name>/<file>.part`; after a dropped connection the download goes
//! on from the end of that file with `Range: bytes=N-` (RFC 9110 §14.2; a server that answers
//! 200 instead of 206 is restarted from zero). The finished file is checked against the card's
//! size and sha256 and only then renamed into place, so a model file under its real name is
//! always complete. Google Drive answers large files with a "cannot scan for viruses" page
//! whose form leads to the file; that form is followed.

use super::{io_err, sha256_reader, Card, Check, HashCache, Registry, RegistryError};
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How progress is reported (on the writer given to `fetch`, stderr for the binary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressFormat {
    /// One readable line per step and about once per `interval` while downloading.
    #[default]
    Human,
    /// The same events as JSON objects, one per line.
    Json,
    /// Nothing.
    Quiet,
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub progress: ProgressFormat,
    /// Least time between two progress lines.
    pub interval: Duration,
    /// Dropped connections tolerated per URL before giving up (the `.part` file is kept).
    pub retries: u32,
    pub connect_timeout: Duration,
    /// Longest wait for the response or for one read of the body.
    pub read_timeout: Duration,
    /// Download even when a file that passes its check is already present.
    pub force: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            progress: ProgressFormat::Human,
            interval: Duration::from_secs(1),
            retries: 8,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            force: false,
        }
    }
}

/// What `fetch` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A file that passes its card's check was already in the search path.
    AlreadyPresent { path: PathBuf },
    /// The file was downloaded to `path`; `verified` is false when the card has no sha256.
    Downloaded {
        path: PathBuf,
        bytes: u64,
        sha256: String,
        verified: bool,
    },
}

impl Registry {
    /// Downloads model `name` into `<dest_root>/<name>/<file>`; `dest_root` defaults to the
    /// user's data directory. Progress goes to `progress`.
    pub fn fetch(
        &self,
        name: &str,
        dest_root: Option<&Path>,
        opts: &FetchOptions,
        progress: &mut dyn Write,
    ) -> Result<Fetched, RegistryError> {
        let card = &self.get_or_unknown(name)?.card;
        let mut rep = Reporter::new(progress, opts, &card.name);
        let mut cache = HashCache::load(self.search.data_dir.as_deref());
        if !opts.force {
            if let Some(path) = self.locate(card) {
                let check = self.verify_one(card, &path, &mut cache)?;
                if !check.is_failure() {
                    cache.save();
                    rep.note(&format!("already present: {}", path.display()));
                    return Ok(Fetched::AlreadyPresent { path });
                }
                rep.note(&format!(
                    "{} fails its check ({check:?}); downloading again",
                    path.display()
                ));
            }
        }
        // Only a download needs URLs and a place to put the file: a model that ships with
        // the project and is present is simply "already present".
        if card.urls.is_empty() {
            return Err(RegistryError::NoUrl {
                name: card.name.clone(),
                hint: card.how_to_get(),
            });
        }
        let root = match dest_root {
            Some(r) => r.to_owned(),
            None => self
                .search
                .data_dir
                .clone()
                .ok_or(RegistryError::NoDataDir)?,
        };
        let dest = root.join(&card.name).join(&card.file);
        let fetched = download(card, &dest, opts, &mut rep)?;
        if let Fetched::Downloaded { path, sha256, .. } = &fetched {
            cache.insert(path, sha256);
            cache.save();
        }
        Ok(fetched)
    }

    /// Size and hash check of one present file (the hash cache spares re-reading it).
    fn verify_one(
        &self,
        card: &Card,
        path: &Path,
        cache: &mut HashCache,
    ) -> Result<Check, RegistryError> {
        let size = std::fs::metadata(path).map_err(io_err(path))?.len();
        if let Some(expected) = card.size {
            if expected != size {
                return Ok(Check::WrongSize {
                    expected,
                    actual: size,
                });
            }
        }
        let Some(expected) = &card.sha256 else {
            return Ok(Check::NoPublishedHash { sha256: None });
        };
        let actual = match cache.lookup(path, size) {
            Some(h) => h,
            None => {
                let h = super::sha256_file(path)?;
                cache.insert(path, &h);
                h
            }
        };
        Ok(if &actual == expected {
            Check::Verified { sha256: actual }
        } else {
            Check::Mismatch {
                expected: expected.clone(),
                actual,
            }
        })
    }
}

/// Downloads `card` to `dest` through `dest.part`, trying its URLs in order.
fn download(
    card: &Card,
    dest: &Path,
    opts: &FetchOptions,
    rep: &mut Reporter,
) -> Result<Fetched, RegistryError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let part = part_path(dest);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part)
        .map_err(io_err(&part))?;
    // Two fetches appending to one `.part` file would interleave their bytes.
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => RegistryError::Busy(part.clone()),
        std::fs::TryLockError::Error(e) => RegistryError::Io {
            path: part.clone(),
            source: e,
        },
    })?;
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .user_agent(format!("vml-filter/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let mut result = Err(RegistryError::NoUrl {
        name: card.name.clone(),
        hint: card.how_to_get(),
    });
    for (i, url) in card.urls.iter().enumerate() {
        result = get_into(&agent, url, &mut file, &part, card, opts, rep);
        match &result {
            Ok(()) => break,
            Err(e) if i + 1 < card.urls.len() => {
                rep.note(&format!("{e}; trying the next URL"));
            }
            Err(_) => {}
        }
    }
    if let Err(e) = result {
        // Keep a partial file for the next run to resume, but not an empty one.
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&part);
        }
        return Err(e);
    }

    let bytes = file.metadata().map_err(io_err(&part))?.len();
    let reject = |e: RegistryError| {
        // A complete file with the wrong content cannot be resumed into a good one.
        let _ = std::fs::remove_file(&part);
        e
    };
    if let Some(expected) = card.size {
        if bytes != expected {
            return Err(reject(RegistryError::SizeMismatch {
                name: card.name.clone(),
                path: part.clone(),
                expected,
                actual: bytes,
            }));
        }
    }
    rep.event(
        "checking sha256".into(),
        json!({"event": "verify", "model": card.name, "bytes": bytes}),
    );
    file.seek(SeekFrom::Start(0)).map_err(io_err(&part))?;
    let sha256 = sha256_reader(&mut file).map_err(io_err(&part))?;
    let verified = match &card.sha256 {
        Some(expected) if *expected != sha256 => {
            return Err(reject(RegistryError::HashMismatch {
                name: card.name.clone(),
                path: part.clone(),
                expected: expected.clone(),
                actual: sha256,
            }))
        }
        Some(_) => true,
        None => false,
    };
    file.sync_all().map_err(io_err(&part))?;
    std::fs::rename(&part, dest).map_err(io_err(dest))?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not all file systems allow it, hence no error.
        let _ = d.sync_all();
    }
    drop(file);
    let human = if verified {
        format!("done: {} (sha256 verified)", dest.display())
    } else {
        format!(
            "done: {} (no published sha256 to check; this file's is {sha256})",
            dest.display()
        )
    };
    rep.event(
        human,
        json!({"event": "done", "model": card.name, "path": dest, "bytes": bytes,
               "sha256": sha256, "verified": verified}),
    );
    Ok(Fetched::Downloaded {
        path: dest.to_owned(),
        bytes,
        sha256,
        verified,
    })
}

/// `<file>.part` next to `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    dest.with_file_name(name)
}

/// Fetches `url` into `file`, resuming from its current length. Returns once the file holds
/// the whole resource.
fn get_into(
    agent: &ureq::Agent,
    url: &str,
    file: &mut File,
    part: &Path,
    card: &Card,
    opts: &FetchOptions,
    rep: &mut Reporter,
) -> Result<(), RegistryError> {
    let mut url = url.to_owned();
    let mut pages = 0;
    let mut failures = 0;
    let hint = manual_hint(card);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let have = file.metadata().map_err(io_err(part))?.len();
        let mut req = agent.get(&url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        rep.event(
            if have > 0 {
                format!("GET {url} (resuming at {})", human_bytes(have))
            } else {
                format!("GET {url}")
            },
            json!({"event": "start", "model": card.name, "url": url, "offset": have}),
        );
        let resp = req.call().map_err(|e| network_error(&url, &e, &hint))?;
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let range = headers
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        let length = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let is_page = resp
            .body()
            .mime_type()
            .is_some_and(|m| m.eq_ignore_ascii_case("text/html"));
        // Checked before anything is truncated: a quota page must not cost a partial file.
        if status == 200 && is_page && !card.file.ends_with(".html") {
            let mut html = Vec::new();
            resp.into_body()
                .into_reader()
                .take(1 << 20)
                .read_to_end(&mut html)
                .map_err(|e| network_error(&url, &ureq::Error::Io(e), &hint))?;
            let html = String::from_utf8_lossy(&html);
            match confirm_link(&html, &url) {
                Some(next) if pages < 3 => {
                    rep.note(&format!(
                        "following the download confirmation page to {next}"
                    ));
                    url = next;
                    pages += 1;
                    continue;
                }
                _ => return Err(RegistryError::WebPage { url, hint }),
            }
        }
        let (start, total) = match (status, range) {
            (200, _) => {
                if have > 0 {
                    rep.note("the server does not resume downloads; starting over");
                    file.set_len(0).map_err(io_err(part))?;
                }
                (0, length)
            }
            (206, Some(r)) if r.start == Some(have) => (have, r.total),
            (416, r)
                if have > 0
                    && (r.and_then(|r| r.total) == Some(have) || card.size == Some(have)) =>
            {
                // The previous run got every byte but stopped before checking them.
                return Ok(());
            }
            (206 | 416, _) => {
                failures += 1;
                if failures > opts.retries {
                    return Err(RegistryError::Network {
                        url,
                        message: "the server's byte ranges do not match the partial file".into(),
                        hint,
                    });
                }
                rep.note("the server's byte range does not fit the partial file; starting over");
                file.set_len(0).map_err(io_err(part))?;
                continue;
            }
            _ => {
                return Err(RegistryError::Http { url, status, hint });
            }
        };
        if let (Some(t), Some(expected)) = (total, card.size) {
            if t != expected {
                return Err(RegistryError::SizeMismatch {
                    name: card.name.clone(),
                    path: PathBuf::from(&url),
                    expected,
                    actual: t,
                });
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(part))?;
        let mut reader = resp.into_body().into_reader();
        let mut done = start;
        let outcome = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    file.write_all(&buf[..n]).map_err(io_err(part))?;
                    done += n as u64;
                    rep.progress(done, total, false);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.to_string()),
            }
        };
        let reason = match (outcome, total) {
            (Ok(()), Some(t)) if done != t => {
                format!("connection closed at {done} of {t} bytes")
            }
            (Ok(()), _) => {
                rep.progress(done, total, true);
                return Ok(());
            }
            (Err(e), _) => e,
        };
        failures += 1;
        if failures > opts.retries {
            return Err(RegistryError::Network {
                url,
                message: format!(
                    "{reason}; gave up after {failures} attempts (the partial file {} is kept: run the same command again to resume)",
                    part.display()
                ),
                hint,
            });
        }
        rep.event(
            format!(
                "connection lost at {} ({reason}); resuming, attempt {} of {}",
                human_bytes(done),
                failures + 1,
                opts.retries + 1
            ),
            json!({"event": "retry", "model": card.name, "bytes": done, "total": total,
                   "attempt": failures + 1, "reason": reason}),
        );
    }
}

fn manual_hint(card: &Card) -> String {
    let by_hand = card.manual_download.as_deref().unwrap_or(
        "download it by hand and put it in a model directory (see `vml-filter models path`)",
    );
    format!("Is this machine online? (A proxy is taken from HTTPS_PROXY or ALL_PROXY.) Otherwise: {by_hand}")
}

fn network_error(url: &str, e: &ureq::Error, hint: &str) -> RegistryError {
    let message = match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ureq::Error::HostNotFound => "host not found (no network, or no DNS)".to_owned(),
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    };
    RegistryError::Network {
        url: url.to_owned(),
        message,
        hint: hint.to_owned(),
    }
}

/// A parsed `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL` on a 416).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: Option<u64>,
    pub total: Option<u64>,
}

pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match span.trim() {
        "*" => None,
        s => Some(s.split_once('-')?.0.trim().parse().ok()?),
    };
    Some(ContentRange { start, total })
}

/// The link behind a download confirmation page: the `download-form` (or any form whose
/// action mentions "download") with its hidden inputs as the query, else the first link
/// carrying `confirm=`. Relative targets are taken against `base`.
pub fn confirm_link(html: &str, base: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<form") {
        let at = from + i;
        let tag_end = at + lower[at..].find('>')?;
        let tag = &html[at..tag_end];
        let body_end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |j| tag_end + j);
        from = tag_end;
        let action = attr(tag, "action").unwrap_or_default();
        let is_download = attr(tag, "id").as_deref() == Some("download-form")
            || action.to_ascii_lowercase().contains("download");
        if !is_download || action.is_empty() {
            continue;
        }
        let mut query = Vec::new();
        let inner = &html[tag_end..body_end];
        let inner_lower = &lower[tag_end..body_end];
        let mut k = 0;
        while let Some(j) = inner_lower[k..].find("<input") {
            let s = k + j;
            let e = inner_lower[s..].find('>').map_or(inner.len(), |x| s + x);
            let input = &inner[s..e];
            k = e;
            let kind = attr(input, "type").unwrap_or_default().to_ascii_lowercase();
            if kind == "submit" || kind == "button" {
                continue;
            }
            if let Some(name) = attr(input, "name") {
                let value = attr(input, "value").unwrap_or_default();
                query.push(format!(
                    "{}={}",
                    percent_encode(&name),
                    percent_encode(&value)
                ));
            }
        }
        let target = absolute(&action, base)?;
        let sep = if target.contains('?') { '&' } else { '?' };
        return Some(if query.is_empty() {
            target
        } else {
            format!("{target}{sep}{}", query.join("&"))
        });
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find("href=") {
        let at = from + i;
        from = at + 5;
        let Some(href) = quoted(&html[at + 5..]) else {
            continue;
        };
        if href.contains("confirm=") {
            return absolute(&href, base);
        }
    }
    None
}

/// The decoded value of attribute `name` in a tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let pat = format!("{name}=");
    let mut from = 0;
    while let Some(i) = lower[from..].find(&pat) {
        let at = from + i;
        from = at + pat.len();
        // Skip matches inside longer names (`data-id=` when looking for `id=`).
        let prev = lower[..at].chars().last();
        if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        return quoted(&tag[from..]);
    }
    None
}

/// The text of a quoted (or bare) attribute value, with the common entities decoded.
fn quoted(s: &str) -> Option<String> {
    let s = s.trim_start();
    let raw = match s.chars().next()? {
        q @ ('"' | '\'') => &s[1..][..s[1..].find(q)?],
        _ => {
            &s[..s
                .find(|c: char| c.is_whitespace() || c == '>')
                .unwrap_or(s.len())]
        }
    };
    Some(
        raw.replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

/// `target` (a link or form action on the page at `base`) as an absolute URL, by RFC 3986
/// reference resolution: query-only links keep the base's path, `../` climbs.
fn absolute(target: &str, base: &str) -> Option<String> {
    let joined = url::Url::parse(base).ok()?.join(target).ok()?;
    matches!(joined.scheme(), "http" | "https").then(|| joined.into())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// "1.5 MiB" and the like.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Progress lines, throttled to one per `interval` while bytes flow.
struct Reporter<'a> {
    out: &'a mut dyn Write,
    format: ProgressFormat,
    name: String,
    interval: Duration,
    last: Option<Instant>,
    /// When and at which byte count this process began receiving, for the rate.
    first: Option<(Instant, u64)>,
}

impl<'a> Reporter<'a> {
    fn new(out: &'a mut dyn Write, opts: &FetchOptions, name: &str) -> Self {
        Self {
            out,
            format: opts.progress,
            name: name.to_owned(),
            interval: opts.interval,
            last: None,
            first: None,
        }
    }

    fn event(&mut self, human: String, json: serde_json::Value) {
        // A closed stderr must not stop a download; progress is advisory.
        let _ = match self.format {
            ProgressFormat::Quiet => Ok(()),
            ProgressFormat::Human => writeln!(self.out, "fetch {}: {human}", self.name),
            ProgressFormat::Json => writeln!(self.out, "{json}"),
        };
        let _ = self.out.flush();
    }

    fn note(&mut self, message: &str) {
        let name = self.name.clone();
        self.event(
            message.to_owned(),
            json!({"event": "note", "model": name, "message": message}),
        );
    }

    fn progress(&mut self, bytes: u64, total: Option<u64>, last: bool) {
        let now = Instant::now();
        let (t0, b0) = *self.first.get_or_insert((now, bytes));
        if !last
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(t0).as_secs_f64().max(1e-3);
        let human = match total {
            Some(t) if t > 0 => format!(
                "{} / {} ({:.1}%)",
                human_bytes(bytes),
                human_bytes(t),
                100.0 * bytes as f64 / t as f64
            ),
            _ => human_bytes(bytes),
        };
        let name = self.name.clone();
        self.event(
            format!(
                "{human}, {}/s",
                human_bytes((bytes.saturating_sub(b0) as f64 / secs) as u64)
            ),
            json!({"event": "progress", "model": name, "bytes": bytes, "total": total}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::absolute;

    #[test]
    fn links_resolve_against_the_page() {
        let base = "https://host.example/uc?id=abc&export=download";
        let cases = [
            (
                "?confirm=t&id=abc",
                "https://host.example/uc?confirm=t&id=abc",
            ),
            ("/download?id=1", "https://host.example/download?id=1"),
            ("//other.example/f", "https://other.example/f"),
            ("http://x.example/a", "http://x.example/a"),
        ];
        for (link, want) in cases {
            assert_eq!(absolute(link, base).as_deref(), Some(want), "{link}");
        }
        let deep = "http://h.example/a/b/page.html";
        assert_eq!(
            absolute("../f.bin", deep).as_deref(),
            Some("http://h.example/a/f.bin")
        );
        assert_eq!(
            absolute("f.bin", deep).as_deref(),
            Some("http://h.example/a/b/f.bin")
        );
        assert_eq!(absolute("javascript:alert(1)", deep), None);
    }
}
