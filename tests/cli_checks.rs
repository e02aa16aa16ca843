//! What a new user meets in the first hour: checks that fail before any work, metadata that
//! survives a restore, no silent wrong outputs, one-line usage errors, `--arch`.

mod cli_common;

use cli_common::{encode, png, rgb, run};
use image::{GenericImageView, ImageEncoder, ImageFormat};
use std::path::Path;

/// A restore that would take minutes if it started: the default model at 500 steps.
fn slow_restore<'a>() -> Vec<&'a str> {
    vec![
        "--sr",
        "2",
        "--model",
        "default",
        "--device",
        "cpu",
        "--steps",
        "500",
        "--progress",
        "json",
    ]
}

/// The error came before the model was loaded (the `load` stage) and before any solver step
/// (`restore`), and is the one error line.
fn failed_before_work(r: &cli_common::Run) -> bool {
    failed_before_steps(r) && !r.stderr.contains(r#""stage":"load""#)
}

/// The error came before any solver step, and is the one error line.
fn failed_before_steps(r: &cli_common::Run) -> bool {
    !r.stderr.contains(r#""stage":"restore""#)
        && r.stderr
            .lines()
            .filter(|l| l.starts_with("vml-filter:"))
            .count()
            == 1
}

#[test]
fn output_problems_are_found_before_the_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.png");
    std::fs::write(&input, png(&rgb(32, 32))).unwrap();
    let i = input.to_str().unwrap();
    let cases = [
        (tmp.path().join("nodir/x.png"), 1, "does not exist"),
        (tmp.path().to_path_buf(), 1, "is a folder"),
        (tmp.path().join("x.gif"), 2, "'.gif' is not a format"),
        (tmp.path().join("x.xyz"), 2, "'.xyz' is not a format"),
    ];
    for (out, code, says) in cases {
        let o = out.to_str().unwrap();
        let mut a = slow_restore();
        a.extend(["-i", i, "-o", o]);
        let r = run(&a, b"");
        assert_eq!(r.code, code, "{o}: {}", r.context());
        assert!(
            r.stderr.contains(o) && r.stderr.contains(says),
            "{o}: {}",
            r.stderr
        );
        assert!(failed_before_work(&r), "{o}: {}", r.stderr);
    }
    // --format makes any extension fine.
    let odd = tmp.path().join("x.img");
    let r = run(
        &[
            "--sr",
            "2",
            "--method",
            "classical",
            "--format",
            "png",
            "-i",
            i,
            "-o",
            odd.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.context());
    assert_eq!(
        image::guess_format(&std::fs::read(&odd).unwrap()).unwrap(),
        ImageFormat::Png
    );
    // Only the input and that output are left: no probe or partial files.
    assert_eq!(cli_common::listing(tmp.path()), ["in.png", "x.img"]);

    // A folder as input names itself.
    let mut a = slow_restore();
    a.extend(["-i", tmp.path().to_str().unwrap()]);
    let r = run(&a, b"");
    assert_eq!(r.code, 3, "{}", r.context());
    assert!(r.stderr.contains("is a folder"), "{}", r.stderr);
}

#[test]
fn denoise_on_the_wrong_scale_is_refused_with_a_hint() {
    let r = run(
        &["--denoise", "25", "--method", "classical"],
        &png(&rgb(16, 16)),
    );
    assert_eq!(r.code, 2, "{}", r.context());
    assert!(r.stderr.contains("0.196"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let r = run(
        &["--denoise", "0.2", "--method", "classical"],
        &png(&rgb(16, 16)),
    );
    assert_eq!(r.code, 0, "{}", r.context());
}

#[test]
fn usage_errors_are_one_prefixed_line() {
    let img = png(&rgb(16, 16));
    for (args, says) in [
        (vec!["--sr", "2", "--no-such-flag"], "--no-such-flag"),
        (vec!["--sr", "four"], "four"),
        (vec!["a.jpg", "b.jpg"], "-i FILE"),
        (
            vec!["--sr", "2", "--method", "no-such-method"],
            "no-such-method",
        ),
    ] {
        let r = run(&args, &img);
        assert_eq!(r.code, 2, "{args:?}: {}", r.context());
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", r.stderr);
        assert!(
            lines[0].starts_with("vml-filter: usage: "),
            "{args:?}: {}",
            r.stderr
        );
        assert!(lines[0].contains(says), "{args:?}: {}", r.stderr);
    }
}

/// A minimal EXIF block (TIFF structure, little-endian) holding one tag: orientation.
fn exif_with_orientation(o: u16) -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend(8u32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(0x0112u16.to_le_bytes()); // Orientation
    b.extend(3u16.to_le_bytes()); // SHORT
    b.extend(1u32.to_le_bytes());
    b.extend(u32::from(o).to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b
}

/// An ICC-shaped block: the header fields a reader looks at, colour space `space`.
fn icc(space: &[u8; 4]) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    b[0..4].copy_from_slice(&256u32.to_be_bytes());
    b[12..16].copy_from_slice(b"mntr");
    b[16..20].copy_from_slice(space);
    b[20..24].copy_from_slice(b"XYZ ");
    b[36..40].copy_from_slice(b"acsp");
    for (i, v) in b[128..].iter_mut().enumerate() {
        *v = (i * 7) as u8;
    }
    b
}

const XMP: &[u8] = br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/></rdf:RDF></x:xmpmeta>"#;

/// A JPEG with an ICC profile and EXIF (by the image crate's encoder) and an XMP packet (an
/// APP1 segment with Adobe's namespace, spliced in after the JFIF header, as cameras and
/// editors write it).
fn jpeg_with(img: &image::DynamicImage, icc: &[u8], exif: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    enc.set_icc_profile(icc.to_vec()).unwrap();
    enc.set_exif_metadata(exif.to_vec()).unwrap();
    let rgb8 = img.to_rgb8();
    enc.write_image(
        rgb8.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let ns = b"http://ns.adobe.com/xap/1.0/\0";
    let mut seg = vec![0xFF, 0xE1];
    seg.extend(((2 + ns.len() + XMP.len()) as u16).to_be_bytes());
    seg.extend(ns);
    seg.extend(XMP);
    assert_eq!(&out[2..4], &[0xFF, 0xE0]);
    let after_app0 = 4 + u16::from_be_bytes([out[4], out[5]]) as usize;
    // And a comment (COM segment).
    let mut com = vec![0xFF, 0xFE];
    com.extend(((2 + COMMENT.len()) as u16).to_be_bytes());
    com.extend(COMMENT.as_bytes());
    seg.extend(com);
    out.splice(after_app0..after_app0, seg);
    out
}

const COMMENT: &str = "Scanned from a 1962 slide, Ü";

/// The text of a PNG's `Comment` chunk (`tEXt`, Latin-1, or `iTXt`), read here by hand.
fn png_comment(b: &[u8]) -> Option<String> {
    let mut at = 8;
    while at + 8 <= b.len() {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let data = &b[at + 8..at + 8 + len];
        match &b[at + 4..at + 8] {
            b"tEXt" if data.starts_with(b"Comment\0") => {
                return Some(data[8..].iter().map(|&c| c as char).collect())
            }
            b"iTXt" if data.starts_with(b"Comment\0") => {
                return Some(String::from_utf8_lossy(&data[12..]).into_owned())
            }
            _ => at += 12 + len,
        }
    }
    None
}

/// The text of a JPEG's first `COM` segment, read here by hand.
fn jpeg_comment(b: &[u8]) -> Option<String> {
    let mut at = 2;
    while at + 4 <= b.len() && b[at] == 0xFF && b[at + 1] != 0xDA {
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        if b[at + 1] == 0xFE {
            return Some(String::from_utf8_lossy(&b[at + 4..at + 2 + len]).into_owned());
        }
        at += 2 + len;
    }
    None
}

/// A written file's ICC profile, EXIF block, size and XMP packet.
type Meta = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    (u32, u32),
    Option<Vec<u8>>,
);

fn read_meta(path: &Path) -> Meta {
    use image::ImageDecoder;
    let mut dec = image::ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let (icc, exif, xmp) = (
        dec.icc_profile().unwrap(),
        dec.exif_metadata().unwrap(),
        dec.xmp_metadata().unwrap(),
    );
    (icc, exif, dec.dimensions(), xmp)
}

/// A classical restore (`task` flags, `-i input -o output`, `extra`) that must succeed.
fn restore_ok(task: &[&str], input: &Path, output: &Path, extra: &[&str]) {
    let mut a = task.to_vec();
    a.extend(["--method", "classical", "-i", input.to_str().unwrap()]);
    a.extend(["-o", output.to_str().unwrap()]);
    a.extend_from_slice(extra);
    let r = run(&a, b"");
    assert_eq!(r.code, 0, "{a:?}: {}", r.context());
}

#[test]
fn icc_profile_and_exif_reach_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = icc(b"RGB ");
    // Stored 40×24, orientation 6 ("rotate 90° clockwise to view"): upright it is 24×40.
    let input = tmp.path().join("in.jpg");
    std::fs::write(
        &input,
        jpeg_with(&rgb(40, 24), &profile, &exif_with_orientation(6)),
    )
    .unwrap();
    for ext in ["png", "jpg", "webp"] {
        let out = tmp.path().join(format!("out.{ext}"));
        restore_ok(&["--sr", "2"], &input, &out, &[]);
        let (icc, exif, size, xmp) = read_meta(&out);
        if ext != "webp" {
            assert_eq!(xmp.as_deref(), Some(XMP), "{ext}: XMP packet");
            let bytes = std::fs::read(&out).unwrap();
            let comment = if ext == "png" {
                png_comment(&bytes)
            } else {
                jpeg_comment(&bytes)
            };
            assert_eq!(comment.as_deref(), Some(COMMENT), "{ext}: comment");
        }
        assert_eq!(size, (48, 80), "{ext}: turned upright once");
        assert_eq!(icc.as_deref(), Some(&profile[..]), "{ext}: ICC profile");
        let exif = exif.unwrap_or_else(|| panic!("{ext}: EXIF dropped"));
        assert_eq!(
            image::metadata::Orientation::from_exif_chunk(&exif),
            Some(image::metadata::Orientation::NoTransforms),
            "{ext}: orientation reset"
        );
    }
    // TIFF holds the profile; BMP holds neither and still writes.
    let tif = tmp.path().join("out.tif");
    restore_ok(&["--sr", "2"], &input, &tif, &[]);
    assert_eq!(read_meta(&tif).0.as_deref(), Some(&profile[..]));
    restore_ok(&["--sr", "2"], &input, &tmp.path().join("out.bmp"), &[]);

    // --strip writes none.
    let out = tmp.path().join("stripped.png");
    restore_ok(&["--sr", "2"], &input, &out, &["--strip"]);
    let (icc, exif, _, xmp) = read_meta(&out);
    assert!(icc.is_none() && exif.is_none() && xmp.is_none());
    assert!(png_comment(&std::fs::read(&out).unwrap()).is_none());

    // A gray profile does not go onto a colourised (RGB) result.
    let gray_in = tmp.path().join("gray.jpg");
    let mut out_bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out_bytes, 95);
    enc.set_icc_profile(icc_gray()).unwrap();
    let g = rgb(16, 16).to_luma8();
    enc.write_image(g.as_raw(), 16, 16, image::ExtendedColorType::L8)
        .unwrap();
    std::fs::write(&gray_in, out_bytes).unwrap();
    let out = tmp.path().join("colour.png");
    restore_ok(&["--colorize"], &gray_in, &out, &[]);
    assert!(read_meta(&out).0.is_none());
}

fn icc_gray() -> Vec<u8> {
    icc(b"GRAY")
}

#[test]
fn stats_name_the_model() {
    let img = png(&rgb(32, 32));
    let req = |method: &str| {
        // The classical estimate takes no solver settings (they would be a usage error).
        let options = match method {
            "classical" => serde_json::json!({"method": method, "device": "cpu"}),
            _ => serde_json::json!({"method": method, "device": "cpu", "steps": 1, "iters": 1}),
        };
        let header = serde_json::json!({
            "vml": 1,
            "task": {"kind": "denoise", "sigma": 0.1},
            "options": options,
            "image": {"bytes": img.len()}
        });
        cli_common::request(&header, &img, None)
    };
    for (method, want) in [
        ("classical", serde_json::Value::Null),
        ("vml-map", "default".into()),
    ] {
        let r = run(&[], &req(method));
        assert_eq!(r.code, 0, "{method}: {}", r.context());
        let (header, _, _) = cli_common::split_response(&r.stdout);
        assert_eq!(header["stats"]["model"], want, "{method}: {header}");
    }
}

#[test]
fn arch_names_the_architecture_of_a_bare_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints");
    let ckpt = tmp.path().join("mine.pt");
    std::fs::copy(fixtures.join("state_dict.pt"), &ckpt).unwrap();
    let input = encode(&rgb(32, 32), ImageFormat::Png);
    let base = [
        "--denoise",
        "0.1",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--iters",
        "1",
        "--model",
        ckpt.to_str().unwrap(),
    ];
    let r = run(&base, &input);
    assert_eq!(r.code, 4, "{}", r.context());
    assert!(r.stderr.contains("--arch"), "{}", r.stderr);
    let config = fixtures.join("config.json");
    let mut a = base.to_vec();
    a.extend(["--arch", config.to_str().unwrap()]);
    let r = run(&a, &input);
    assert_eq!(r.code, 0, "{}", r.context());
    assert_eq!(cli_common::decode(&r.stdout).dimensions(), (32, 32));
}

#[test]
fn fetching_the_shipped_model_says_it_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cli_common::command(&["models", "fetch", "default"]);
    c.env("XDG_DATA_HOME", tmp.path()).env_remove("VML_MODELS");
    let r = cli_common::run_cmd(c, b"");
    assert_eq!(r.code, 0, "{}", r.context());
    let path = String::from_utf8(r.stdout).unwrap();
    assert!(
        path.trim_end()
            .ends_with("models/default/model.safetensors"),
        "{path}"
    );
    assert!(r.stderr.contains("already present"), "{}", r.stderr);

    // `models list --json` names the states as the docs do.
    let mut c = cli_common::command(&["models", "list", "--json"]);
    c.env("XDG_DATA_HOME", tmp.path().join("empty"))
        .env_remove("VML_MODELS");
    let r = cli_common::run_cmd(c, b"");
    let rows: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let state = rows[0]["check"]["state"].as_str().unwrap().to_string();
    assert_eq!(rows[0]["name"], "default");
    assert!(["present", "verified"].contains(&state.as_str()), "{state}");
    for row in rows.as_array().unwrap() {
        let s = row["check"]["state"].as_str().unwrap();
        assert!(
            [
                "absent",
                "present",
                "verified",
                "no_published_hash",
                "wrong_size",
                "mismatch"
            ]
            .contains(&s),
            "{s}"
        );
    }
}

