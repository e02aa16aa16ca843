//! The JSON-header protocol and serve mode, through the binary: golden examples from
//! docs/examples, happy and error paths, several requests with bad ones in the middle.

mod cli_common;

use cli_common::*;
use serde_json::{json, Value};

fn sr2() -> Value {
    json!({"vml":1,"task":{"kind":"sr","scale":2},"image":{"bytes":0},"options":{"method":"classical","seed":0}})
}

fn progress_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("progress line is JSON"))
        .collect()
}

#[test]
fn one_request_one_response() {
    let img = png(&rgb(16, 12));
    let r = run(&[], &request(&sr2(), &img, None));
    assert_eq!(r.code, 0, "{}", r.context());
    let (h, body, rest) = split_response(&r.stdout);
    assert_eq!(h["vml"], 1);
    assert_eq!(h["ok"], true);
    assert_eq!(h["image"]["format"], "png");
    assert_eq!(
        (h["image"]["width"].as_u64(), h["image"]["height"].as_u64()),
        (Some(32), Some(24))
    );
    assert_eq!(h["stats"]["method"], "classical");
    assert!(rest.is_empty());
    assert_eq!(decode(&body).to_rgb8().dimensions(), (32, 24));
    let p = progress_lines(&r.stderr);
    assert!(
        !p.is_empty(),
        "progress is always on in protocol mode: {}",
        r.stderr
    );
    assert!(p.iter().all(|l| l["progress"]
        .as_f64()
        .is_some_and(|v| (0.0..=1.0).contains(&v))
        && l["stage"].is_string()));
}

#[test]
fn options_and_unknown_fields() {
    let img = png(&rgb(16, 16));
    let mask = png(&box_mask(16, 16, 4, 4, 10, 10));
    let header = json!({
        "vml": 1, "client": "test-suite", "future_field": {"nested": [1, 2]},
        "task": {"kind": "inpaint", "hint": "ignored"},
        "options": {"method": "classical", "format": "webp", "seed": 7, "sigma_y": 0.0, "tile": 0,
                    "max_memory": "1G", "unknown_option": true}
    });
    let r = run(&[], &request(&header, &img, Some(&mask)));
    assert_eq!(r.code, 0, "{}", r.context());
    let (h, body, _) = split_response(&r.stdout);
    assert_eq!(h["image"]["format"], "webp");
    assert_eq!(
        image::guess_format(&body).unwrap(),
        image::ImageFormat::WebP
    );
}

fn check_error(what: &str, h: &Value, code: i32) {
    assert_eq!(h["vml"], 1, "{what}");
    assert_eq!(h["ok"], false, "{what}: {h}");
    assert!(
        h["error"]["code"].is_string() && h["error"]["message"].is_string(),
        "{what}: {h}"
    );
    assert_eq!(h["error"]["exit_code"], code, "{what}: {h}");
}

