//! What the JPEG forward model needs from a JPEG file: its quantisation tables (DQT) and
//! its components' sampling factors (SOF), read by walking the marker structure of the
//! whole file, entropy-coded data included, so that a truncated or malformed file is
//! refused here rather than restored against tables that may not be the ones its pixels
//! were made with.
//!
//! Accepted: 8-bit Huffman-coded files, baseline (SOF0), extended sequential (SOF1) and
//! progressive (SOF2), with one (gray) or three (YCbCr) components whose chroma is
//! subsampled by 1 or 2 on each axis. Refused with an error that says why: 12- and 16-bit
//! precision, lossless (SOF3) and hierarchical (SOF5–7) files, arithmetic coding (SOF9 and
//! up), CMYK and RGB-coded files, sampling layouts other than the common ones, and any
//! length, count or table index that does not fit.

/// One colour component of a JPEG file as the encoder made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Horizontal and vertical sampling factors (1–4).
    pub h: u8,
    pub v: u8,
    /// The quantisation table, 64 steps in natural (row-major) order, each ≥ 1.
    pub quant: [u16; 64],
}

/// The tables of one file: 1 component (gray) or 3 (Y, Cb, Cr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    pub components: Vec<Component>,
    pub progressive: bool,
    pub width: u32,
    pub height: u32,
}

impl Tables {
    /// The chroma subsampling as the usual name (`4:4:4`, `4:2:2`, `4:2:0`, `4:4:0`), or
    /// `gray`.
    pub fn sampling_name(&self) -> &'static str {
        match self.components.as_slice() {
            [_] => "gray",
            [y, c, ..] => match (y.h / c.h, y.v / c.v) {
                (1, 1) => "4:4:4",
                (2, 1) => "4:2:2",
                (2, 2) => "4:2:0",
                _ => "4:4:0",
            },
            [] => "none",
        }
    }
}

/// Why a file's tables cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JPEG: {0}")]
pub struct MarkerError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, MarkerError> {
    Err(MarkerError(msg.into()))
}

/// The zig-zag scan: entry `k` of a DQT segment is the coefficient at natural index
/// `ZIGZAG[k]`.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A frame header component before its table is resolved.
struct FrameComponent {
    id: u8,
    h: u8,
    v: u8,
    table: usize,
}

/// Reads the tables and sampling factors of the JPEG file `bytes`.
pub fn read_tables(bytes: &[u8]) -> Result<Tables, MarkerError> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return bad("not a JPEG file (no start-of-image marker)");
    }
    let mut tables: [Option<[u16; 64]>; 4] = [None; 4];
    // Tables as they stood when each component's first scan began (the ones its
    // coefficients were quantised with); a later DQT may redefine a slot for others.
    let mut latched: Vec<Option<[u16; 64]>> = Vec::new();
    let mut frame: Option<(Vec<FrameComponent>, bool, u32, u32)> = None;
    let mut adobe_transform: Option<u8> = None;
    let mut scans = 0usize;
    let mut pos = 2usize;
    loop {
        // A marker: 0xFF, any number of 0xFF fill bytes, then the code.
        if pos >= bytes.len() {
            return bad("the file is truncated (no end-of-image marker)");
        }
        if bytes[pos] != 0xFF {
            return bad(format!("expected a marker at byte {pos}"));
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&code) = bytes.get(pos) else {
            return bad("the file is truncated (no end-of-image marker)");
        };
        pos += 1;
        match code {
            0xD9 => break,
            0xD8 => return bad("a second start-of-image marker"),
            0x01 | 0xD0..=0xD7 => {
                return bad(format!("marker {code:02X} outside entropy-coded data"))
            }
            _ => {}
        }
        let Some(len) = bytes.get(pos..pos + 2) else {
            return bad("the file is truncated inside a marker");
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return bad(format!("marker {code:02X} has length {len}"));
        }
        let Some(seg) = bytes.get(pos + 2..pos + len) else {
            return bad(format!("the file is truncated inside marker {code:02X}"));
        };
        pos += len;
        match code {
            0xDB => read_dqt(seg, &mut tables)?,
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return bad("more than one frame header");
                }
                frame = Some(read_sof(seg, code == 0xC2)?);
            }
            0xC3 => return bad("lossless JPEG is not supported"),
            0xC5..=0xC7 => return bad("hierarchical (differential) JPEG is not supported"),
            0xC9..=0xCB | 0xCD..=0xCF => {
                return bad("arithmetic-coded JPEG is not supported (only Huffman coding)")
            }
            0xC8 => return bad("reserved frame type (JPG extension) is not supported"),
            0xEE if seg.len() >= 12 && &seg[..5] == b"Adobe" => adobe_transform = Some(seg[11]),
            0xDA => {
                let Some((comps, ..)) = frame.as_ref() else {
                    return bad("a scan before the frame header");
                };
                if latched.is_empty() {
                    latched = vec![None; comps.len()];
                }
                read_sos(seg, comps, &tables, &mut latched)?;
                scans += 1;
                pos = skip_entropy_data(bytes, pos)?;
            }
            _ => {}
        }
    }
    let Some((comps, progressive, width, height)) = frame else {
        return bad("no frame header (SOF0, SOF1 or SOF2)");
    };
    if scans == 0 {
        return bad("no scan: the file holds no image data");
    }
    if comps.len() == 3 {
        let rgb_ids = comps.iter().map(|c| c.id).eq(*b"RGB");
        if adobe_transform == Some(0) || (rgb_ids && adobe_transform.is_none()) {
            return bad("RGB-coded JPEG (no YCbCr transform) is not supported");
        }
    }
    let mut components = Vec::with_capacity(comps.len());
    for (k, c) in comps.iter().enumerate() {
        let quant = latched
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| MarkerError(format!("component {} is in no scan", c.id)))?;
        components.push(Component {
            h: c.h,
            v: c.v,
            quant,
        });
    }
    check_sampling(&components)?;
    Ok(Tables {
        components,
        progressive,
        width,
        height,
    })
}