#[test]
fn a_payload_that_does_not_decode_points_at_the_byte_count() {
    let img = png(&rgb(16, 16));
    let header = serde_json::json!({"vml": 1, "task": {"kind": "sr", "scale": 2},
        "options": {"method": "classical"}});
    let mut stream = cli_common::request(&header, &img, None);
    // Declare fewer bytes than the payload has: the PNG is cut short.
    let line_end = stream.iter().position(|&b| b == b'\n').unwrap();
    let line = String::from_utf8(stream[..line_end].to_vec()).unwrap();
    let short = line.replace(
        &format!("\"bytes\":{}", img.len()),
        &format!("\"bytes\":{}", img.len() - 40),
    );
    stream.splice(..line_end, short.into_bytes());
    let r = run(&[], &stream);
    assert_eq!(r.code, 3, "{}", r.context());
    let (h, _, _) = cli_common::split_response(&r.stdout);
    let msg = h["error"]["message"].as_str().unwrap();
    assert!(msg.contains("image.bytes is"), "{msg}");
}

#[test]
fn plain_mode_reports_the_protocol_stages() {
    let r = run(
        &["--sr", "2", "--method", "classical", "--progress", "json"],
        &png(&rgb(16, 16)),
    );
    assert_eq!(r.code, 0, "{}", r.context());
    let stages: Vec<String> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["stage"].as_str().unwrap_or("").to_string())
        .collect();
    let mut seen = stages.clone();
    seen.dedup();
    assert_eq!(
        seen,
        ["decode", "load", "restore", "encode", "done"],
        "{stages:?}"
    );
}