#[test]
fn errors_are_json_on_stdout_and_an_exit_code() {
    let img = png(&rgb(16, 16));
    // Requests whose framing is intact: one server process answers them all, in order,
    // each with the exit code a single run would end with.
    let framed: Vec<(&str, Vec<u8>, i32)> = vec![
        (
            "no version",
            request(&json!({"task":{"kind":"sr","scale":2}}), &img, None),
            3,
        ),
        (
            "unknown task",
            request(&json!({"vml":1,"task":{"kind":"sharpen"}}), &img, None),
            3,
        ),
        (
            "task without its parameter",
            request(&json!({"vml":1,"task":{"kind":"denoise"}}), &img, None),
            3,
        ),
        (
            "inpaint without mask",
            request(
                &json!({"vml":1,"task":{"kind":"inpaint"},"options":{"method":"classical"}}),
                &img,
                None,
            ),
            3,
        ),
        (
            "mask of another size",
            request(
                &json!({"vml":1,"task":{"kind":"inpaint"},"options":{"method":"classical"}}),
                &img,
                Some(&png(&box_mask(8, 8, 0, 0, 4, 4))),
            ),
            3,
        ),
        (
            "empty mask",
            request(
                &json!({"vml":1,"task":{"kind":"inpaint"},"options":{"method":"classical"}}),
                &img,
                Some(&png(&box_mask(16, 16, 0, 0, 0, 0))),
            ),
            3,
        ),
        (
            "bad sr scale",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":3},"options":{"method":"classical"}}),
                &img,
                None,
            ),
            2,
        ),
        (
            "negative blur",
            request(
                &json!({"vml":1,"task":{"kind":"deblur","kernel":"gaussian","sigma":-2},"options":{"method":"classical"}}),
                &img,
                None,
            ),
            2,
        ),
        ("not an image", request(&sr2(), b"hello world", None), 3),
        (
            "unknown method",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"magic"}}),
                &img,
                None,
            ),
            2,
        ),
        (
            "bad sigma_y",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical","sigma_y":-1}}),
                &img,
                None,
            ),
            3,
        ),
        (
            "bad steps type",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical","steps":"many"}}),
                &img,
                None,
            ),
            3,
        ),
        (
            "bad output format",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical","format":"gif"}}),
                &img,
                None,
            ),
            3,
        ),
        (
            "unknown model",
            request(
                &json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"vml-map","model":"/nonexistent.pt","device":"cpu"}}),
                &img,
                None,
            ),
            4,
        ),
    ];
    let stream: Vec<u8> = framed.iter().flat_map(|(_, b, _)| b.clone()).collect();
    let r = run(&["serve"], &stream);
    assert_eq!(r.code, 0, "{}", r.context());
    assert!(!r.stderr.contains("panicked"));
    let mut rest = r.stdout.clone();
    for (what, _, code) in &framed {
        let (h, body, tail) = split_response(&rest);
        check_error(what, &h, *code);
        assert!(body.is_empty(), "{what}");
        rest = tail;
    }
    assert!(rest.is_empty());

    // Single requests: the error line on stdout and nothing else, the exit code, one
    // line on stderr. The last ones also break the framing.
    let single: Vec<(&str, Vec<u8>, i32)> = vec![
        (
            "version 2",
            request(&json!({"vml":2,"task":{"kind":"sr","scale":2}}), &img, None),
            3,
        ),
        ("header not JSON", b"{this is not json}\n".to_vec(), 3),
        (
            "negative size",
            [
                br#"{"vml":1,"task":{"kind":"sr","scale":2},"image":{"bytes":-4}}"#.as_slice(),
                b"\n",
            ]
            .concat(),
            3,
        ),
        (
            "truncated payload",
            {
                let mut v = request(&sr2(), &img, None);
                v.truncate(v.len() - 10);
                v
            },
            3,
        ),
        (
            "header too long",
            {
                let mut v = b"{\"pad\":\"".to_vec();
                v.extend(std::iter::repeat_n(b'x', 70_000));
                v.extend_from_slice(b"\"}\n");
                v
            },
            3,
        ),
    ];
    for (what, input, code) in single {
        let r = run(&[], &input);
        assert_eq!(r.code, code, "{what}: {}", r.context());
        let (h, body, rest) = split_response(&r.stdout);
        check_error(what, &h, code);
        assert!(
            body.is_empty() && rest.is_empty(),
            "{what}: nothing but the error line on stdout"
        );
        assert_eq!(
            r.stderr
                .lines()
                .filter(|l| l.starts_with("vml-filter:"))
                .count(),
            1,
            "{what}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{what}");
        if what == "version 2" {
            assert!(
                h["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unsupported protocol version 2"),
                "{h}"
            );
        }
    }
}

#[test]
fn protocol_with_output_file_is_a_usage_error() {
    let r = run(
        &["-o", "/tmp/never-written.png"],
        &request(&sr2(), &png(&rgb(8, 8)), None),
    );
    assert_eq!(r.code, 2, "{}", r.context());
}

