//! Model registry: cards, search path order, resolve/open, missing-file errors, `fetch`
//! against an HTTP server on 127.0.0.1 started here (Range, cut connections, wrong bytes,
//! confirmation pages, a refused port), `verify` and `list`.

use clap::Parser;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tch::{Device, Kind, Tensor};
use vml::app::models::{run_with, ModelsArgs};
use vml::model::{LoadError, Precision, UNetConfig};
use vml::registry::fetch::{
    confirm_link, parse_content_range, part_path, ContentRange, FetchOptions, Fetched,
    ProgressFormat,
};
use vml::registry::{
    sha256_file, Card, CardSource, Check, Environment, Origin, Registry, RegistryError, SearchDir,
    SearchPath,
};

// ---------------------------------------------------------------- helpers

fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn hex_sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn card(name: &str, file: &str, urls: Vec<String>, sha: Option<String>, size: Option<u64>) -> Card {
    Card {
        name: name.into(),
        description: format!("test model {name}"),
        file: file.into(),
        urls,
        sha256: sha,
        sha256_note: None,
        size,
        architecture: "config.json".into(),
        licence: "test".into(),
        homepage: None,
        manual_download: Some("ask the test".into()),
    }
}

fn write_card(root: &Path, c: &Card) {
    let dir = root.join(&c.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("card.json"),
        serde_json::to_string_pretty(c).unwrap(),
    )
    .unwrap();
}

fn dir(path: &Path, origin: Origin) -> SearchDir {
    SearchDir {
        path: path.to_owned(),
        origin,
    }
}

/// A registry over `roots` (in order) with `data` as the user data directory (searched
/// after the roots, as from the environment).
fn registry(roots: &[&Path], data: &Path) -> Registry {
    let mut dirs: Vec<SearchDir> = roots.iter().map(|r| dir(r, Origin::Env)).collect();
    dirs.push(dir(data, Origin::UserData));
    Registry::new(SearchPath::new(dirs, Some(data.to_owned())))
}

fn quiet() -> FetchOptions {
    FetchOptions {
        progress: ProgressFormat::Json,
        interval: Duration::ZERO,
        retries: 3,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        force: false,
    }
}

fn json_events(progress: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(progress)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn events_named(evs: &[serde_json::Value], name: &str) -> usize {
    evs.iter().filter(|e| e["event"] == name).count()
}

// ---------------------------------------------------------------- test server

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 with fixed routes; every response closes the
/// connection. Stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

struct Routes {
    good: Vec<u8>,
    wrong: Vec<u8>,
    cuts: AtomicUsize,
}

impl Server {
    fn start(good: Vec<u8>, wrong: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let routes = Routes {
            good,
            wrong,
            cuts: AtomicUsize::new(0),
        };
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: a test makes a handful of requests.
            for conn in listener.incoming().take(200) {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                if let Some(req) = read_request(&mut s) {
                    seen2.lock().unwrap().push(req.clone());
                    respond(&routes, &req, &mut s, addr);
                }
            }
        });
        Self {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_owned());
            }
        }
    }
    Some(Seen { path, range })
}

fn range_start(range: &Option<String>) -> Option<usize> {
    range
        .as_deref()?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

fn send(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

/// Serves `data` honouring `Range: bytes=N-`.
fn serve_ranged(s: &mut TcpStream, data: &[u8], range: &Option<String>) {
    let octet = ("Content-Type", "application/octet-stream".to_string());
    match range_start(range) {
        Some(start) if start >= data.len() => send(
            s,
            "416 Range Not Satisfiable",
            &[("Content-Range", format!("bytes */{}", data.len()))],
            b"",
        ),
        Some(start) => send(
            s,
            "206 Partial Content",
            &[
                octet,
                ("Content-Length", (data.len() - start).to_string()),
                (
                    "Content-Range",
                    format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
                ),
            ],
            &data[start..],
        ),
        None => send(
            s,
            "200 OK",
            &[octet, ("Content-Length", data.len().to_string())],
            data,
        ),
    }
}

fn respond(routes: &Routes, req: &Seen, s: &mut TcpStream, addr: SocketAddr) {
    let path = req.path.split('?').next().unwrap_or("");
    let html = ("Content-Type", "text/html; charset=utf-8".to_string());
    match path {
        "/file.bin" => serve_ranged(s, &routes.good, &req.range),
        "/wrong.bin" => serve_ranged(s, &routes.wrong, &req.range),
        "/norange.bin" => serve_ranged(s, &routes.good, &None),
        // The first plain GET announces the whole file, sends half and hangs up.
        "/cut.bin" if req.range.is_none() && routes.cuts.fetch_add(1, Ordering::SeqCst) == 0 => {
            let half = routes.good.len() / 2;
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                routes.good.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&routes.good[..half]);
            let _ = s.flush();
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        "/cut.bin" => serve_ranged(s, &routes.good, &req.range),
        // Every answer is cut after 1000 bytes.
        "/alwayscut.bin" => {
            let start = range_start(&req.range).unwrap_or(0);
            let rest = &routes.good[start..];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
                rest.len(),
                routes.good.len() - 1,
                routes.good.len()
            );
            let status_line = if req.range.is_none() {
                head.replacen("206 Partial Content", "200 OK", 1)
            } else {
                head
            };
            let _ = s.write_all(status_line.as_bytes());
            let _ = s.write_all(&rest[..rest.len().min(1000)]);
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        // A Google-Drive-like "cannot scan this file" page; its form leads to the file.
        "/confirm" => {
            let page = format!(
                r#"<!DOCTYPE html><html><body><p>File is too large to scan.</p>
                <form id="download-form" action="http://{addr}/file.bin" method="get">
                <input type="submit" id="uc-download-link" value="Download anyway"/>
                <input type="hidden" name="id" value="abc&amp;1"><input type="hidden" name="confirm" value="t">
                </form></body></html>"#
            );
            send(
                s,
                "200 OK",
                &[html, ("Content-Length", page.len().to_string())],
                page.as_bytes(),
            );
        }
        // A download page whose link is query-only: it resolves to this same path.
        "/uc" if req.path.contains("confirm=") => serve_ranged(s, &routes.good, &req.range),
        "/uc" => {
            let page = r#"<html><body><a id="uc-download-link" href="?confirm=t&amp;id=abc">Download anyway</a></body></html>"#;
            send(
                s,
                "200 OK",
                &[html, ("Content-Length", page.len().to_string())],
                page.as_bytes(),
            );
        }
        "/quota" => {
            let page = "<html><body>Too many users have viewed or downloaded this file recently.</body></html>";
            send(
                s,
                "200 OK",
                &[html, ("Content-Length", page.len().to_string())],
                page.as_bytes(),
            );
        }
        _ => send(s, "404 Not Found", &[("Content-Length", "0".into())], b""),
    }
}

/// A loopback port with nothing listening.
fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/file.bin")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    cards: PathBuf,
    good: Vec<u8>,
    server: Server,
}

/// A server, a card directory and an empty user data directory.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cards = tmp.path().join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    let good = payload(300_000, 7);
    let mut wrong = good.clone();
    wrong[123_456] ^= 0x40;
    let server = Server::start(good.clone(), wrong);
    Fixture {
        _tmp: tmp,
        data,
        cards,
        good,
        server,
    }
}

