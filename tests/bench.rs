//! `vml-filter bench`: the records it writes, resuming, and the overhead report, on tiny
//! crops with the shipped default model so that it stays quick.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vml-filter"))
}

/// Two small photos in a folder (gradients with some texture), and one too small to use.
fn photos(dir: &std::path::Path) {
    for (k, name) in ["a.png", "b.png"].iter().enumerate() {
        let img = image::RgbImage::from_fn(80, 72, |x, y| {
            let v = ((x * 3 + y * (k as u32 + 1) * 2) % 256) as u8;
            image::Rgb([v, 255 - v, ((x ^ y) * 4 % 256) as u8])
        });
        img.save(dir.join(name)).unwrap();
    }
    image::RgbImage::new(16, 16)
        .save(dir.join("tiny.png"))
        .unwrap();
}

fn csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn bench_writes_rows_means_and_grids_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (imgs, out) = (dir.path().join("photos"), dir.path().join("out"));
    std::fs::create_dir_all(&imgs).unwrap();
    photos(&imgs);
    let run = |extra: &[&str]| {
        let o = bench()
            .args(["bench", "--images"])
            .arg(&imgs)
            .arg("--out")
            .arg(&out)
            .args(["--size", "64", "--tasks", "sr:4,box", "--sigma-y", "0,0.05"])
            .args([
                "--methods",
                "classical,vml-map:2x1,ddrm:4",
                "--device",
                "cpu",
                "--threads",
                "1",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let log = run(&[]);
    assert!(log.contains("skipping"), "the 16² photo is skipped: {log}");
    // stderr is not a terminal and nobody asked: no progress lines.
    assert!(!log.contains("\"event\":\"run\""), "{log}");
    let rows = csv_rows(&out.join("results.csv"));
    // 2 photos × 2 tasks × 2 noise levels × 3 methods.
    assert_eq!(rows.len(), 24);
    for r in &rows {
        assert_eq!(r[5], "ok", "{r:?}");
        let psnr: f64 = r[6].parse().unwrap();
        assert!(psnr.is_finite() && psnr > 0.0, "{r:?}");
        let (fwd, vjp): (usize, usize) = (r[10].parse().unwrap(), r[11].parse().unwrap());
        match r[3].as_str() {
            "classical" => assert_eq!((fwd, vjp), (0, 0)),
            // Two steps of one iteration: a forward+VJP per iteration, a forward per step.
            "vml-map:2x1" => assert_eq!((fwd, vjp), (4, 2)),
            "ddrm:4" => assert_eq!((fwd, vjp), (4, 0)),
            m => panic!("unexpected method {m}"),
        }
    }
    // With σ_y = 0 the classical fill keeps the known pixels: consistent to rounding.
    let c = rows
        .iter()
        .find(|r| r[1] == "box" && r[2] == "0" && r[3] == "classical")
        .unwrap();
    assert!(c[8].parse::<f64>().unwrap() < 1e-4, "{c:?}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 24);
    assert_eq!(json["means"].as_array().unwrap().len(), 12);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("## sr-4, σ_y = 0.05") && md.contains("| vml-map:2x1 | 2 |"),
        "{md}"
    );
    let grid = image::open(out.join("grids/box_sy0.png")).unwrap();
    // Two photos by clean, measurement and three methods, 64 px with 4 px gaps.
    assert_eq!((grid.width(), grid.height()), (5 * 68 - 4, 2 * 68 - 4));

    // Resuming with one more method runs only that method.
    let log = run(&[
        "--resume",
        "--methods",
        "classical,vml-map:2x1,ddrm:4,pigdm:2",
        "--progress",
        "json",
    ]);
    assert_eq!(log.matches("\"event\":\"run\"").count(), 8, "{log}");
    assert_eq!(csv_rows(&out.join("results.csv")).len(), 32);
}

#[test]
fn bench_refuses_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--tasks", "zoom:2"),
        ("--methods", "magic"),
        ("--methods", "vml-map:10x"),
        ("--methods", "vml-map/no_such=1"),
        ("--size", "100"),
    ] {
        let o = bench()
            .args(["bench", "--images"])
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path().join("out"))
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    }
}

#[test]
fn overhead_report() {
    let dir = tempfile::tempdir().unwrap();
    let o = bench()
        .args([
            "bench",
            "--overhead",
            "--size",
            "64",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .args(["--methods", "vml-map:2x1", "--thread-counts", "1"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("overhead.json")).unwrap())
            .unwrap();
    assert_eq!(r["engine"]["vjps"], 2);
    assert_eq!(r["engine"]["forwards"], 4);
    for k in ["forward_s", "forward_vjp_s"] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(r["engine"]["overhead_ratio"].as_f64().unwrap() > 0.0);
    assert!(r["binary"]["over_engine"].as_f64().unwrap() > 0.0);
    assert!(dir.path().join("overhead-output.png").exists());
}
