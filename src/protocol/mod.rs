//! The versioned JSON-header protocol (docs/protocol.md, docs/protocol.schema.json).
//!
//! The JSON Schema in docs/protocol.schema.json is generated from the types below
//! ([`schema_json`]); `tests/protocol.rs` checks that the committed file is the generated one
//! (`VML_BLESS_SCHEMA=1` rewrites it).
//!
//! Framing: one line of JSON (at most [`MAX_HEADER_BYTES`], ended by `\n`), then exactly
//! the payload byte counts the header declares — the image, then the mask if any. The
//! response has the same shape: one JSON line, then the image bytes it declares. Unknown
//! fields are ignored so that clients may send more than this version knows; a `vml`
//! version other than [`VERSION`] is refused.

use crate::error::{Error, Result};
use crate::io::Format;
use crate::model::Precision;
use crate::solvers::{Method, SigmaY, SolverOptions};
use crate::task::Task;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};

pub use schema::{schema, schema_json};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest header line accepted, newline included.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A payload announced in a header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "payload")]
pub struct Payload {
    /// Exact number of bytes that follow for this payload.
    pub bytes: u64,
}

/// What a request may set beyond the task. Absent fields take the command line's value,
/// then the built-in default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(
    rename = "options",
    description = "What a request may set beyond the task. Absent fields take the command \
                   line's value, then the built-in default."
)]
pub struct Options {
    /// Restoration method, as `--method`.
    pub method: Option<Method>,
    /// Model name or path, as `--model`.
    pub model: Option<String>,
    /// Device, as `--device` (case-insensitive).
    #[schemars(with = "Option<schema::DeviceName>")]
    pub device: Option<String>,
    /// `fp32`, `fp16` or `bf16`, as `--precision`; half precision needs a CUDA device.
    #[schemars(with = "Option<schema::PrecisionName>")]
    pub precision: Option<Precision>,
    /// Seed of all the noise a method draws, as `--seed`.
    pub seed: Option<u64>,
    /// Measurement noise σ_y on the [-1, 1] scale or `"auto"`, as `--sigma-y`; absent =
    /// `"auto"`. Give 0 for a noise-free input.
    pub sigma_y: Option<SigmaY>,
    /// The EXIF orientation (1–8) the client turned the image upright by before sending
    /// it: a JPEG stored turned, decoded by the client (GIMP turns such files on import).
    /// A `jpeg` task is solved in the orientation the file was compressed in, and the
    /// answer comes back upright like the image sent. Absent: the payload's own EXIF tag.
    #[schemars(range(min = 1, max = 8))]
    pub orientation: Option<u8>,
    /// Tile size in output pixels; 0 = never tile.
    pub tile: Option<u32>,
    /// Memory budget, a number of bytes or a string like `"8G"`.
    #[schemars(with = "Option<schema::ByteSize>")]
    pub max_memory: Option<serde_json::Value>,
    /// Output format name (`png`, `jpeg`, `pnm`, `tiff`, `webp`, `bmp`); default: the input's.
    #[schemars(with = "Option<schema::FormatName>")]
    pub format: Option<Format>,
    /// The solver's own settings (`steps`, `iters`, …), at the same level; kept as JSON so
    /// that they can be laid over the command line's (see `Options::solver_options`).
    #[serde(flatten)]
    #[schemars(with = "crate::solvers::SolverOptions")]
    pub solver: serde_json::Map<String, serde_json::Value>,
}

impl Options {
    /// `base` with every solver setting this request names replaced by the request's value.
    pub fn solver_options(&self, base: &SolverOptions) -> Result<SolverOptions> {
        let mut merged = match serde_json::to_value(base) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        for (k, v) in &self.solver {
            merged.insert(k.clone(), v.clone());
        }
        serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| Error::Input(format!("bad solver option in request: {e}")))
    }
}

/// A request header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "request")]
pub struct Request {
    /// Protocol version.
    #[schemars(with = "schema::Version")]
    pub vml: u32,
    /// The degradation to undo.
    pub task: Task,
    /// The encoded image that follows the header line (at least one byte).
    #[schemars(extend("properties" = { "bytes": { "minimum": 1 } }))]
    pub image: Payload,
    /// The encoded mask that follows the image (required for inpainting).
    #[serde(default)]
    pub mask: Option<Payload>,
    /// Everything else; absent fields take the command line's value, then the default.
    #[serde(default)]
    #[schemars(transform = schema::without_default)]
    pub options: Options,
}

