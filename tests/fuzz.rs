//! Deterministic, bounded mutation fuzzing of the code that reads hostile bytes: the image
//! and mask decoder behind the input limits (`io::decode`), the protocol's header parser
//! and framing (`protocol::*`, and `serve::serve` over whole mutated streams), and the
//! `--deblur` spec and kernel-file parser, the JPEG marker reader (`jpeg`); plus a
//! few whole-binary runs.
//!
//! A plain integration test, no fuzzing tool needed: a seeded PRNG (splitmix64) mutates the
//! committed seed corpus in `tests/fuzz-corpus/` (made by its `make-corpus.sh`) with bit
//! flips, interesting bytes and integers, truncations, deletions, insertions, splices,
//! format-aware size fields (huge, zero, at the limit) and PNG CRC repair, then calls the
//! library in-process. Every panic is a finding, even one the library catches itself
//! (the panic hook sees it first). The same seed and budget give the same inputs on every
//! run; `VML_FUZZ_EXECS=N` multiplies the budget by N for a longer run by hand, and
//! `VML_FUZZ_SEED` changes the seed. A finding's input is saved under
//! `target/tmp/fuzz-findings/` for replay. docs/reliability.md records the runs.

mod cli_common;
use cli_common::fix_png_crcs;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use vml::io::{self, Format, Limits};
use vml::pipeline::progress::{ProgressKind, Reporter};
use vml::pipeline::Settings;
use vml::protocol;

// ---------------------------------------------------------------------------------------
// The mutation engine.

/// splitmix64: tiny, fast, and the same stream on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Sizes and counts that decoders and framing code tend to get wrong.
const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    100_000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    u64::MAX,
];

/// Image sizes: empty, tiny, at and just past the fuzz limits, huge.
fn interesting_side(rng: &mut Rng) -> u32 {
    const SIDES: [u32; 12] = [
        0,
        1,
        3,
        255,
        256,
        257,
        4096,
        4097,
        65535,
        100_000,
        0x7fff_ffff,
        0xffff_ffff,
    ];
    if rng.chance(4) {
        rng.next() as u32
    } else {
        SIDES[rng.below(SIDES.len())]
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = b.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                b[i] = INTERESTING[rng.below(6)] as u8;
            }
            3 if len >= 4 => {
                // A length or size field: 2, 4 or 8 bytes, either byte order.
                let width = [2usize, 4, 8][rng.below(3)].min(len);
                let i = rng.below(len - width + 1);
                let v = if rng.chance(3) {
                    rng.next()
                } else {
                    INTERESTING[rng.below(INTERESTING.len())]
                };
                let bytes = if rng.chance(2) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let src = if rng.chance(2) {
                    &bytes[8 - width..]
                } else {
                    &bytes[..width]
                };
                b[i..i + width].copy_from_slice(src);
            }
            4 if len > 0 => b.truncate(rng.below(len)),
            5 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                b.drain(i..i + n);
            }
            6 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(32);
                let fill: Vec<u8> = if rng.chance(2) || len == 0 {
                    (0..n).map(|_| rng.next() as u8).collect()
                } else {
                    let j = rng.below(len);
                    b[j..(j + n).min(len)].to_vec()
                };
                b.splice(i..i, fill);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            8 | 9 => {
                let (w, h) = (interesting_side(rng), interesting_side(rng));
                set_dimensions(&mut b, w, h);
            }
            _ => {
                // Repeat a range many times: long runs of one structure.
                if len > 0 {
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(16));
                    let chunk = b[i..i + n].to_vec();
                    for _ in 0..rng.below(64) {
                        b.splice(i..i, chunk.iter().copied());
                    }
                }
            }
        }
    }
    // Without valid CRCs the PNG decoder refuses a chunk at once; repairing them lets most
    // mutations reach the code behind the check.
    if b.starts_with(b"\x89PNG") && rng.below(4) != 0 {
        fix_png_crcs(&mut b);
    }
    b
}

