//! Shared helpers of the binary's integration tests: run `vml-filter` as a user would,
//! make small test images in memory.
#![allow(dead_code)]

use image::{DynamicImage, GenericImageView, ImageFormat};
use std::io::{Cursor, Write};
use std::path::Path;
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_vml-filter");

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The stderr without log noise, for messages in assertions.
    pub fn context(&self) -> String {
        format!("exit {}; stderr:\n{}", self.code, self.stderr)
    }
}

pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("OMP_NUM_THREADS", "1")
        .env_remove("RUST_LOG");
    for v in [
        "VML_MAX_WIDTH",
        "VML_MAX_HEIGHT",
        "VML_MAX_PIXELS",
        "VML_MAX_BYTES",
    ] {
        c.env_remove(v);
    }
    c
}

pub fn run(args: &[&str], stdin: &[u8]) -> Run {
    run_cmd(command(args), stdin)
}

pub fn run_cmd(mut c: Command, stdin: &[u8]) -> Run {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vml-filter");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // A writer thread, so a child that answers before reading everything cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait vml-filter");
    let _ = writer.join();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A smooth colour pattern, `w × h`, RGB 8-bit.
pub fn rgb(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(image::ImageBuffer::from_fn(w, h, |x, y| {
        let fx = x as f32 / w as f32;
        let fy = y as f32 / h as f32;
        image::Rgb([
            (40.0 + 180.0 * fx) as u8,
            (60.0 + 150.0 * fy) as u8,
            (128.0 + 100.0 * (6.0 * fx).sin() * (4.0 * fy).cos()) as u8,
        ])
    }))
}

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    img.write_to(&mut c, format).expect("encode test image");
    c.into_inner()
}

pub fn png(img: &DynamicImage) -> Vec<u8> {
    encode(img, ImageFormat::Png)
}

pub fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

/// A binary mask: white inside the box `[x0, x1) × [y0, y1)`.
pub fn box_mask(w: u32, h: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(w, h, |x, y| {
        image::Luma([if x >= x0 && x < x1 && y >= y0 && y < y1 {
            255
        } else {
            0
        }])
    }))
}

/// Files in a folder, for checking that nothing (no temp file) was left behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A protocol request: header line, then payloads.
pub fn request(header: &serde_json::Value, image: &[u8], mask: Option<&[u8]>) -> Vec<u8> {
    let mut h = header.clone();
    h["image"] = serde_json::json!({ "bytes": image.len() });
    if let Some(m) = mask {
        h["mask"] = serde_json::json!({ "bytes": m.len() });
    }
    let mut out = serde_json::to_vec(&h).unwrap();
    out.push(b'\n');
    out.extend_from_slice(image);
    if let Some(m) = mask {
        out.extend_from_slice(m);
    }
    out
}

/// Splits one response off the front of `stream`: (header, payload, rest).
pub fn split_response(stream: &[u8]) -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let nl = stream
        .iter()
        .position(|&b| b == b'\n')
        .expect("response header line");
    let header: serde_json::Value =
        serde_json::from_slice(&stream[..nl]).expect("response header is JSON");
    let n = header["image"]["bytes"].as_u64().unwrap_or(0) as usize;
    let body = &stream[nl + 1..];
    assert!(body.len() >= n, "response payload shorter than declared");
    (header, body[..n].to_vec(), body[n..].to_vec())
}

/// Rewrites the CRC of every whole chunk of a PNG, so that edited bytes still pass the
/// decoder's checksum test and reach the code under test.
pub fn fix_png_crcs(b: &mut [u8]) {
    let mut i = 8;
    while i + 8 <= b.len() {
        let n = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let end = match (i + 8).checked_add(n) {
            Some(e) if e + 4 <= b.len() => e,
            _ => return,
        };
        let crc = crc32(&b[i + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        i = end + 4;
    }
}

/// CRC-32 (IEEE, reflected), as PNG chunks use.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &byte in data {
        c ^= u32::from(byte);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The photo bundled for the demo (256²).
pub fn demo_photo() -> DynamicImage {
    image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/demo/dandelion.png"
    ))
    .unwrap()
}

/// PSNR in dB between two 8-bit RGB images of one size (`vml::metrics::psnr` on [0, 1]).
pub fn psnr8(a: &DynamicImage, b: &DynamicImage) -> f64 {
    let unit = |img: &DynamicImage| {
        tch::Tensor::from_slice(img.to_rgb8().as_raw()).to_kind(tch::Kind::Double) / 255.0
    };
    assert_eq!(a.dimensions(), b.dimensions());
    vml::metrics::psnr(&unit(a), &unit(b))
}

/// Arguments of a restore by `method` with the shipped default model on the CPU, at a
/// budget of `steps` × `iters`; the task and other options go before or after them.
pub fn on_default_model<'a>(method: &'a str, steps: &'a str, iters: &'a str) -> Vec<&'a str> {
    let mut a = vec![
        "--method", method, "--model", "default", "--device", "cpu", "--steps", steps,
    ];
    // Only the methods with inner iterations take `--iters` (any other would refuse it).
    if matches!(method, "vml-map" | "vml-map-pre" | "daps") {
        a.extend(["--iters", iters]);
    }
    a
}

/// `‖a − b‖₂ / ‖b‖₂`, computed in double precision (network outputs against references).
pub fn rel_l2(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    use tch::Kind;
    let diff = (a - b).to_kind(Kind::Double).norm().double_value(&[]);
    diff / b.to_kind(Kind::Double).norm().double_value(&[])
}