#[test]
fn serve_answers_every_request_and_survives_bad_ones() {
    let img = png(&rgb(16, 12));
    let mask = png(&box_mask(16, 12, 2, 2, 8, 8));
    let mut stream = Vec::new();
    stream.extend(request(&sr2(), &img, None));
    // Bad image bytes.
    stream.extend(request(&sr2(), b"garbage garbage", None));
    // Unknown version: the payloads are skipped by their declared length.
    stream.extend(request(
        &json!({"vml":2,"task":{"kind":"sr","scale":2}}),
        &img,
        Some(&mask),
    ));
    // Payload over --max-bytes: skipped, refused.
    let big = png(&rgb(200, 200));
    stream.extend(request(&sr2(), &big, None));
    stream.extend(request(
        &json!({"vml":1,"task":{"kind":"inpaint"},"options":{"method":"classical"}}),
        &img,
        Some(&mask),
    ));
    stream.extend(request(&json!({"vml":1,"task":{"kind":"denoise","sigma":0.1},"options":{"method":"classical","format":"jpeg"}}), &img, None));
    let r = run(&["serve", "--max-bytes", "20000"], &stream);
    assert_eq!(r.code, 0, "{}", r.context());
    let mut rest = r.stdout.clone();
    let mut oks = Vec::new();
    while !rest.is_empty() {
        let (h, body, tail) = split_response(&rest);
        if h["ok"] == true {
            assert_eq!(body.len() as u64, h["image"]["bytes"].as_u64().unwrap());
            decode(&body);
        }
        oks.push(h["ok"].as_bool().unwrap());
        rest = tail;
    }
    assert_eq!(
        oks,
        vec![true, false, false, false, true, true],
        "{}",
        r.stderr
    );
}