/// Writes `w × h` into the size fields of the format `b` starts with, if it finds them.
fn set_dimensions(b: &mut Vec<u8>, w: u32, h: u32) {
    match io::sniff(b) {
        Some(Format::Png) if b.len() >= 24 => {
            b[16..20].copy_from_slice(&w.to_be_bytes());
            b[20..24].copy_from_slice(&h.to_be_bytes());
            fix_png_crcs(b);
        }
        // The OS/2 (v2) info header is 12 bytes with 16-bit sizes; later ones have 32-bit.
        Some(Format::Bmp) if b.len() >= 26 && b[14] == 12 => {
            b[18..20].copy_from_slice(&(w as u16).to_le_bytes());
            b[20..22].copy_from_slice(&(h as u16).to_le_bytes());
        }
        Some(Format::Bmp) if b.len() >= 26 => {
            b[18..22].copy_from_slice(&w.to_le_bytes());
            b[22..26].copy_from_slice(&h.to_le_bytes());
        }
        Some(Format::Jpeg) => {
            // The frame header (SOF0/1/2): height then width, 16 bits each.
            if let Some(i) = (0..b.len().saturating_sub(9))
                .find(|&i| b[i] == 0xFF && matches!(b[i + 1], 0xC0..=0xC2))
            {
                b[i + 5..i + 7].copy_from_slice(&(h as u16).to_be_bytes());
                b[i + 7..i + 9].copy_from_slice(&(w as u16).to_be_bytes());
            }
        }
        Some(Format::Pnm) => set_pnm_dimensions(b, w, h),
        Some(Format::Tiff) => set_tiff_dimensions(b, w, h),
        Some(Format::WebP) if b.len() >= 30 => match &b[12..16] {
            b"VP8X" => {
                b[24..27].copy_from_slice(&w.wrapping_sub(1).to_le_bytes()[..3]);
                b[27..30].copy_from_slice(&h.wrapping_sub(1).to_le_bytes()[..3]);
            }
            b"VP8L" => {
                // 14 bits of width-1, 14 bits of height-1, after the 0x2f signature.
                let bits = (w.wrapping_sub(1) & 0x3fff) | ((h.wrapping_sub(1) & 0x3fff) << 14);
                let old = u32::from_le_bytes([b[21], b[22], b[23], b[24]]);
                let v = (old & 0xF000_0000) | bits;
                b[21..25].copy_from_slice(&v.to_le_bytes());
            }
            b"VP8 " => {
                b[26..28].copy_from_slice(&((w & 0x3fff) as u16).to_le_bytes());
                b[28..30].copy_from_slice(&((h & 0x3fff) as u16).to_le_bytes());
            }
            _ => {}
        },
        _ => {}
    }
}

/// P5/P6: the first two numbers after the magic; P7: the numbers after WIDTH and HEIGHT.
fn set_pnm_dimensions(b: &mut Vec<u8>, w: u32, h: u32) {
    let head = b.len().min(128);
    // (start, end) of each run of digits in the header.
    let mut numbers = Vec::new();
    let mut i = 2;
    while i < head {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < head && b[i].is_ascii_digit() {
                i += 1;
            }
            numbers.push((s, i));
        } else {
            i += 1;
        }
    }
    let (iw, ih) = if b.starts_with(b"P7") {
        let after = |key: &[u8]| {
            let k = b[..head].windows(key.len()).position(|x| x == key)?;
            numbers.iter().position(|&(s, _)| s > k)
        };
        match (after(b"WIDTH"), after(b"HEIGHT")) {
            (Some(x), Some(y)) => (x, y),
            _ => return,
        }
    } else {
        (0, 1)
    };
    let (Some(&nw), Some(&nh)) = (numbers.get(iw), numbers.get(ih)) else {
        return;
    };
    // Replace the later one first so the earlier offsets stay valid.
    let (first, second, fv, sv) = if nw.0 < nh.0 {
        (nw, nh, w, h)
    } else {
        (nh, nw, h, w)
    };
    b.splice(second.0..second.1, sv.to_string().into_bytes());
    b.splice(first.0..first.1, fv.to_string().into_bytes());
}