fn read_dqt(mut seg: &[u8], tables: &mut [Option<[u16; 64]>; 4]) -> Result<(), MarkerError> {
    if seg.is_empty() {
        return bad("empty quantisation table segment");
    }
    while !seg.is_empty() {
        let (pq, tq) = (seg[0] >> 4, usize::from(seg[0] & 15));
        if tq > 3 {
            return bad(format!("quantisation table index {tq} (at most 3)"));
        }
        let size = match pq {
            0 => 1,
            1 => 2,
            _ => return bad(format!("quantisation table precision {pq}")),
        };
        let Some(body) = seg.get(1..1 + 64 * size) else {
            return bad("quantisation table segment is too short");
        };
        let mut q = [0u16; 64];
        for (k, &nat) in ZIGZAG.iter().enumerate() {
            q[nat] = if size == 1 {
                u16::from(body[k])
            } else {
                u16::from_be_bytes([body[2 * k], body[2 * k + 1]])
            };
        }
        if q.contains(&0) {
            return bad(format!("quantisation table {tq} has a zero step"));
        }
        tables[tq] = Some(q);
        seg = &seg[1 + 64 * size..];
    }
    Ok(())
}

type Frame = (Vec<FrameComponent>, bool, u32, u32);

fn read_sof(seg: &[u8], progressive: bool) -> Result<Frame, MarkerError> {
    if seg.len() < 6 {
        return bad("frame header is too short");
    }
    let precision = seg[0];
    if precision != 8 {
        return bad(format!(
            "{precision}-bit samples are not supported (only 8-bit)"
        ));
    }
    let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
    let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
    if height == 0 || width == 0 {
        return bad(format!(
            "image size {width}×{height} (a height given later by DNL is not supported)"
        ));
    }
    let n = usize::from(seg[5]);
    if seg.len() != 6 + 3 * n {
        return bad(format!(
            "frame header of {} bytes for {n} components",
            seg.len()
        ));
    }
    if n != 1 && n != 3 {
        return bad(format!(
            "{n} components (only gray and YCbCr colour are supported)"
        ));
    }
    let mut comps = Vec::with_capacity(n);
    for c in seg[6..].chunks_exact(3) {
        let (h, v, table) = (c[1] >> 4, c[1] & 15, usize::from(c[2]));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return bad(format!("sampling factors {h}×{v}"));
        }
        if table > 3 {
            return bad(format!("quantisation table index {table} (at most 3)"));
        }
        if comps.iter().any(|o: &FrameComponent| o.id == c[0]) {
            return bad(format!("component id {} appears twice", c[0]));
        }
        comps.push(FrameComponent {
            id: c[0],
            h,
            v,
            table,
        });
    }
    Ok((comps, progressive, width, height))
}

fn read_sos(
    seg: &[u8],
    comps: &[FrameComponent],
    tables: &[Option<[u16; 64]>; 4],
    latched: &mut [Option<[u16; 64]>],
) -> Result<(), MarkerError> {
    let Some(&n) = seg.first() else {
        return bad("empty scan header");
    };
    let n = usize::from(n);
    if n == 0 || n > comps.len() || seg.len() != 4 + 2 * n {
        return bad(format!(
            "scan header of {} bytes for {n} components",
            seg.len()
        ));
    }
    for s in seg[1..1 + 2 * n].chunks_exact(2) {
        let Some(k) = comps.iter().position(|c| c.id == s[0]) else {
            return bad(format!("scan names component {} not in the frame", s[0]));
        };
        if latched[k].is_none() {
            let table = comps[k].table;
            latched[k] = Some(tables[table].ok_or_else(|| {
                MarkerError(format!(
                    "component {} uses quantisation table {table}, which is not defined",
                    s[0]
                ))
            })?);
        }
    }
    Ok(())
}

/// The position of the first marker after the entropy-coded data starting at `pos`:
/// `FF 00` is a stuffed data byte and `FF D0`–`FF D7` are restart markers inside it.
fn skip_entropy_data(bytes: &[u8], mut pos: usize) -> Result<usize, MarkerError> {
    loop {
        let Some(off) = bytes
            .get(pos..)
            .and_then(|b| b.iter().position(|&b| b == 0xFF))
        else {
            return bad("the file is truncated inside the image data");
        };
        pos += off;
        // Fill bytes may repeat 0xFF before a marker code.
        let mut next = pos + 1;
        while bytes.get(next) == Some(&0xFF) {
            next += 1;
        }
        match bytes.get(next) {
            None => return bad("the file is truncated inside the image data"),
            Some(0x00) | Some(0xD0..=0xD7) => pos = next + 1,
            Some(_) => return Ok(next - 1),
        }
    }
}