impl Fixture {
    /// Registers model `name` downloading from `paths` on the test server.
    fn model(&self, name: &str, paths: &[&str], sized: bool) -> Card {
        let urls = paths.iter().map(|p| self.server.url(p)).collect();
        let c = card(
            name,
            &format!("{name}.pt"),
            urls,
            Some(hex_sha(&self.good)),
            sized.then_some(self.good.len() as u64),
        );
        write_card(&self.cards, &c);
        c
    }

    fn registry(&self) -> Registry {
        registry(&[&self.cards], &self.data)
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.data.join(name).join(format!("{name}.pt"))
    }
}

// ---------------------------------------------------------------- cards

#[test]
fn shipped_cards_parse_and_are_compiled_in() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["default", "ffhq-256", "imagenet-256"] {
        let path = root.join(name).join("card.json");
        let c = Card::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(c.name, name);
        assert!(!c.licence.is_empty() && !c.description.is_empty());
        // The default model's README is its full model card, written with the weights.
        if name != "default" {
            assert!(root.join(name).join("README.md").is_file(), "{name} README");
        }
    }
    // An empty search path still knows the three models, from the binary.
    let reg = Registry::new(SearchPath::default());
    let names: Vec<&str> = reg.entries().iter().map(|e| e.card.name.as_str()).collect();
    assert_eq!(names, ["default", "ffhq-256", "imagenet-256"]);
    assert!(reg
        .entries()
        .iter()
        .all(|e| e.source == CardSource::Builtin));
    assert!(reg.problems().is_empty(), "{:?}", reg.problems());
    let imagenet = &reg.get("imagenet-256").unwrap().card;
    assert_eq!(imagenet.file, "256x256_diffusion_uncond.pt");
    assert_eq!(
        imagenet.sha256.as_deref(),
        Some("a37c32fffd316cd494cf3f35b339936debdc1576dad13fe57c42399a5dbc78b1")
    );
    assert_eq!(imagenet.size, Some(2_211_383_297));
    assert_eq!(
        UNetConfig::from_name_or_file(&imagenet.architecture).unwrap(),
        UNetConfig::imagenet_256_uncond()
    );
    let ffhq = &reg.get("ffhq-256").unwrap().card;
    assert_eq!(ffhq.file, "ffhq_10m.pt");
    assert_eq!(ffhq.sha256, None);
    assert!(ffhq.urls[0].contains("1BGwhRWUoguF-D8wlZ65tf227gp3cDUDh"));
    assert_eq!(
        UNetConfig::from_name_or_file(&ffhq.architecture).unwrap(),
        UNetConfig::ffhq_256()
    );
    assert!(reg.get("default").unwrap().card.urls.is_empty());
}

#[test]
fn bad_cards_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let mut c = card("evil", "../../etc/passwd", vec![], None, None);
    write_card(r, &c);
    c = card("misnamed", "m.pt", vec![], None, None);
    write_card(r, &c);
    std::fs::rename(r.join("misnamed"), r.join("other")).unwrap();
    write_card(r, &card("fine", "f.pt", vec![], Some("A".repeat(64)), None));
    std::fs::create_dir_all(r.join("broken")).unwrap();
    std::fs::write(r.join("broken/card.json"), "{ not json").unwrap();
    let reg = registry(&[r], &r.join("data"));
    assert_eq!(reg.problems().len(), 3, "{:?}", reg.problems());
    assert!(reg.get("evil").is_none() && reg.get("misnamed").is_none());
    // Hashes are normalised to lower case.
    assert_eq!(reg.get("fine").unwrap().card.sha256, Some("a".repeat(64)));
    let bad_hash = r#"{"name":"x","description":"","file":"x.pt","sha256":"zz","architecture":"default","licence":""}"#;
    assert!(Card::parse(bad_hash, Path::new("x")).is_err());
    let bad_url = r#"{"name":"x","description":"","file":"x.pt","urls":["ftp://a"],"sha256":null,"architecture":"default","licence":""}"#;
    assert!(Card::parse(bad_url, Path::new("x")).is_err());
    let unknown_field = r#"{"name":"x","description":"","file":"x.pt","sha256":null,"architecture":"default","licence":"","shasum":"a"}"#;
    assert!(Card::parse(unknown_field, Path::new("x")).is_err());
}