#[test]
fn serve_stops_when_the_stream_cannot_be_framed() {
    let img = png(&rgb(16, 12));
    let mut stream = request(&sr2(), &img, None);
    stream.extend_from_slice(b"this line is not a header\n");
    stream.extend(request(&sr2(), &img, None));
    let r = run(&["serve"], &stream);
    assert_eq!(r.code, 3, "{}", r.context());
    let (h1, _, rest) = split_response(&r.stdout);
    let (h2, _, rest) = split_response(&rest);
    assert_eq!(
        (h1["ok"].as_bool(), h2["ok"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(rest.is_empty());
    // A stream that ends inside a payload: the error, then exit.
    let mut stream = request(&sr2(), &img, None);
    let mut cut = request(&sr2(), &img, None);
    cut.truncate(cut.len() / 2);
    stream.extend(cut);
    let r = run(&["serve"], &stream);
    assert_eq!(r.code, 3, "{}", r.context());
    // Empty input: nothing to do.
    let r = run(&["serve"], b"");
    assert_eq!((r.code, r.stdout.len()), (0, 0), "{}", r.context());
}

#[test]
fn serve_takes_defaults_from_flags() {
    let img = png(&rgb(16, 12));
    let header = json!({"vml":1,"task":{"kind":"sr","scale":2}});
    let r = run(
        &["serve", "--method", "classical"],
        &request(&header, &img, None),
    );
    assert_eq!(r.code, 0, "{}", r.context());
    let (h, _, _) = split_response(&r.stdout);
    assert_eq!(h["stats"]["method"], "classical");
}

/// The worked examples of docs/examples: each `NAME.request.json` is sent with the input
/// that `NAME.input` describes; the answer must equal `NAME.response.json` except for the
/// byte count (checked against the payload) and the timing.
#[test]
fn golden_examples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".request.json"))
                .map(String::from)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 4, "examples missing in {}", dir.display());
    for name in names {
        let read =
            |suffix: &str| std::fs::read_to_string(dir.join(format!("{name}.{suffix}"))).unwrap();
        let request_line = read("request.json");
        let header: Value = serde_json::from_str(&request_line).unwrap();
        let input: Value = serde_json::from_str(&read("input.json")).unwrap();
        let w = input["width"].as_u64().unwrap() as u32;
        let h = input["height"].as_u64().unwrap() as u32;
        let img = match input["image"].as_str().unwrap() {
            "rgb" => rgb(w, h),
            "gray" => image::DynamicImage::ImageLuma8(rgb(w, h).to_luma8()),
            other => panic!("unknown input kind {other}"),
        };
        let img = png(&img);
        let mask = input.get("mask_box").and_then(|b| b.as_array()).map(|b| {
            let v: Vec<u32> = b.iter().map(|x| x.as_u64().unwrap() as u32).collect();
            png(&box_mask(w, h, v[0], v[1], v[2], v[3]))
        });
        let bless = std::env::var_os("VML_BLESS_EXAMPLES").is_some();
        // The inputs are shipped beside the example so that it replays as it is:
        // `cat NAME.request.json NAME.image.png [NAME.mask.png] | vml-filter`.
        let payloads = [("image.png", Some(&img)), ("mask.png", mask.as_ref())];
        for (suffix, bytes) in payloads {
            let path = dir.join(format!("{name}.{suffix}"));
            match bytes {
                Some(b) if bless => std::fs::write(&path, b).unwrap(),
                Some(b) => assert_eq!(
                    std::fs::read(&path).ok().as_ref(),
                    Some(b),
                    "{name}: {suffix} missing or not the input the example was made for"
                ),
                None => assert!(!path.exists(), "{name}: {suffix} but no mask_box"),
            }
        }
        let mut header = header;
        let request_line = if bless {
            // Regenerating the examples (review the diff!): byte counts from this input.
            header["image"]["bytes"] = json!(img.len());
            let mut line = set_bytes(request_line.trim_end(), "image", img.len());
            if let Some(m) = &mask {
                header["mask"]["bytes"] = json!(m.len());
                line = set_bytes(&line, "mask", m.len());
            }
            std::fs::write(
                dir.join(format!("{name}.request.json")),
                format!("{line}\n"),
            )
            .unwrap();
            line
        } else {
            request_line
        };
        // The example's byte counts are those of the documented input; the test's must agree.
        let bytes = |p: &Vec<u8>| p.len() as u64;
        assert_eq!(
            header["image"]["bytes"].as_u64(),
            Some(bytes(&img)),
            "{name}: image.bytes in the example"
        );
        if let Some(m) = &mask {
            assert_eq!(
                header["mask"]["bytes"].as_u64(),
                Some(bytes(m)),
                "{name}: mask.bytes in the example"
            );
        }
        let mut stream = request_line.trim_end().as_bytes().to_vec();
        stream.push(b'\n');
        stream.extend_from_slice(&img);
        if let Some(m) = &mask {
            stream.extend_from_slice(m);
        }
        let r = run(&[], &stream);
        let (mut got, body, _) = split_response(&r.stdout);
        if bless {
            let pretty = serde_json::to_string(&got).unwrap();
            std::fs::write(
                dir.join(format!("{name}.response.json")),
                format!("{pretty}\n"),
            )
            .unwrap();
        }
        let mut want: Value = serde_json::from_str(&read("response.json")).unwrap();
        assert_eq!(
            r.code,
            want["error"]["exit_code"].as_i64().unwrap_or(0) as i32,
            "{name}: {}",
            r.context()
        );
        if got["ok"] == true {
            assert_eq!(got["image"]["bytes"].as_u64(), Some(body.len() as u64));
            // σ_y is estimated (`auto`, the default) in floating point: the last bits
            // may differ between CPUs, the value may not.
            let (a, b) = (
                got["stats"]["sigma_y"].as_f64(),
                want["stats"]["sigma_y"].as_f64(),
            );
            assert!(
                matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1e-6 * b.abs().max(1e-3)),
                "{name}: stats.sigma_y {a:?}, the example says {b:?}"
            );
            for v in [&mut got, &mut want] {
                v["image"]["bytes"] = Value::Null;
                v["stats"]["seconds"] = Value::Null;
                v["stats"]["sigma_y"] = Value::Null;
            }
        }
        assert_eq!(
            got, want,
            "{name}: response differs from docs/examples/{name}.response.json"
        );
    }
}

/// `line` with the number in `"key":{"bytes":N` replaced by `n`, keeping the field order.
fn set_bytes(line: &str, key: &str, n: usize) -> String {
    let pat = format!("\"{key}\":{{\"bytes\":");
    let at = line.find(&pat).expect("example has the payload field") + pat.len();
    let end = at + line[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    format!("{}{n}{}", &line[..at], &line[end..])
}

/// docs/protocol.schema.json is generated from the protocol's types
/// (`vml::protocol::schema_json`). After a deliberate change to them, regenerate it with
/// `VML_BLESS_SCHEMA=1 cargo test --release --test protocol schema` and review the diff.
#[test]
fn schema_file_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.schema.json");
    let generated = vml::protocol::schema_json();
    if std::env::var_os("VML_BLESS_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/protocol.schema.json is not the schema the protocol's types generate \
             (first difference at line {}: {:?} in the file, {:?} generated); regenerate it with \
             `VML_BLESS_SCHEMA=1 cargo test --release --test protocol schema` and review the diff",
            first + 1,
            committed.lines().nth(first).unwrap_or(""),
            generated.lines().nth(first).unwrap_or("")
        );
    }
}