/// The image part of a successful response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "image_info")]
pub struct ImageInfo {
    /// Length of the encoded image that follows the header line.
    #[schemars(range(min = 1))]
    pub bytes: u64,
    /// The format it is encoded in.
    #[schemars(with = "schema::WrittenFormat")]
    pub format: Format,
    #[schemars(range(min = 1))]
    pub width: u32,
    #[schemars(range(min = 1))]
    pub height: u32,
}

/// What a run measured (informative; fields may be added).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "stats")]
pub struct Stats {
    pub method: Method,
    pub device: String,
    pub model: Option<String>,
    pub steps: usize,
    pub tiles: usize,
    /// Network forward passes and vector-Jacobian products, summed over tiles.
    pub forwards: usize,
    pub vjps: usize,
    /// The measurement noise σ_y the solver was given before its own floors: the one
    /// asked for, or the estimate of `--sigma-y auto`.
    #[serde(default)]
    pub sigma_y: f64,
    /// Wall-clock seconds of the request.
    #[schemars(range(min = 0.0))]
    pub seconds: f64,
}

/// `error` of a failed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "error_info")]
pub struct ErrorInfo {
    /// Machine-readable class of the failure (docs/protocol.md, §4).
    #[schemars(with = "schema::ErrorCode")]
    pub code: String,
    /// For humans.
    pub message: String,
    /// The exit status the process ends with (or would, outside serve mode).
    #[schemars(with = "schema::ExitCode")]
    pub exit_code: i32,
}

/// A response header: `ok` with `image` and `stats`, or not `ok` with `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "response")]
#[schemars(extend("oneOf" = [
    { "properties": { "ok": { "const": true } }, "required": ["image", "stats"] },
    { "properties": { "ok": { "const": false } }, "required": ["error"] }
]))]
pub struct Response {
    /// Protocol version.
    #[schemars(with = "schema::Version")]
    pub vml: u32,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

impl Response {
    pub fn success(image: ImageInfo, stats: Stats) -> Self {
        Response {
            vml: VERSION,
            ok: true,
            image: Some(image),
            stats: Some(stats),
            error: None,
        }
    }

    pub fn failure(e: &Error) -> Self {
        Response {
            vml: VERSION,
            ok: false,
            image: None,
            stats: None,
            error: Some(ErrorInfo {
                code: e.code().into(),
                message: e.to_string(),
                exit_code: e.exit_code(),
            }),
        }
    }
}

/// The payload lengths of a header, read even when the rest of it is unusable, so that a
/// server can skip the payloads and stay in step with the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    pub image_bytes: u64,
    pub mask_bytes: u64,
}

/// Why a header was refused.
#[derive(Debug)]
pub struct HeaderError {
    pub error: Error,
    /// `Some` when the payload lengths were readable: the stream can be resynchronised by
    /// skipping them. `None` means the stream position is lost.
    pub framing: Option<Framing>,
}

