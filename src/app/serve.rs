//! Protocol mode (one request on stdin) and `serve` (requests one after another), both over
//! the framing of docs/protocol.md, sharing one request handler.
//!
//! After a failed request the server answers with an error response and goes on when it
//! still knows where the next header starts: the header was JSON with readable payload
//! lengths, so the payloads could be skipped. When it does not (header not JSON, header
//! line too long, no byte counts, stream ended inside a payload) it answers the error and
//! exits with that error's code, since whatever follows cannot be framed.

use crate::error::{Error, Result};
use crate::io::{self, Limits};
use crate::pipeline::progress::Reporter;
use crate::pipeline::{self, signals, ModelCache, Settings};
use crate::protocol::{self, HeaderError, ImageInfo, Request, Response};
use crate::solvers::Control;
use std::io::{BufRead, Write};

/// How one turn of the conversation ended.
enum Turn {
    EndOfStream,
    Answered,
    Failed { error: Error, in_step: bool },
}

/// A request stream that can tell, without blocking, whether more input is already there:
/// a client that pipelines has written its next requests before reading the answers.
pub trait Waiting {
    fn waiting(&self) -> bool;
}

impl<R: std::io::Read + std::os::fd::AsRawFd> Waiting for std::io::BufReader<R> {
    fn waiting(&self) -> bool {
        !self.buffer().is_empty() || readable(self.get_ref().as_raw_fd())
    }
}

impl Waiting for &[u8] {
    fn waiting(&self) -> bool {
        !self.is_empty()
    }
}

/// Whether a read of `fd` would return at once (bytes, or the end of the stream).
fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // A zero timeout: poll only looks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// Answers requests until the end of `input`; `defaults` fill what requests leave out.
/// Requests the client has already written when one is read (pipelined) are read with it,
/// up to `group` in all, and restored together (`pipeline::restore_all`: those of equal
/// size and settings share a solve); each is answered in order as if alone. Returns the
/// exit code (0 at a clean end of stream, even after failed requests).
pub fn serve<R: BufRead + Waiting>(
    input: &mut R,
    output: &mut dyn Write,
    defaults: &Settings,
    limits: &Limits,
    reporter: &mut Reporter,
    group: usize,
) -> Result<i32> {
    let mut models = ModelCache::default();
    let mut served = 0usize;
    loop {
        let mut reads = vec![read_waiting(input, limits)?];
        while reads.len() < group
            && reads.last().is_some_and(|r| match r {
                Ok(r) => r.is_some(),
                Err(failed) => failed.1,
            })
            && input.waiting()
        {
            let r = read_waiting(input, limits)?;
            if matches!(r, Ok(None)) {
                break;
            }
            reads.push(r);
        }
        for turn in answer(reads, output, defaults, limits, &mut models, reporter)? {
            match turn {
                Turn::EndOfStream => {
                    log::info!("end of input after {served} requests");
                    return Ok(0);
                }
                // A signal that came while the answer was computed or written stops the
                // server now, rather than after the client's next request.
                Turn::Answered if signals::interrupted() => return Err(Error::Interrupted),
                Turn::Answered => served += 1,
                Turn::Failed { error, in_step } => {
                    served += 1;
                    if matches!(error, Error::Interrupted) || signals::interrupted() {
                        return Err(Error::Interrupted);
                    }
                    if !in_step {
                        log::warn!("the stream cannot be framed past this error; serve stops");
                        return Err(error);
                    }
                    log::warn!("request {served} failed: {error}");
                }
            }
        }
    }
}

/// Answers the single request at the start of `input` (protocol mode of the plain filter).
pub fn answer_one(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    defaults: &Settings,
    limits: &Limits,
    reporter: &mut Reporter,
) -> Result<i32> {
    let mut models = ModelCache::default();
    let read = read_waiting(input, limits)?;
    let turns = answer(vec![read], output, defaults, limits, &mut models, reporter)?;
    match turns.into_iter().next() {
        None | Some(Turn::EndOfStream) => Err(Error::Input("empty input".into())),
        Some(Turn::Answered) => Ok(0),
        Some(Turn::Failed { error, .. }) => Err(error),
    }
}

/// The next request, blocked on the client meanwhile: a signal then ends the process at
/// once (nothing to clean up).
fn read_waiting(input: &mut dyn BufRead, limits: &Limits) -> Result<ReadRequest> {
    let wait = signals::InputWait::begin()?;
    let read = read_request(input, limits);
    drop(wait);
    Ok(read)
}

