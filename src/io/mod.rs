//! Image decoding and encoding, input limits, atomic output files.
//!
//! Decoding sniffs the format from the first bytes (never from a file name), checks the
//! declared size against [`Limits`] from the header alone — before any pixel buffer is
//! allocated, so a decompression bomb costs a few hundred bytes of reading — and applies the
//! EXIF orientation. Pixels come out as [`Picture`]: channel-major `f32` planes in [0, 1]
//! with the alpha plane kept apart, so that the restoration never sees alpha and the encoder
//! can put it back untouched.

use crate::error::{Error, Result};
pub use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::{Cursor, Read, Write};
use std::path::Path;

/// The image formats read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    /// Netpbm: P5/P6 binary gray/colour maps and P7 (PAM, which also carries alpha).
    Pnm,
    Tiff,
    WebP,
    Bmp,
}

/// A format name or extension, as [`Format::from_name`]; the error lists the names.
impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Format::from_name(name).ok_or_else(|| {
            format!("unknown output format '{name}': expected png, jpeg, pnm, tiff, webp or bmp")
        })
    }
}

serde_by_name!(Format);

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Png,
        Format::Jpeg,
        Format::Pnm,
        Format::Tiff,
        Format::WebP,
        Format::Bmp,
    ];

    /// The name used by `--format` and the protocol's `format` field.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Pnm => "pnm",
            Format::Tiff => "tiff",
            Format::WebP => "webp",
            Format::Bmp => "bmp",
        }
    }

    /// Parses a format name or a file extension (`jpg`, `ppm`, `tif`, …), case-insensitive.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(
            match name
                .trim()
                .trim_start_matches('.')
                .to_ascii_lowercase()
                .as_str()
            {
                "png" => Format::Png,
                "jpeg" | "jpg" | "jpe" => Format::Jpeg,
                "pnm" | "ppm" | "pgm" | "pam" | "pbm" => Format::Pnm,
                "tiff" | "tif" => Format::Tiff,
                "webp" => Format::WebP,
                "bmp" | "dib" => Format::Bmp,
                _ => return None,
            },
        )
    }

    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_name)
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Pnm => ImageFormat::Pnm,
            Format::Tiff => ImageFormat::Tiff,
            Format::WebP => ImageFormat::WebP,
            Format::Bmp => ImageFormat::Bmp,
        }
    }

    /// Whether the encoder keeps 16-bit samples.
    pub fn keeps_16_bit(self) -> bool {
        matches!(self, Format::Png | Format::Pnm | Format::Tiff)
    }

    /// Whether the encoder keeps an alpha channel.
    pub fn keeps_alpha(self) -> bool {
        !matches!(self, Format::Jpeg)
    }
}

/// Sniffs the format from the leading bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let b = bytes;
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if b.len() >= 2 && b[0] == b'P' && matches!(b[1], b'5' | b'6' | b'7') {
        Some(Format::Pnm)
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        Some(Format::Tiff)
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else if b.starts_with(b"BM") {
        Some(Format::Bmp)
    } else {
        None
    }
}

/// Bounds on what an input may make us allocate. Checked from the image header before
/// decoding, in raw and protocol modes alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
    /// Bytes of decoded pixels (all channels, at their bit depth) and of encoded input.
    pub max_bytes: u64,
}

impl Default for Limits {
    /// Fits a 24 GiB machine: a 64 Mpx RGBA 16-bit image is 512 MiB decoded, and the
    /// restoration works on tiles whose size `--max-memory` bounds separately.
    fn default() -> Self {
        Limits {
            max_width: 32768,
            max_height: 32768,
            max_pixels: 64 << 20,
            max_bytes: 1 << 30,
        }
    }
}