// ---------------------------------------------------------------- search path

#[test]
fn search_path_order_from_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let exe_dir = t.join("inst/bin");
    std::fs::create_dir_all(exe_dir.join("models")).unwrap();
    std::fs::create_dir_all(t.join("inst/share/vml-filter/models")).unwrap();
    std::fs::create_dir_all(t.join("src/models")).unwrap();
    let env = Environment {
        vml_models: Some(format!("{}:{}::", t.join("a").display(), t.join("b").display()).into()),
        xdg_data_home: Some(t.join("xdg").into()),
        home: Some(t.join("home").into()),
        source_models: Some(t.join("src/models")),
        exe: Some(exe_dir.join("vml-filter")),
    };
    let sp = SearchPath::from_environment(&env);
    let got: Vec<(PathBuf, Origin)> = sp.dirs.iter().map(|d| (d.path.clone(), d.origin)).collect();
    assert_eq!(
        got,
        vec![
            (t.join("a"), Origin::Env),
            (t.join("b"), Origin::Env),
            (t.join("xdg/vml-filter/models"), Origin::UserData),
            (t.join("src/models"), Origin::Source),
            (exe_dir.join("models"), Origin::Installed),
            (
                exe_dir.join("../share/vml-filter/models"),
                Origin::Installed
            ),
        ]
    );
    assert_eq!(sp.data_dir, Some(t.join("xdg/vml-filter/models")));

    // A relative XDG_DATA_HOME is invalid by the spec: HOME is used. Installed directories
    // that do not exist are left out.
    let env2 = Environment {
        vml_models: None,
        xdg_data_home: Some("relative/dir".into()),
        home: Some(t.join("home").into()),
        source_models: None,
        exe: Some(t.join("nowhere/vml-filter")),
    };
    let sp2 = SearchPath::from_environment(&env2);
    assert_eq!(
        sp2.data_dir,
        Some(t.join("home/.local/share/vml-filter/models"))
    );
    assert_eq!(sp2.dirs.len(), 1);

    // Neither HOME nor XDG_DATA_HOME: no data dir, and fetch says what to do.
    let sp3 = SearchPath::from_environment(&Environment::default());
    assert!(sp3.dirs.is_empty() && sp3.data_dir.is_none());
    let err = Registry::new(sp3)
        .fetch("imagenet-256", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoDataDir), "{err}");

    // The same directory twice (VML_MODELS = the data dir) is searched once.
    let data = t.join("xdg/vml-filter/models");
    std::fs::create_dir_all(&data).unwrap();
    let env4 = Environment {
        vml_models: Some(data.clone().into()),
        xdg_data_home: Some(t.join("xdg").into()),
        ..Environment::default()
    };
    let sp4 = SearchPath::from_environment(&env4);
    assert_eq!(sp4.dirs, vec![dir(&data, Origin::Env)]);
}

/// Run in a child process by `search_path_follows_process_environment`, so that no test
/// changes the environment of the others.
#[test]
#[ignore]
fn env_probe() {
    let sp = SearchPath::from_env();
    let dirs: Vec<String> = sp
        .dirs
        .iter()
        .map(|d| format!("{}|{:?}", d.path.display(), d.origin))
        .collect();
    println!("PROBE {}", serde_json::to_string(&dirs).unwrap());
}

#[test]
fn search_path_follows_process_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "env_probe",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VML_MODELS", format!("{}:{}", a.display(), b.display()))
        .env("XDG_DATA_HOME", tmp.path().join("xdg"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PROBE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no probe output: {stdout}"));
    let dirs: Vec<String> = serde_json::from_str(line).unwrap();
    assert_eq!(dirs[0], format!("{}|Env", a.display()));
    assert_eq!(dirs[1], format!("{}|Env", b.display()));
    assert_eq!(
        dirs[2],
        format!(
            "{}|UserData",
            tmp.path().join("xdg/vml-filter/models").display()
        )
    );
    // The source tree's models/ exists while the tests run.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    assert_eq!(dirs[3], format!("{}|Source", source.display()));
}

#[test]
fn first_directory_wins_and_named_subdirectory_before_flat_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, data) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("d"),
    );
    for d in [&a, &b, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    let c = card("m", "m.pt", vec![], None, None);
    write_card(&b, &c);
    // In b: both the flat file and the one in b/m/; in data: another copy.
    std::fs::write(b.join("m.pt"), b"flat").unwrap();
    std::fs::write(b.join("m/m.pt"), b"named").unwrap();
    std::fs::create_dir_all(data.join("m")).unwrap();
    std::fs::write(data.join("m/m.pt"), b"data").unwrap();
    let reg = registry(&[&a, &b], &data);
    let cands = reg.candidates(&reg.get("m").unwrap().card);
    assert_eq!(
        cands,
        vec![
            a.join("m/m.pt"),
            a.join("m.pt"),
            b.join("m/m.pt"),
            b.join("m.pt"),
            data.join("m/m.pt"),
            data.join("m.pt")
        ]
    );
    assert_eq!(
        reg.locate(&reg.get("m").unwrap().card),
        Some(b.join("m/m.pt"))
    );
    // A flat file in an earlier directory beats a later directory.
    std::fs::write(a.join("m.pt"), b"first").unwrap();
    assert_eq!(
        reg.locate(&reg.get("m").unwrap().card),
        Some(a.join("m.pt"))
    );

    // A card on disk overrides the built-in card of the same name.
    let mine = card("imagenet-256", "my-imagenet.pt", vec![], None, None);
    write_card(&a, &mine);
    let reg = registry(&[&a, &b], &data);
    let e = reg.get("imagenet-256").unwrap();
    assert_eq!(e.card.file, "my-imagenet.pt");
    assert_eq!(e.source, CardSource::File(a.join("imagenet-256/card.json")));
}