/// Sets ImageWidth (256) and ImageLength (257) in the first IFD, as SHORT or LONG, and
/// RowsPerStrip (278) to the height, so that the one-strip layout stays self-consistent
/// and the decoder looks at the size rather than at a strip count that no longer fits.
fn set_tiff_dimensions(b: &mut [u8], w: u32, h: u32) {
    let le = b.starts_with(b"II");
    let u16_at = |b: &[u8], i: usize| -> Option<u16> {
        let s = b.get(i..i + 2)?;
        Some(if le {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        })
    };
    let u32_at = |b: &[u8], i: usize| -> Option<u32> {
        let s = b.get(i..i + 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let Some(ifd) = u32_at(b, 4).map(|v| v as usize) else {
        return;
    };
    let Some(n) = u16_at(b, ifd) else { return };
    for k in 0..usize::from(n) {
        let e = ifd + 2 + 12 * k;
        let (Some(tag), Some(kind)) = (u16_at(b, e), u16_at(b, e + 2)) else {
            return;
        };
        let v = match tag {
            256 => w,
            257 | 278 => h,
            _ => continue,
        };
        let Some(slot) = b.get_mut(e + 8..e + 12) else {
            return;
        };
        if kind == 3 {
            let s = if le {
                (v as u16).to_le_bytes()
            } else {
                (v as u16).to_be_bytes()
            };
            slot[..2].copy_from_slice(&s);
        } else {
            slot.copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
        }
    }
}

// ---------------------------------------------------------------------------------------
// Corpus, budget, findings.

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

/// The seed files whose names start with `prefix`, sorted (the order is part of the seed).
fn corpus(prefixes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("tests/fuzz-corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            prefixes.iter().any(|pre| name.starts_with(pre))
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(
        v.len() >= 5,
        "the seed corpus for {prefixes:?} is missing or nearly empty"
    );
    v
}

fn budget(base: usize) -> usize {
    let factor = std::env::var("VML_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

fn seed(target: u64) -> Rng {
    let s = std::env::var("VML_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0x5EED);
    Rng(s ^ target.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

thread_local! {
    /// Panics seen on this thread since the last reset, caught or not.
    static PANICS: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread is inside a fuzz execution (else panics are the test's own).
    static IN_EXEC: Cell<bool> = const { Cell::new(false) };
}
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// A hook that counts panics per thread instead of printing them, so that a panic the
/// library catches and turns into an error still counts as a finding.
fn install_panic_counter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_EXEC.with(|e| e.get()) {
                return default(info);
            }
            PANICS.with(|p| p.set(p.get() + 1));
            if let Ok(mut m) = LAST_PANIC.lock() {
                *m = info.to_string();
            }
        }));
    });
}

struct Findings {
    target: &'static str,
    list: Vec<String>,
}

impl Findings {
    fn new(target: &'static str) -> Self {
        install_panic_counter();
        Findings {
            target,
            list: Vec::new(),
        }
    }

    /// Runs one execution; a panic (escaped or caught inside) is recorded with its input.
    fn exec(&mut self, input: &[u8], f: impl FnOnce() -> Result<(), String>) {
        PANICS.with(|p| p.set(0));
        IN_EXEC.with(|e| e.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(f));
        IN_EXEC.with(|e| e.set(false));
        let panicked = PANICS.with(|p| p.get()) > 0;
        let problem = match outcome {
            Err(_) => Some(format!("panic: {}", LAST_PANIC.lock().unwrap())),
            Ok(_) if panicked => Some(format!(
                "panic caught inside the library: {}",
                LAST_PANIC.lock().unwrap()
            )),
            Ok(Err(broken)) => Some(format!("property broken: {broken}")),
            Ok(Ok(())) => None,
        };
        if let Some(p) = problem {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{}-{}.bin", self.target, self.list.len()));
            let _ = std::fs::write(&file, input);
            self.list
                .push(format!("{p} (input saved to {})", file.display()));
        }
    }

    fn assert_none(&self, execs: usize) {
        println!(
            "fuzz {}: {execs} executions, {} findings",
            self.target,
            self.list.len()
        );
        assert!(
            self.list.is_empty(),
            "fuzz {}: {} findings:\n{}",
            self.target,
            self.list.len(),
            self.list.join("\n")
        );
    }
}

/// Limits small enough that no mutated size makes one execution slow, large enough that
/// the corpus images and their ×8 super-resolutions pass.
fn fuzz_limits() -> Limits {
    Limits {
        max_width: 4096,
        max_height: 4096,
        max_pixels: 1 << 20,
        max_bytes: 16 << 20,
    }
}

// ---------------------------------------------------------------------------------------
// Target 1: image and mask decoding.

/// Decodes, checks what a decoded picture promises, and re-encodes it (the encoder sees
/// whatever shapes the decoders produce).
fn decode_once(
    bytes: &[u8],
    what: &str,
    limits: &Limits,
    encode_as: Format,
) -> Result<bool, String> {
    let d = match io::decode(bytes, limits, what) {
        Ok(d) => d,
        Err(vml::Error::Input(_)) => return Ok(false),
        Err(e) => return Err(format!("decode failed with a non-input error: {e:?}")),
    };
    let p = &d.picture;
    if p.width == 0 || p.height == 0 || p.width > limits.max_width.max(limits.max_height) {
        return Err(format!(
            "decoded size {}×{} outside the limits",
            p.width, p.height
        ));
    }
    let n = p.width as usize * p.height as usize;
    if n as u64 > limits.max_pixels {
        return Err(format!("{n} pixels decoded, limit {}", limits.max_pixels));
    }
    if !(p.channels == 1 || p.channels == 3) || p.color.len() != p.channels * n {
        return Err(format!(
            "{} channels, {} samples for {n} pixels",
            p.channels,
            p.color.len()
        ));
    }
    if p.alpha.as_ref().is_some_and(|a| a.len() != n) {
        return Err("alpha plane of the wrong length".into());
    }
    let in_range = |v: &f32| v.is_finite() && (0.0..=1.0).contains(v);
    if !p.color.iter().all(in_range) || !p.alpha.iter().flatten().all(in_range) {
        return Err("a sample outside [0, 1]".into());
    }
    // With the input's metadata, so that mutated profiles, EXIF and XMP reach the writers.
    let bytes = io::encode_with(p, encode_as, &d.metadata)
        .map_err(|e| format!("re-encoding failed: {e}"))?;
    let back = io::decode(&bytes, &Limits::default(), "re-encoded")
        .map_err(|e| format!("re-encoded {encode_as:?} does not decode: {e}"))?;
    if (back.picture.width, back.picture.height) != (p.width, p.height) {
        return Err("re-encoding changed the size".into());
    }
    Ok(true)
}

#[test]
fn fuzz_image_decoding() {
    let seeds = corpus(&["img-", "mask-"]);
    let all: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let limits = fuzz_limits();
    let mut findings = Findings::new("decode");
    // Every seed decodes as it is: the corpus is what it claims to be.
    for (name, bytes) in &seeds {
        let d = io::decode(bytes, &limits, "seed");
        assert!(d.is_ok(), "seed {name} does not decode: {:?}", d.err());
    }
    let mut rng = seed(1);
    let execs = budget(40_000);
    let mut decoded = 0usize;
    for k in 0..execs {
        let base = &all[k % all.len()];
        let input = mutate(&mut rng, base, &all);
        let what = if k % 5 == 0 { "mask" } else { "image" };
        let encode_as = Format::ALL[k % Format::ALL.len()];
        let mut ok = false;
        findings.exec(&input, || {
            ok = decode_once(&input, what, &limits, encode_as)?;
            Ok(())
        });
        decoded += usize::from(ok);
    }
    println!("fuzz decode: {decoded} of {execs} mutated inputs still decoded");
    findings.assert_none(execs);
}

// ---------------------------------------------------------------------------------------
// Target 2: the protocol header parser and framing.

const DOCUMENTED_EXIT: [i32; 9] = [1, 2, 3, 4, 5, 6, 7, 130, 141];
const ERROR_CODES: [&str; 8] = [
    "io",
    "internal",
    "usage",
    "bad_input",
    "model",
    "device",
    "out_of_memory",
    "interrupted",
];

/// Mutates the header's JSON structurally: numbers, strings, types, missing and extra keys.
fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let replacement = |rng: &mut Rng| -> Value {
        match rng.below(14) {
            0 => json!(-1),
            1 => json!(0),
            2 => json!(u64::MAX),
            3 => json!(1e308),
            4 => json!(-1e308),
            5 => json!(0.5),
            6 => json!("NaN"),
            7 => json!(""),
            8 => Value::Null,
            9 => json!([]),
            10 => json!({}),
            11 => json!(true),
            12 => json!(INTERESTING[rng.below(INTERESTING.len())]),
            _ => json!("x".repeat(rng.below(300))),
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            match rng.below(5) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), replacement(rng));
                }
                2 => {
                    let extra = ["kind", "bytes", "scale", "sigma", "mask", "image", "vml"];
                    m.insert(extra[rng.below(extra.len())].into(), replacement(rng));
                }
                _ => {
                    if let Some(child) = m.get_mut(k) {
                        mutate_json(rng, child);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            mutate_json(rng, &mut a[i]);
        }
        Value::String(s) => {
            let words = [
                "sr",
                "inpaint",
                "deblur",
                "denoise",
                "colorize",
                "gaussian",
                "uniform",
                "motion",
                "custom",
                "bicubic",
                "classical",
                "cpu",
                "cuda",
                "png",
                "gif",
                "8G",
                "-1",
            ];
            *s = words[rng.below(words.len())].into();
        }
        Value::Number(_) => *v = replacement(rng),
        _ => *v = replacement(rng),
    }
}

/// Splits a stream into (header line, rest) at the first newline.
fn split_header(stream: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    let nl = stream.iter().position(|&b| b == b'\n')?;
    let v = serde_json::from_slice(&stream[..nl]).ok()?;
    Some((v, &stream[nl + 1..]))
}

fn mutate_stream(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(3) {
        // Structural: a JSON change in the first header; half the time the byte counts are
        // made true again, so that the request gets past the framing to the decoder.
        0 => {
            let Some((mut h, rest)) = split_header(seed) else {
                return mutate(rng, seed, corpus);
            };
            for _ in 0..1 + rng.below(3) {
                mutate_json(rng, &mut h);
            }
            let mut out = serde_json::to_vec(&h).unwrap_or_default();
            out.push(b'\n');
            out.extend_from_slice(rest);
            out
        }
        // A payload mutated in place, the header's counts kept honest.
        1 => {
            let Some((mut h, rest)) = split_header(seed) else {
                return mutate(rng, seed, corpus);
            };
            let n = h["image"]["bytes"].as_u64().unwrap_or(0) as usize;
            if n > rest.len() {
                return mutate(rng, seed, corpus);
            }
            let image = mutate(rng, &rest[..n], corpus);
            h["image"]["bytes"] = serde_json::json!(image.len());
            let mut out = serde_json::to_vec(&h).unwrap_or_default();
            out.push(b'\n');
            out.extend_from_slice(&image);
            out.extend_from_slice(&rest[n..]);
            out
        }
        // Raw bytes of the whole stream.
        _ => mutate(rng, seed, corpus),
    }
}

/// Checks that `out` is a sequence of complete response frames; returns their headers.
fn frames(out: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let mut rest = out;
    let mut headers = Vec::new();
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("response header without a newline")?;
        let h: serde_json::Value = serde_json::from_slice(&rest[..nl])
            .map_err(|e| format!("response header is not JSON: {e}"))?;
        if h["vml"] != 1 {
            return Err(format!("response without \"vml\":1: {h}"));
        }
        let n = match h["ok"].as_bool() {
            Some(true) => h["image"]["bytes"]
                .as_u64()
                .ok_or_else(|| format!("success without image.bytes: {h}"))?
                as usize,
            Some(false) => {
                let code = h["error"]["code"].as_str().unwrap_or("");
                let exit = h["error"]["exit_code"].as_i64().unwrap_or(0) as i32;
                if !ERROR_CODES.contains(&code) || !DOCUMENTED_EXIT.contains(&exit) {
                    return Err(format!("undocumented error code or exit code: {h}"));
                }
                if !h["error"]["message"].is_string() {
                    return Err(format!("error without a message: {h}"));
                }
                0
            }
            None => return Err(format!("response without \"ok\": {h}")),
        };
        if rest.len() < nl + 1 + n {
            return Err(format!(
                "response payload shorter than its header says: {h}"
            ));
        }
        if h["ok"] == true {
            let img = io::decode(&rest[nl + 1..nl + 1 + n], &Limits::default(), "response")
                .map_err(|e| format!("response image does not decode ({e}): {h}"))?;
            let size = (u64::from(img.picture.width), u64::from(img.picture.height));
            if Some(size.0) != h["image"]["width"].as_u64()
                || Some(size.1) != h["image"]["height"].as_u64()
                || Some(img.format.name()) != h["image"]["format"].as_str()
            {
                return Err(format!("response image is not what its header says: {h}"));
            }
        }
        rest = &rest[nl + 1 + n..];
        headers.push(h);
    }
    Ok(headers)
}

