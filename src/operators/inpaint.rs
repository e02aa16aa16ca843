//! Inpainting: `H = diag(keep)` keeps the known pixels and zeroes the unknown ones, so
//! `H = Hᵀ = H⁺` and the SVD is a permutation: `V` lists the known entries first (singular
//! value 1), then the unknown ones (the null space); `U` places the `M` known entries back
//! into an image-shaped measurement.
//!
//! Also the mask generators used by tests, benchmarks and `degrade` (1 = unknown pixel).

use super::{check_shape, Host, Indices, Operator, OperatorError, Svd};
use crate::rng::SplitMix64;
use tch::{Kind, Tensor};

pub struct Inpaint {
    shape: [i64; 3],
    /// 1 where the pixel is known, `(1, 1, H, W)`.
    keep: Host,
    /// Flat indices over `C·H·W` of the known entries.
    known: Indices,
    /// Known entries then unknown ones, and the inverse permutation.
    perm: Indices,
    inv_perm: Indices,
    unknown_pixels: i64,
    /// The largest distance (in pixels, chessboard) from an unknown pixel to the nearest
    /// known one: about half the side of the widest hole.
    widest_gap: i64,
}

/// Holes whose pixels lie at most this far from a known pixel count as narrow (scratches,
/// missing dots, a random share of pixels, a 32² box). On the validation photos (128²,
/// σ_y = 0.01, 20 × 1) the fit on every level beat the last level only by 0.6 dB on 70 %
/// random pixels and 1.0 dB on a 32² box (gap 16), and lost to it by 1.7 dB on a 48² box
/// (gap 24) and 2.8 dB on a 64² box (gap 32); docs/algorithm.md, "Data fit". See
/// [`Operator::fits_every_level`].
pub const NARROW_GAP: i64 = 16;

/// The largest chessboard distance from a pixel with `keep == 0` to one with `keep == 1` in
/// the row-major `h × w` plane (two raster passes, exact for that metric); `i64::MAX` when
/// no pixel is known.
fn widest_gap(keep: &[f64], h: usize, w: usize) -> i64 {
    let far = i64::MAX / 2;
    let mut d: Vec<i64> = keep
        .iter()
        .map(|&k| if k == 1.0 { 0 } else { far })
        .collect();
    // The pass down and right, then the same pass over the reversed plane, which is the
    // pass up and left (reversing a row-major plane turns it half round).
    let pass = |d: &mut [i64]| {
        for y in 0..h {
            for x in 0..w {
                let mut v = d[y * w + x];
                if x > 0 {
                    v = v.min(d[y * w + x - 1] + 1);
                }
                if y > 0 {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        v = v.min(d[(y - 1) * w + nx] + 1);
                    }
                }
                d[y * w + x] = v;
            }
        }
    };
    pass(&mut d);
    d.reverse();
    pass(&mut d);
    match d.into_iter().max() {
        Some(m) if m < far => m,
        _ => i64::MAX,
    }
}

impl Inpaint {
    /// `mask` is `(H, W)` (leading singleton dimensions allowed), 1 = unknown; values above
    /// 0.5 count as unknown.
    pub fn new(shape: [i64; 3], mask: &Tensor) -> Result<Self, OperatorError> {
        check_shape(shape)?;
        let [c, h, w] = shape;
        let m = Host::from_tensor(mask)?;
        let dims: Vec<i64> = m.shape.iter().cloned().skip_while(|&d| d == 1).collect();
        let (mh, mw) = match m.shape.len() {
            0 => return Err(OperatorError::Invalid("mask is a scalar".into())),
            1 => (1, m.shape[0]),
            n => (m.shape[n - 2], m.shape[n - 1]),
        };
        if dims.len() > 2 || mh != h || mw != w {
            return Err(OperatorError::MaskSize {
                got_w: mw,
                got_h: mh,
                want_w: w,
                want_h: h,
            });
        }
        if m.data().iter().any(|v| !v.is_finite()) {
            return Err(OperatorError::Invalid(
                "mask has NaN or infinite values".into(),
            ));
        }
        let keep: Vec<f64> = m
            .data()
            .iter()
            .map(|&v| if v > 0.5 { 0.0 } else { 1.0 })
            .collect();
        let unknown_pixels = keep.iter().filter(|&&k| k == 0.0).count() as i64;
        if unknown_pixels == 0 {
            return Err(OperatorError::EmptyMask);
        }
        let widest_gap = widest_gap(&keep, h as usize, w as usize);
        let hw = (h * w) as usize;
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for ch in 0..c as usize {
            for (p, &k) in keep.iter().enumerate() {
                let i = (ch * hw + p) as i64;
                if k == 1.0 {
                    known.push(i)
                } else {
                    unknown.push(i)
                }
            }
        }
        let perm: Vec<i64> = known.iter().chain(unknown.iter()).cloned().collect();
        let mut inv_perm = vec![0i64; perm.len()];
        for (pos, &i) in perm.iter().enumerate() {
            inv_perm[i as usize] = pos as i64;
        }
        Ok(Inpaint {
            shape,
            keep: Host::new(keep, &[1, 1, h, w]),
            known: Indices::new(known),
            perm: Indices::new(perm),
            inv_perm: Indices::new(inv_perm),
            unknown_pixels,
            widest_gap,
        })
    }

    /// `(1, 1, H, W)` with 1 where the pixel is known (a shared copy: do not modify it in
    /// place).
    pub fn keep(&self, like: &Tensor) -> Tensor {
        self.keep.like(like)
    }

    /// Number of pixels to restore.
    pub fn unknown_pixels(&self) -> i64 {
        self.unknown_pixels
    }