// ---------------------------------------------------------------- resolve / open

#[test]
fn missing_models_say_where_they_looked_and_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, data) = (tmp.path().join("a"), tmp.path().join("data"));
    let reg = registry(&[&a], &data);

    let err = reg.resolve("ffhq-256", None).unwrap_err();
    let RegistryError::NotInstalled { name, searched, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(name, "ffhq-256");
    assert_eq!(searched[0], a.join("ffhq-256/ffhq_10m.pt"));
    assert!(searched.contains(&data.join("ffhq-256/ffhq_10m.pt")));
    let msg = err.to_string();
    assert!(msg.contains("vml-filter models fetch ffhq-256"), "{msg}");
    assert!(
        msg.contains(&a.join("ffhq-256/ffhq_10m.pt").display().to_string()),
        "{msg}"
    );
    assert_eq!(vml::Error::from(err).exit_code(), vml::error::exit::MODEL);

    // The default model has no URL: the message says it ships with the project.
    let msg = reg.resolve("default", None).unwrap_err().to_string();
    assert!(
        msg.contains("part of the project") && !msg.contains("models fetch"),
        "{msg}"
    );
    let err = reg
        .fetch("default", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoUrl { .. }), "{err}");

    let err = reg.resolve("nonesuch", None).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unknown { known, .. } if known.len() == 3),
        "{err:?}"
    );
    assert!(err.to_string().contains("imagenet-256"));
    let err = reg.resolve("./nope.pt", None).unwrap_err();
    assert!(
        matches!(err, RegistryError::Load(LoadError::NotFound(_))),
        "{err:?}"
    );
    let err = reg.verify(Some("imagenet-256")).unwrap_err();
    assert!(matches!(err, RegistryError::NotInstalled { .. }), "{err}");
}

/// A registry directory holding the parity fixture `legacy_convres` as model `tiny`.
fn tiny_model(root: &Path) -> PathBuf {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/legacy_convres");
    let d = root.join("tiny");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(fx.join("model.pt"), d.join("tiny.pt")).unwrap();
    std::fs::copy(fx.join("config.json"), d.join("config.json")).unwrap();
    let mut c = card("tiny", "tiny.pt", vec![], None, None);
    c.sha256 = Some(sha256_file(&d.join("tiny.pt")).unwrap());
    write_card(root, &c);
    fx
}