/// The whole server loop over one mutated stream, in-process; returns how many requests
/// succeeded.
fn serve_once(stream: &[u8], settings: &Settings, limits: &Limits) -> Result<usize, String> {
    let mut input = stream;
    let mut out = Vec::new();
    let mut reporter = Reporter::new(ProgressKind::None);
    let result = vml::app::serve::serve(&mut input, &mut out, settings, limits, &mut reporter, 1);
    let headers = frames(&out)?;
    let ok = headers.iter().filter(|h| h["ok"] == true).count();
    match result {
        Ok(0) => Ok(ok),
        Ok(c) => Err(format!("serve returned exit code {c} without an error")),
        Err(e) => {
            let last = headers
                .last()
                .ok_or_else(|| format!("serve failed ({e}) without an error response"))?;
            if last["ok"] != false || last["error"]["exit_code"] != e.exit_code() {
                return Err(format!(
                    "serve ended with {e} (exit {}) but its last response is {last}",
                    e.exit_code()
                ));
            }
            Ok(ok)
        }
    }
}

/// The header parser alone, on one line: what it accepts must be a usable request.
fn parse_once(stream: &[u8]) -> Result<(), String> {
    let mut r = stream;
    let line = match protocol::read_header_line(&mut r) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(()),
        Err(vml::Error::Input(_)) => return Ok(()),
        Err(e) => return Err(format!("header line failed with a non-input error: {e:?}")),
    };
    if line.len() >= protocol::MAX_HEADER_BYTES {
        return Err("header longer than the cap accepted".into());
    }
    match protocol::parse_header(&line) {
        Ok(req) => {
            if req.vml != protocol::VERSION || req.image.bytes == 0 {
                return Err(format!("accepted a request it should refuse: {req:?}"));
            }
            if req.options.sigma_y.is_some_and(
                |s| matches!(s, vml::solvers::SigmaY::Value(v) if !v.is_finite() || v < 0.0),
            ) {
                return Err("accepted a bad sigma_y".into());
            }
            let _ = req
                .options
                .solver_options(&vml::solvers::SolverOptions::default());
            Ok(())
        }
        // The request's fault either way: malformed (input) or naming a method that does
        // not exist (usage, as on the command line; the parser knows the typed method).
        Err(e) => match e.error {
            vml::Error::Input(_) | vml::Error::Usage(_) => Ok(()),
            other => Err(format!(
                "header refused with a non-request error: {other:?}"
            )),
        },
    }
}