/// A request read and prepared, `None` at the end of the stream, or the error and whether
/// the stream is still in step.
type Ready = std::result::Result<Option<Prepared>, Box<(Error, bool)>>;

/// A request ready for the engine.
struct Prepared {
    req: Request,
    decoded: io::Decoded,
    mask: Option<io::Picture>,
    settings: Settings,
    format: io::Format,
}

/// Answers the requests read, in order: each one's response (or error) is written as it
/// would be alone, after those of equal size and settings were restored together.
fn answer(
    reads: Vec<ReadRequest>,
    output: &mut dyn Write,
    defaults: &Settings,
    limits: &Limits,
    models: &mut ModelCache,
    reporter: &mut Reporter,
) -> Result<Vec<Turn>> {
    let prepared: Vec<Ready> = reads
        .into_iter()
        .map(|read| match read {
            Ok(None) => Ok(None),
            Ok(Some((req, image, mask))) => {
                prepare(req, &image, mask.as_deref(), defaults, limits, reporter)
                    .map(Some)
                    .map_err(|e| Box::new((e, true)))
            }
            Err(failed) => Err(failed),
        })
        .collect();
    let ready: Vec<&Prepared> = prepared
        .iter()
        .filter_map(|p| p.as_ref().ok().and_then(Option::as_ref))
        .collect();
    let items: Vec<pipeline::Item> = ready
        .iter()
        .map(|p| pipeline::Item {
            task: &p.req.task,
            image: &p.decoded.picture,
            mask: p.mask.as_ref(),
            settings: &p.settings,
        })
        .collect();
    let mut outcomes = pipeline::restore_all(&items, items.len(), limits, models, &mut |f, s| {
        reporter.report(f, s)
    })
    .into_iter();
    drop(items);
    drop(ready);
    let mut turns = Vec::new();
    for p in prepared {
        let turn = match p {
            Ok(None) => Turn::EndOfStream,
            Err(failed) => {
                let (error, in_step) = *failed;
                fail(output, error, in_step)?
            }
            Ok(Some(p)) => {
                let outcome = outcomes
                    .next()
                    .unwrap_or(Err(Error::Internal("a request lost its result".into())));
                match outcome.and_then(|o| respond(&p, o, reporter)) {
                    Ok((response, bytes)) => {
                        protocol::write_response(output, &response, &bytes)?;
                        Turn::Answered
                    }
                    Err(e) => fail(output, e, true)?,
                }
            }
        };
        turns.push(turn);
    }
    Ok(turns)
}

/// A request and its payloads; `Ok(None)` at a clean end of stream; on failure, the error
/// and whether the stream is still in step (the next header can be found).
type ReadRequest =
    std::result::Result<Option<(Request, Vec<u8>, Option<Vec<u8>>)>, Box<(Error, bool)>>;

fn read_request(input: &mut dyn BufRead, limits: &Limits) -> ReadRequest {
    let line = match protocol::read_header_line(input) {
        Ok(None) => return Ok(None),
        Ok(Some(l)) => l,
        Err(e) => return Err(Box::new((e, false))),
    };
    let req = match protocol::parse_header(&line).map_err(|e| *e) {
        Ok(r) => r,
        Err(HeaderError {
            error,
            framing: Some(f),
        }) => {
            let skipped = protocol::skip(input, f.image_bytes, "image")
                .and_then(|()| protocol::skip(input, f.mask_bytes, "mask"));
            return Err(Box::new((error, skipped.is_ok())));
        }
        Err(HeaderError {
            error,
            framing: None,
        }) => return Err(Box::new((error, false))),
    };
    let mask_bytes = req.mask.as_ref().map_or(0, |m| m.bytes);
    let image = match protocol::read_payload(input, req.image.bytes, limits.max_bytes, "image") {
        Ok(b) => b,
        Err(e) => {
            let in_step =
                !protocol::is_truncation(&e) && protocol::skip(input, mask_bytes, "mask").is_ok();
            return Err(Box::new((e, in_step)));
        }
    };
    let mask = match &req.mask {
        Some(m) => match protocol::read_payload(input, m.bytes, limits.max_bytes, "mask") {
            Ok(b) => Some(b),
            Err(e) => {
                let in_step = !protocol::is_truncation(&e);
                return Err(Box::new((e, in_step)));
            }
        },
        None => None,
    };
    Ok(Some((req, image, mask)))
}

