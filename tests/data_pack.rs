//! The default model's training pack (models/default/make-data.sh) against the standard
//! evaluation images: no source image of the pack may have the pixels of one of them.
//!
//! Reads `$VML_DATA_DIR/pack/manifest.json` (default `~/.cache/vml-filter/data/pack`) and
//! `../shared/eval/MANIFEST.tsv` beside the repository (or `$VML_EVAL_MANIFEST`). When either
//! is absent, or the pack predates the pixel hashes in its manifest, the test prints
//! `SKIPPED: …` and passes.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const MIN_PHOTOS: usize = 150;

fn pack_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VML_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("pack");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("vml-filter").join("data").join("pack")
}

fn eval_manifest() -> PathBuf {
    match std::env::var_os("VML_EVAL_MANIFEST").filter(|d| !d.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/MANIFEST.tsv"),
    }
}

/// pixel_sha256_rgb (lower case) → "set/file", from the tab-separated evaluation manifest.
fn eval_hashes(tsv: &str) -> Result<HashMap<String, String>, String> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty MANIFEST.tsv")?
        .split('\t')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("MANIFEST.tsv has no `{name}` column"))
    };
    let (set, file, hash) = (col("set")?, col("file")?, col("pixel_sha256_rgb")?);
    let mut out = HashMap::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let h = f
            .get(hash)
            .ok_or(format!("MANIFEST.tsv line {}: too few columns", i + 2))?;
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "MANIFEST.tsv line {}: `{h}` is not a SHA-256",
                i + 2
            ));
        }
        out.insert(h.to_ascii_lowercase(), format!("{}/{}", f[set], f[file]));
    }
    if out.is_empty() {
        return Err("MANIFEST.tsv lists no images".into());
    }
    Ok(out)
}