#[test]
fn resolve_and_open_by_name_and_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("models");
    let fx = tiny_model(&root);
    let reg = registry(&[&root], &tmp.path().join("data"));
    let want_cfg = UNetConfig::from_file(&fx.join("config.json")).unwrap();

    let r = reg.resolve("tiny", None).unwrap();
    assert_eq!(r.name.as_deref(), Some("tiny"));
    assert_eq!(r.weights, root.join("tiny/tiny.pt"));
    assert_eq!(r.config, want_cfg);

    // The network opened by name computes the reference output.
    let net = reg
        .open("tiny", None, Device::Cpu, Precision::Fp32)
        .unwrap();
    let x = Tensor::read_npy(fx.join("x.npy")).unwrap();
    let want = Tensor::read_npy(fx.join("out_t10.npy")).unwrap();
    let t = Tensor::full([x.size()[0]], 10.0, (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| net.forward(&x, &t));
    let rel = (&y - &want).norm().double_value(&[]) / want.norm().double_value(&[]);
    assert!(rel < 1e-4, "relative error {rel}");

    // By path: the config next to the file; an explicit --arch wins.
    let p = root.join("tiny/tiny.pt");
    let r = reg.resolve(p.to_str().unwrap(), None).unwrap();
    assert_eq!((r.name.as_deref(), &r.config), (Some("tiny"), &want_cfg));
    let r = reg.resolve(p.to_str().unwrap(), Some("ffhq-256")).unwrap();
    assert_eq!(r.config, UNetConfig::ffhq_256());

    // A copy elsewhere under the card's file name takes the card's architecture (the card
    // directory's config.json); under another name, with no config, it is an error.
    let elsewhere = tmp.path().join("x");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(&p, elsewhere.join("tiny.pt")).unwrap();
    let r = reg
        .resolve(elsewhere.join("tiny.pt").to_str().unwrap(), None)
        .unwrap();
    assert_eq!(r.config, want_cfg);
    std::fs::copy(&p, elsewhere.join("other.pt")).unwrap();
    let err = reg
        .resolve(elsewhere.join("other.pt").to_str().unwrap(), None)
        .unwrap_err();
    assert!(err.to_string().contains("--arch"), "{err}");

    // A model directory: the file its card names, or its only weights file.
    let r = reg
        .resolve(root.join("tiny").to_str().unwrap(), None)
        .unwrap();
    assert_eq!((&r.weights, &r.config), (&p, &want_cfg));
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(&p, run.join("ema.pt")).unwrap();
    std::fs::copy(fx.join("config.json"), run.join("config.json")).unwrap();
    std::fs::write(run.join("loss.csv"), "step,loss\n").unwrap();
    let r = reg.resolve(run.to_str().unwrap(), None).unwrap();
    assert_eq!(
        (r.weights, r.config, r.name),
        (run.join("ema.pt"), want_cfg.clone(), None)
    );
    std::fs::copy(&p, run.join("state.pt")).unwrap();
    let err = reg.resolve(run.to_str().unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("ema.pt, state.pt"), "{err}");

    // A card whose config file is nowhere: a config error naming the places tried.
    std::fs::remove_file(root.join("tiny/config.json")).unwrap();
    let err = reg.resolve("tiny", None).unwrap_err();
    assert!(
        matches!(err, RegistryError::Load(LoadError::Config { .. })),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- fetch

#[test]
fn fetch_downloads_verifies_and_renames() {
    let f = fixture();
    f.model("good", &["/file.bin"], true);
    let reg = f.registry();
    let mut progress = Vec::new();
    let got = reg.fetch("good", None, &quiet(), &mut progress).unwrap();
    let dest = f.dest("good");
    assert_eq!(
        got,
        Fetched::Downloaded {
            path: dest.clone(),
            bytes: f.good.len() as u64,
            sha256: hex_sha(&f.good),
            verified: true
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), f.good);
    assert!(!part_path(&dest).exists());
    let evs = json_events(&progress);
    assert_eq!(events_named(&evs, "start"), 1);
    assert!(events_named(&evs, "progress") >= 1);
    assert_eq!(events_named(&evs, "done"), 1);
    let last_progress = evs.iter().rev().find(|e| e["event"] == "progress").unwrap();
    assert_eq!(last_progress["bytes"], f.good.len() as u64);
    assert_eq!(last_progress["total"], f.good.len() as u64);

    // Now present and verified: fetch does not download again, list says verified.
    let n = f.server.seen().len();
    let again = reg.fetch("good", None, &quiet(), &mut Vec::new()).unwrap();
    assert_eq!(again, Fetched::AlreadyPresent { path: dest.clone() });
    assert_eq!(f.server.seen().len(), n);
    let row = reg.list().into_iter().find(|r| r.name == "good").unwrap();
    assert_eq!(
        row.check,
        Check::Verified {
            sha256: hex_sha(&f.good)
        }
    );
    assert_eq!(row.path, Some(dest));
}

#[test]
fn fetch_resumes_after_a_cut_connection() {
    let f = fixture();
    f.model("cut", &["/cut.bin"], true);
    let mut progress = Vec::new();
    f.registry()
        .fetch("cut", None, &quiet(), &mut progress)
        .unwrap();
    assert_eq!(std::fs::read(f.dest("cut")).unwrap(), f.good);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[1].range, Some(format!("bytes={}-", f.good.len() / 2)));
    let evs = json_events(&progress);
    assert_eq!(events_named(&evs, "retry"), 1, "{evs:?}");
}

#[test]
fn fetch_continues_a_part_file_from_an_earlier_run() {
    let f = fixture();
    f.model("resume", &["/file.bin"], false);
    let part = part_path(&f.dest("resume"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &f.good[..1000]).unwrap();
    f.registry()
        .fetch("resume", None, &quiet(), &mut Vec::new())
        .unwrap();
    assert_eq!(std::fs::read(f.dest("resume")).unwrap(), f.good);
    assert_eq!(f.server.seen()[0].range.as_deref(), Some("bytes=1000-"));

    // A part file that is already complete: the server answers 416, the file is kept.
    f.model("whole", &["/file.bin"], true);
    let part = part_path(&f.dest("whole"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &f.good).unwrap();
    f.registry()
        .fetch("whole", None, &quiet(), &mut Vec::new())
        .unwrap();
    assert_eq!(std::fs::read(f.dest("whole")).unwrap(), f.good);
}

#[test]
fn fetch_restarts_when_the_server_ignores_range() {
    let f = fixture();
    f.model("norange", &["/norange.bin"], true);
    let part = part_path(&f.dest("norange"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![0xAAu8; 5000]).unwrap();
    f.registry()
        .fetch("norange", None, &quiet(), &mut Vec::new())
        .unwrap();
    assert_eq!(std::fs::read(f.dest("norange")).unwrap(), f.good);
}

#[test]
fn fetch_gives_up_after_its_retries_and_keeps_the_part_file() {
    let f = fixture();
    f.model("flaky", &["/alwayscut.bin"], true);
    let opts = FetchOptions {
        retries: 2,
        ..quiet()
    };
    let err = f
        .registry()
        .fetch("flaky", None, &opts, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Network { message, .. } if message.contains("resume")),
        "{err}"
    );
    assert_eq!(f.server.seen().len(), 3);
    assert_eq!(
        std::fs::metadata(part_path(&f.dest("flaky")))
            .unwrap()
            .len(),
        3000
    );
    assert!(!f.dest("flaky").exists());
    // Run again: it goes on from 3000 bytes.
    let _ = f.registry().fetch("flaky", None, &opts, &mut Vec::new());
    assert_eq!(f.server.seen()[3].range.as_deref(), Some("bytes=3000-"));
}

#[test]
fn fetch_rejects_a_file_with_the_wrong_hash() {
    let f = fixture();
    f.model("bad", &["/wrong.bin"], true);
    let err = f
        .registry()
        .fetch("bad", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    let RegistryError::HashMismatch {
        expected, actual, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(expected, &hex_sha(&f.good));
    assert_ne!(actual, expected);
    assert!(!f.dest("bad").exists());
    assert!(
        !part_path(&f.dest("bad")).exists(),
        "a wrong file is not resumed"
    );
    assert_eq!(vml::Error::from(err).exit_code(), 4);
}

#[test]
fn fetch_without_network_fails_clearly_with_exit_code_4() {
    let f = fixture();
    let mut c = card("offline", "offline.pt", vec![refused_url()], None, None);
    c.manual_download = Some("copy offline.pt by hand".into());
    write_card(&f.cards, &c);
    let err = f
        .registry()
        .fetch("offline", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Network { .. }), "{err:?}");
    assert!(
        msg.contains("connection refused") && msg.contains("copy offline.pt by hand"),
        "{msg}"
    );
    assert!(!f.dest("offline").exists());
    assert!(
        !part_path(&f.dest("offline")).exists(),
        "no empty .part left behind"
    );
    assert_eq!(vml::Error::from(err).exit_code(), vml::error::exit::MODEL);

    // A second URL is tried when the first fails.
    let mut c = card(
        "fallback",
        "fallback.pt",
        vec![refused_url(), f.server.url("/file.bin")],
        Some(hex_sha(&f.good)),
        None,
    );
    c.manual_download = None;
    write_card(&f.cards, &c);
    f.registry()
        .fetch("fallback", None, &quiet(), &mut Vec::new())
        .unwrap();
    assert_eq!(std::fs::read(f.dest("fallback")).unwrap(), f.good);
}

#[test]
fn fetch_follows_a_download_confirmation_page() {
    let f = fixture();
    f.model("drive", &["/confirm"], true);
    f.registry()
        .fetch("drive", None, &quiet(), &mut Vec::new())
        .unwrap();
    assert_eq!(std::fs::read(f.dest("drive")).unwrap(), f.good);
    let seen = f.server.seen();
    assert_eq!(seen[1].path, "/file.bin?id=abc%261&confirm=t");

    // A quota page met while resuming leaves the partial file alone.
    f.model("quota", &["/quota"], true);
    let part = part_path(&f.dest("quota"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &f.good[..1000]).unwrap();
    let err = f
        .registry()
        .fetch("quota", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::WebPage { .. }), "{err}");
    assert!(err.to_string().contains("ask the test"), "{err}");
    assert_eq!(std::fs::read(&part).unwrap(), &f.good[..1000]);

    f.model("gone", &["/missing"], true);
    let err = f
        .registry()
        .fetch("gone", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 404, .. }),
        "{err}"
    );
}

#[test]
fn a_second_fetch_of_the_same_file_is_refused_while_one_runs() {
    let f = fixture();
    f.model("locked", &["/file.bin"], true);
    let part = part_path(&f.dest("locked"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    let held = std::fs::File::create(&part).unwrap();
    held.lock().unwrap();
    let err = f
        .registry()
        .fetch("locked", None, &quiet(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::Busy(_)), "{err}");
    assert!(f.server.seen().is_empty());
}

#[test]
fn fetch_into_an_explicit_directory_and_human_progress() {
    let f = fixture();
    f.model("there", &["/file.bin"], true);
    let target = f._tmp.path().join("elsewhere");
    let opts = FetchOptions {
        progress: ProgressFormat::Human,
        ..quiet()
    };
    let mut progress = Vec::new();
    let got = f
        .registry()
        .fetch("there", Some(&target), &opts, &mut progress)
        .unwrap();
    assert!(
        matches!(got, Fetched::Downloaded { ref path, .. } if path == &target.join("there/there.pt"))
    );
    let text = String::from_utf8(progress).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("fetch there: ")),
        "{text}"
    );
    assert!(text.contains("sha256 verified"), "{text}");
}

#[test]
fn confirm_page_and_content_range_parsing() {
    let page = r#"<a href="/uc?export=download&amp;confirm=AbC1&amp;id=XYZ">Download anyway</a>"#;
    assert_eq!(
        confirm_link(page, "https://drive.example/uc?export=download&id=XYZ").as_deref(),
        Some("https://drive.example/uc?export=download&confirm=AbC1&id=XYZ")
    );
    let form = r#"<form id='download-form' action='https://files.example/download' method='get'>
        <input type='hidden' name='id' value='A B'><input type='hidden' name='uuid' value='u-1'></form>"#;
    assert_eq!(
        confirm_link(form, "https://x.example/").as_deref(),
        Some("https://files.example/download?id=A%20B&uuid=u-1")
    );
    assert_eq!(
        confirm_link("<html>quota exceeded</html>", "https://x.example/"),
        None
    );
    assert_eq!(
        parse_content_range("bytes 100-199/200"),
        Some(ContentRange {
            start: Some(100),
            total: Some(200)
        })
    );
    assert_eq!(
        parse_content_range("bytes */200"),
        Some(ContentRange {
            start: None,
            total: Some(200)
        })
    );
    assert_eq!(
        parse_content_range("bytes 1-2/*"),
        Some(ContentRange {
            start: Some(1),
            total: None
        })
    );
    assert_eq!(parse_content_range("items 1-2/3"), None);
}

// ---------------------------------------------------------------- verify / list / cli

#[test]
fn sha256_of_a_known_vector() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("abc");
    std::fs::write(&p, b"abc").unwrap();
    assert_eq!(
        sha256_file(&p).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// Wraps `ModelsArgs` the way the binary does, to parse command lines in tests.
#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    cmd: Top,
}
#[derive(clap::Subcommand, Debug)]
enum Top {
    Models(ModelsArgs),
}

fn run_cli(reg: &Registry, line: &[&str]) -> (Result<(), vml::Error>, String, String) {
    let Top::Models(args) =
        Cli::try_parse_from(std::iter::once("vml-filter").chain(line.iter().copied()))
            .unwrap()
            .cmd;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = run_with(reg, &args, ProgressFormat::Json, &mut out, &mut err);
    (
        r,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn verify_and_list_good_bad_and_unhashed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, data) = (tmp.path().join("m"), tmp.path().join("data"));
    let good = payload(4096, 1);
    for (name, sha) in [
        ("ok", Some(hex_sha(&good))),
        ("bad", Some(hex_sha(b"other"))),
        ("nohash", None),
    ] {
        write_card(&root, &card(name, &format!("{name}.pt"), vec![], sha, None));
        std::fs::write(root.join(name).join(format!("{name}.pt")), &good).unwrap();
    }
    let mut sized = card(
        "short",
        "short.pt",
        vec![],
        Some(hex_sha(&good)),
        Some(5000),
    );
    sized.description = "size differs".into();
    write_card(&root, &sized);
    std::fs::write(root.join("short/short.pt"), &good).unwrap();
    let reg = registry(&[&root], &data);

    // Before any verify: present files are "present" (not hashed), wrong sizes show at once.
    let (r, out, _) = run_cli(&reg, &["models", "list"]);
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATE"),
        "{out}"
    );
    let state = |out: &str, name: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(state(&out, "ok"), "present");
    assert_eq!(state(&out, "short"), "wrong-size");
    assert_eq!(state(&out, "nohash"), "unverifiable");
    assert_eq!(state(&out, "imagenet-256"), "absent");
    assert!(
        out.contains("vml-filter models fetch imagenet-256"),
        "{out}"
    );

    // verify of one good model succeeds; of all fails (exit code 4) and names the bad ones.
    let (r, out, _) = run_cli(&reg, &["models", "verify", "ok"]);
    r.unwrap();
    assert!(
        out.starts_with("ok: OK ") && out.contains(&hex_sha(&good)),
        "{out}"
    );
    let (r, out, _) = run_cli(&reg, &["models", "verify"]);
    let e = r.unwrap_err();
    assert_eq!(e.exit_code(), 4);
    let msg = e.to_string();
    assert!(
        msg.contains("bad") && msg.contains("short") && !msg.contains("nohash"),
        "{msg}"
    );
    assert!(
        out.contains("nohash: no published sha256") && out.contains(&hex_sha(&good)),
        "{out}"
    );
    assert!(out.contains("bad: FAILED"), "{out}");
    assert!(out.contains("imagenet-256: absent"), "{out}");

    // The hashes are cached: list now knows, without hashing, which files verified.
    let (_, out, _) = run_cli(&reg, &["models", "list"]);
    assert_eq!(state(&out, "ok"), "verified");
    assert_eq!(state(&out, "bad"), "MISMATCH");
    // A changed file is no longer "verified".
    std::fs::write(root.join("ok/ok.pt"), b"changed").unwrap();
    let (_, out, _) = run_cli(&reg, &["models", "list"]);
    assert_eq!(state(&out, "ok"), "present");

    // JSON forms.
    let (r, out, _) = run_cli(&reg, &["models", "list", "--json"]);
    r.unwrap();
    let rows: Vec<BTreeMap<String, serde_json::Value>> = serde_json::from_str(&out).unwrap();
    let bad = rows.iter().find(|r| r["name"] == "bad").unwrap();
    assert_eq!(bad["check"]["state"], "mismatch");
    assert_eq!(bad["size"], 4096);
    let absent = rows.iter().find(|r| r["name"] == "ffhq-256").unwrap();
    assert_eq!(absent["check"]["state"], "absent");
    assert!(absent["path"].is_null() && absent["card"].is_null());
}

#[test]
fn cli_path_inspect_and_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("models");
    tiny_model(&root);
    let data = tmp.path().join("data");
    let reg = registry(&[&root], &data);

    let (r, out, _) = run_cli(&reg, &["models", "path"]);
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{}\t$VML_MODELS", root.display()));
    assert_eq!(lines[1], format!("{}\tuser data (absent)", data.display()));

    // inspect takes a file or a registry name.
    let (r, by_name, _) = run_cli(&reg, &["models", "inspect", "tiny"]);
    r.unwrap();
    let (_, by_path, _) = run_cli(
        &reg,
        &[
            "models",
            "inspect",
            root.join("tiny/tiny.pt").to_str().unwrap(),
        ],
    );
    assert_eq!(by_name, by_path);
    assert!(
        by_name.starts_with("# ") && by_name.contains("input_blocks.0.0.weight\t32,3,3,3\t"),
        "{by_name}"
    );

    // fetch: progress on the error stream, the path on the output.
    let f = fixture();
    f.model("web", &["/file.bin"], true);
    let (r, out, err) = run_cli(&f.registry(), &["models", "fetch", "web"]);
    r.unwrap();
    assert_eq!(out.trim(), f.dest("web").display().to_string());
    assert!(json_events(err.as_bytes())
        .iter()
        .any(|e| e["event"] == "done"));
    let (r, _, _) = run_cli(&f.registry(), &["models", "fetch", "nonesuch"]);
    assert_eq!(r.unwrap_err().exit_code(), 4);
}