fn fail(output: &mut dyn Write, error: Error, in_step: bool) -> Result<Turn> {
    protocol::write_response(output, &Response::failure(&error), &[])?;
    Ok(Turn::Failed { error, in_step })
}

/// A parsed request decoded, with its settings.
fn prepare(
    req: Request,
    image: &[u8],
    mask: Option<&[u8]>,
    defaults: &Settings,
    limits: &Limits,
    reporter: &mut Reporter,
) -> Result<Prepared> {
    if reporter.report(0.0, "decode") == Control::Stop {
        return Err(Error::Interrupted);
    }
    // A payload that does not decode is most often a header whose byte count is off.
    let hint = |what: &'static str, n: usize| {
        move |e: Error| {
            match e {
            Error::Input(m) => Error::Input(format!(
                "{m} (the header's {what}.bytes is {n}: check that it is the payload's exact length)"
            )),
            other => other,
        }
        }
    };
    let decoded = io::decode(image, limits, "image").map_err(hint("image", image.len()))?;
    let mask = match mask {
        Some(m) => Some(
            io::decode(m, limits, "mask")
                .map_err(hint("mask", m.len()))?
                .picture,
        ),
        None => None,
    };
    let mut settings = settings_for(&req, defaults)?;
    settings.jpeg_tables = pipeline::jpeg_tables(&req.task, image)?;
    settings.input_orientation = input_orientation(&req.options, decoded.orientation)?;
    let format = req.options.format.unwrap_or(decoded.format);
    Ok(Prepared {
        req,
        decoded,
        mask,
        settings,
        format,
    })
}

/// The response to a restored request: the encoded picture and what the run measured.
fn respond(
    p: &Prepared,
    outcome: pipeline::Outcome,
    reporter: &mut Reporter,
) -> Result<(Response, Vec<u8>)> {
    let bytes = io::encode_with(&outcome.picture, p.format, &p.decoded.metadata)?;
    reporter.report(1.0, "done");
    let info = ImageInfo {
        bytes: bytes.len() as u64,
        format: p.format,
        width: outcome.picture.width,
        height: outcome.picture.height,
    };
    Ok((Response::success(info, outcome.stats), bytes))
}

/// The command line's settings with the request's options laid over them.
fn settings_for(req: &Request, defaults: &Settings) -> Result<Settings> {
    with_options(&req.options, defaults)
}

/// The orientation the picture was turned upright by: what the options say (a client
/// that decoded a turned JPEG itself), else what the decoder did (`decoded`).
pub fn input_orientation(
    o: &protocol::Options,
    decoded: io::Orientation,
) -> Result<io::Orientation> {
    match o.orientation {
        None => Ok(decoded),
        Some(v) => io::Orientation::from_exif(v).ok_or_else(|| {
            Error::Usage(format!("orientation is an EXIF orientation 1–8, got {v}"))
        }),
    }
}

/// `defaults` with what `o` sets laid over them: a request's options, or a `batch`
/// manifest line's.
pub fn with_options(o: &protocol::Options, defaults: &Settings) -> Result<Settings> {
    let mut s = defaults.clone();
    if let Some(v) = o.method {
        s.method = v;
    }
    if let Some(v) = &o.model {
        // The server's --arch describes the server's --model, not another one.
        if defaults.model.as_ref() != Some(v) {
            s.arch = None;
        }
        s.model = Some(v.clone());
    }
    if let Some(v) = &o.device {
        s.device = v.clone();
    }
    if let Some(v) = o.precision {
        s.precision = v;
    }
    if let Some(v) = o.seed {
        s.seed = v;
    }
    if let Some(v) = o.sigma_y {
        s.sigma_y = v;
    }
    if let Some(v) = o.tile {
        s.tile = Some(v);
    }
    match &o.max_memory {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Number(n)) => {
            s.max_memory = n
                .as_u64()
                .ok_or_else(|| Error::Input(format!("max_memory must be a byte count, got {n}")))?
        }
        Some(serde_json::Value::String(t)) => {
            s.max_memory = io::parse_size(t).map_err(Error::Input)?
        }
        Some(other) => {
            return Err(Error::Input(format!(
                "max_memory must be a number or a string like \"8G\", got {other}"
            )))
        }
    }
    s.solver = o.solver_options(&defaults.solver)?;
    Ok(s)
}