#[test]
fn fuzz_protocol_framing() {
    let seeds = corpus(&["proto-"]);
    let all: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let limits = Limits {
        // The restore behind a request must stay quick: 64×64 at most, and so ×8 = 512.
        max_width: 512,
        max_height: 512,
        max_pixels: 512 * 512,
        max_bytes: 1 << 20,
    };
    let settings = Settings {
        method: vml::solvers::Method::Classical,
        device: "cpu".into(),
        ..Settings::default()
    };
    // One LibTorch thread, as the binary runs get through OMP_NUM_THREADS=1: the restores
    // here are tiny, and a thread pool spinning on a loaded machine made them 50× slower.
    tch::set_num_threads(1);
    let mut findings = Findings::new("protocol");
    // Every seed stream is answered, all requests successfully.
    for (name, bytes) in &seeds {
        let mut out = Vec::new();
        let mut input = &bytes[..];
        let r = vml::app::serve::serve(
            &mut input,
            &mut out,
            &settings,
            &limits,
            &mut Reporter::new(ProgressKind::None),
            1,
        );
        assert!(matches!(r, Ok(0)), "seed {name}: {r:?}");
        let hs = frames(&out).unwrap();
        assert!(
            !hs.is_empty() && hs.iter().all(|h| h["ok"] == true),
            "seed {name}: {hs:?}"
        );
    }
    let mut rng = seed(2);
    let execs = budget(1500);
    let mut answered = 0usize;
    for k in 0..execs {
        let base = &all[k % all.len()];
        let input = mutate_stream(&mut rng, base, &all);
        findings.exec(&input, || parse_once(&input));
        findings.exec(&input, || {
            answered += serve_once(&input, &settings, &limits)?;
            Ok(())
        });
    }
    println!("fuzz protocol: {answered} successful responses to {execs} mutated streams");
    findings.assert_none(2 * execs);
}