impl Limits {
    /// Defaults overridden by `VML_MAX_WIDTH`, `VML_MAX_HEIGHT`, `VML_MAX_PIXELS` and
    /// `VML_MAX_BYTES` where set.
    pub fn from_env() -> Result<Self> {
        let mut l = Limits::default();
        if let Some(v) = env_number("VML_MAX_WIDTH")? {
            l.max_width =
                u32::try_from(v).map_err(|_| Error::Usage("VML_MAX_WIDTH is too large".into()))?;
        }
        if let Some(v) = env_number("VML_MAX_HEIGHT")? {
            l.max_height =
                u32::try_from(v).map_err(|_| Error::Usage("VML_MAX_HEIGHT is too large".into()))?;
        }
        if let Some(v) = env_number("VML_MAX_PIXELS")? {
            l.max_pixels = v;
        }
        if let Some(v) = env_number("VML_MAX_BYTES")? {
            l.max_bytes = v;
        }
        Ok(l)
    }

    /// Checks a declared size; `what` names the input in the message.
    pub fn check(&self, what: &str, width: u32, height: u32, bytes_per_pixel: u64) -> Result<()> {
        if width == 0 || height == 0 {
            return Err(Error::Input(format!("{what} is empty ({width}×{height})")));
        }
        if width > self.max_width || height > self.max_height {
            return Err(Error::Input(format!(
                "{what} is {width}×{height}, larger than the limit {}×{} (raise with --max-width/--max-height)",
                self.max_width, self.max_height
            )));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(Error::Input(format!(
                "{what} has {pixels} pixels, more than the limit {} (raise with --max-pixels)",
                self.max_pixels
            )));
        }
        let bytes = pixels.saturating_mul(bytes_per_pixel);
        if bytes > self.max_bytes {
            return Err(Error::Input(format!(
                "{what} would take {bytes} bytes decoded, more than the limit {} (raise with --max-bytes)",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

fn env_number(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => parse_size(&v)
            .map(Some)
            .map_err(|e| Error::Usage(format!("{name}: {e}"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Usage(format!("{name} is not valid UTF-8")))
        }
    }
}

/// Parses `1234`, `64K`, `512M`, `8G` (binary multiples, optional trailing `B`/`iB`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 4096, 512M, 8G)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Pixels as the restoration sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// `channels` planes of `width × height`, row-major, in [0, 1].
    pub color: Vec<f32>,
    /// The alpha plane in [0, 1], kept apart from the colour.
    pub alpha: Option<Vec<f32>>,
    /// Whether the source had 16-bit samples (the output keeps them where the format can).
    pub sixteen_bit: bool,
}

impl Picture {
    /// The picture turned by the EXIF orientation `o`, as [`decode`] turns a file's stored
    /// pixels upright (`DynamicImage::apply_orientation`); [`inverse`] turns it back.
    pub fn oriented(&self, o: Orientation) -> Picture {
        let (w, h) = (self.width as usize, self.height as usize);
        let turn = |plane: &[f32]| orient_plane(plane, w, h, o).0;
        let (ow, oh) = oriented_size(w, h, o);
        Picture {
            width: ow as u32,
            height: oh as u32,
            channels: self.channels,
            color: self.color.chunks(w * h).flat_map(turn).collect(),
            alpha: self.alpha.as_deref().map(turn),
            sixteen_bit: self.sixteen_bit,
        }
    }

    pub fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// One plane of luminance-like gray: the mean of R, G, B (the colorization operator's
    /// definition), or the gray plane itself.
    pub fn gray_plane(&self) -> Vec<f32> {
        let n = self.pixels();
        if self.channels == 1 {
            return self.color.clone();
        }
        (0..n)
            .map(|i| (self.color[i] + self.color[n + i] + self.color[2 * n + i]) / 3.0)
            .collect()
    }

    fn to_dynamic(&self) -> Result<DynamicImage> {
        let (w, h, n) = (self.width, self.height, self.pixels());
        let nch = self.channels + usize::from(self.alpha.is_some());
        let plane = |k: usize| -> &[f32] {
            if k < self.channels {
                &self.color[k * n..(k + 1) * n]
            } else {
                self.alpha.as_deref().unwrap_or(&[])
            }
        };
        let too_small = || Error::Input("internal: picture buffer does not match its size".into());
        if self.color.len() != self.channels * n
            || self.alpha.as_ref().is_some_and(|a| a.len() != n)
        {
            return Err(too_small());
        }
        if self.sixteen_bit {
            let mut buf = vec![0u16; n * nch];
            for k in 0..nch {
                for (i, v) in plane(k).iter().enumerate() {
                    buf[i * nch + k] = (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
                }
            }
            Ok(match nch {
                1 => DynamicImage::ImageLuma16(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                2 => DynamicImage::ImageLumaA16(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                3 => DynamicImage::ImageRgb16(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                _ => DynamicImage::ImageRgba16(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
            })
        } else {
            let mut buf = vec![0u8; n * nch];
            for k in 0..nch {
                for (i, v) in plane(k).iter().enumerate() {
                    buf[i * nch + k] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            Ok(match nch {
                1 => DynamicImage::ImageLuma8(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                2 => DynamicImage::ImageLumaA8(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                3 => DynamicImage::ImageRgb8(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
                _ => DynamicImage::ImageRgba8(
                    image::ImageBuffer::from_raw(w, h, buf).ok_or_else(too_small)?,
                ),
            })
        }
    }

    fn from_dynamic(img: DynamicImage) -> Picture {
        use image::ColorType as C;
        let color = img.color();
        let sixteen_bit = matches!(
            color,
            C::L16 | C::La16 | C::Rgb16 | C::Rgba16 | C::Rgb32F | C::Rgba32F
        );
        let has_alpha = color.has_alpha();
        let gray = matches!(color, C::L8 | C::La8 | C::L16 | C::La16);
        let (w, h) = (img.width(), img.height());
        let n = w as usize * h as usize;
        let channels = if gray { 1 } else { 3 };
        let nch = channels + usize::from(has_alpha);
        // Going through f32 keeps 16-bit precision and normalises every sample type to [0, 1].
        let flat: Vec<f32> = match (gray, has_alpha) {
            (true, false) => img
                .into_luma16()
                .into_raw()
                .into_iter()
                .map(|v| f32::from(v) / 65535.0)
                .collect(),
            (true, true) => img
                .into_luma_alpha16()
                .into_raw()
                .into_iter()
                .map(|v| f32::from(v) / 65535.0)
                .collect(),
            (false, false) => img.into_rgb32f().into_raw(),
            (false, true) => img.into_rgba32f().into_raw(),
        };
        let mut planes = vec![0f32; n * channels];
        let mut alpha = has_alpha.then(|| vec![0f32; n]);
        for i in 0..n {
            for k in 0..channels {
                planes[k * n + i] = flat[i * nch + k].clamp(0.0, 1.0);
            }
            if let Some(a) = alpha.as_mut() {
                a[i] = flat[i * nch + channels].clamp(0.0, 1.0);
            }
        }
        Picture {
            width: w,
            height: h,
            channels,
            color: planes,
            alpha,
            sixteen_bit,
        }
    }
}

/// The orientation that undoes `o`: the quarter turns swap, flips and half turns undo
/// themselves (so do the two turn-and-flips, which are reflections).
pub fn inverse(o: Orientation) -> Orientation {
    match o {
        Orientation::Rotate90 => Orientation::Rotate270,
        Orientation::Rotate270 => Orientation::Rotate90,
        o => o,
    }
}

/// The eight EXIF orientations, for tests that try each.
#[cfg(test)]
pub(crate) const ORIENTATIONS: [Orientation; 8] = [
    Orientation::NoTransforms,
    Orientation::Rotate90,
    Orientation::Rotate180,
    Orientation::Rotate270,
    Orientation::FlipHorizontal,
    Orientation::FlipVertical,
    Orientation::Rotate90FlipH,
    Orientation::Rotate270FlipH,
];

/// Whether `o` swaps width and height.
fn transposes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn oriented_size(w: usize, h: usize, o: Orientation) -> (usize, usize) {
    if transposes(o) {
        (h, w)
    } else {
        (w, h)
    }
}

/// One row-major `w × h` plane turned by `o`, and its new `(width, height)`. Each output
/// pixel reads the stored pixel that the turn brings there.
pub fn orient_plane<T: Copy>(
    plane: &[T],
    w: usize,
    h: usize,
    o: Orientation,
) -> (Vec<T>, usize, usize) {
    debug_assert_eq!(plane.len(), w * h);
    let (ow, oh) = oriented_size(w, h, o);
    let source = |x: usize, y: usize| -> (usize, usize) {
        match o {
            Orientation::NoTransforms => (x, y),
            Orientation::FlipHorizontal => (w - 1 - x, y),
            Orientation::FlipVertical => (x, h - 1 - y),
            Orientation::Rotate180 => (w - 1 - x, h - 1 - y),
            // A clockwise quarter turn brings the stored left column to the top row.
            Orientation::Rotate90 => (y, h - 1 - x),
            Orientation::Rotate270 => (w - 1 - y, x),
            Orientation::Rotate90FlipH => (y, x),
            Orientation::Rotate270FlipH => (w - 1 - y, h - 1 - x),
        }
    };
    let mut out = Vec::with_capacity(plane.len());
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = source(x, y);
            out.push(plane[sy * w + sx]);
        }
    }
    (out, ow, oh)
}

/// A decoded input, the format it came in and the metadata worth carrying to the output.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub picture: Picture,
    pub format: Format,
    pub metadata: Metadata,
    /// The EXIF orientation the pixels were turned upright by (`NoTransforms` when the file
    /// has none). A JPEG was compressed before that turn, so its restoration needs it
    /// (`pipeline::Settings::input_orientation`).
    pub orientation: Orientation,
}

/// What a photo carries besides pixels and is written back to the output where its format
/// can hold it: the ICC colour profile (PNG, JPEG, WebP, TIFF), the EXIF block (PNG, JPEG,
/// WebP), its orientation reset to "as stored" because the pixels are already turned, and
/// the XMP packet and the comment (PNG, JPEG).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub icc: Option<Vec<u8>>,
    pub exif: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
    /// A PNG `Comment` text chunk or a JPEG `COM` segment (the first one).
    pub comment: Option<String>,
}

impl Metadata {
    /// The ICC profile if its colour space fits pictures of `channels` colour planes: a gray
    /// profile on a colourised (RGB) result would be wrong, so it is dropped.
    fn icc_for(&self, channels: usize) -> Option<&Vec<u8>> {
        let icc = self.icc.as_ref()?;
        let space = icc.get(16..20)?;
        let fits = match channels {
            1 => space == b"GRAY",
            3 => space == b"RGB ",
            _ => false,
        };
        if !fits {
            log::info!("the input's ICC profile does not fit the output's colours: not written");
        }
        fits.then_some(icc)
    }
}

/// Decodes an image from memory; `what` names it in error messages ("image", "mask").
pub fn decode(bytes: &[u8], limits: &Limits, what: &str) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(Error::Input(format!("{what} is empty (no bytes)")));
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(Error::Input(format!(
            "{what} is {} bytes, more than the limit {} (raise with --max-bytes)",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let format = sniff(bytes).ok_or_else(|| {
        Error::Input(format!(
            "{what} is not a supported image (expected PNG, JPEG, PNM P5/P6/P7, TIFF, WebP or BMP; first bytes {})",
            hex_prefix(bytes)
        ))
    })?;
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.image_format());
    // Width and height are checked below with a message that names the limit's flag; the
    // decoder only enforces the allocation bound.
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(limits.max_bytes);
    reader.limits(lim);
    let bad = |e: image::ImageError| decode_error(what, format, e);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    limits.check(
        what,
        w,
        h,
        u64::from(decoder.color_type().bytes_per_pixel()),
    )?;
    // A missing or malformed EXIF block or profile is not worth refusing the image for.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let xmp = decoder.xmp_metadata().ok().flatten();
    let mut exif = decoder.exif_metadata().ok().flatten();
    if let Some(e) = exif.as_mut() {
        // The pixels are turned upright below; an output that kept the tag would be turned
        // a second time by every viewer that honours it.
        let _ = image::metadata::Orientation::remove_from_exif_chunk(e);
    }
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(Decoded {
        picture: Picture::from_dynamic(img),
        format,
        metadata: Metadata {
            icc,
            exif,
            xmp,
            comment: read_comment(bytes, format),
        },
        orientation,
    })
}

fn decode_error(what: &str, format: Format, e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => {
            Error::Input(format!("{what}: exceeds the decoding limits ({l})"))
        }
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Input(format!("{what}: truncated {} data", format.name()))
        }
        other => Error::Input(format!("{what}: cannot decode {}: {other}", format.name())),
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Encodes `picture` as `format` in memory, without metadata.
pub fn encode(picture: &Picture, format: Format) -> Result<Vec<u8>> {
    encode_with(picture, format, &Metadata::default())
}

/// Gives `enc` what of `meta` it can carry, then writes `img` with it.
fn write_with<E: image::ImageEncoder>(
    img: &DynamicImage,
    mut enc: E,
    meta: &Metadata,
    channels: usize,
) -> image::ImageResult<()> {
    if let Some(icc) = meta.icc_for(channels) {
        if enc.set_icc_profile(icc.clone()).is_err() {
            log::info!("this output format holds no ICC profile: the input's is not written");
        }
    }
    if let Some(exif) = &meta.exif {
        if enc.set_exif_metadata(exif.clone()).is_err() {
            log::info!("this output format holds no EXIF: the input's is not written");
        }
    }
    img.write_with_encoder(enc)
}

/// Encodes `picture` as `format` in memory with the metadata the format can hold. Formats
/// that cannot hold 16-bit samples or alpha get 8-bit samples or lose alpha (with a warning
/// in the log).
pub fn encode_with(picture: &Picture, format: Format, meta: &Metadata) -> Result<Vec<u8>> {
    let mut p = std::borrow::Cow::Borrowed(picture);
    if p.sixteen_bit && !format.keeps_16_bit() {
        log::info!("{} holds 8-bit samples only: writing 8 bits", format.name());
        p.to_mut().sixteen_bit = false;
    }
    if p.alpha.is_some() && !format.keeps_alpha() {
        log::warn!(
            "{} has no alpha channel: the alpha of the input is dropped",
            format.name()
        );
        p.to_mut().alpha = None;
    }
    if matches!(format, Format::Tiff | Format::Bmp | Format::WebP)
        && p.channels == 1
        && p.alpha.is_some()
    {
        // These encoders have no gray+alpha: write RGBA with three equal channels.
        let q = p.to_mut();
        q.color = q.color.repeat(3);
        q.channels = 3;
    }
    if format == Format::WebP && p.sixteen_bit {
        p.to_mut().sixteen_bit = false;
    }
    let img = p.to_dynamic()?;
    let mut out = Cursor::new(Vec::new());
    let enc_err = |e: image::ImageError| {
        Error::Io(std::io::Error::other(format!(
            "encoding {}: {e}",
            format.name()
        )))
    };
    let channels = p.channels;
    match format {
        Format::Jpeg => write_with(
            &img,
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95),
            meta,
            channels,
        )
        .map_err(enc_err)?,
        Format::Pnm if p.sixteen_bit && p.alpha.is_none() => {
            // P5/P6 with maxval 65535 (big-endian samples), which the image crate's subtyped
            // encoder does not write.
            let magic = if p.channels == 1 { "P5" } else { "P6" };
            let buf = out.get_mut();
            buf.extend_from_slice(format!("{magic}\n{} {}\n65535\n", p.width, p.height).as_bytes());
            let n = p.pixels();
            for i in 0..n {
                for k in 0..p.channels {
                    let v = (p.color[k * n + i].clamp(0.0, 1.0) * 65535.0).round() as u16;
                    buf.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        Format::Pnm => {
            use image::codecs::pnm::{PnmEncoder, PnmSubtype, SampleEncoding};
            let enc = PnmEncoder::new(&mut out);
            let enc = match (p.channels, p.alpha.is_some()) {
                (1, false) => enc.with_subtype(PnmSubtype::Graymap(SampleEncoding::Binary)),
                (3, false) => enc.with_subtype(PnmSubtype::Pixmap(SampleEncoding::Binary)),
                // P7 (PAM) is the Netpbm form that carries alpha.
                _ => enc,
            };
            img.write_with_encoder(enc).map_err(enc_err)?
        }
        Format::WebP => write_with(
            &img,
            image::codecs::webp::WebPEncoder::new_lossless(&mut out),
            meta,
            channels,
        )
        .map_err(enc_err)?,
        Format::Png => write_with(
            &img,
            image::codecs::png::PngEncoder::new(&mut out),
            meta,
            channels,
        )
        .map_err(enc_err)?,
        Format::Tiff => write_with(
            &img,
            image::codecs::tiff::TiffEncoder::new(&mut out),
            meta,
            channels,
        )
        .map_err(enc_err)?,
        Format::Bmp => img.write_to(&mut out, ImageFormat::Bmp).map_err(enc_err)?,
    }
    let mut bytes = out.into_inner();
    if let Some(xmp) = &meta.xmp {
        add_xmp(&mut bytes, format, xmp);
    }
    if let Some(text) = &meta.comment {
        add_comment(&mut bytes, format, text);
    }
    Ok(bytes)
}

/// The longest comment carried: more is not a comment but a payload.
const MAX_COMMENT: usize = 64 << 10;

/// The first comment of a PNG (`tEXt`, or uncompressed `iTXt`, keyword `Comment`) or JPEG
/// (`COM` before the first scan). The image library reads neither. Every length is checked
/// against the bytes that are there.
fn read_comment(b: &[u8], format: Format) -> Option<String> {
    let text = match format {
        Format::Png => {
            let mut at = 8;
            loop {
                let len = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
                let kind = b.get(at + 4..at + 8)?;
                let data = b.get(at + 8..(at + 8).checked_add(len)?)?;
                match kind {
                    b"IDAT" | b"IEND" => return None,
                    b"tEXt" if data.starts_with(b"Comment\0") => {
                        // Latin-1, one byte per character.
                        break data[8..].iter().map(|&c| c as char).collect();
                    }
                    b"iTXt" if data.starts_with(b"Comment\0\0") => {
                        // Flag 0 (uncompressed), method, language and translated keyword.
                        let rest = &data[10..];
                        let lang = rest.iter().position(|&c| c == 0)?;
                        let rest = &rest[lang + 1..];
                        let trans = rest.iter().position(|&c| c == 0)?;
                        break String::from_utf8_lossy(&rest[trans + 1..]).into_owned();
                    }
                    _ => at += 12 + len,
                }
            }
        }
        Format::Jpeg => {
            let mut at = 2;
            loop {
                if *b.get(at)? != 0xFF {
                    return None;
                }
                let marker = *b.get(at + 1)?;
                match marker {
                    // Fill bytes and markers without a length.
                    0xFF => at += 1,
                    0x01 | 0xD0..=0xD8 => at += 2,
                    0xDA | 0xD9 => return None,
                    _ => {
                        let len = u16::from_be_bytes([*b.get(at + 2)?, *b.get(at + 3)?]) as usize;
                        if len < 2 {
                            return None;
                        }
                        let data = b.get(at + 4..at + 2 + len)?;
                        if marker == 0xFE {
                            break String::from_utf8_lossy(data).into_owned();
                        }
                        at += 2 + len;
                    }
                }
            }
        }
        _ => return None,
    };
    let text = text.trim_end_matches('\0').to_owned();
    (!text.is_empty() && text.len() <= MAX_COMMENT).then_some(text)
}

/// Writes `text` as a PNG `tEXt` (Latin-1) or `iTXt` (other text) `Comment` chunk before
/// the first `IDAT`, or a JPEG `COM` segment after the `JFIF` header.
fn add_comment(bytes: &mut Vec<u8>, format: Format, text: &str) {
    match format {
        Format::Png => {
            let latin1: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c).ok()).collect();
            let (kind, data) = match latin1 {
                Some(l) => (b"tEXt", [b"Comment\0".as_slice(), &l].concat()),
                None => (
                    b"iTXt",
                    [b"Comment\0\0\0\0\0".as_slice(), text.as_bytes()].concat(),
                ),
            };
            png_insert_chunk(bytes, kind, &data);
        }
        Format::Jpeg if text.len() <= 0xFFFF - 2 => {
            let mut seg = vec![0xFF, 0xFE];
            seg.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
            seg.extend_from_slice(text.as_bytes());
            jpeg_insert_segment(bytes, seg);
        }
        other => log::info!(
            "{} output holds no comment here: the input's is not written",
            other.name()
        ),
    }
}

/// Inserts a chunk before a PNG's first `IDAT` (our own encoder's output).
fn png_insert_chunk(bytes: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut at = 8;
    while at + 8 <= bytes.len() && &bytes[at + 4..at + 8] != b"IDAT" {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        at += 12 + len as usize;
    }
    if at + 8 > bytes.len() {
        return;
    }
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
    bytes.splice(at..at, chunk);
}

/// Inserts a segment after a JPEG's SOI, and after its `JFIF` APP0 when there is one.
fn jpeg_insert_segment(bytes: &mut Vec<u8>, seg: Vec<u8>) {
    let mut at = 2;
    if bytes.get(2..4) == Some(&[0xFF, 0xE0][..]) {
        at = 4 + u16::from_be_bytes([bytes[4], bytes[5]]) as usize;
    }
    bytes.splice(at..at, seg);
}

/// Puts an XMP packet into encoded bytes, where the image library writes none: a PNG
/// `iTXt` chunk with the keyword `XML:com.adobe.xmp` before the first `IDAT`, or a JPEG
/// `APP1` segment with Adobe's namespace after the `JFIF` header. Other formats, and packets
/// too large for one JPEG segment (extended XMP), go without, with a note in the log.
fn add_xmp(bytes: &mut Vec<u8>, format: Format, xmp: &[u8]) {
    match format {
        Format::Png => {
            let data = [b"XML:com.adobe.xmp\0\0\0\0\0".as_slice(), xmp].concat();
            png_insert_chunk(bytes, b"iTXt", &data);
        }
        Format::Jpeg => {
            const NS: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
            let len = 2 + NS.len() + xmp.len();
            if len > 0xFFFF {
                log::info!("the input's XMP is too large for one JPEG segment: not written");
                return;
            }
            let mut seg = vec![0xFF, 0xE1];
            seg.extend_from_slice(&(len as u16).to_be_bytes());
            seg.extend_from_slice(NS);
            seg.extend_from_slice(xmp);
            jpeg_insert_segment(bytes, seg);
        }
        other => log::info!(
            "{} output holds no XMP here: the input's is not written",
            other.name()
        ),
    }
}

/// Reads all of `r`, refusing more than `max` bytes without reading them all.
pub fn read_bounded(r: &mut dyn Read, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Error::Input(format!(
            "{what} is larger than the limit of {max} bytes (raise with --max-bytes)"
        )));
    }
    Ok(buf)
}

/// Reads a whole file with the same bound; a missing file is bad input, not an I/O failure.
pub fn read_file(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::Input(format!("cannot open {what} '{}': {e}", path.display())))?;
    read_bounded(&mut f, max, what)
}

/// Writes `bytes` to `path` atomically (`crate::atomic`): on any failure, and when
/// `cancelled` says so just before the rename, `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], cancelled: &dyn Fn() -> bool) -> Result<()> {
    write_atomic_with(path, cancelled, |f, _| f.write_all(bytes))
}

/// [`write_atomic`] for writers that make the content themselves (see
/// `atomic::write_with`); a cancel is [`Error::Interrupted`].
pub fn write_atomic_with(
    path: &Path,
    cancelled: &dyn Fn() -> bool,
    write: impl FnOnce(&mut std::fs::File, &Path) -> std::io::Result<()>,
) -> Result<()> {
    match crate::atomic::write_with(path, cancelled, write)? {
        true => Ok(()),
        false => Err(Error::Interrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(channels: usize, alpha: bool, sixteen_bit: bool) -> Picture {
        let (w, h) = (5u32, 3u32);
        let n = 15;
        let color = (0..n * channels).map(|i| (i % 17) as f32 / 16.0).collect();
        let alpha = alpha.then(|| (0..n).map(|i| 1.0 - i as f32 / 14.0).collect());
        Picture {
            width: w,
            height: h,
            channels,
            color,
            alpha,
            sixteen_bit,
        }
    }

    /// `Picture::oriented` turns pixels exactly as the image crate's `apply_orientation`
    /// (which `decode` uses), alpha included, and `inverse` turns them back.
    #[test]
    fn orientations_match_the_decoder_and_invert() {
        let p = picture(3, true, false);
        let as_image = |p: &Picture| {
            let (w, h) = (p.width, p.height);
            let n = p.pixels();
            image::Rgba32FImage::from_fn(w, h, |x, y| {
                let i = (y * w + x) as usize;
                image::Rgba([
                    p.color[i],
                    p.color[n + i],
                    p.color[2 * n + i],
                    p.alpha.as_ref().unwrap()[i],
                ])
            })
        };
        for o in ORIENTATIONS {
            let mut want = DynamicImage::ImageRgba32F(as_image(&p));
            want.apply_orientation(o);
            let got = p.oriented(o);
            assert_eq!(DynamicImage::ImageRgba32F(as_image(&got)), want, "{o:?}");
            assert_eq!(got.oriented(inverse(o)), p, "{o:?}");
        }
    }

    #[test]
    fn lossless_formats_round_trip() {
        for format in [
            Format::Png,
            Format::Pnm,
            Format::Tiff,
            Format::WebP,
            Format::Bmp,
        ] {
            for (ch, a, b16) in [
                (1, false, false),
                (3, false, false),
                (3, true, false),
                (1, true, false),
                (3, false, true),
            ] {
                let p = picture(ch, a, b16);
                let bytes = encode(&p, format).unwrap();
                assert_eq!(sniff(&bytes), Some(format));
                let d = decode(&bytes, &Limits::default(), "image").unwrap();
                let q = d.picture;
                assert_eq!((q.width, q.height), (5, 3));
                let keeps16 = b16 && format.keeps_16_bit();
                assert_eq!(q.sixteen_bit, keeps16, "{format:?} {ch} {a} {b16}");
                // WebP and BMP store gray as RGB.
                if matches!(format, Format::Png | Format::Pnm) || (format == Format::Tiff && !a) {
                    assert_eq!(q.channels, ch, "{format:?}");
                }
                assert_eq!(q.alpha.is_some(), a, "{format:?} {ch} {a}");
                let tol = if keeps16 { 1e-4 } else { 0.5 / 255.0 + 1e-6 };
                let n = 15;
                for i in 0..n {
                    for k in 0..q.channels {
                        let want = p.color[(k.min(ch - 1)) * n + i];
                        assert!(
                            (q.color[k * n + i] - want).abs() <= tol,
                            "{format:?} {i} {k}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn limits_refuse_before_decoding() {
        let p = picture(3, false, false);
        let bytes = encode(&p, Format::Png).unwrap();
        let small = Limits {
            max_width: 4,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&bytes, &small, "image"),
            Err(Error::Input(_))
        ));
        let few = Limits {
            max_pixels: 14,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&bytes, &few, "image"),
            Err(Error::Input(_))
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2], &Limits::default(), "image"),
            Err(Error::Input(_))
        ));
        assert!(matches!(
            decode(b"hello", &Limits::default(), "image"),
            Err(Error::Input(_))
        ));
        assert!(matches!(
            decode(b"", &Limits::default(), "image"),
            Err(Error::Input(_))
        ));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn atomic_write_leaves_nothing_on_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, b"old").unwrap();
        assert!(matches!(
            write_atomic(&path, b"new", &|| true),
            Err(Error::Interrupted)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic(&path, b"new", &|| false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