/// The generated schema, compiled (which checks it against the 2020-12 meta-schema), and
/// validators for the document and its request, response and progress definitions.
struct Validators {
    schemas: boon::Schemas,
    root: boon::SchemaIndex,
    request: boon::SchemaIndex,
    response: boon::SchemaIndex,
    progress: boon::SchemaIndex,
}

impl Validators {
    fn new() -> Self {
        let loc = "file:///vml-filter/docs/protocol.schema.json";
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(loc, vml::protocol::schema()).unwrap();
        let mut schemas = boon::Schemas::new();
        let mut compile = |fragment: &str| {
            compiler
                .compile(&format!("{loc}{fragment}"), &mut schemas)
                .unwrap_or_else(|e| panic!("schema{fragment} does not compile: {e:#}"))
        };
        let root = compile("");
        let request = compile("#/$defs/request");
        let response = compile("#/$defs/response");
        let progress = compile("#/$defs/progress");
        Validators {
            schemas,
            root,
            request,
            response,
            progress,
        }
    }

    /// `Err` with the validator's explanation when `v` does not fit `def` or the document.
    fn check(&self, def: boon::SchemaIndex, v: &Value) -> Result<(), String> {
        for index in [def, self.root] {
            self.schemas
                .validate(v, index)
                .map_err(|e| format!("{e}"))?;
        }
        Ok(())
    }
}

/// Every example request and response of docs/examples fits the generated schema (the
/// `error-unsupported-version` request is deliberately not protocol v1 and must not), and
/// the schema is as strict as the engine where the types alone are loose.
#[test]
fn examples_fit_the_schema() {
    let v = Validators::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut seen = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let def = if name.ends_with(".request.json") {
            seen.0 += 1;
            v.request
        } else if name.ends_with(".response.json") {
            seen.1 += 1;
            v.response
        } else {
            continue;
        };
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let result = v.check(def, &doc);
        if name == "error-unsupported-version.request.json" {
            assert!(
                result.is_err(),
                "{name} fits the schema but speaks \"vml\":2"
            );
        } else {
            result.unwrap_or_else(|e| panic!("docs/examples/{name} does not fit the schema: {e}"));
        }
    }
    assert!(
        seen.0 >= 4 && seen.0 == seen.1,
        "examples missing: {seen:?}"
    );

    for fraction in [0.0, 0.4567, 1.0, 7.0] {
        let line: Value =
            serde_json::from_str(&vml::protocol::progress_line(fraction, "restore")).unwrap();
        v.check(v.progress, &line).unwrap();
    }
    let failure = vml::protocol::Response::failure(&vml::Error::Usage("x".into()));
    v.check(v.response, &serde_json::to_value(&failure).unwrap())
        .unwrap();

    let request = |task: Value, options: Value| json!({"vml": 1, "task": task, "image": {"bytes": 10}, "options": options});
    let sr = json!({"kind": "sr", "scale": 4});
    let fits = [
        request(sr.clone(), json!({})),
        request(
            sr.clone(),
            json!({"max_memory": "8G", "precision": "bf16", "device": "cuda:1"}),
        ),
        request(
            sr.clone(),
            json!({"max_memory": 1073741824u64, "format": "jpg", "steps": 20}),
        ),
        request(
            sr.clone(),
            json!({"max_memory": " 512 MiB", "renoise": "deterministic", "method": null}),
        ),
        request(
            json!({"kind": "deblur", "kernel": "motion", "length": 9, "angle": -30}),
            json!({}),
        ),
        request(
            json!({"kind": "inpaint", "hint": "ignored"}),
            json!({"unknown_option": true}),
        ),
    ];
    for r in &fits {
        v.check(v.request, r)
            .unwrap_or_else(|e| panic!("{r} should fit: {e}"));
    }
    let refused = [
        request(sr.clone(), json!({"method": "magic"})),
        request(sr.clone(), json!({"max_memory": "8X"})),
        request(sr.clone(), json!({"max_memory": -1})),
        request(sr.clone(), json!({"precision": "fp8"})),
        request(sr.clone(), json!({"device": "tpu"})),
        request(sr.clone(), json!({"sigma_y": -0.1})),
        request(sr.clone(), json!({"orientation": 9})),
        request(sr.clone(), json!({"steps": "many"})),
        request(sr.clone(), json!({"init": "zero"})),
        request(json!({"kind": "sr", "scale": 3}), json!({})),
        request(json!({"kind": "paint"}), json!({})),
        request(
            json!({"kind": "deblur", "kernel": "gaussian", "sigma": 0}),
            json!({}),
        ),
        json!({"vml": 1, "task": sr, "image": {"bytes": 0}}),
        json!({"vml": 1, "task": sr}),
    ];
    for r in &refused {
        assert!(v.check(v.request, r).is_err(), "{r} should not fit");
    }
    let bad_response =
        json!({"vml": 1, "ok": true, "error": {"code": "usage", "message": "x", "exit_code": 2}});
    assert!(v.check(v.response, &bad_response).is_err());
}

