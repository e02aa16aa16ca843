//! The versioned JSON-header protocol (docs/protocol.md, docs/protocol.schema.json).
//!
//! Framing: one line of JSON (at most [`MAX_HEADER_BYTES`], ended by `\n`), then exactly
//! the payload byte counts the header declares — the image, then the mask if any. The
//! response has the same shape: one JSON line, then the image bytes it declares. Unknown
//! fields are ignored so that clients may send more than this version knows; a `vml`
//! version other than [`VERSION`] is refused.

use crate::error::{Error, Result};
use crate::solvers::SolverOptions;
use crate::task::Task;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest header line accepted, newline included.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A payload announced in a header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Exact number of bytes that follow for this payload.
    pub bytes: u64,
}

/// What a request may set beyond the task. Absent fields take the command line's value,
/// then the built-in default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    pub method: Option<String>,
    pub model: Option<String>,
    pub device: Option<String>,
    /// `fp32`, `fp16` or `bf16`.
    pub precision: Option<String>,
    pub seed: Option<u64>,
    /// Measurement noise σ_y on the [-1, 1] scale.
    pub sigma_y: Option<f64>,
    /// Tile size in output pixels; 0 = never tile.
    pub tile: Option<u32>,
    /// Memory budget, a number of bytes or a string like `"8G"`.
    pub max_memory: Option<serde_json::Value>,
    /// Output format name (`png`, `jpeg`, `pnm`, `tiff`, `webp`, `bmp`); default: the input's.
    pub format: Option<String>,
    /// The solver's own settings (`steps`, `iters`, …), at the same level; kept as JSON so
    /// that they can be laid over the command line's (see [`Options::solver_options`]).
    #[serde(flatten)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub vml: u32,
    pub task: Task,
    pub image: Payload,
    #[serde(default)]
    pub mask: Option<Payload>,
    #[serde(default)]
    pub options: Options,
}

/// The image part of a successful response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub bytes: u64,
    pub format: String,
    pub width: u32,
    pub height: u32,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub method: String,
    pub device: String,
    pub model: Option<String>,
    pub steps: usize,
    pub tiles: usize,
    /// Network forward passes and vector-Jacobian products, summed over tiles.
    pub forwards: usize,
    pub vjps: usize,
    pub seconds: f64,
}

/// `error` of a failed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub exit_code: i32,
}

/// A response header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
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
    if let Some(s) = req.options.sigma_y {
        if !s.is_finite() || s < 0.0 {
            return Err(format!("sigma_y must be a finite number ≥ 0, got {s}"));
        }
    }
    if req.image.bytes == 0 {
        return Err("image.bytes is 0: there is no image".into());
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

/// One progress line for stderr: `{"progress":0.42,"stage":"restore"}`.
pub fn progress_line(fraction: f64, stage: &str) -> String {
    let p = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let v = serde_json::json!({ "progress": (p * 1000.0).round() / 1000.0, "stage": stage });
    v.to_string()
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
        assert_eq!(r.options.method.as_deref(), Some("classical"));
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