/// The real binary: its global flags and the `models` flags live together, and model
/// errors leave with exit code 4.
#[test]
fn binary_models_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine");
    // A card in $VML_MODELS replaces the built-in one: imagenet-256 now downloads from a
    // loopback port where nothing listens.
    let mut c = card("imagenet-256", "i.pt", vec![refused_url()], None, None);
    c.architecture = "imagenet-256".into();
    write_card(&mine, &c);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vml-filter"))
            .args(args)
            .env("VML_MODELS", &mine)
            .env("XDG_DATA_HOME", tmp.path().join("xdg"))
            .output()
            .unwrap()
    };
    let out = run(&["models", "path"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{}\t$VML_MODELS\n", mine.display())),
        "{text}"
    );

    for progress in [&["--progress", "json"][..], &["-q"][..]] {
        let mut args = vec!["models", "fetch", "imagenet-256"];
        args.extend_from_slice(progress);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("connection refused"), "{err}");
        if progress.first() == Some(&"--progress") {
            let start = err.lines().find(|l| l.starts_with('{')).unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(start).unwrap()["event"],
                "start"
            );
        }
    }
    let out = run(&["models", "verify", "ffhq-256"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("vml-filter models fetch ffhq-256"));
}

/// The shipped default model: its file matches its card and it opens by name from the
/// source tree (what `--model default` does in a checkout).
#[test]
fn shipped_default_model_verifies_and_opens() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(SearchPath::new(
        vec![dir(&source, Origin::Source)],
        Some(tmp.path().to_owned()),
    ));
    let rows = reg.verify(Some("default")).unwrap();
    assert!(
        matches!(rows[0].check, Check::Verified { .. }),
        "models/default: {:?} (run models/default/ship-weights.sh after retraining)",
        rows[0].check
    );
    let r = reg.resolve("default", None).unwrap();
    assert_eq!(r.weights, source.join("default/model.safetensors"));
    assert_eq!(
        r.config,
        UNetConfig::from_file(&source.join("default/config.json")).unwrap()
    );
    let net = reg
        .open("default", None, Device::Cpu, Precision::Fp32)
        .unwrap();
    assert_eq!(net.config(), &r.config);
}

