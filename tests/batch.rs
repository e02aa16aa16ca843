//! `vml-filter batch` as a user runs it: folders and manifests into OUTDIR, the journal,
//! reruns, failures, shards, signals (docs/batch.md). Most runs use the classical method
//! (no network); those that need noise drawn use vml-map on the shipped default model with
//! a tiny budget.

mod cli_common;

use cli_common::{command, png, rgb, run, run_cmd, Run};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Fast settings shared by the classical runs.
const CLASSICAL: &[&str] = &["--sr", "2", "--method", "classical", "--threads", "1"];

/// A network method that draws noise, on the shipped model, as cheap as it gets.
const NOISY: &[&str] = &[
    "--sr",
    "2",
    "--method",
    "vml-map",
    "--model",
    "default",
    "--device",
    "cpu",
    "--steps",
    "2",
    "--iters",
    "1",
    "--threads",
    "1",
];

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Small PNGs at `names` under `dir`, each with its own pixels.
fn images(dir: &Path, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        write(&dir.join(n), &png(&rgb(24 + 2 * i as u32, 20)));
    }
}

fn batch(args: &[&str]) -> Run {
    let mut a = vec!["batch", "--progress", "none"];
    a.extend_from_slice(args);
    run(&a, b"")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every record of every journal in `outdir`; fails on a line that does not parse.
fn records(outdir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(outdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("journal") && n.ends_with(".jsonl")
        })
        .collect();
    names.sort();
    for p in names {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            out.push(
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{}: line does not parse ({e}): {line}", p.display())
                }),
            );
        }
    }
    out
}

fn file_records(outdir: &Path) -> Vec<Value> {
    records(outdir)
        .into_iter()
        .filter(|r| r["type"] == "file")
        .collect()
}