    /// The largest distance from an unknown pixel to a known one (see [`NARROW_GAP`]).
    pub fn widest_gap(&self) -> i64 {
        self.widest_gap
    }

    fn flat(&self, x: &Tensor) -> Tensor {
        x.reshape([x.size()[0], -1])
    }
    fn image(&self, c: &Tensor) -> Tensor {
        let [ch, h, w] = self.shape;
        c.reshape([c.size()[0], ch, h, w])
    }
}

impl Operator for Inpaint {
    fn name(&self) -> String {
        let [_, h, w] = self.shape;
        format!(
            "inpaint({} of {} pixels unknown)",
            self.unknown_pixels,
            h * w
        )
    }
    fn x_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn y_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        x * self.keep.like(x)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.forward(y)
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        self.forward(y)
    }
    fn svd(&self) -> Option<&dyn Svd> {
        Some(self)
    }
    fn classical(&self, y: &Tensor, _sigma_y: f64) -> super::classical::Estimate {
        super::classical::Estimate::HarmonicFill { keep: self.keep(y) }
    }
    fn fits_every_level(&self) -> bool {
        self.widest_gap <= NARROW_GAP
    }
}

impl Svd for Inpaint {
    fn vt(&self, x: &Tensor) -> Tensor {
        self.flat(x).index_select(1, &self.perm.on(x))
    }
    fn v(&self, c: &Tensor) -> Tensor {
        self.image(&c.index_select(1, &self.inv_perm.on(c)))
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        self.flat(y).index_select(1, &self.known.on(y))
    }
    fn u(&self, c: &Tensor) -> Tensor {
        let n = c.size()[0];
        let d: i64 = self.shape.iter().product();
        let z = Tensor::zeros([n, d], (c.kind(), c.device()));
        self.image(&z.index_copy(1, &self.known.on(c), c))
    }
    fn singular_values(&self) -> Tensor {
        Tensor::ones([self.known.len()], (Kind::Double, tch::Device::Cpu))
    }
}

fn check_size(h: i64, w: i64) -> Result<(), OperatorError> {
    if h <= 0 || w <= 0 {
        return Err(OperatorError::Invalid(format!(
            "mask size {w}×{h} is empty"
        )));
    }
    Ok(())
}

fn mask_tensor(v: Vec<f32>, h: i64, w: i64) -> Tensor {
    Tensor::from_slice(&v).reshape([h, w])
}

/// A centred `side`×`side` square of unknown pixels (clipped to the image), `(H, W)` f32.
pub fn box_mask(h: i64, w: i64, side: i64) -> Result<Tensor, OperatorError> {
    check_size(h, w)?;
    if side <= 0 {
        return Err(OperatorError::Invalid(format!(
            "box side must be positive, got {side}"
        )));
    }
    let (sh, sw) = (side.min(h), side.min(w));
    let (top, left) = ((h - sh) / 2, (w - sw) / 2);
    let mut v = vec![0f32; (h * w) as usize];
    for i in top..top + sh {
        for j in left..left + sw {
            v[(i * w + j) as usize] = 1.0;
        }
    }
    Ok(mask_tensor(v, h, w))
}

/// Exactly `round(fraction · H · W)` unknown pixels chosen uniformly from `seed`.
pub fn random_mask(h: i64, w: i64, fraction: f64, seed: u64) -> Result<Tensor, OperatorError> {
    check_size(h, w)?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(OperatorError::Invalid(format!(
            "fraction must be in [0, 1], got {fraction}"
        )));
    }
    let n = (h * w) as usize;
    let k = ((fraction * n as f64).round() as usize).min(n);
    // Partial Fisher–Yates: the first k entries of the shuffled order are unknown.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in 0..k {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut v = vec![0f32; n];
    for &p in &order[..k] {
        v[p] = 1.0;
    }
    Ok(mask_tensor(v, h, w))
}

/// The right half unknown (columns `W/2..W`, rounding down the left half's width).
pub fn half_mask(h: i64, w: i64) -> Result<Tensor, OperatorError> {
    check_size(h, w)?;
    let mut v = vec![0f32; (h * w) as usize];
    for i in 0..h {
        for j in w / 2..w {
            v[(i * w + j) as usize] = 1.0;
        }
    }
    Ok(mask_tensor(v, h, w))
}

/// A mask from a picture with values in [0, 1]: `(H, W)`, `(C, H, W)` or `(1, C, H, W)`;
/// channels are averaged and pixels above 0.5 (white) are unknown. Returns `(H, W)` f32.
pub fn mask_from_image(img: &Tensor) -> Result<Tensor, OperatorError> {
    let size = img.size();
    let t = match size.len() {
        2 => img.to_kind(Kind::Double),
        3 => img.to_kind(Kind::Double).mean_dim(0, false, Kind::Double),
        4 if size[0] == 1 => {
            img.to_kind(Kind::Double)
                .mean_dim([0, 1].as_slice(), false, Kind::Double)
        }
        _ => {
            return Err(OperatorError::Invalid(format!(
                "mask image must be (H, W), (C, H, W) or (1, C, H, W), got {size:?}"
            )))
        }
    };
    let host = Host::from_tensor(&t)?;
    if host.data().iter().any(|v| !v.is_finite()) {
        return Err(OperatorError::Invalid(
            "mask image has NaN or infinite values".into(),
        ));
    }
    let v: Vec<f32> = host
        .data()
        .iter()
        .map(|&v| if v > 0.5 { 1.0 } else { 0.0 })
        .collect();
    let [h, w] = [host.shape[0], host.shape[1]];
    check_size(h, w)?;
    Ok(mask_tensor(v, h, w))
}
