//! Faults from outside: SIGINT/SIGTERM during serve (idle and mid-request) and during a
//! restore, a full disk under `-o` (RLIMIT_FSIZE, and a real 64 KiB tmpfs when mounting is
//! allowed), a model file deleted or truncated between serve requests. Each must end with
//! a documented exit code, no partial response frame, the old `-o` file untouched and no
//! temporary file left behind. docs/reliability.md lists what held.

mod cli_common;

use cli_common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `vml-filter serve` with its pipes, read frame by frame.
struct Server {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vml-filter serve");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // stderr lines through a channel, so a test can wait for a progress stage.
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            stdin,
            stdout,
            stderr: rx,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    /// Reads one whole response frame: header and payload.
    fn frame(&mut self) -> (Value, Vec<u8>) {
        let mut line = Vec::new();
        self.stdout.read_until(b'\n', &mut line).unwrap();
        assert!(
            line.ends_with(b"\n"),
            "incomplete response header: {line:?}"
        );
        let h: Value = serde_json::from_slice(&line).expect("response header is JSON");
        let n = h["image"]["bytes"].as_u64().unwrap_or(0) as usize;
        let mut body = vec![0; n];
        self.stdout.read_exact(&mut body).unwrap();
        (h, body)
    }

    /// Waits for a stderr line containing `needle`; returns false after `secs`.
    fn wait_stderr(&self, needle: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            match self.stderr.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains(needle) => return true,
                _ => {}
            }
        }
        false
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit (killing it after `secs`); returns the exit code and the bytes
    /// left on stdout after the frames already read.
    fn finish(mut self, secs: u64) -> (Option<i32>, Vec<u8>) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = Vec::new();
        let _ = self.stdout.read_to_end(&mut rest);
        drop(self.stdin.take());
        (status.and_then(|s| s.code()), rest)
    }
}

fn sr2_classical() -> Value {
    json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical"}})
}

/// Whether the process has installed its SIGTERM handler yet (LibTorch loads first).
fn handles_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
}

#[test]
fn signals_stop_an_idle_server() {
    // After one answer the server waits on its client; a single signal must end it (130)
    // without writing anything more.
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut s = Server::start(&["serve", "--device", "cpu"]);
        s.send(&request(&sr2_classical(), &png(&rgb(16, 16)), None));
        let (h, body) = s.frame();
        assert_eq!(h["ok"], true, "{h}");
        assert_eq!(decode(&body).to_rgb8().dimensions(), (32, 32));
        std::thread::sleep(Duration::from_millis(100));
        s.signal(sig);
        let (code, rest) = s.finish(20);
        assert_eq!(code, Some(130), "signal {sig}: an idle server must stop");
        assert!(rest.is_empty(), "signal {sig}: bytes after the last frame");
    }
    // And before any request at all, once the handler is installed.
    let s = Server::start(&["serve", "--device", "cpu"]);
    let t0 = Instant::now();
    while !handles_sigterm(s.child.id()) && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.signal(libc::SIGTERM);
    let (code, rest) = s.finish(20);
    assert_eq!(code, Some(130));
    assert!(rest.is_empty());
}

/// A request slow enough to be interrupted mid-way: many steps of the shipped network.
fn slow_request() -> Vec<u8> {
    let header = json!({"vml":1,"task":{"kind":"denoise","sigma":0.2},
        "options":{"method":"vml-map","model":"default","device":"cpu","steps":500,"iters":1}});
    request(&header, &png(&rgb(32, 32)), None)
}

#[test]
fn signals_during_a_serve_request() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut s = Server::start(&["serve", "--device", "cpu", "--progress", "json"]);
        s.send(&request(&sr2_classical(), &png(&rgb(16, 16)), None));
        let (h, _) = s.frame();
        assert_eq!(h["ok"], true, "{h}");
        // Its progress lines (a "restore" stage among them) must not be mistaken for the
        // next request's.
        assert!(s.wait_stderr("\"stage\":\"done\"", 30));
        s.send(&slow_request());
        assert!(
            s.wait_stderr("\"stage\":\"restore\"", 120),
            "the slow request never started restoring"
        );
        s.signal(sig);
        // The interrupted request gets a complete error frame, then the server exits 130.
        let (h, body) = s.frame();
        assert_eq!(h["ok"], false, "{h}");
        assert_eq!(h["error"]["code"], "interrupted", "{h}");
        assert_eq!(h["error"]["exit_code"], 130, "{h}");
        assert!(body.is_empty());
        let (code, rest) = s.finish(30);
        assert_eq!(code, Some(130), "signal {sig}");
        assert!(rest.is_empty(), "signal {sig}: bytes after the error frame");
    }
}

#[test]
fn sigint_during_a_restore_leaves_the_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    std::fs::write(&out, b"precious").unwrap();
    let mut child = command(
        &[
            &["--denoise", "0.2"][..],
            &on_default_model("vml-map", "500", "1"),
            &["--progress", "json", "-o", out.to_str().unwrap()],
        ]
        .concat(),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&png(&rgb(32, 32)))
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut restoring = false;
    while err.read_line(&mut line).unwrap_or(0) > 0 {
        if line.contains("\"stage\":\"restore\"") {
            restoring = true;
            break;
        }
        line.clear();
    }
    assert!(restoring, "never reached the restore stage");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{rest}");
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(listing(dir.path()), vec!["out.png"]);
}

