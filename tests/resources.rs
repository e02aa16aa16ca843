//! Memory across many serve requests: the resident set after request 10 (LibTorch loaded,
//! allocator pools warm, network cached) against the resident set after the last one.
//! A leak of one request's buffers per request must show; allocator noise must not.
//! The numbers are printed (`--nocapture`) and recorded in docs/reliability.md.

mod cli_common;

use cli_common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Sends `total` copies of one request, one at a time, and returns the resident set (KiB)
/// after each request number in `marks`.
fn rss_over_requests(header: &Value, image: &[u8], total: usize, marks: &[usize]) -> Vec<u64> {
    let mut child = command(&["serve", "--device", "cpu", "--progress", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let req = request(header, image, None);
    let mut seen = Vec::new();
    for i in 1..=total {
        stdin.write_all(&req).unwrap();
        stdin.flush().unwrap();
        let mut line = Vec::new();
        stdout.read_until(b'\n', &mut line).unwrap();
        let h: Value = serde_json::from_slice(&line).expect("response header");
        assert_eq!(h["ok"], true, "request {i}: {h}");
        let mut body = vec![0; h["image"]["bytes"].as_u64().unwrap() as usize];
        stdout.read_exact(&mut body).unwrap();
        if marks.contains(&i) {
            seen.push(vm_rss_kib(child.id()));
        }
    }
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    seen
}

/// 100 classical SR ×2 requests on 128×128: each decodes 192 KiB of f32 planes and builds
/// a 256×256 output (768 KiB of f32, plus tensors and the encoded PNG). Keeping even the
/// output picture of every request would add 90 × 768 KiB = 67 MiB between request 10 and
/// 100 (any leak above 24 MiB / 90 ≈ 270 KiB per request fails); the bound, 24 MiB, is 3×
/// the allocator's swings seen when nothing leaks (≈ 7 MiB either way, glibc returning and
/// retaking pages).
#[test]
fn serve_memory_is_flat_over_100_requests() {
    let header = json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical"}});
    let rss = rss_over_requests(&header, &png(&rgb(128, 128)), 100, &[10, 100]);
    let growth = rss[1] as i64 - rss[0] as i64;
    println!(
        "classical, 100 requests: VmRSS {} KiB after 10, {} KiB after 100, growth {growth} KiB",
        rss[0], rss[1]
    );
    assert!(
        growth < 24 * 1024,
        "resident set grew by {growth} KiB over 90 requests"
    );
}

/// The network path (model cache, autograd, LibTorch's CPU allocator): 40 requests of
/// VML-MAP with the shipped model, 2 steps of 1 iteration on 16×16 → 32×32. Fewer requests
/// than above to keep the test short: any leak above 24 MiB / 30 ≈ 0.8 MiB per request fails.
#[test]
fn serve_memory_is_flat_with_the_network() {
    let header = json!({"vml":1,"task":{"kind":"sr","scale":2},
        "options":{"method":"vml-map","model":"default","device":"cpu","steps":2,"iters":1}});
    let rss = rss_over_requests(&header, &png(&rgb(16, 16)), 40, &[10, 40]);
    let growth = rss[1] as i64 - rss[0] as i64;
    println!(
        "vml-map, 40 requests: VmRSS {} KiB after 10, {} KiB after 40, growth {growth} KiB",
        rss[0], rss[1]
    );
    assert!(
        growth < 24 * 1024,
        "resident set grew by {growth} KiB over 30 requests"
    );
}
