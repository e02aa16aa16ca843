//! JPEG compression as a measurement operator: `y = J(A x)` with `J` a JPEG round trip
//! (encode with a file's tables, decode) and `A` an optional linear operator before it
//! (identity, SR, blur, inpainting). `J` is not linear: its forward is the exact round
//! trip, and gradients go through a surrogate (docs/operators.md, "JPEG").
//!
//! The round trip, on 0..255 levels `v = 127.5 (x + 1)` of the [-1, 1] image, as libjpeg
//! (turbo) does it with its float DCT and "fancy" upsampling:
//! 1. RGB rounded to 8 bits → YCbCr (JFIF, BT.601 full range, chroma offset 128), rounded;
//!    a one-component file codes the luma alone;
//! 2. the image is padded to whole MCUs by repeating its last row and column, and chroma is
//!    averaged over 2×1 / 2×2 cells (libjpeg's alternating rounding bias);
//! 3. level shift −128, orthonormal 8×8 DCT-II per block, division by the table, rounding
//!    (half up), multiplication by the table, inverse DCT, +128, rounding, clamp to 0..255;
//! 4. chroma back to full size by libjpeg's triangular filter (weights ¾, ¼ per axis with
//!    its rounding biases), YCbCr → RGB with libjpeg's fixed-point constants, clamp.
//!
//! `L`, the same chain with every rounding and clamp removed, is linear: colour transform,
//! chroma down- and up-sampling, inverse colour transform (the DCT and the table cancel).
//! It is the Jacobian of the straight-through surrogate used for gradients.

use super::{classical, Host, Operator, OperatorError};
use crate::jpeg::Tables;
use tch::{Kind, Tensor};

/// `Codec::deblock`: projected gradient steps on `‖∇x‖²` (τ below 2/8, the stability
/// bound of the 4-neighbour Laplacian) and how many. Chosen on the 8 validation photos
/// of the training pack (256² crops, standard tables, 4:2:0; mean PSNR in dB, decoded
/// 28.14 at Q10 and 30.73 at Q20):
///
/// | τ × steps | 0.2 × 3 | 0.2 × 5 | 0.1 × 10 | 0.2 × 10 | 0.2 × 30 | 0.2 × 100 |
/// |---|---|---|---|---|---|---|
/// | Q10 | 28.71 | **28.73** | 28.73 | 28.73 | 28.66 | 28.55 |
/// | Q20 | 31.11 | **31.08** | 31.08 | 31.01 | 30.87 | 30.75 |
///
/// The least-energy point of the quantisation set is flatter than photos are; a few
/// steps from the decoded image remove the block edges and stop before the texture goes.
const DEBLOCK_STEP: f64 = 0.2;
const DEBLOCK_ITERS: usize = 5;

/// The first noise level of a diffusion solver on a JPEG, as a multiple of
/// `Codec::error_std` (docs/benchmarks.md, "JPEG artefacts on Kodak24 and CBSD68").
const START_SIGMA_FACTOR: f64 = 0.8;

/// How gradients go through the rounding of the DCT coefficients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surrogate {
    /// Value of the exact round trip, Jacobian of `L`: as if the rounding were the
    /// identity (Bengio et al.'s straight-through estimator). The default.
    StraightThrough,
    /// The smooth rounding `r(z) = z − α sin(2πz)/(2π)` in place of each rounding of a DCT
    /// coefficient, with the other roundings and the clamps removed; value and gradient
    /// are both the surrogate's.
    Smooth { alpha: f64 },
}

/// What a chain computes: the exact round trip, or one of the relaxations.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Exact,
    Linear,
    Smooth(f64),
}

/// Which forward DCT the encoder used (the decoder side is modelled by the exact inverse
/// DCT, which libjpeg's float and accurate-integer methods match to a level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fdct {
    /// The exact DCT-II, quantised with rounding half away from zero: libjpeg's default
    /// accurate integer method (`JDCT_ISLOW`) up to its own rounding, and encoders that
    /// compute in floating point.
    #[default]
    Accurate,
    /// libjpeg's fast integer method (`JDCT_IFAST`, Arai–Agui–Nakajima with 8-bit
    /// constants), emulated operation by operation: what ImageMagick 6 encodes with below
    /// quality 90 (tests/jpeg.rs shows the difference).
    Fast,
}

/// One component as the codec uses it: subsampling divisors and the table as an 8×8 plane.
#[derive(Debug)]
struct Plane {
    /// Luma sampling over this component's: 1 or 2 on each axis.
    fh: i64,
    fv: i64,
    quant: Host,
}