/// The path a user takes with a guided-diffusion checkpoint: `models fetch` (through a
/// download page with a query-only link), `models verify`, then a restore with it, all by
/// the binary. The file is `torch.save(model.state_dict())` of a small create_model() UNet
/// (tests/fixtures/checkpoints/state_dict.pt), served unchanged.
#[test]
fn fetched_state_dict_verifies_and_restores() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints");
    let ckpt = std::fs::read(fx.join("state_dict.pt")).unwrap();
    let server = Server::start(ckpt.clone(), Vec::new());
    let tmp = tempfile::tempdir().unwrap();
    let cards = tmp.path().join("cards");
    let mut c = card(
        "gd-small",
        "gd-small.pt",
        vec![server.url("/uc?id=abc")],
        Some(hex_sha(&ckpt)),
        Some(ckpt.len() as u64),
    );
    c.architecture = "config.json".into();
    write_card(&cards, &c);
    std::fs::copy(fx.join("config.json"), cards.join("gd-small/config.json")).unwrap();
    let xdg = tmp.path().join("xdg");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vml-filter"))
            .args(args)
            .env("VML_MODELS", &cards)
            .env("XDG_DATA_HOME", &xdg)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        out.stdout
    };
    run(&["models", "fetch", "gd-small", "--quiet"]);
    let dest = xdg.join("vml-filter/models/gd-small/gd-small.pt");
    assert_eq!(std::fs::read(&dest).unwrap(), ckpt);
    let seen: Vec<String> = server.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/uc?id=abc", "/uc?confirm=t&id=abc"]);
    let verify = String::from_utf8(run(&["models", "verify", "gd-small"])).unwrap();
    assert!(
        verify.starts_with("gd-small: OK ") && verify.contains(&hex_sha(&ckpt)),
        "{verify}"
    );

    let input = tmp.path().join("in.png");
    let pixels: Vec<u8> = (0..32 * 32 * 3).map(|i| (i * 37 % 251) as u8).collect();
    image::RgbImage::from_raw(32, 32, pixels)
        .unwrap()
        .save(&input)
        .unwrap();
    let output = tmp.path().join("out.png");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    run(&[
        "--denoise",
        "0.1",
        "--model",
        "gd-small",
        "--device",
        "cpu",
        "--steps",
        "3",
        "--iters",
        "1",
        "-i",
        i,
        "-o",
        o,
    ]);
    let restored = image::open(&output).unwrap();
    assert_eq!((restored.width(), restored.height()), (32, 32));
}