/// The plug-ins' own lists of methods and presets are the engine's, in its order: a method
/// added to `solvers::Method` and forgotten in a front end fails here.
#[test]
fn front_ends_offer_the_engines_methods_and_presets() {
    use vml::solvers::{Method, Quality};
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    // The GIMP plug-in: `NAME = [ ('key', 'Label', 'Help'), ... ]`.
    let plugin = read("plugin/gimp/vml-restore/vml-restore.py");
    let keys = |list: &str| -> Vec<String> {
        let start = plugin
            .find(&format!("\n{list} = ["))
            .unwrap_or_else(|| panic!("no {list} in the plug-in"));
        let body = &plugin[start..];
        let body = &body[..body.find("\n]").unwrap()];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("('"))
            .map(|l| l[..l.find('\'').unwrap()].to_string())
            .collect()
    };
    assert_eq!(keys("METHODS"), Method::names(), "GIMP plug-in METHODS");
    assert_eq!(keys("QUALITY"), Quality::names(), "GIMP plug-in QUALITY");
    // vml-magick's help names each method (and each preset) once.
    let magick = read("filters/vml-magick");
    let help = &magick[magick.find("-method M").unwrap()..];
    let help = &help[..help.find("-steps N").unwrap()];
    for m in Method::names() {
        let word = |w: &str| w.trim_matches(|c: char| c == ',' || c == ':' || c == ' ') == m;
        let n = help
            .split_whitespace()
            .filter(|w| word(w.trim_end_matches(" (default)")))
            .count();
        assert_eq!(n, 1, "vml-magick -method help names {m} {n} times:\n{help}");
    }
    for q in Quality::names() {
        assert!(
            help.contains(q),
            "vml-magick -preset help lacks {q}:\n{help}"
        );
    }
}