/// Reads one header line. `Ok(None)` at a clean end of stream (no byte at all).
pub fn read_header_line(r: &mut dyn BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r
        .take(MAX_HEADER_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() >= MAX_HEADER_BYTES {
            return Err(Error::Input(format!(
                "protocol header is longer than {MAX_HEADER_BYTES} bytes"
            )));
        }
        return Err(Error::Input(
            "protocol header is not ended by a newline (stream ended)".into(),
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Parses a header line into a request, checking the version and the payload lengths.
pub fn parse_header(line: &[u8]) -> std::result::Result<Request, Box<HeaderError>> {
    let fatal = |m: String| {
        Box::new(HeaderError {
            error: Error::Input(m),
            framing: None,
        })
    };
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| fatal(format!("protocol header is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| fatal("protocol header is not a JSON object".into()))?;
    let framing = framing_of(obj).map_err(fatal)?;
    let skippable = |m: String| {
        Box::new(HeaderError {
            error: Error::Input(m),
            framing: Some(framing),
        })
    };
    match obj.get("vml") {
        None => {
            return Err(skippable(
                "protocol header has no \"vml\" version field".into(),
            ))
        }
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => {
            return Err(skippable(format!(
                "unsupported protocol version {v}: this build speaks \"vml\":{VERSION}"
            )))
        }
    }
    // An unknown method name is the user's word, refused as on the command line (usage,
    // exit 2), not a malformed header.
    if let Some(Err(e)) = obj
        .get("options")
        .and_then(|o| o.get("method"))
        .and_then(|m| m.as_str())
        .map(str::parse::<Method>)
    {
        return Err(Box::new(HeaderError {
            error: Error::Usage(e),
            framing: Some(framing),
        }));
    }
    let req: Request =
        serde_json::from_value(value).map_err(|e| skippable(format!("bad request: {e}")))?;
    check_numbers(&req).map_err(skippable)?;
    Ok(req)
}

fn framing_of(
    obj: &serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<Framing, String> {
    let bytes = |key: &str, required: bool| -> std::result::Result<u64, String> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) if !required => Ok(0),
            None | Some(serde_json::Value::Null) => Err(format!("protocol header has no \"{key}\"")),
            Some(p) => p.get("bytes").and_then(|b| b.as_u64()).ok_or_else(|| {
                format!("protocol header's \"{key}\" needs \"bytes\": a non-negative integer byte count")
            }),
        }
    };
    Ok(Framing {
        image_bytes: bytes("image", true)?,
        mask_bytes: bytes("mask", false)?,
    })
}

/// Refuses NaN-free but meaningless numbers that serde accepts.
fn check_numbers(req: &Request) -> std::result::Result<(), String> {
    if let Some(s) = req.options.sigma_y.and_then(SigmaY::invalid) {
        return Err(format!("sigma_y must be a finite number ≥ 0, got {s}"));
    }
    if req.image.bytes == 0 {
        return Err("image.bytes is 0: there is no image".into());
    }
    if let Some(o) = req.options.orientation.filter(|o| !(1..=8).contains(o)) {
        return Err(format!("orientation is an EXIF orientation 1–8, got {o}"));
    }
    Ok(())
}

/// Reads exactly `n` payload bytes; refuses a payload larger than `max` by skipping it
/// (so the stream stays in step) and reporting the error.
pub fn read_payload(r: &mut dyn Read, n: u64, max: u64, what: &str) -> Result<Vec<u8>> {
    if n > max {
        skip(r, n, what)?;
        return Err(Error::Input(format!(
            "{what} payload of {n} bytes is larger than the limit {max} (raise with --max-bytes)"
        )));
    }
    // Reserve no more than a modest amount up front: the header's count is a claim, and a
    // failed allocation aborts rather than returning an error.
    let mut buf = Vec::with_capacity(n.min(16 << 20) as usize);
    r.take(n).read_to_end(&mut buf)?;
    if (buf.len() as u64) < n {
        return Err(truncated(what, n, buf.len() as u64));
    }
    Ok(buf)
}

/// Discards exactly `n` bytes.
pub fn skip(r: &mut dyn Read, n: u64, what: &str) -> Result<()> {
    let got = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if got < n {
        return Err(truncated(what, n, got));
    }
    Ok(())
}

fn truncated(what: &str, want: u64, got: u64) -> Error {
    Error::Input(format!(
        "{what} payload truncated: the header declares {want} bytes, the stream ended after {got}"
    ))
}

/// Whether the error came from a stream that ended inside a payload (nothing more can
/// follow).
pub fn is_truncation(e: &Error) -> bool {
    matches!(e, Error::Input(m) if m.contains("payload truncated"))
}

/// Writes a response header line and its payload, then flushes.
pub fn write_response(
    w: &mut dyn Write,
    response: &Response,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.write_all(payload)?;
    w.flush()
}

/// A progress line on stderr: `{"progress":0.42,"stage":"restore"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "progress")]
pub struct Progress {
    /// Fraction of the request done, rising from 0 to 1, rounded to 0.001.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub progress: f64,
    /// What runs now: `decode`, `load`, `restore`, `encode`, `done` (`degrade` in the
    /// `degrade` command).
    #[schemars(
        description = "What runs now: `decode`, `load`, `restore`, `encode`, `done` (`degrade` \
                       in the `degrade` command)."
    )]
    pub stage: String,
}

/// One progress line for stderr: `{"progress":0.42,"stage":"restore"}`.
pub fn progress_line(fraction: f64, stage: &str) -> String {
    let p = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let line = Progress {
        progress: (p * 1000.0).round() / 1000.0,
        stage: stage.into(),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// The JSON Schema of the protocol, generated from the types above. Where a type is looser
/// than what the engine takes (a `String` naming a method, a `serde_json::Value` memory
/// budget), a marker type here gives the precise shape; the task and the solver settings
/// derive theirs where they are defined (`task`, `solvers`).
mod schema {
    use super::{Progress, Request, Response, VERSION};
    use crate::error::exit;
    use crate::io::Format;
    use schemars::generate::SchemaSettings;
    use schemars::transform::RecursiveTransform;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use serde::Serialize;
    use std::borrow::Cow;

    /// The schema document: `$defs/request`, `$defs/response`, `$defs/progress` and the
    /// definitions they use; the document itself accepts any of the three.
    pub fn schema() -> serde_json::Value {
        serde_json::to_value(document()).unwrap_or_default()
    }

    /// [`schema`] as the text of docs/protocol.schema.json: pretty-printed, the document's
    /// own keywords first, ending with a newline.
    pub fn schema_json() -> String {
        let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The top level of the document, in the order it is written.
    #[derive(Serialize)]
    struct Document {
        #[serde(rename = "$schema")]
        meta_schema: &'static str,
        #[serde(rename = "$id")]
        id: &'static str,
        title: &'static str,
        description: &'static str,
        #[serde(rename = "oneOf")]
        one_of: Vec<Schema>,
        #[serde(rename = "$defs")]
        defs: serde_json::Map<String, serde_json::Value>,
    }

    fn document() -> Document {
        let mut generator = SchemaSettings::draft2020_12()
            .with_transform(RecursiveTransform(|s: &mut Schema| {
                // `"default": null` on every optional field says nothing that leaving it
                // out does not.
                if s.get("default").is_some_and(serde_json::Value::is_null) {
                    s.remove("default");
                }
            }))
            .into_generator();
        let one_of = vec![
            generator.subschema_for::<Request>(),
            generator.subschema_for::<Response>(),
            generator.subschema_for::<Progress>(),
        ];
        Document {
            meta_schema: "https://json-schema.org/draft/2020-12/schema",
            id: "vml-filter/protocol/v1",
            title: "vml-filter protocol v1 header lines",
            description: "One JSON line per message, followed by the payload bytes it declares \
                (docs/protocol.md). Unknown properties are allowed everywhere and must be \
                ignored by readers. Generated from the types of src/protocol/mod.rs: \
                regenerate with `VML_BLESS_SCHEMA=1 cargo test --release --test protocol \
                schema`, do not edit by hand.",
            one_of,
            defs: generator.take_definitions(true),
        }
    }

    /// For a field whose `Default` is "take the command line's value": no `default`.
    pub(super) fn without_default(schema: &mut Schema) {
        schema.remove("default");
    }

    /// Declares a marker type whose schema is inlined where it is used.
    macro_rules! marker {
        ($(#[$doc:meta])* $name:ident, $schema:expr) => {
            $(#[$doc])*
            pub(super) struct $name;

            impl JsonSchema for $name {
                fn inline_schema() -> bool {
                    true
                }
                fn schema_name() -> Cow<'static, str> {
                    stringify!($name).into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    $schema
                }
            }
        };
    }

    marker!(
        /// `vml`: the one version this build speaks.
        Version,
        json_schema!({ "type": "integer", "const": VERSION })
    );

    marker!(
        /// What `device::parse_device` takes.
        DeviceName,
        json_schema!({
            "type": "string",
            "pattern": "^(auto|cpu|gpu|cuda(:[0-9]+)?)$",
            "description": "`cuda` is `cuda:0`, `gpu` the same; the engine also takes other letter cases."
        })
    );

    /// The names `model::Precision::parse` takes, canonical ones first.
    pub(super) const PRECISION_NAMES: &[&str] = &[
        "fp32", "fp16", "bf16", "float32", "f32", "float16", "f16", "half", "bfloat16",
    ];

    marker!(
        /// What `model::Precision::parse` takes.
        PrecisionName,
        json_schema!({
            "type": "string",
            "enum": PRECISION_NAMES,
            "description": "The engine also takes other letter cases."
        })
    );

    /// The names `io::Format::from_name` takes, canonical ones first.
    pub(super) const FORMAT_NAMES: &[&str] = &[
        "png", "jpeg", "pnm", "tiff", "webp", "bmp", "jpg", "jpe", "ppm", "pgm", "pam", "pbm",
        "tif", "dib",
    ];

    marker!(
        /// An output format a request may name.
        FormatName,
        json_schema!({
            "type": "string",
            "enum": FORMAT_NAMES,
            "description": "The engine also takes other letter cases and a leading dot."
        })
    );

    marker!(
        /// A format a response names: `io::Format::name` of each written format.
        WrittenFormat,
        json_schema!({
            "type": "string",
            "enum": Format::ALL.map(Format::name)
        })
    );

    marker!(
        /// `max_memory`: a byte count, or what `io::parse_size` reads (`"512M"`, `"8G"`,
        /// `"8GiB"`; binary units).
        ByteSize,
        json_schema!({
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": "^\\s*\\+?[0-9]+\\s*[kKmMgGtT]?(iB|B)?\\s*$"
        })
    );

    /// Every `error::Error::code`.
    pub(super) const ERROR_CODES: &[&str] = &[
        "usage",
        "bad_input",
        "model",
        "device",
        "out_of_memory",
        "interrupted",
        "io",
        "internal",
    ];

    marker!(
        /// `error.code`.
        ErrorCode,
        json_schema!({ "type": "string", "enum": ERROR_CODES })
    );

    /// Every exit code a failure can have (`error::exit`).
    pub(super) const EXIT_CODES: &[i32] = &[
        exit::FAILURE,
        exit::USAGE,
        exit::BAD_INPUT,
        exit::MODEL,
        exit::DEVICE,
        exit::OUT_OF_MEMORY,
        exit::INTERNAL,
        exit::INTERRUPTED,
    ];

    marker!(
        /// `error.exit_code`.
        ExitCode,
        json_schema!({ "type": "integer", "enum": EXIT_CODES })
    );

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn name_lists_match_the_parsers() {
            for n in PRECISION_NAMES {
                assert!(crate::model::Precision::parse(n).is_some(), "{n}");
            }
            for p in [
                crate::model::Precision::Fp32,
                crate::model::Precision::Fp16,
                crate::model::Precision::Bf16,
            ] {
                assert!(PRECISION_NAMES.contains(&p.name()));
            }
            for n in FORMAT_NAMES {
                assert!(Format::from_name(n).is_some(), "{n}");
            }
            for f in Format::ALL {
                assert!(FORMAT_NAMES.contains(&f.name()));
            }
            for d in ["auto", "cpu"] {
                assert!(crate::device::parse_device(d).is_ok(), "{d}");
            }
            assert!(crate::device::parse_device("tpu").is_err());
            let errors = [
                crate::error::Error::Usage(String::new()),
                crate::error::Error::Input(String::new()),
                crate::error::Error::Device(String::new()),
                crate::error::Error::OutOfMemory(String::new()),
                crate::error::Error::Interrupted,
                crate::error::Error::Io(std::io::Error::other("x")),
                crate::error::Error::Torch(tch::TchError::Torch("x".into())),
                crate::error::Error::Internal(String::new()),
            ];
            for e in &errors {
                assert!(ERROR_CODES.contains(&e.code()), "{e}");
                assert!(EXIT_CODES.contains(&e.exit_code()), "{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_request_parses() {
        let line = br#"{"vml":1,"task":{"kind":"sr","scale":4},"image":{"bytes":10},"options":{"method":"classical","seed":0,"steps":20,"future":true}}"#;
        let r = parse_header(line).unwrap();
        assert_eq!(r.image.bytes, 10);
        let so = r
            .options
            .solver_options(&SolverOptions {
                iters: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((so.steps, so.iters), (Some(20), Some(3)));
        assert_eq!(r.options.method, Some(Method::Classical));
        assert!(r.mask.is_none());
    }

    #[test]
    fn bad_headers_say_whether_the_stream_survives() {
        let e = parse_header(b"not json").unwrap_err();
        assert!(e.framing.is_none());
        let e = parse_header(
            br#"{"vml":2,"task":{"kind":"inpaint"},"image":{"bytes":5},"mask":{"bytes":7}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.framing,
            Some(Framing {
                image_bytes: 5,
                mask_bytes: 7
            })
        );
        assert!(e.error.to_string().contains("version"));
        let e =
            parse_header(br#"{"vml":1,"task":{"kind":"paint"},"image":{"bytes":5}}"#).unwrap_err();
        assert!(e.framing.is_some());
        let e = parse_header(br#"{"vml":1,"task":{"kind":"inpaint"},"image":{"bytes":-5}}"#)
            .unwrap_err();
        assert!(e.framing.is_none());
    }

    #[test]
    fn header_line_is_capped() {
        let long = vec![b' '; MAX_HEADER_BYTES + 10];
        assert!(read_header_line(&mut &long[..]).is_err());
        assert_eq!(read_header_line(&mut &b""[..]).unwrap(), None);
        assert_eq!(
            read_header_line(&mut &b"{}\r\nrest"[..]).unwrap(),
            Some(b"{}".to_vec())
        );
    }

    #[test]
    fn payloads_are_counted() {
        let data = b"abcdef";
        let mut r = &data[..];
        assert_eq!(read_payload(&mut r, 4, 100, "image").unwrap(), b"abcd");
        assert!(is_truncation(
            &read_payload(&mut r, 4, 100, "mask").unwrap_err()
        ));
        let mut r = &data[..];
        assert!(read_payload(&mut r, 4, 3, "image").is_err());
        assert_eq!(r, b"ef");
    }
}