/// Everything wrong with the pack, empty when it is fine; Ok(None) when the manifest predates
/// the pixel hashes (a pack made before them, to be rebuilt).
fn check_pack(
    pack: &Path,
    manifest: &Value,
    eval: &HashMap<String, String>,
) -> Option<Vec<String>> {
    let photos = manifest["photos"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !photos
        .iter()
        .any(|p| p.get("source_pixel_sha256_rgb").is_some())
    {
        return None;
    }
    let mut problems = Vec::new();
    if photos.len() < MIN_PHOTOS {
        problems.push(format!(
            "the pack lists {} photos, fewer than {MIN_PHOTOS}",
            photos.len()
        ));
    }
    let mut ids = HashSet::new();
    for p in photos {
        let id = p["id"].as_str().unwrap_or("?");
        if !ids.insert(id.to_string()) {
            problems.push(format!("{id}: listed twice"));
        }
        let keys = [
            "source_pixel_sha256_rgb",
            "source_pixel_sha256_rgb_oriented",
            "pixel_sha256_rgb",
        ];
        match p["source_pixel_sha256_rgb"].as_str() {
            Some(h) if h.len() == 64 => {}
            _ => problems.push(format!("{id}: no source_pixel_sha256_rgb")),
        }
        for key in keys {
            if let Some(h) = p.get(key).and_then(Value::as_str) {
                if let Some(name) = eval.get(&h.to_ascii_lowercase()) {
                    problems.push(format!("{id}: {key} {h} is the evaluation image {name}"));
                }
            }
        }
        let Some(file) = p["file"].as_str() else {
            problems.push(format!("{id}: no file"));
            continue;
        };
        let path = pack.join(file);
        match std::fs::read(&path) {
            Err(e) => problems.push(format!("{id}: {}: {e}", path.display())),
            Ok(bytes) => {
                let got = format!("{:x}", Sha256::digest(&bytes));
                if p["file_sha256"].as_str() != Some(got.as_str()) {
                    problems.push(format!(
                        "{id}: {} has SHA-256 {got}, not the listed one",
                        path.display()
                    ));
                }
            }
        }
    }
    let counted: u64 = ["train", "val"]
        .iter()
        .filter_map(|s| manifest["counts"][s].as_u64())
        .sum();
    if counted as usize != photos.len() {
        problems.push(format!(
            "counts say {counted} photos, the list has {}",
            photos.len()
        ));
    }
    Some(problems)
}

#[test]
fn pack_has_no_evaluation_image() {
    let pack = pack_dir();
    let manifest_path = pack.join("manifest.json");
    let eval_path = eval_manifest();
    if !manifest_path.is_file() {
        println!(
            "SKIPPED: no training pack at {} (models/default/make-data.sh builds it)",
            manifest_path.display()
        );
        return;
    }
    if !eval_path.is_file() {
        println!("SKIPPED: no evaluation manifest at {}", eval_path.display());
        return;
    }
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
    let eval = eval_hashes(&std::fs::read_to_string(&eval_path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", eval_path.display()));
    match check_pack(&pack, &manifest, &eval) {
        None => println!(
            "SKIPPED: {} has no source pixel hashes (a pack older than them); rerun models/default/make-data.sh",
            manifest_path.display()
        ),
        Some(problems) => {
            assert!(
                problems.is_empty(),
                "training pack {} against {}:\n  {}",
                pack.display(),
                eval_path.display(),
                problems.join("\n  ")
            );
            println!(
                "{} photos in {}, none of {} evaluation images among them",
                manifest["photos"].as_array().map_or(0, Vec::len),
                pack.display(),
                eval.len()
            );
        }
    }
}

/// The checker itself: a doctored manifest must fail on each kind of fault.
#[test]
fn checker_finds_planted_faults() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path();
    std::fs::create_dir_all(pack.join("train")).unwrap();
    let mut photos = Vec::new();
    for i in 0..MIN_PHOTOS {
        let bytes = format!("photo {i}").into_bytes();
        std::fs::write(pack.join(format!("train/p{i}.png")), &bytes).unwrap();
        photos.push(serde_json::json!({
            "id": format!("p{i}"), "split": "train", "file": format!("train/p{i}.png"),
            "file_sha256": format!("{:x}", Sha256::digest(&bytes)),
            "source_pixel_sha256_rgb": format!("{:x}", Sha256::digest(format!("src {i}"))),
            "pixel_sha256_rgb": format!("{:x}", Sha256::digest(format!("out {i}"))),
        }));
    }
    let evil = format!("{:x}", Sha256::digest("kodim01"));
    let tsv = format!("set\tfile\tsource\tsize\tsha256\tmode\tpixel_sha256_rgb\nKodak24\tkodim01.png\tx\t768x512\t{evil}\tRGB\t{evil}\n");
    let eval = eval_hashes(&tsv).unwrap();
    let good = serde_json::json!({"counts": {"train": MIN_PHOTOS, "val": 0}, "photos": photos});
    assert_eq!(check_pack(pack, &good, &eval), Some(vec![]));

    let mut bad = good.clone();
    bad["photos"][3]["source_pixel_sha256_rgb"] = evil.to_uppercase().into();
    let found = check_pack(pack, &bad, &eval).unwrap();
    assert!(
        found.len() == 1 && found[0].contains("Kodak24/kodim01.png"),
        "{found:?}"
    );

    let mut bad = good.clone();
    bad["photos"].as_array_mut().unwrap().pop();
    bad["counts"]["train"] = (MIN_PHOTOS - 1).into();
    let found = check_pack(pack, &bad, &eval).unwrap();
    assert!(
        found.len() == 1 && found[0].contains("fewer than"),
        "{found:?}"
    );

    std::fs::remove_file(pack.join("train/p7.png")).unwrap();
    let found = check_pack(pack, &good, &eval).unwrap();
    assert!(found.len() == 1 && found[0].starts_with("p7:"), "{found:?}");

    let old =
        serde_json::json!({"counts": {"train": 1}, "photos": [{"id": "a", "file": "train/a.png"}]});
    assert_eq!(check_pack(pack, &old, &eval), None);
    assert!(eval_hashes("set\tfile\n").is_err());
}