#[test]
fn threads_is_a_filter_and_serve_option() {
    let img = png(&rgb(16, 16));
    let r = run(
        &["--sr", "2", "--method", "classical", "--threads", "1"],
        &img,
    );
    assert_eq!(r.code, 0, "{}", r.context());
    for args in [
        vec!["--sr", "2", "--method", "classical", "--threads", "0"],
        vec!["serve", "--method", "classical", "--threads", "0"],
    ] {
        let r = run(&args, &img);
        assert_eq!(r.code, 2, "{args:?}: {}", r.context());
        assert!(
            r.stderr.contains("--threads must be at least 1"),
            "{}",
            r.stderr
        );
    }
}

/// The other checks that need no result fail before the model is loaded or a step runs:
/// a mask of the wrong size, a missing model, a missing device, an image over the limits.
#[test]
fn input_model_and_device_problems_are_found_before_the_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.png");
    std::fs::write(&input, png(&rgb(32, 32))).unwrap();
    let mask = tmp.path().join("mask.png");
    std::fs::write(&mask, png(&cli_common::box_mask(16, 16, 2, 2, 8, 8))).unwrap();
    let (i, m) = (input.to_str().unwrap(), mask.to_str().unwrap());
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--mask", m], 3, "mask"),
        (
            &["--model", "/nonexistent/model.pt"],
            4,
            "/nonexistent/model.pt",
        ),
        (&["--max-width", "16"], 3, "--max-width"),
        (&["--device", "cuda:7"], 5, "CUDA"),
    ];
    for (extra, code, says) in cases {
        if code == 5 && tch::Cuda::device_count() > 7 {
            continue;
        }
        // The case's --model or --device replaces the base one.
        let mut a: Vec<&str> = slow_restore();
        if let Some(at) = a.iter().position(|x| *x == extra[0]) {
            a.drain(at..at + 2);
        }
        a.extend_from_slice(extra);
        a.extend(["-i", i]);
        let r = run(&a, b"");
        assert_eq!(r.code, code, "{extra:?}: {}", r.context());
        assert!(r.stderr.contains(says), "{extra:?}: {}", r.stderr);
        // A missing model is found when loading starts, before the solver.
        let early = if code == 4 {
            failed_before_steps(&r)
        } else {
            failed_before_work(&r)
        };
        assert!(early, "{extra:?}: {}", r.stderr);
    }
}