/// Every file under `dir`, relative, `/`-separated.
fn tree(dir: &Path) -> BTreeSet<String> {
    fn go(root: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    go(dir, dir, &mut out);
    out
}

fn no_temporary_files(dir: &Path) {
    let left: Vec<String> = tree(dir)
        .into_iter()
        .filter(|n| n.contains(".vml-filter-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn status_json(outdir: &Path) -> (i32, Value) {
    let r = run(&["batch", "--status", s(outdir), "--json"], b"");
    let v = serde_json::from_slice(&r.stdout)
        .unwrap_or_else(|e| panic!("status JSON ({e}): {}", r.context()));
    (r.code, v)
}

#[test]
fn a_folder_is_restored_into_mirrored_paths_with_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    images(&input, &["a.png", "sub/b.png", "sub/deeper/c.png"]);
    write(&input.join("notes.txt"), b"not an image, not listed");
    write(&input.join(".hidden.png"), b"hidden, not listed");
    let mut args = vec!["batch", "--progress", "json"];
    args.extend_from_slice(CLASSICAL);
    args.extend([s(&input), "-o", s(&out)]);
    let r = run(&args, b"");
    assert_eq!(r.code, 0, "{}", r.context());
    assert_eq!(
        tree(&out),
        ["a.png", "journal.jsonl", "sub/b.png", "sub/deeper/c.png"]
            .map(String::from)
            .into()
    );
    for (i, n) in ["a.png", "sub/b.png", "sub/deeper/c.png"]
        .iter()
        .enumerate()
    {
        let img = image::open(out.join(n)).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (2 * (24 + 2 * i as u32), 40),
            "{n}"
        );
    }
    let recs = records(&out);
    assert_eq!(recs.first().unwrap()["type"], "start");
    assert_eq!(recs.last().unwrap()["type"], "end");
    let files = file_records(&out);
    assert_eq!(files.len(), 3);
    for f in &files {
        assert_eq!(f["status"], "done", "{f}");
        assert_eq!(f["exit_code"], 0);
        assert_eq!(f["method"], "classical");
        assert_eq!(f["preset"], "normal");
        assert!(f["model"].is_null(), "no network, no model: {f}");
        let bytes = std::fs::read(out.join(f["output"].as_str().unwrap())).unwrap();
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
        assert!(f["seconds"].as_f64().unwrap() > 0.0);
        assert!(f["seed"].is_u64());
    }
    // JSON progress lines count the files up to the total.
    let progress: Vec<Value> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["stage"] == "batch")
        .collect();
    let last = progress.last().expect("batch progress lines");
    assert_eq!(
        (last["finished"].as_u64(), last["total"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(last["images_per_s"].as_f64().unwrap() > 0.0, "{last}");
    assert!(r.stderr.contains("3 done"), "{}", r.context());
}

#[test]
fn a_rerun_skips_what_is_verified_and_redoes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    images(&input, &["a.png", "b.png", "c.png", "d.png"]);
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend([s(&input), "-o", s(&out)]);
    assert_eq!(batch(&args).code, 0);
    assert_eq!(file_records(&out).len(), 4);
    let before_a = std::fs::read(out.join("a.png")).unwrap();
    // b: deleted; c: same size, other bytes (the checksum must catch it); d: input changed.
    std::fs::remove_file(out.join("b.png")).unwrap();
    let mut c = std::fs::read(out.join("c.png")).unwrap();
    let last = c.len() - 1;
    c[last] ^= 0xff;
    std::fs::write(out.join("c.png"), &c).unwrap();
    write(&input.join("d.png"), &png(&rgb(30, 30)));
    let r = batch(&args);
    assert_eq!(r.code, 0, "{}", r.context());
    // Records come in the order files finish (several workers by default): compare sets.
    let redone: BTreeSet<String> = file_records(&out)[4..]
        .iter()
        .map(|f| f["rel"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        redone,
        BTreeSet::from(["b.png", "c.png", "d.png"].map(String::from))
    );
    assert!(r.stderr.contains("1 already done"), "{}", r.context());
    assert_eq!(std::fs::read(out.join("a.png")).unwrap(), before_a);
    assert_ne!(
        std::fs::read(out.join("c.png")).unwrap(),
        c,
        "c was rewritten"
    );
    assert_eq!(image::open(out.join("d.png")).unwrap().width(), 60);
    // Nothing left to do, then --force redoes all, and other settings redo all.
    assert_eq!(batch(&args).code, 0);
    assert_eq!(file_records(&out).len(), 7);
    let mut forced = args.clone();
    forced.push("--force");
    assert_eq!(batch(&forced).code, 0);
    assert_eq!(file_records(&out).len(), 11);
    let mut other: Vec<&str> = vec!["--sr", "4", "--method", "classical", "--threads", "1"];
    other.extend([s(&input), "-o", s(&out)]);
    assert_eq!(batch(&other).code, 0);
    assert_eq!(file_records(&out).len(), 15);
    assert_eq!(image::open(out.join("a.png")).unwrap().width(), 96);
}

#[test]
fn bad_files_are_journaled_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    images(&input, &["good1.png", "good2.png"]);
    write(
        &input.join("corrupt.png"),
        b"\x89PNG\r\n\x1a\nthis is not a PNG",
    );
    let whole = png(&rgb(40, 40));
    write(&input.join("truncated.png"), &whole[..whole.len() / 2]);
    write(&input.join("large.png"), &png(&rgb(300, 200)));
    write(&input.join("empty.jpg"), b"");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--max-pixels", "20000", s(&input), "-o", s(&out)]);
    let r = batch(&args);
    assert_eq!(r.code, 8, "some failed: {}", r.context());
    let files = file_records(&out);
    let by: BTreeMap<&str, &Value> = files
        .iter()
        .map(|f| (f["rel"].as_str().unwrap(), f))
        .collect();
    for bad in ["corrupt.png", "truncated.png", "large.png", "empty.jpg"] {
        let f = by[bad];
        assert_eq!(f["status"], "failed", "{f}");
        assert_eq!(f["exit_code"], 3, "{f}");
        assert_eq!(f["error_code"], "bad_input", "{f}");
        assert!(!f["message"].as_str().unwrap().is_empty());
        assert!(!out.join(bad).exists(), "no output for {bad}");
    }
    assert!(by["large.png"]["message"]
        .as_str()
        .unwrap()
        .contains("limit"));
    for good in ["good1.png", "good2.png"] {
        assert_eq!(by[good]["status"], "done");
        image::open(out.join(good)).unwrap();
    }
    no_temporary_files(&out);
    let (code, summary) = status_json(&out);
    assert_eq!(code, 8);
    assert_eq!(
        (&summary["done"], &summary["failed"], &summary["pending"]),
        (&Value::from(2), &Value::from(4), &Value::from(0))
    );
    assert_eq!(summary["failures"].as_array().unwrap().len(), 4);
}

#[test]
fn glob_and_manifests_choose_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    images(&input, &["a.png", "x/b.png", "x/c.bmp"]);
    write(
        &input.join("x/c.bmp"),
        &cli_common::encode(&rgb(20, 20), image::ImageFormat::Bmp),
    );
    let out = dir.path().join("glob");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--glob", "x/*.png", s(&input), "-o", s(&out)]);
    assert_eq!(batch(&args).code, 0);
    assert_eq!(
        tree(&out),
        ["journal.jsonl", "x/b.png"].map(String::from).into()
    );

    // A manifest: a plain path, and a JSON line with its own task and format.
    let manifest = input.join("list.txt");
    write(
        &manifest,
        br#"# comment
a.png
{"input": "x/b.png", "task": {"kind": "sr", "scale": 4}, "options": {"format": "bmp"}}
"#,
    );
    let out = dir.path().join("manifest");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--manifest", s(&manifest), "-o", s(&out)]);
    let r = batch(&args);
    assert_eq!(r.code, 0, "{}", r.context());
    assert_eq!(
        tree(&out),
        ["a.png", "journal.jsonl", "x/b.bmp"]
            .map(String::from)
            .into()
    );
    assert_eq!(image::open(out.join("a.png")).unwrap().width(), 48);
    let b = image::open(out.join("x/b.bmp")).unwrap();
    assert_eq!((b.width(), b.height()), (26 * 4, 80));

    // --format changes every extension.
    let out = dir.path().join("format");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    let a = input.join("a.png");
    args.extend(["--format", "jpeg", s(&a), "-o", s(&out)]);
    assert_eq!(batch(&args).code, 0);
    assert_eq!(
        tree(&out),
        ["a.jpg", "journal.jsonl"].map(String::from).into()
    );

    // A listed file that is gone by the time it is read: recorded, the others done.
    write(&manifest, b"a.png\ngone.png\n");
    let out = dir.path().join("gone");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--manifest", s(&manifest), "-o", s(&out)]);
    let r = batch(&args);
    assert_eq!(r.code, 8, "{}", r.context());
    let files = file_records(&out);
    let gone = files.iter().find(|f| f["rel"] == "gone.png").unwrap();
    assert_eq!(
        (&gone["status"], &gone["error_code"]),
        (&Value::from("failed"), &Value::from("bad_input"))
    );
    assert!(out.join("a.png").is_file());

    // A manifest line that is not valid: a usage error before any work.
    write(&manifest, b"{\"input\": \"a.png\", \"colour\": 1}\n");
    let out = dir.path().join("bad");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--manifest", s(&manifest), "-o", s(&out)]);
    let r = batch(&args);
    assert_eq!(r.code, 2, "{}", r.context());
    assert!(r.stderr.contains("line 1"), "{}", r.context());
}

#[test]
fn outputs_never_overwrite_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    images(&input, &["a.png", "b.png"]);
    let before = std::fs::read(input.join("a.png")).unwrap();
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend([s(&input), "-o", s(&input)]);
    let r = batch(&args);
    assert_eq!(r.code, 2, "{}", r.context());
    assert!(r.stderr.contains("is the input"), "{}", r.context());
    assert_eq!(std::fs::read(input.join("a.png")).unwrap(), before);
    assert_eq!(
        cli_common::listing(&input),
        ["a.png", "b.png"],
        "nothing written there"
    );
    // The same through a manifest: the output would be the listed input itself.
    write(&input.join("list.txt"), b"a.png\n");
    let list = input.join("list.txt");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend(["--manifest", s(&list), "-o", s(&input)]);
    let r = batch(&args);
    assert_eq!(r.code, 2, "{}", r.context());
    assert_eq!(std::fs::read(input.join("a.png")).unwrap(), before);
    std::fs::remove_file(&list).unwrap();

    // OUTDIR inside the input folder: its outputs are never taken for inputs.
    let out = input.join("restored");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend([s(&input), "-o", s(&out)]);
    assert_eq!(batch(&args).code, 0);
    assert_eq!(batch(&args).code, 0);
    let rels: BTreeSet<String> = file_records(&out)
        .iter()
        .map(|f| f["rel"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rels, ["a.png", "b.png"].map(String::from).into());

    // Two inputs that would land on one output: refused.
    let other = dir.path().join("other");
    images(&other, &["a.png"]);
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    let out2 = dir.path().join("out2");
    let (a1, a2) = (input.join("a.png"), other.join("a.png"));
    args.extend([s(&a1), s(&a2), "-o", s(&out2)]);
    let r = batch(&args);
    assert_eq!(r.code, 2, "{}", r.context());
}

/// The same file gives the same bytes in two batches with other company, and sharded; the
/// same pixels under another name do not (the seed follows the relative path).
#[test]
fn per_file_seeds_give_identical_pixels_across_batches_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let photo = png(&rgb(32, 32));
    let one = dir.path().join("one");
    write(&one.join("p/x.png"), &photo);
    let many = dir.path().join("many");
    write(&many.join("p/x.png"), &photo);
    write(&many.join("p/twin.png"), &photo);
    images(&many.join("q"), &["e.png", "f.png"]);

    let (out1, out2) = (dir.path().join("out1"), dir.path().join("out2"));
    let mut args: Vec<&str> = NOISY.to_vec();
    args.extend(["-v", s(&one), "-o", s(&out1)]);
    let r = batch(&args);
    assert_eq!(r.code, 0, "{}", r.context());
    for i in ["0/2", "1/2"] {
        let mut args: Vec<&str> = NOISY.to_vec();
        // One worker: each worker loads its own network.
        args.extend(["-v", "--jobs", "1", "--shard", i, s(&many), "-o", s(&out2)]);
        let r = batch(&args);
        assert_eq!(r.code, 0, "{}", r.context());
        let loads = r.stderr.matches("loading model").count();
        assert!(
            loads <= 1,
            "the model is loaded once per batch: {}",
            r.context()
        );
    }
    let x1 = std::fs::read(out1.join("p/x.png")).unwrap();
    assert_eq!(x1, std::fs::read(out2.join("p/x.png")).unwrap());
    assert_ne!(
        x1,
        std::fs::read(out2.join("p/twin.png")).unwrap(),
        "another path, another seed"
    );
    let files = file_records(&out2);
    assert_eq!(files.len(), 4);
    for f in &files {
        assert_eq!(f["model"], "default", "{f}");
        assert_eq!(f["model_sha256"].as_str().unwrap().len(), 64);
    }
}

#[test]
fn shards_are_disjoint_and_together_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let names: Vec<String> = (0..12).map(|i| format!("d{}/img{i}.png", i % 3)).collect();
    for n in &names {
        write(&input.join(n), &png(&rgb(16, 16)));
    }
    let out = dir.path().join("out");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..3 {
        let spec = format!("{i}/3");
        let mut args: Vec<&str> = CLASSICAL.to_vec();
        args.extend(["--shard", &spec, s(&input), "-o", s(&out)]);
        let r = batch(&args);
        assert_eq!(r.code, 0, "{}", r.context());
        let journal = out.join(format!("journal-{i}-of-3.jsonl"));
        assert!(journal.is_file(), "{}", journal.display());
    }
    for f in file_records(&out) {
        *seen
            .entry(f["rel"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), {
        let mut n = names.clone();
        n.sort();
        n
    });
    assert!(
        seen.values().all(|&c| c == 1),
        "each file in one shard: {seen:?}"
    );
    let (code, summary) = status_json(&out);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["done"], 12);
    assert_eq!(summary["journals"].as_array().unwrap().len(), 3);

    // `--shard auto` takes the same share from Slurm's or Kubernetes' variables.
    let expected: BTreeSet<String> = records(&out)
        .iter()
        .find(|r| r["type"] == "start" && r["shard"] == "1/3")
        .unwrap()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!expected.is_empty());
    for (vars, extra) in [
        (
            vec![
                ("SLURM_ARRAY_TASK_ID", "2"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
            vec![],
        ),
        (
            vec![("JOB_COMPLETION_INDEX", "1")],
            vec!["--shard-count", "3"],
        ),
    ] {
        let auto = dir.path().join(format!("auto-{}", vars.len()));
        let mut c = command(&["batch", "--progress", "none", "--shard", "auto"]);
        c.args(CLASSICAL)
            .args(&extra)
            .args([s(&input), "-o", s(&auto)]);
        for v in [
            "SLURM_ARRAY_TASK_ID",
            "SLURM_ARRAY_TASK_MIN",
            "SLURM_ARRAY_TASK_COUNT",
            "JOB_COMPLETION_INDEX",
        ] {
            c.env_remove(v);
        }
        c.envs(vars.iter().copied());
        let r = run_cmd(c, b"");
        assert_eq!(r.code, 0, "{}", r.context());
        let got: BTreeSet<String> = file_records(&auto)
            .iter()
            .map(|f| f["rel"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "{vars:?}");
        assert!(auto.join("journal-1-of-3.jsonl").is_file());
    }
}

#[test]
fn bad_flags_are_usage_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    images(&input, &["a.png"]);
    let out = dir.path().join("out");
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["--shard", "3/3"], 2),
        (vec!["--shard", "auto"], 2),
        (vec!["--shard", "1/2", "--shard-count", "2"], 2),
        (vec!["--glob", "[a"], 2),
        (vec!["--format", "gif"], 2),
    ];
    for (extra, code) in cases {
        let mut args: Vec<&str> = CLASSICAL.to_vec();
        args.extend(&extra);
        args.extend([s(&input), "-o", s(&out)]);
        let mut c = command(&["batch", "--progress", "none"]);
        c.args(&args);
        for v in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
            c.env_remove(v);
        }
        let r = run_cmd(c, b"");
        assert_eq!(r.code, code, "{extra:?}: {}", r.context());
        assert!(
            r.stderr.starts_with("vml-filter: usage"),
            "{extra:?}: {}",
            r.context()
        );
    }
    // No task; a missing input; --status where no batch ran.
    let r = batch(&["--method", "classical", s(&input), "-o", s(&out)]);
    assert_eq!(r.code, 2, "{}", r.context());
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    let missing = dir.path().join("missing");
    args.extend([s(&missing), "-o", s(&out)]);
    assert_eq!(batch(&args).code, 3);
    assert!(!out.join("journal.jsonl").exists() || file_records(&out).is_empty());
    let r = run(&["batch", "--status", s(&input)], b"");
    assert_eq!(r.code, 2, "{}", r.context());
}

/// OUTDIR that is a file, and a disk that fills up (`ulimit -f`): the batch stops with an
/// i/o error (exit 1), nothing half-written, the journal readable.
#[test]
fn an_unwritable_outdir_stops_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    images(&input, &["a.png", "b.png"]);
    let file = dir.path().join("file");
    write(&file, b"x");
    let mut args: Vec<&str> = CLASSICAL.to_vec();
    args.extend([s(&input), "-o", s(&file)]);
    let r = batch(&args);
    assert_eq!(r.code, 1, "{}", r.context());
    assert!(r.stderr.contains("OUTDIR"), "{}", r.context());

    let out = dir.path().join("out");
    let mut args: Vec<&str> = vec!["batch", "--progress", "none", "--sr", "8"];
    args.extend(&CLASSICAL[2..]);
    args.extend([s(&input), "-o", s(&out)]);
    let mut c = command(&args);
    use std::os::unix::process::CommandExt;
    // Outputs are far larger than 2 KB; journal records are smaller.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 2048,
                rlim_max: 2048,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = run_cmd(c, b"");
    assert_eq!(r.code, 1, "{}", r.context());
    assert!(r.stderr.contains("File too large"), "{}", r.context());
    assert_eq!(tree(&out), ["journal.jsonl"].map(String::from).into());
    assert!(file_records(&out).is_empty());
    let end = records(&out).pop().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["pending"], 2);
}

fn spawn_batch(args: &[&str]) -> Child {
    let mut a = vec!["batch", "--progress", "json"];
    a.extend_from_slice(args);
    command(&a)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vml-filter")
}

/// Waits until the journal in `out` holds `n` file records.
fn wait_for_records(out: &Path, n: usize, child: &mut Child) {
    let t0 = Instant::now();
    loop {
        let have = std::fs::read_to_string(out.join("journal.jsonl"))
            .map(|t| {
                t.lines()
                    .filter(|l| l.contains("\"type\":\"file\""))
                    .count()
            })
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the batch ended early");
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn slow_args<'a>(input: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let mut a: Vec<&str> = NOISY.to_vec();
    // Enough steps that each file takes a moment.
    let at = a.iter().position(|&x| x == "--steps").unwrap();
    a[at + 1] = "25";
    a.extend([s(input), "-o", s(out)]);
    a
}

/// SIGTERM stops the batch between files or in one: exit 130, the journal complete and
/// closed, no partial output; a rerun finishes the set.
#[test]
fn sigterm_stops_cleanly_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let names: Vec<String> = (0..8).map(|i| format!("f{i}.png")).collect();
    images(
        &input,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let args = slow_args(&input, &out);
    let mut child = spawn_batch(&args);
    wait_for_records(&out, 1, &mut child);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait_with_output().unwrap();
    assert_eq!(
        status.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    no_temporary_files(&out);
    let recs = records(&out);
    let end = recs.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["interrupted"], true);
    let done: BTreeSet<String> = file_records(&out)
        .iter()
        .map(|f| f["output"].as_str().unwrap().to_string())
        .collect();
    let mut outputs = tree(&out);
    outputs.remove("journal.jsonl");
    assert_eq!(
        outputs, done,
        "an output for each done record, nothing else"
    );
    assert!(done.len() < names.len(), "stopped early: {done:?}");
    let (code, summary) = status_json(&out);
    assert_eq!(code, 8);
    assert!(summary["pending"].as_u64().unwrap() > 0, "{summary}");

    let mut rerun: Vec<&str> = vec!["batch", "--progress", "none"];
    rerun.extend(&args);
    let r = run(&rerun, b"");
    assert_eq!(r.code, 0, "{}", r.context());
    assert_eq!(tree(&out).len(), names.len() + 1);
    let (code, summary) = status_json(&out);
    assert_eq!((code, &summary["done"]), (0, &Value::from(names.len())));
}

/// kill -9 in the middle: a rerun completes the set, every output matches its record. While
/// the first batch runs, a second one on the same OUTDIR is refused.
#[test]
fn kill_9_then_a_rerun_completes_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let names: Vec<String> = (0..6).map(|i| format!("k{i}.png")).collect();
    images(
        &input,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let args = slow_args(&input, &out);
    let mut child = spawn_batch(&args);
    wait_for_records(&out, 1, &mut child);
    let mut second: Vec<&str> = vec!["batch", "--progress", "none"];
    second.extend(&args);
    let r = run(&second, b"");
    assert_eq!(r.code, 2, "a second batch on the OUTDIR: {}", r.context());
    assert!(r.stderr.contains("another batch"), "{}", r.context());
    wait_for_records(&out, 2, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rerun: Vec<&str> = vec!["batch", "--progress", "none"];
    rerun.extend(&args);
    let r = run(&rerun, b"");
    assert_eq!(r.code, 0, "{}", r.context());
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for f in file_records(&out) {
        latest.insert(f["rel"].as_str().unwrap().to_string(), f);
    }
    assert_eq!(latest.len(), names.len());
    for (rel, f) in &latest {
        assert_eq!(f["status"], "done");
        let bytes = std::fs::read(out.join(rel)).unwrap();
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64), "{rel}");
        image::load_from_memory(&bytes).unwrap();
    }
    assert!(
        file_records(&out).len() < 2 * names.len(),
        "what was done before the kill is not redone"
    );
}

/// Files listed at the start that vanish or change before the batch reaches them: the vanished
/// one fails alone (bad input, the batch goes on), the changed one is restored from the bytes
/// read and recorded with their hash. Once the vanished file is back, a rerun restores it
/// and nothing else.
#[test]
fn files_that_vanish_or_change_after_the_listing() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    // One worker, in order of relative path: the two targets come last, long after the
    // first record appears.
    let names: Vec<String> = (0..6).map(|i| format!("a{i}.png")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.extend(["y-vanishes.png", "z-changes.png"]);
    images(&input, &all);
    let mut args = slow_args(&input, &out);
    args.extend(["--jobs", "1"]);
    let mut child = spawn_batch(&args);
    wait_for_records(&out, 1, &mut child);
    std::fs::remove_file(input.join("y-vanishes.png")).unwrap();
    let changed = png(&rgb(32, 16));
    write(&input.join("z-changes.png"), &changed);
    let status = child.wait_with_output().unwrap();
    assert_eq!(status.status.code(), Some(8), "some failed");
    let latest: BTreeMap<String, Value> = file_records(&out)
        .into_iter()
        .map(|f| (f["rel"].as_str().unwrap().to_string(), f))
        .collect();
    let gone = &latest["y-vanishes.png"];
    assert_eq!(
        (&gone["status"], &gone["exit_code"]),
        (&Value::from("failed"), &Value::from(3)),
        "{gone}"
    );
    assert!(!out.join("y-vanishes.png").exists());
    let z = &latest["z-changes.png"];
    assert_eq!(z["status"], "done", "{z}");
    assert_eq!(
        z["input_sha256"].as_str().unwrap(),
        format!("{:x}", Sha256::digest(&changed)),
        "recorded: the bytes that were read, after the change"
    );
    let restored = image::open(out.join("z-changes.png")).unwrap();
    assert_eq!(
        (restored.width(), restored.height()),
        (64, 32),
        "×2 of the new picture"
    );
    for n in &names {
        assert_eq!(latest[n.as_str()]["status"], "done", "{n}");
    }
    no_temporary_files(&out);

    // The vanished file is back: a rerun restores it and nothing else.
    images(&input, &["y-vanishes.png"]);
    let before = file_records(&out).len();
    let mut rerun = vec!["batch", "--progress", "none"];
    rerun.extend(&args);
    let r = run(&rerun, b"");
    assert_eq!(r.code, 0, "{}", r.context());
    let recs = file_records(&out);
    assert_eq!(recs.len(), before + 1, "only the vanished file is redone");
    assert_eq!(recs.last().unwrap()["rel"], "y-vanishes.png");
    assert_eq!(recs.last().unwrap()["status"], "done");
}

/// `--jobs 2`: two workers give the same bytes as one (the seeds follow the paths, not the
/// worker), and every file is recorded exactly once.
#[test]
fn jobs_give_the_same_outputs_as_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let names: Vec<String> = (0..5).map(|i| format!("j{i}.png")).collect();
    images(
        &input,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let mut args: Vec<&str> = NOISY.to_vec();
    args.extend([s(&input), "-o", s(&one)]);
    assert_eq!(batch(&args).code, 0);
    let mut args: Vec<&str> = NOISY.to_vec();
    args.extend(["--jobs", "2", s(&input), "-o", s(&two)]);
    let r = batch(&args);
    assert_eq!(r.code, 0, "{}", r.context());
    let mut rels: Vec<String> = file_records(&two)
        .iter()
        .map(|f| f["rel"].as_str().unwrap().to_string())
        .collect();
    rels.sort();
    assert_eq!(rels, names);
    for n in &names {
        assert_eq!(
            std::fs::read(one.join(n)).unwrap(),
            std::fs::read(two.join(n)).unwrap(),
            "{n}"
        );
    }
    let r = batch(&["--jobs", "0", "--sr", "2", s(&input), "-o", s(&two)]);
    assert_eq!(r.code, 2, "{}", r.context());
}

/// `--group`: files of equal size share one solve, and give the same bytes as one at a
/// time (each keeps its own seed); a file of another size goes alone, a bad file among
/// them fails alone, each file gets its own record, and a rerun skips what is done.
#[test]
fn groups_give_the_same_outputs_as_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let photo = rgb(32, 24);
    write(&input.join("a.png"), &png(&photo));
    write(&input.join("b.png"), &png(&photo.fliph()));
    write(&input.join("bad.png"), b"not an image at all");
    write(&input.join("c.png"), &png(&photo.flipv()));
    write(&input.join("d.png"), &png(&rgb(40, 24)));
    // Gray and colour pictures of one size share a solve too.
    write(&input.join("g.png"), &png(&photo.rotate180().grayscale()));
    let good = ["a.png", "b.png", "c.png", "d.png", "g.png"];
    let (one, grouped) = (dir.path().join("one"), dir.path().join("grouped"));
    for (out, group) in [(&one, "1"), (&grouped, "8")] {
        let mut args: Vec<&str> = NOISY.to_vec();
        args.extend([
            "-v",
            "--jobs",
            "1",
            "--group",
            group,
            s(&input),
            "-o",
            s(out),
        ]);
        let r = batch(&args);
        assert_eq!(r.code, 8, "the bad file fails: {}", r.context());
        let batched = r.stderr.contains("solving 4 pictures as one batch");
        assert_eq!(batched, group == "8", "{}", r.context());
    }
    // Batched convolutions on the CPU round differently in the last bits from single ones,
    // which moves a few pixels by one level (docs/batch.md, "Grouping").
    for n in good {
        let a = cli_common::decode(&std::fs::read(one.join(n)).unwrap()).to_rgb8();
        let b = cli_common::decode(&std::fs::read(grouped.join(n)).unwrap()).to_rgb8();
        assert_eq!(a.dimensions(), b.dimensions(), "{n}");
        let off: Vec<i32> = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
            .collect();
        let worst = off.iter().copied().max().unwrap_or(0);
        let moved = off.iter().filter(|&&d| d > 0).count();
        eprintln!(
            "{n}: {moved} of {} values moved, by at most {worst}",
            off.len()
        );
        assert!(
            worst <= 1,
            "{n}: a value moved by {worst} levels in a group"
        );
    }
    let files = file_records(&grouped);
    assert_eq!(files.len(), 6);
    for f in &files {
        let failed = f["rel"] == "bad.png";
        assert_eq!(f["status"], if failed { "failed" } else { "done" }, "{f}");
    }
    let seeds: BTreeSet<u64> = files.iter().map(|f| f["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds.len(), 6, "each file its own seed");
    // A rerun skips the done files, grouped or not, and tries the bad one again.
    let mut args: Vec<&str> = NOISY.to_vec();
    args.extend(["--jobs", "1", "--group", "8", s(&input), "-o", s(&grouped)]);
    let r = batch(&args);
    assert_eq!(r.code, 8, "{}", r.context());
    let again = file_records(&grouped);
    assert_eq!(again.len(), 7, "only the bad file is recorded again");
    assert_eq!(again[6]["rel"], "bad.png");
    let r = batch(&["--group", "0", "--sr", "2", s(&input), "-o", s(&grouped)]);
    assert_eq!(r.code, 2, "{}", r.context());
}