/// The JPEG round trip for one table set and image size.
#[derive(Debug)]
pub struct Codec {
    planes: Vec<Plane>,
    /// MCU size in pixels.
    mcu_h: i64,
    mcu_w: i64,
    /// The orthonormal 8×8 DCT-II matrix `C`: coefficients `C B Cᵀ` of a block `B`.
    dct: Host,
    fdct: Fdct,
}

impl Codec {
    pub fn new(tables: &Tables) -> Result<Self, OperatorError> {
        let comps = &tables.components;
        if comps.len() != 1 && comps.len() != 3 {
            return Err(OperatorError::Invalid(format!(
                "JPEG with {} components (1 or 3 are modelled)",
                comps.len()
            )));
        }
        let (hmax, vmax) = (comps[0].h, comps[0].v);
        let mut planes = Vec::new();
        for c in comps {
            let (fh, fv) = (hmax / c.h.max(1), vmax / c.v.max(1));
            if !matches!(fh, 1 | 2)
                || !matches!(fv, 1 | 2)
                || !hmax.is_multiple_of(c.h)
                || !vmax.is_multiple_of(c.v)
            {
                return Err(OperatorError::Invalid(format!(
                    "JPEG sampling {}×{} against luma {hmax}×{vmax} is not modelled",
                    c.h, c.v
                )));
            }
            if c.quant.contains(&0) {
                return Err(OperatorError::Invalid("JPEG table with a zero step".into()));
            }
            let q: Vec<f64> = c.quant.iter().map(|&v| f64::from(v)).collect();
            planes.push(Plane {
                fh: i64::from(fh),
                fv: i64::from(fv),
                quant: Host::new(q, &[8, 8]),
            });
        }
        let mut c = vec![0.0; 64];
        for (u, row) in c.chunks_mut(8).enumerate() {
            let scale = if u == 0 { (1.0f64 / 8.0).sqrt() } else { 0.5 };
            for (k, v) in row.iter_mut().enumerate() {
                *v = scale * ((2 * k + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos();
            }
        }
        Ok(Codec {
            planes,
            mcu_h: 8 * i64::from(vmax),
            mcu_w: 8 * i64::from(hmax),
            dct: Host::new(c, &[8, 8]),
            fdct: Fdct::default(),
        })
    }

    /// The same codec with another forward DCT in its exact round trip.
    pub fn with_fdct(mut self, fdct: Fdct) -> Self {
        self.fdct = fdct;
        self
    }

    /// The MCU size `(height, width)` in pixels: a crop of a JPEG image keeps its block
    /// grid only at offsets that are multiples of it.
    pub fn mcu(&self) -> (i64, i64) {
        (self.mcu_h, self.mcu_w)
    }

    /// A typical standard deviation of the compression error, on the [-1, 1] scale: the
    /// error of uniform rounding, `q/√12`, RMS over the first 15 luma coefficients in
    /// zig-zag order. Natural images fill those above their step; the finer ones mostly
    /// round to zero and lose less than `q/√12`, so they are left out. A heuristic, not a
    /// bound: it sets the data term's weight, as σ_y does for other operators (on the
    /// fixture of tests/jpeg.rs it is 0.19 at quality 10 and 0.08 at 30 where the actual
    /// RMS error is about 0.16 and 0.12).
    pub fn error_std(&self) -> f64 {
        let q = &self.planes[0].quant.data;
        let ms = crate::jpeg::ZIGZAG[..15]
            .iter()
            .map(|&k| q[k] * q[k] / 12.0)
            .sum::<f64>()
            / 15.0;
        ms.sqrt() / 127.5
    }

    /// Classical deblocking by projections onto convex sets (Zakhor 1992; Yang,
    /// Galatsanos and Katsaggelos 1993): a few projected gradient steps from the decoded
    /// `y` towards the image of least gradient energy `‖∇x‖²` among those that code to the
    /// same file. It smooths block edges and ringing only as far as the file allows.
    pub fn deblock(&self, y: &Tensor) -> Tensor {
        let mut x = y.shallow_clone();
        for _ in 0..DEBLOCK_ITERS {
            let step = classical::gradient_normal(&x) * DEBLOCK_STEP;
            x = self.project(&(&x - step), y);
        }
        x
    }

    /// Channels of the decoded image: 1 for a gray file, 3 for colour.
    pub fn channels(&self) -> i64 {
        if self.planes.len() == 1 {
            1
        } else {
            3
        }
    }

    /// The exact round trip of `(N, 3, H, W)` in [-1, 1].
    pub fn round_trip(&self, x: &Tensor) -> Tensor {
        self.run(x, Mode::Exact)
    }

    /// `L x`: the round trip without its roundings and clamps (linear in `x`).
    pub fn linear(&self, x: &Tensor) -> Tensor {
        self.run(x, Mode::Linear)
    }

    /// The round trip with smooth rounding of the coefficients (`Surrogate::Smooth`).
    pub fn smooth(&self, x: &Tensor, alpha: f64) -> Tensor {
        self.run(x, Mode::Smooth(alpha))
    }

    fn run(&self, x: &Tensor, mode: Mode) -> Tensor {
        let exact = mode == Mode::Exact;
        // Rounding as libjpeg's integer steps do it: ⌊t + bias⌋; a relaxation keeps `t`.
        let round = |t: Tensor, bias: f64| if exact { (t + bias).floor() } else { t };
        let clamp = |t: Tensor| if exact { t.clamp(0.0, 255.0) } else { t };
        let size = x.size();
        let (h, w) = (size[2], size[3]);
        let mut v = (x + 1.0) * 127.5;
        if exact {
            // The encoder reads an 8-bit image.
            v = v.clamp(0.0, 255.0).round();
        }
        let v = self.pad(&v);
        let chan = |k: i64| v.narrow(1, k, 1);
        let (r, g, b) = (chan(0), chan(1), chan(2));
        let luma = round(&r * 0.299 + &g * 0.587 + &b * 0.114, 0.5);
        if self.planes.len() == 1 {
            let y = self.code_plane(&luma, &self.planes[0], mode);
            return clamp(y).narrow(2, 0, h).narrow(3, 0, w) / 127.5 - 1.0;
        }
        // libjpeg adds its half minus one unit of 2⁻¹⁶ to the chroma sums.
        let cb = round(
            &r * -0.168_735_892 + &g * -0.331_264_108 + &b * 0.5 + 128.0,
            0.5 - 1.0 / 65536.0,
        );
        let cr = round(
            &r * 0.5 + &g * -0.418_687_589 + &b * -0.081_312_411 + 128.0,
            0.5 - 1.0 / 65536.0,
        );
        let planes: Vec<Tensor> = [luma, cb, cr]
            .iter()
            .zip(&self.planes)
            .map(|(t, p)| {
                let d = self.downsample(t, p, exact);
                let d = self.code_plane(&d, p, mode);
                self.upsample(&d, p, h, w, exact)
            })
            .collect();
        let (y, cb, cr) = (&planes[0], &planes[1] - 128.0, &planes[2] - 128.0);
        // ycc_rgb's tables: each term rounded alone, except green's two, rounded together.
        let r = y + round(&cr * 1.402, 0.5);
        let g = y + round(&cb * -0.34414 + &cr * -0.71414, 0.5);
        let b = y + round(&cb * 1.772, 0.5);
        clamp(Tensor::cat(&[r, g, b], 1)) / 127.5 - 1.0
    }

    /// `t` padded to whole MCUs by repeating its last row and column, as the encoder does.
    fn pad(&self, t: &Tensor) -> Tensor {
        let size = t.size();
        let (h, w) = (size[2], size[3]);
        let (ph, pw) = (
            (self.mcu_h - h % self.mcu_h) % self.mcu_h,
            (self.mcu_w - w % self.mcu_w) % self.mcu_w,
        );
        if ph + pw > 0 {
            t.replication_pad2d([0, pw, 0, ph])
        } else {
            t.shallow_clone()
        }
    }

    /// The quantisation constraint set of POCS deblocking (Zakhor 1992; Yang, Galatsanos
    /// and Katsaggelos 1993): the image nearest `x` whose DCT coefficients lie in the
    /// quantisation intervals `[(k − ½) q, (k + ½) q]` of those `k q` that decoded to `y`,
    /// which is every image that the encoder could have turned into the same file (up to
    /// the 8-bit roundings). Both are `(N, C, H, W)` in [-1, 1].
    ///
    /// "Nearest" is per plane, in the codec's own coordinates: the DCT is orthonormal, so
    /// clamping coefficients is the Euclidean projection of a plane's samples; a chroma
    /// plane is coded at reduced size, and since its average pooling `A` has `A Aᵀ = I/n`,
    /// the nearest full-size correction of a coded-sample change `d` repeats `d` over its
    /// cell. The colour transform is not orthogonal, so the result is the projection in
    /// the YCbCr metric, not in RGB's; an `x` already consistent with `y` is left as it is.
    ///
    /// The levels `k` are read back from `y`'s pixels: exact for luma and for unsubsampled
    /// chroma up to the decoder's 8-bit rounding (a small fraction of any step above 2);
    /// subsampled chroma is first brought back to its coded size by inverting the
    /// decoder's triangular upsampling (a few Landweber steps). Blocks in the MCU padding
    /// of an image whose size is not whole MCUs see `y` repeated there, which the encoder
    /// did not code; their levels may be off by one.
    pub fn project(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let size = x.size();
        let (h, w) = (size[2], size[3]);
        let levels = |t: &Tensor| self.pad(&((t + 1.0) * 127.5));
        let (vx, vy) = (levels(x), levels(y));
        let xs = ycc(&vx);
        let ys = if y.size()[1] == 1 { vec![vy] } else { ycc(&vy) };
        let mut deltas = Vec::with_capacity(3);
        for (k, p) in self.planes.iter().enumerate() {
            let coded_x = self.downsample(&xs[k], p, false);
            let coded_y = self.coded_size(&ys[k], p, h, w);
            let d = self.move_into_intervals(&coded_x, &coded_y, p);
            deltas.push(if p.fh * p.fv == 1 {
                d
            } else {
                let s = d.size();
                d.upsample_nearest2d([s[2] * p.fv, s[3] * p.fh], None, None)
            });
        }
        // A gray file codes luma alone: its change goes to R, G and B alike (colour kept).
        while deltas.len() < 3 {
            deltas.push(deltas[0].zeros_like());
        }
        let rgb: Vec<Tensor> = YCC_TO_RGB
            .iter()
            .map(|row| &deltas[0] * row[0] + &deltas[1] * row[1] + &deltas[2] * row[2])
            .collect();
        let delta = Tensor::cat(&rgb, 1).narrow(2, 0, h).narrow(3, 0, w);
        x + delta / 127.5
    }

    /// A decoded plane (padded, levels) back at its coded size: the decoder's upsampling
    /// `U` inverted by Landweber steps `z ← z + A(y − U z)` from `z = A y`, with `A` the
    /// average over a cell. `A U` is the separable filter [⅛, ¾, ⅛] per subsampled axis,
    /// whose response is at least ½ per axis, so the error shrinks by ¾ or better a step.
    fn coded_size(&self, t: &Tensor, p: &Plane, h: i64, w: i64) -> Tensor {
        if p.fh * p.fv == 1 {
            return t.shallow_clone();
        }
        let target = t.narrow(2, 0, h).narrow(3, 0, w);
        let mut z = self.downsample(t, p, false);
        for _ in 0..12 {
            let r = &target - self.upsample(&z, p, h, w, false);
            z += self.downsample(&self.pad(&r), p, false);
        }
        z
    }

    /// The change of the samples `coded_x` that moves each of its DCT coefficients into
    /// the quantisation interval of `coded_y`'s (same plane, same size, whole blocks).
    fn move_into_intervals(&self, coded_x: &Tensor, coded_y: &Tensor, p: &Plane) -> Tensor {
        let c = self.dct.like(coded_x);
        let q = p.quant.like(coded_x);
        let coef = |t: &Tensor| c.matmul(&to_blocks(&(t - 128.0))).matmul(&c.tr()) / &q;
        let (zx, zy) = (coef(coded_x), coef(coded_y));
        let k = zy.round();
        // A coefficient clamped onto an interval's edge would round either way when the
        // result is coded again; stay a twentieth of a step inside.
        let moved = zx.maximum(&(&k - 0.45)).minimum(&(k + 0.45)) - &zx;
        let back = c.tr().matmul(&(moved * &q)).matmul(&c);
        from_blocks(&back, coded_x.size())
    }

    /// Chroma averaged over `fh × fv` cells: libjpeg's `h2v1` / `h2v2` rounding biases
    /// alternate by output column (0, 1 and 1, 2), its generic one adds half the count.
    fn downsample(&self, t: &Tensor, p: &Plane, exact: bool) -> Tensor {
        if p.fh == 1 && p.fv == 1 {
            return t.shallow_clone();
        }
        let n = (p.fh * p.fv) as f64;
        let sum = t.avg_pool2d([p.fv, p.fh], [p.fv, p.fh], [0, 0], false, true, None) * n;
        if !exact {
            return sum / n;
        }
        let w = sum.size()[3];
        let odd = Tensor::arange(w, (Kind::Float, t.device()))
            .remainder(2.0)
            .to_kind(t.kind())
            .view([1, 1, 1, w]);
        let bias = match (p.fh, p.fv) {
            (2, 2) => odd + 1.0,
            (2, 1) => odd,
            _ => Tensor::from(n / 2.0)
                .to_kind(t.kind())
                .to_device(t.device()),
        };
        ((sum + bias) / n).floor()
    }

    /// One plane through DCT, quantisation and back (the plane is whole blocks).
    fn code_plane(&self, t: &Tensor, p: &Plane, mode: Mode) -> Tensor {
        if mode == Mode::Linear {
            return t.shallow_clone();
        }
        let c = self.dct.like(t);
        let q = p.quant.like(t);
        let blocks = to_blocks(&(t - 128.0));
        let levels = match mode {
            Mode::Exact => match self.fdct {
                // libjpeg's integer quantiser rounds half away from zero.
                Fdct::Accurate => {
                    let z = c.matmul(&blocks).matmul(&c.tr()) / &q;
                    (z.abs() + 0.5).floor() * z.sign()
                }
                Fdct::Fast => fast_fdct_quantise(&blocks, &p.quant.data),
            },
            Mode::Smooth(alpha) => {
                let z = c.matmul(&blocks).matmul(&c.tr()) / &q;
                let tau = 2.0 * std::f64::consts::PI;
                &z - (&z * tau).sin() * (alpha / tau)
            }
            Mode::Linear => unreachable!("returned above"),
        };
        let back = from_blocks(
            &(c.tr().matmul(&(levels * &q)).matmul(&c) + 128.0),
            t.size(),
        );
        if mode == Mode::Exact {
            (back + 0.5).floor().clamp(0.0, 255.0)
        } else {
            back
        }
    }

    /// Chroma back to full size, `h × w`, by libjpeg's triangular ("fancy") filter: each
    /// output sample is ¾ of its nearest input sample and ¼ of the next nearest, per axis,
    /// over the component's real samples with its last row and column repeated.
    fn upsample(&self, t: &Tensor, p: &Plane, h: i64, w: i64, exact: bool) -> Tensor {
        if p.fh == 1 && p.fv == 1 {
            return t.narrow(2, 0, h).narrow(3, 0, w);
        }
        let (ch, cw) = ((h + p.fv - 1) / p.fv, (w + p.fh - 1) / p.fh);
        let t = t.narrow(2, 0, ch).narrow(3, 0, cw);
        let pad = t.replication_pad2d([1, 1, 1, 1]);
        // Neighbours along an axis, over the padded plane cropped back to the real samples.
        let shift = |t: &Tensor, dim: i64, by: i64| {
            let len = t.size()[dim as usize] - 2;
            t.narrow(dim, 1 + by, len)
        };
        let round = |t: Tensor, bias: f64, div: f64| {
            if exact {
                ((t + bias) / div).floor()
            } else {
                t / div
            }
        };
        let interleave = |a: Tensor, b: Tensor, dim: i64| {
            // [a0, b0, a1, b1, …] along `dim`.
            let s = Tensor::stack(&[a, b], dim + 1);
            let mut size = s.size();
            size[dim as usize] *= 2;
            size.remove(dim as usize + 1);
            s.reshape(size)
        };
        let out = match (p.fh, p.fv) {
            (2, 2) => {
                // Column sums 3·this + neighbour row (above for the upper output row),
                // then the same along the row with biases 8 and 7, over 16.
                let mid = shift(&pad, 2, 0);
                let up = &mid * 3.0 + shift(&pad, 2, -1);
                let down = &mid * 3.0 + shift(&pad, 2, 1);
                let rows = |cs: Tensor| {
                    let centre = shift(&cs, 3, 0) * 3.0;
                    let left = round(&centre + shift(&cs, 3, -1), 8.0, 16.0);
                    let right = round(centre + shift(&cs, 3, 1), 7.0, 16.0);
                    interleave(left, right, 3)
                };
                interleave(rows(up), rows(down), 2)
            }
            (2, 1) => {
                let rowpad = shift(&pad, 2, 0);
                let centre = shift(&rowpad, 3, 0) * 3.0;
                let left = round(&centre + shift(&rowpad, 3, -1), 1.0, 4.0);
                let right = round(centre + shift(&rowpad, 3, 1), 2.0, 4.0);
                interleave(left, right, 3)
            }
            _ => {
                let colpad = shift(&pad, 3, 0);
                let centre = shift(&colpad, 2, 0) * 3.0;
                let up = round(&centre + shift(&colpad, 2, -1), 1.0, 4.0);
                let down = round(centre + shift(&colpad, 2, 1), 2.0, 4.0);
                interleave(up, down, 2)
            }
        };
        out.narrow(2, 0, h).narrow(3, 0, w)
    }
}

/// A plane `(N, 1, H, W)` of whole blocks as `(N, 1, H/8, W/8, 8, 8)`.
fn to_blocks(t: &Tensor) -> Tensor {
    let size = t.size();
    let (n, bh, bw) = (size[0], size[2] / 8, size[3] / 8);
    t.reshape([n, 1, bh, 8, bw, 8]).permute([0, 1, 2, 4, 3, 5])
}

/// The inverse of [`to_blocks`], back to a plane of `size`.
fn from_blocks(b: &Tensor, size: Vec<i64>) -> Tensor {
    b.permute([0, 1, 2, 4, 3, 5]).reshape(size)
}

/// Y, Cb and Cr planes of RGB levels `(N, 3, H, W)`, without rounding (JFIF, offset 128).
fn ycc(v: &Tensor) -> Vec<Tensor> {
    let chan = |k: i64| v.narrow(1, k, 1);
    let (r, g, b) = (chan(0), chan(1), chan(2));
    RGB_TO_YCC
        .iter()
        .zip([0.0, 128.0, 128.0])
        .map(|(m, off)| &r * m[0] + &g * m[1] + &b * m[2] + off)
        .collect()
}

/// JFIF's RGB → YCbCr matrix (BT.601 full range), as libjpeg's `jccolor.c` scales it.
const RGB_TO_YCC: [[f64; 3]; 3] = [
    [0.299, 0.587, 0.114],
    [-0.168_735_892, -0.331_264_108, 0.5],
    [0.5, -0.418_687_589, -0.081_312_411],
];

/// Its inverse (to 10⁻⁹), so that a zero change in YCbCr is none in RGB:
/// rows R, G, B over Y, Cb, Cr.
const YCC_TO_RGB: [[f64; 3]; 3] = [
    [1.0, 0.0, 1.402],
    [1.0, -0.344_136_286_5, -0.714_136_286_5],
    [1.0, 1.772, 0.0],
];

/// AAN scale factors of libjpeg's fast DCT, ×2¹⁴ (`aanscales` in jcdctmgr.c).
const AAN_SCALES: [i64; 64] = [
    16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520, 22725, 31521, 29692, 26722, 22725, 17855,
    12299, 6270, 21407, 29692, 27969, 25172, 21407, 16819, 11585, 5906, 19266, 26722, 25172, 22654,
    19266, 15137, 10426, 5315, 16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520, 12873, 17855,
    16819, 15137, 12873, 10114, 6967, 3552, 8867, 12299, 11585, 10426, 8867, 6967, 4799, 2446,
    4520, 6270, 5906, 5315, 4520, 3552, 2446, 1247,
];

/// libjpeg's `jpeg_fdct_ifast` and its quantiser on level-shifted blocks `(.., 8, 8)` of
/// integers: the quantised levels. In f64, where every intermediate is an integer well
/// below 2⁵³, so `floor` reproduces the C code's shifts exactly.
fn fast_fdct_quantise(blocks: &Tensor, quant: &[f64]) -> Tensor {
    let kind = blocks.kind();
    let b = blocks.to_kind(Kind::Double);
    // MULTIPLY: product with an 8-bit constant, arithmetic shift right by 8.
    let mul = |v: &Tensor, k: f64| (v * k / 256.0).floor();
    let pass = |d: &Tensor, dim: i64| {
        let x: Vec<Tensor> = (0..8).map(|i| d.select(dim, i)).collect();
        let (t0, t7) = (&x[0] + &x[7], &x[0] - &x[7]);
        let (t1, t6) = (&x[1] + &x[6], &x[1] - &x[6]);
        let (t2, t5) = (&x[2] + &x[5], &x[2] - &x[5]);
        let (t3, t4) = (&x[3] + &x[4], &x[3] - &x[4]);
        let (e10, e13, e11, e12) = (&t0 + &t3, &t0 - &t3, &t1 + &t2, &t1 - &t2);
        let o0 = &e10 + &e11;
        let o4 = &e10 - &e11;
        let z1 = mul(&(&e12 + &e13), 181.0);
        let (o2, o6) = (&e13 + &z1, &e13 - &z1);
        let (p10, p11, p12) = (&t4 + &t5, &t5 + &t6, &t6 + &t7);
        let z5 = mul(&(&p10 - &p12), 98.0);
        let z2 = mul(&p10, 139.0) + &z5;
        let z4 = mul(&p12, 334.0) + &z5;
        let z3 = mul(&p11, 181.0);
        let (z11, z13) = (&t7 + &z3, &t7 - &z3);
        let out = [
            o0,
            &z11 + &z4,
            o2,
            &z13 - &z2,
            o4,
            &z13 + &z2,
            o6,
            &z11 - &z4,
        ];
        Tensor::stack(&out, dim)
    };
    let nd = b.dim() as i64;
    let coef = pass(&pass(&b, nd - 1), nd - 2);
    // Divisors: the table times the AAN scale, descaled by 2¹¹ with rounding.
    let div: Vec<f64> = quant
        .iter()
        .zip(AAN_SCALES)
        .map(|(&q, s)| ((q as i64 * s + 1024) >> 11) as f64)
        .collect();
    let div = Tensor::from_slice(&div).view([8, 8]).to_device(b.device());
    let half = (&div / 2.0).floor();
    let mag = ((coef.abs() + half) / &div).floor();
    (mag * coef.sign()).to_kind(kind)
}

/// `y = J(A x)`: a JPEG round trip after an optional linear operator `A`.
pub struct Jpeg {
    codec: Codec,
    inner: Option<Box<dyn Operator>>,
    x_shape: [i64; 3],
    y_shape: [i64; 3],
    surrogate: Surrogate,
    label: String,
}

impl Jpeg {
    /// JPEG with `tables` of images `shape`, after `inner` when given (whose measurement is
    /// what is compressed, and must have 3 channels).
    pub fn new(
        tables: &Tables,
        shape: [i64; 3],
        inner: Option<Box<dyn Operator>>,
    ) -> Result<Self, OperatorError> {
        super::check_shape(shape)?;
        let codec = Codec::new(tables)?;
        let [c, h, w] = match &inner {
            Some(a) => {
                if a.x_shape() != shape {
                    return Err(OperatorError::Invalid(format!(
                        "{} takes {:?} images, not {shape:?}",
                        a.name(),
                        a.x_shape()
                    )));
                }
                a.y_shape()
            }
            None => shape,
        };
        if c != 3 {
            return Err(OperatorError::Invalid(format!(
                "JPEG compresses a colour image; this measurement has {c} channel(s)"
            )));
        }
        let q = tables.components[0].quant;
        let label = format!(
            "jpeg({} q[0]={} q[63]={}{})",
            tables.sampling_name(),
            q[0],
            q[63],
            inner
                .as_ref()
                .map(|a| format!(" ∘ {}", a.name()))
                .unwrap_or_default()
        );
        Ok(Jpeg {
            y_shape: [codec.channels(), h, w],
            codec,
            inner,
            x_shape: shape,
            surrogate: Surrogate::StraightThrough,
            label,
        })
    }

    /// The same operator with another forward DCT in its exact round trip.
    pub fn with_fdct(mut self, fdct: Fdct) -> Self {
        self.codec = self.codec.with_fdct(fdct);
        self
    }

    /// The same operator with another surrogate for gradients.
    pub fn with_surrogate(mut self, s: Surrogate) -> Self {
        self.surrogate = s;
        self
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    fn inner_forward(&self, x: &Tensor) -> Tensor {
        match &self.inner {
            Some(a) => a.forward(x),
            None => x.shallow_clone(),
        }
    }

    /// The linearisation `L A x` (the straight-through Jacobian applied to `x`).
    pub fn linearised(&self, x: &Tensor) -> Tensor {
        self.codec.linear(&self.inner_forward(x))
    }
}

impl Operator for Jpeg {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn x_shape(&self) -> [i64; 3] {
        self.x_shape
    }
    fn y_shape(&self) -> [i64; 3] {
        self.y_shape
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.codec.round_trip(&self.inner_forward(x))
    }
    fn is_linear(&self) -> bool {
        false
    }
    fn measure(&self, x: &Tensor, sigma_y: f64, seed: u64) -> Option<Tensor> {
        let z = match &self.inner {
            Some(a) => super::degrade(x, a.as_ref(), sigma_y, seed),
            // As `degrade`: a σ that is not a positive finite number adds no noise.
            None if sigma_y.is_finite() && sigma_y > 0.0 => {
                x + super::noise_like(x, seed) * sigma_y
            }
            None => x.shallow_clone(),
        };
        Some(self.codec.round_trip(&z))
    }
    fn forward_surrogate(&self, x: &Tensor) -> Tensor {
        let ax = self.inner_forward(x);
        match self.surrogate {
            Surrogate::StraightThrough => {
                let lin = self.codec.linear(&ax);
                let exact = tch::no_grad(|| self.codec.round_trip(&ax));
                &lin + (exact - &lin).detach()
            }
            Surrogate::Smooth { alpha } => self.codec.smooth(&ax, alpha),
        }
    }
    fn vjp(&self, x: &Tensor, g: &Tensor) -> Tensor {
        // Autograd on the surrogate, also when called under `no_grad` (inside a solver).
        tch::with_grad(|| {
            let x = x.detach().set_requires_grad(true);
            let s = (self.forward_surrogate(&x) * g.detach()).sum(Kind::Double);
            match Tensor::f_run_backward(&[s], &[&x], false, false) {
                Ok(mut v) => v.pop().unwrap_or_else(|| x.zeros_like()).detach(),
                Err(_) => x.zeros_like().detach(),
            }
        })
    }
    /// `(L A)ᵀ y`, the straight-through Jacobian's transpose (the same at every `x`).
    fn adjoint(&self, y: &Tensor) -> Tensor {
        let [c, h, w] = self.x_shape;
        let x0 = Tensor::zeros([y.size()[0], c, h, w], (y.kind(), y.device()));
        tch::with_grad(|| {
            let x = x0.set_requires_grad(true);
            let s = (self.linearised(&x) * y.detach()).sum(Kind::Double);
            match Tensor::f_run_backward(&[s], &[&x], false, false) {
                Ok(mut v) => v.pop().unwrap_or_else(|| x.zeros_like()).detach(),
                Err(_) => x.zeros_like().detach(),
            }
        })
    }
    /// Not the Moore–Penrose inverse (a nonlinear `H` has none) but the natural start: the
    /// decoded image itself, through `A`'s damped pseudo-inverse when there is an `A`.
    fn pinv(&self, y: &Tensor) -> Tensor {
        match &self.inner {
            Some(a) => super::damped_pinv(a.as_ref(), y, classical::QUANTISATION_STD),
            None => y.shallow_clone(),
        }
    }
    /// [`Codec::project`] of `A x0` for the JPEG alone or after an `A` whose pseudo-inverse
    /// is well conditioned (a mask, SR by block mean): then `x0 + A⁺ (P(A x0) − A x0)` is
    /// the nearest consistent `x`, since `A⁺` is an isometry up to scale on `A`'s range.
    /// After a blur, `A⁺` would blow the change up; none then.
    fn consistent(&self, x0: &Tensor, y: &Tensor) -> Option<Tensor> {
        let Some(a) = &self.inner else {
            return Some(self.codec.project(x0, y));
        };
        let svd = a.svd()?;
        let s = svd.singular_values();
        let s = s.masked_select(&s.gt(0.0));
        if s.numel() == 0 || s.min().double_value(&[]) < 0.1 * s.max().double_value(&[]) {
            return None;
        }
        let z = a.forward(x0);
        let dz = self.codec.project(&z, y) - &z;
        Some(x0 + super::damped_inverse(svd, a.as_ref(), &dz, &Tensor::from(0.0)))
    }
    fn classical(&self, y: &Tensor, sigma_y: f64) -> classical::Estimate {
        match &self.inner {
            None => classical::Estimate::Given(self.codec.deblock(y)),
            Some(a) => classical::Estimate::Given(classical::restore(a.as_ref(), y, sigma_y)),
        }
    }
    /// Alone, JPEG keeps every coefficient to within its quantisation step, so the prior
    /// only has to redraw detail of about the compression error: `START_SIGMA_FACTOR`
    /// times `Codec::error_std`. After another operator, that operator's null space needs
    /// the solver's whole schedule.
    fn start_sigma(&self) -> Option<f64> {
        self.inner
            .is_none()
            .then(|| START_SIGMA_FACTOR * self.codec.error_std())
    }
    /// The compression error as measurement noise (σ on the [-1, 1] scale), added in
    /// variance to that of `A`: see `Codec::error_std`.
    fn own_noise(&self) -> f64 {
        let a = self.inner.as_ref().map_or(0.0, |a| a.own_noise());
        a.hypot(self.codec.error_std())
    }
    fn gain_squared(&self) -> Option<f64> {
        let [c, h, w] = self.x_shape;
        let f = |x: &Tensor| self.linearised(x);
        let b = |y: &Tensor| self.adjoint(y);
        Some(super::power_iteration(&f, &b, [c, h, w], self.y_shape))
    }
}