/// The size-field mutation reaches every format, and a huge declared size is refused from
/// the header with the limit named (no allocation, no decoding).
#[test]
fn huge_declared_sizes_are_refused_from_the_header() {
    let limits = fuzz_limits();
    let mut wrong = Vec::new();
    for (name, seed) in corpus(&["img-"]) {
        let mut b = seed.clone();
        set_dimensions(&mut b, 60_000, 50_000);
        assert_ne!(b, seed, "{name}: size fields not found");
        match io::decode(&b, &limits, "image") {
            Err(vml::Error::Input(m)) if m.contains("limit") => {}
            // A tiled TIFF's tile count no longer fits the new size: refused even earlier.
            Err(vml::Error::Input(m)) if name.contains("tiled") && m.contains("inconsistent") => {}
            other => wrong.push(format!("{name}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The whole binary on a few mutated inputs: exit codes, stdout, no panic message.

#[test]
fn binary_on_mutated_inputs() {
    use cli_common::run;
    let images: Vec<Vec<u8>> = corpus(&["img-"]).into_iter().map(|(_, b)| b).collect();
    let streams: Vec<Vec<u8>> = corpus(&["proto-"]).into_iter().map(|(_, b)| b).collect();
    let mut rng = seed(3);
    let limits = ["--max-width", "512", "--max-height", "512"];
    let mut codes = Vec::new();
    // Raw mode: an image or nothing on stdout, and an exit code from the documented list.
    for k in 0..6 {
        let input = mutate(&mut rng, &images[(k * 7) % images.len()], &images);
        let mut a = vec!["--method", "classical", "--sr", "2"];
        a.extend_from_slice(&limits);
        let r = run(&a, &input);
        codes.push(r.code);
        assert!(
            r.code == 0 || DOCUMENTED_EXIT.contains(&r.code),
            "raw {k}: {}",
            r.context()
        );
        assert!(!r.stderr.contains("panicked"), "raw {k}: {}", r.stderr);
        if r.code == 0 {
            let out = io::decode(&r.stdout, &Limits::default(), "output");
            assert!(out.is_ok(), "raw {k}: exit 0 but stdout is not an image");
        } else {
            assert!(r.stdout.is_empty(), "raw {k}: output after a failure");
            assert_eq!(
                r.stderr
                    .lines()
                    .filter(|l| l.starts_with("vml-filter:"))
                    .count(),
                1,
                "raw {k}: {}",
                r.stderr
            );
        }
    }
    // Protocol mode (one request) and serve: complete frames on stdout, the last error's
    // exit code is the process's.
    for k in 0..6 {
        let input = mutate_stream(&mut rng, &streams[k % streams.len()], &streams);
        let mut a: Vec<&str> = if k % 2 == 0 { vec![] } else { vec!["serve"] };
        a.extend_from_slice(&["--method", "classical", "--device", "cpu"]);
        a.extend_from_slice(&limits);
        let r = run(&a, &input);
        codes.push(r.code);
        assert!(
            r.code == 0 || DOCUMENTED_EXIT.contains(&r.code),
            "protocol {k}: {}",
            r.context()
        );
        assert!(!r.stderr.contains("panicked"), "protocol {k}: {}", r.stderr);
        let hs = frames(&r.stdout).unwrap_or_else(|e| panic!("protocol {k}: {e}"));
        if r.code != 0 {
            // Protocol mode with a non-request (e.g. a first byte other than '{') is a raw
            // image to the filter: then stdout is empty.
            if let Some(last) = hs.last() {
                assert_eq!(last["error"]["exit_code"], r.code, "protocol {k}: {last}");
            } else {
                assert!(r.stdout.is_empty());
            }
        }
    }
    println!(
        "binary: {} runs on mutated inputs, exit codes {codes:?}",
        codes.len()
    );
}

// ---------------------------------------------------------------------------------------
// Target 3: the small parsers of user text: `--deblur` specs and kernel files, sizes.

#[test]
fn fuzz_deblur_specs_and_kernel_files() {
    let kernels: Vec<Vec<u8>> = corpus(&["kernel-"])
        .into_iter()
        .map(|(_, b)| b)
        .chain(
            [
                "gaussian:1.5",
                "uniform:3",
                "box:5",
                "motion:5:30",
                "motion:9:-45.5",
                "512M",
                "8GiB",
                "64K",
            ]
            .iter()
            .map(|s| s.as_bytes().to_vec()),
        )
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k");
    tch::set_num_threads(1);
    let mut findings = Findings::new("parsers");
    let mut rng = seed(4);
    let execs = budget(3000);
    let mut built = 0usize;
    for k in 0..execs {
        let input = mutate(&mut rng, &kernels[k % kernels.len()], &kernels);
        let as_file = io::sniff(&input).is_some() || input.contains(&b'\n');
        findings.exec(&input, || {
            let spec = if as_file {
                std::fs::write(&file, &input).unwrap();
                format!("kernel:{}", file.display())
            } else {
                String::from_utf8_lossy(&input).into_owned()
            };
            let _ = io::parse_size(&spec);
            let _ = Format::from_name(&spec);
            let blur = match vml::app::cli::parse_deblur(&spec) {
                Ok(b) => b,
                Err(vml::Error::Usage(_) | vml::Error::Input(_)) => return Ok(()),
                Err(e) => return Err(format!("unexpected error kind: {e:?}")),
            };
            if let vml::task::Blur::Custom {
                width,
                height,
                weights,
            } = &blur
            {
                if *width > 255 || *height > 255 || weights.len() != (*width * *height) as usize {
                    return Err(format!(
                        "kernel {width}×{height} with {} weights",
                        weights.len()
                    ));
                }
                if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
                    return Err("kernel weight not finite or negative".into());
                }
            }
            // The operator is built on a small image: refusals are errors, not panics.
            if vml::operators::build(&vml::task::Task::Deblur(blur), [3, 24, 24], None).is_ok() {
                built += 1;
            }
            Ok(())
        });
    }
    println!("fuzz parsers: {built} of {execs} mutated specs built an operator");
    findings.assert_none(execs);
}

// ---------------------------------------------------------------------------------------
// Target 4: the checkpoint reader (zip and legacy PyTorch files, safetensors).

/// Peak resident memory of this process so far, in bytes (Linux; 0 elsewhere).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Opens a mutated checkpoint and reads every entry: any outcome but a panic or a tensor
/// larger than its file is fine; an error must be one of the reader's own.
#[test]
fn fuzz_checkpoint_reader() {
    use vml::model::checkpoint::Checkpoint;
    let seeds: Vec<Vec<u8>> = corpus(&["ckpt-"]).into_iter().map(|(_, b)| b).collect();
    let dir = tempfile::tempdir().unwrap();
    tch::set_num_threads(1);
    let mut findings = Findings::new("checkpoint");
    let mut rng = seed(5);
    let execs = budget(3000);
    let (mut opened, mut read) = (0usize, 0usize);
    for k in 0..execs {
        let input = mutate(&mut rng, &seeds[k % seeds.len()], &seeds);
        // The format is told by content; the extension only matters for safetensors.
        let ext = if k % 6 == 0 { "safetensors" } else { "pt" };
        let file = dir.path().join(format!("m.{ext}"));
        std::fs::write(&file, &input).unwrap();
        findings.exec(&input, || {
            let Ok(mut ck) = Checkpoint::open(&file) else {
                return Ok(());
            };
            opened += 1;
            for i in 0..ck.entries().len() {
                let shapes: Vec<Vec<i64>> = ck.entries()[i]
                    .tensors
                    .iter()
                    .map(|(_, t)| t.shape.clone())
                    .collect();
                let Ok(tensors) = ck.read(i, tch::Device::Cpu) else {
                    continue;
                };
                read += 1;
                let mut bytes = 0u64;
                for ((name, t), want) in tensors.iter().zip(&shapes) {
                    if &t.size() != want {
                        return Err(format!("{name}: shape {:?}, listed {want:?}", t.size()));
                    }
                    bytes += (t.numel() * t.kind().elt_size_in_bytes()) as u64;
                }
                // Shared storages may be viewed many times, but each view lies in the file.
                if bytes > 64 * input.len() as u64 + 4096 {
                    return Err(format!(
                        "{bytes} bytes of tensors from {} bytes",
                        input.len()
                    ));
                }
            }
            Ok(())
        });
    }
    let peak = peak_rss();
    println!(
        "fuzz checkpoint: {opened} of {execs} opened, {read} entries read; peak RSS {} MiB",
        peak >> 20
    );
    findings.assert_none(execs);
    assert!(peak < 4 << 30, "peak RSS {} MiB", peak >> 20);
}

// ---------------------------------------------------------------------------------------
// Target 5: the JPEG marker reader behind `--jpeg auto` (`jpeg::read_tables`), and the
// JPEG operator built from what it accepts.

#[test]
fn fuzz_jpeg_marker_reader() {
    use vml::jpeg::read_tables;
    use vml::operators::{jpeg::Jpeg, Operator};
    let seeds: Vec<Vec<u8>> = corpus(&["jpeg-", "img-baseline.jpg", "img-444.jpg"])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    tch::set_num_threads(1);
    let mut findings = Findings::new("jpeg-markers");
    let mut rng = seed(6);
    let execs = budget(4000);
    let x = tch::Tensor::linspace(-1.0, 1.0, 3 * 16 * 24, (tch::Kind::Float, tch::Device::Cpu))
        .view([1, 3, 16, 24]);
    let (mut read, mut ran) = (0usize, 0usize);
    for k in 0..execs {
        let input = mutate(&mut rng, &seeds[k % seeds.len()], &seeds);
        findings.exec(&input, || {
            let Ok(t) = read_tables(&input) else {
                return Ok(());
            };
            read += 1;
            let n = t.components.len();
            if n != 1 && n != 3 {
                return Err(format!("{n} components accepted"));
            }
            if t.components.iter().any(|c| c.quant.contains(&0)) {
                return Err("a zero quantisation step accepted".into());
            }
            if t.width == 0 || t.height == 0 {
                return Err(format!("size {}×{} accepted", t.width, t.height));
            }
            // What the reader accepts, the operator must take, and give pixels in range.
            let op = Jpeg::new(&t, [3, 16, 24], None).map_err(|e| format!("operator: {e}"))?;
            let y = op.forward(&x);
            let (lo, hi) = (y.min().double_value(&[]), y.max().double_value(&[]));
            if !(lo >= -1.0 && hi <= 1.0) {
                return Err(format!("round trip left [-1, 1]: {lo}..{hi}"));
            }
            ran += 1;
            Ok(())
        });
    }
    println!("fuzz jpeg-markers: {read} of {execs} mutated files read, {ran} round trips");
    findings.assert_none(execs);
}