/// Only layouts whose chroma is the luma subsampled by 1 or 2 on each axis (the same for
/// Cb and Cr) are modelled; those cover what cameras, browsers and libjpeg write.
fn check_sampling(c: &[Component]) -> Result<(), MarkerError> {
    let Some(y) = c.first() else {
        return bad("no component");
    };
    for ch in &c[1..] {
        let fits = |big: u8, small: u8| big.is_multiple_of(small) && matches!(big / small, 1 | 2);
        if !fits(y.h, ch.h) || !fits(y.v, ch.v) || (ch.h, ch.v) != (c[1].h, c[1].v) {
            let list: Vec<String> = c.iter().map(|k| format!("{}×{}", k.h, k.v)).collect();
            return bad(format!(
                "sampling factors {} are not supported (4:4:4, 4:2:2, 4:2:0 and 4:4:0 are)",
                list.join(", ")
            ));
        }
    }
    Ok(())
}

/// The IJG (libjpeg) example tables of the JPEG standard, Annex K, in natural order:
/// luminance and chrominance.
pub const STD_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
pub const STD_CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// A standard table scaled to `quality` as libjpeg's `jpeg_set_quality(q, TRUE)` does:
/// scale `5000/q` % below 50, `200 − 2q` % from 50, rounded, each step clamped to 1–255.
pub fn scaled_table(base: &[u16; 64], quality: u32) -> [u16; 64] {
    let q = quality.clamp(1, 100);
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let mut out = [0u16; 64];
    for (o, &b) in out.iter_mut().zip(base) {
        *o = ((u32::from(b) * scale + 50) / 100).clamp(1, 255) as u16;
    }
    out
}

/// The tables a libjpeg encoder uses at `quality` with luma sampling `h×v` (2×2 is 4:2:0,
/// 2×1 is 4:2:2, 1×1 is 4:4:4) for a 3-component image of `width × height`.
pub fn standard_tables(quality: u32, h: u8, v: u8, width: u32, height: u32) -> Tables {
    let luma = scaled_table(&STD_LUMA, quality);
    let chroma = scaled_table(&STD_CHROMA, quality);
    let c = |h, v, quant| Component { h, v, quant };
    Tables {
        components: vec![c(h, v, luma), c(1, 1, chroma), c(1, 1, chroma)],
        progressive: false,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal structurally valid JPEG: SOI, DQT, SOFn, SOS with a few data bytes, EOI.
    pub(crate) fn handmade(sof: u8, precision: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
        b.extend((1..=64).map(|k| k as u8));
        b.extend([0xFF, sof, 0, 11, precision, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        b.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
        b.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        b.extend([0xFF, 0xD9]);
        b
    }

    #[test]
    fn handmade_baseline_reads_and_unzigzags() {
        let t = read_tables(&handmade(0xC0, 8)).unwrap();
        assert_eq!(t.components.len(), 1);
        assert_eq!((t.width, t.height), (8, 8));
        let q = t.components[0].quant;
        // Zig-zag entry k holds k + 1: natural index 8 (row 1, col 0) is entry 2.
        assert_eq!((q[0], q[1], q[8], q[63]), (1, 2, 3, 64));
        assert_eq!(t.sampling_name(), "gray");
    }

    #[test]
    fn refusals_say_why() {
        let msg = |b: &[u8]| read_tables(b).unwrap_err().0;
        assert!(msg(&handmade(0xC0, 12)).contains("12-bit"));
        assert!(msg(&handmade(0xC9, 8)).contains("arithmetic"));
        assert!(msg(&handmade(0xC3, 8)).contains("lossless"));
        let full = handmade(0xC2, 8);
        assert!(read_tables(&full).unwrap().progressive);
        for cut in [5, 10, 60, 75, full.len() - 4, full.len() - 1] {
            assert!(msg(&full[..cut]).contains("truncated"), "cut {cut}");
        }
        let mut zero = full.clone();
        zero[7] = 0;
        assert!(msg(&zero).contains("zero step"));
        assert!(msg(b"\x89PNG\r\n\x1a\n").contains("not a JPEG"));
    }

    #[test]
    fn quality_scaling_is_libjpegs() {
        // libjpeg at quality 50 uses the tables as printed; at 75, half; at 10, ×5 clamped.
        assert_eq!(scaled_table(&STD_LUMA, 50), STD_LUMA);
        let q75 = scaled_table(&STD_LUMA, 75);
        assert_eq!((q75[0], q75[1], q75[63]), (8, 6, 50));
        let q10 = scaled_table(&STD_CHROMA, 10);
        assert_eq!((q10[0], q10[63]), (85, 255));
        assert!(scaled_table(&STD_LUMA, 100).iter().all(|&v| v == 1));
    }
}