/// A restore whose output is far larger than `room` bytes: 64×64 ×4 → 256×256 BMP (192 KiB).
fn big_output_args(out: &Path) -> Vec<String> {
    [
        "--sr",
        "4",
        "--method",
        "classical",
        "--format",
        "bmp",
        "-o",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn check_full_disk_outcome(r: &Run, dir: &Path, out: &Path, expect_in_message: &str) {
    assert_eq!(r.code, 1, "{}", r.context());
    assert!(r.stdout.is_empty());
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("vml-filter:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(
        errors[0].contains(expect_in_message),
        "unclear message: {}",
        errors[0]
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(std::fs::read(out).unwrap(), b"old result");
    assert_eq!(
        listing(dir),
        vec![out.file_name().unwrap().to_string_lossy().into_owned()],
        "a temporary file was left behind"
    );
}

#[test]
fn full_disk_by_file_size_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bmp");
    std::fs::write(&out, b"old result").unwrap();
    let args = big_output_args(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = command(&args);
    // Files may not grow past 16 KiB: the write fails with EFBIG (the process ignores
    // SIGXFSZ, which would otherwise kill it with the temporary file in place).
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 16 << 10,
                rlim_max: 16 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = run_cmd(c, &png(&rgb(64, 64)));
    check_full_disk_outcome(&r, dir.path(), &out, "too large");
}

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_on_a_small_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::piped())
        .output();
    let ok = matches!(&mounted, Ok(o) if o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED full_disk_on_a_small_tmpfs: cannot mount a tmpfs here (not root, or no \
             CAP_SYS_ADMIN): {:?}; the RLIMIT_FSIZE variant still runs",
            mounted.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
        return;
    }
    let _guard = Tmpfs(mnt.clone());
    let out = mnt.join("out.bmp");
    std::fs::write(&out, b"old result").unwrap();
    let args = big_output_args(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(&args, &png(&rgb(64, 64)));
    check_full_disk_outcome(&r, &mnt, &out, "No space left");
}

#[test]
fn model_file_that_disappears_between_serve_requests() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    std::fs::copy(shipped.join("config.json"), dir.path().join("config.json")).unwrap();
    let weights = std::fs::read(shipped.join("model.safetensors")).unwrap();
    let kept = dir.path().join("kept.safetensors");
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&kept, &weights).unwrap();
    std::fs::write(&cut, &weights[..weights.len() / 2]).unwrap();
    let with_model = |path: &Path| {
        json!({"vml":1,"task":{"kind":"sr","scale":2},
            "options":{"method":"vml-map","model":path.to_str().unwrap(),"device":"cpu",
                       "steps":2,"iters":1,"seed":1}})
    };
    let img = png(&rgb(16, 16));
    let mut s = Server::start(&["serve", "--device", "cpu"]);

    // 1. Loads and answers.
    s.send(&request(&with_model(&kept), &img, None));
    let (h1, body1) = s.frame();
    assert_eq!(h1["ok"], true, "{h1}");
    // 2. The file is gone, the network is still loaded: the same answer.
    std::fs::remove_file(&kept).unwrap();
    s.send(&request(&with_model(&kept), &img, None));
    let (h2, body2) = s.frame();
    assert_eq!(h2["ok"], true, "{h2}");
    assert_eq!(body1, body2, "the loaded network gave another answer");
    // 3. A truncated file: a model error for this request only.
    s.send(&request(&with_model(&cut), &img, None));
    let (h3, _) = s.frame();
    assert_eq!(
        (h3["ok"].as_bool(), h3["error"]["exit_code"].as_i64()),
        (Some(false), Some(4)),
        "{h3}"
    );
    assert_eq!(h3["error"]["code"], "model");
    // 4. The server goes on.
    s.send(&request(&sr2_classical(), &img, None));
    let (h4, _) = s.frame();
    assert_eq!(h4["ok"], true, "{h4}");
    // 5. A file deleted before it was ever loaded: a model error.
    let gone = dir.path().join("gone.safetensors");
    std::fs::write(&gone, &weights).unwrap();
    std::fs::remove_file(&gone).unwrap();
    s.send(&request(&with_model(&gone), &img, None));
    let (h5, _) = s.frame();
    assert_eq!(h5["error"]["exit_code"], 4, "{h5}");
    // 6. The truncated file repaired: loaded now (failures are not cached), same answer as 1.
    std::fs::write(&cut, &weights).unwrap();
    s.send(&request(&with_model(&cut), &img, None));
    let (h6, body6) = s.frame();
    assert_eq!(h6["ok"], true, "{h6}");
    assert_eq!(body6, body1);
    drop(s.stdin.take());
    let (code, rest) = s.finish(30);
    assert_eq!(code, Some(0));
    assert!(rest.is_empty());
    assert_eq!(
        listing(dir.path()),
        vec!["config.json", "cut.safetensors"],
        "files appeared in the model folder"
    );
}

#[test]
fn failed_rename_leaves_no_temporary_file() {
    // The destination is a folder. The binary now refuses it before any work (tests/
    // cli_checks.rs); the atomic write itself still meets it at the rename: everything is
    // written, the rename fails, the temporary file goes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    std::fs::create_dir(&out).unwrap();
    let err = vml::io::write_atomic(&out, &png(&rgb(16, 16)), &|| false).unwrap_err();
    assert!(err.to_string().contains("renaming onto"), "{err}");
    assert_eq!(listing(dir.path()), vec!["out.png"]);
    assert!(listing(&out).is_empty());
    let r = run(
        &[
            "--sr",
            "2",
            "--method",
            "classical",
            "-o",
            out.to_str().unwrap(),
        ],
        &png(&rgb(16, 16)),
    );
    assert_eq!(r.code, 1, "{}", r.context());
    assert!(r.stderr.contains("is a folder"), "{}", r.stderr);
    assert_eq!(listing(dir.path()), vec!["out.png"]);
    assert!(listing(&out).is_empty());
}