/// The OpenMP wait policy of the process's own environment (`/proc/PID/environ`).
fn wait_policy(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("OMP_WAIT_POLICY=").map(str::to_string))
}

/// Multi-threaded network work runs with passive OpenMP waiting (the binary runs itself
/// again with `OMP_WAIT_POLICY=PASSIVE`: same PID, same pipes), a one-thread run and the
/// user's own choice do not. Checked on `serve`, which waits on its input: the answer to a
/// request comes back through the pipes of the process that was started.
#[test]
fn network_runs_wait_passively_and_one_thread_runs_are_left_alone() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let req = cli_common::request(
        &serde_json::json!({"vml": 1, "task": {"kind": "sr", "scale": 2},
                            "options": {"method": "classical"}}),
        &png(&rgb(16, 16)),
        None,
    );
    for (extra, env, expected) in [
        (vec![], None, Some("PASSIVE")),
        (vec!["--threads", "1"], None, None),
        (vec![], Some("ACTIVE"), Some("ACTIVE")),
    ] {
        let mut args = vec!["serve", "--progress", "none"];
        args.extend(&extra);
        let mut c = cli_common::command(&args);
        c.env_remove("OMP_NUM_THREADS").env_remove("VML_OMP_SPIN");
        match env {
            Some(v) => c.env("OMP_WAIT_POLICY", v),
            None => c.env_remove("OMP_WAIT_POLICY"),
        };
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&req).unwrap();
        // The answer's header: the process is past start-up, in its final image.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(r#"{"vml":1,"ok":true"#),
            "{extra:?}: {line}"
        );
        let policy = wait_policy(child.id());
        drop(stdin);
        let status = child.wait().unwrap();
        assert_eq!(policy.as_deref(), expected, "{extra:?} {env:?}");
        assert!(status.success(), "{extra:?}");
    }
}