/// `sigma_y: "auto"` is estimated from the input and reported; a file's own JPEG tables
/// can come in the task (a client that sends decoded pixels), a malformed table cannot.
#[test]
fn sigma_y_auto_and_jpeg_tables_in_requests() {
    // A smooth picture with Gaussian noise of 8 levels of 255 (σ ≈ 0.063 on [-1, 1]).
    let mut noisy = rgb(64, 64).to_rgb8();
    let mut state = 12345u64;
    for p in noisy.pixels_mut() {
        for c in p.0.iter_mut() {
            // Box–Muller from a small LCG: enough for a test picture.
            let mut u = || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let n = (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
            *c = (f64::from(*c) + 8.0 * n).round().clamp(0.0, 255.0) as u8;
        }
    }
    let img = png(&image::DynamicImage::ImageRgb8(noisy));
    let auto = json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical","sigma_y":"auto"}});
    let words = json!({"vml":1,"task":{"kind":"sr","scale":2},"options":{"method":"classical","sigma_y":"loud"}});
    let table = |q: u16| vec![q; 64];
    let tables = json!({"vml":1,"task":{"kind":"jpeg","tables":{"sampling":[2,2],"quant":[table(16), table(24)]}},
                        "options":{"method":"classical"}});
    let zero = json!({"vml":1,"task":{"kind":"jpeg","tables":{"sampling":[2,2],"quant":[table(16), table(0)]}},
                      "options":{"method":"classical"}});
    let stream: Vec<u8> = [&auto, &words, &tables, &zero]
        .iter()
        .flat_map(|h| request(h, &img, None))
        .collect();
    let r = run(&["serve"], &stream);
    assert_eq!(r.code, 0, "{}", r.context());
    let (h, _, rest) = split_response(&r.stdout);
    assert_eq!(h["ok"], true, "{h}");
    let s = h["stats"]["sigma_y"].as_f64().unwrap();
    assert!(
        (0.045..0.085).contains(&s),
        "estimated σ_y {s}, true ≈ 0.063"
    );
    let (h, _, rest) = split_response(&rest);
    check_error("sigma_y as a word", &h, 3);
    let (h, body, rest) = split_response(&rest);
    assert_eq!(h["ok"], true, "{h}");
    assert_eq!(decode(&body).to_rgb8().dimensions(), (64, 64));
    let (h, _, rest) = split_response(&rest);
    check_error("a zero JPEG step", &h, 2);
    assert!(rest.is_empty());
}

/// `serve --group`: pipelined requests of equal size share one solve (vml-map on the
/// shipped model, which draws noise from each request's seed), and every request gets the
/// answer it gets without grouping, in order: the same headers but the time, the same
/// pixels to one level (batched convolutions round differently in the last bits), the same
/// errors for a bad request among them; a request of another size and an inpainting one
/// (with its own mask) go alone.
#[test]
fn serve_groups_pipelined_requests_with_the_same_answers() {
    let noisy = |seed: u64| {
        json!({"vml":1,"task":{"kind":"sr","scale":2},"image":{"bytes":0},
               "options":{"method":"vml-map","model":"default","device":"cpu","steps":2,
                          "iters":1,"seed":seed}})
    };
    let photo = rgb(16, 12);
    let mut stream = Vec::new();
    stream.extend(request(&noisy(1), &png(&photo), None));
    stream.extend(request(&noisy(2), &png(&photo.fliph()), None));
    stream.extend(request(&noisy(3), b"garbage garbage", None));
    stream.extend(request(&noisy(1), &png(&rgb(24, 12)), None));
    stream.extend(request(&noisy(4), &png(&photo.flipv()), None));
    let mask = png(&box_mask(16, 12, 2, 2, 8, 8));
    let inpaint = json!({"vml":1,"task":{"kind":"inpaint"},"image":{"bytes":0},
        "options":{"method":"vml-map","model":"default","device":"cpu","steps":2,"iters":1}});
    stream.extend(request(&inpaint, &png(&photo), Some(&mask)));
    let answers = |args: &[&str]| {
        let r = run(args, &stream);
        assert_eq!(r.code, 0, "{}", r.context());
        let mut rest = r.stdout.clone();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (mut h, body, tail) = split_response(&rest);
            if h["ok"] == true {
                h["stats"]["seconds"] = json!(0);
                h["image"]["bytes"] = json!(0);
            }
            out.push((h, body));
            rest = tail;
        }
        (out, r.stderr)
    };
    let (alone, _) = answers(&["serve", "-v", "--threads", "1"]);
    let (grouped, stderr) = answers(&["serve", "-v", "--threads", "1", "--group", "8"]);
    assert!(
        stderr.contains("solving 3 pictures as one batch"),
        "{stderr}"
    );
    assert_eq!(alone.len(), 6);
    assert_eq!(grouped.len(), 6);
    for (i, ((ha, ba), (hg, bg))) in alone.iter().zip(&grouped).enumerate() {
        assert_eq!(ha, hg, "response {i}");
        assert_eq!(ha["ok"], i != 2, "response {i}: {ha}");
        if ba.is_empty() {
            continue;
        }
        let (a, g) = (decode(ba).to_rgb8(), decode(bg).to_rgb8());
        let worst = a
            .as_raw()
            .iter()
            .zip(g.as_raw())
            .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
            .max();
        assert!(worst <= Some(1), "response {i}: off by {worst:?} levels");
    }
    let r = run(&["serve", "--group", "0"], b"");
    assert_eq!(r.code, 2, "{}", r.context());
}
