//! Blur operators.
//!
//! - Gaussian (`σ` pixels, taps to `⌈3σ⌉` each side) and uniform (`size` taps) kernels are
//!   separable: `H = A ⊗ A` with `A[i, ·]` the correlation `y[i] = Σ_t k[t] x[i + t − c]`
//!   under half-sample symmetric reflection at the borders (`x[−1] = x[0]`), the boundary
//!   rule of MATLAB's `symmetric`; see `separable`.
//! - Motion (a line of `length` pixels at `angle` degrees, counter-clockwise from the x
//!   axis, rasterised by splatting dense samples bilinearly) and user kernels are 2-D
//!   convolutions with periodic boundary, diagonalised by the Fourier basis; see `circular`.
//!
//! `vml-filter degrade` applies the same operator, so measurement and model agree.

use super::circular::Circular;
use super::separable::{conv_matrix, Separable};
use super::{Operator, OperatorError};
use crate::task::Blur;

pub fn build(shape: [i64; 3], blur: &Blur) -> Result<Box<dyn Operator>, OperatorError> {
    blur.validate()?;
    let [_, h, w] = shape;
    match blur {
        Blur::Gaussian { sigma } => {
            let k = gaussian_kernel(*sigma)?;
            separable(shape, &k, format!("gaussian blur σ={sigma}"))
        }
        Blur::Uniform { size } => {
            let k = vec![1.0 / *size as f64; *size as usize];
            separable(shape, &k, format!("uniform blur {size}×{size}"))
        }
        Blur::Motion { length, angle } => {
            let (k, kh, kw) = motion_kernel(*length, *angle)?;
            check_fits(kh, kw, h, w)?;
            Ok(Box::new(Circular::new(
                format!("motion blur {length} px at {angle}°"),
                shape,
                &k,
                kh,
                kw,
            )?))
        }
        Blur::Custom {
            width,
            height,
            weights,
        } => {
            let (kw, kh) = (*width as i64, *height as i64);
            let sum: f64 = weights.iter().map(|&v| v as f64).sum();
            check_fits(kh, kw, h, w)?;
            let k: Vec<f64> = weights.iter().map(|&v| v as f64 / sum).collect();
            Ok(Box::new(Circular::new(
                format!("kernel {width}×{height}"),
                shape,
                &k,
                kh,
                kw,
            )?))
        }
    }
}

fn check_fits(kh: i64, kw: i64, h: i64, w: i64) -> Result<(), OperatorError> {
    if kh > h || kw > w {
        return Err(OperatorError::Invalid(format!(
            "blur kernel {kw}×{kh} is larger than the image {w}×{h}"
        )));
    }
    Ok(())
}

fn separable(shape: [i64; 3], k: &[f64], name: String) -> Result<Box<dyn Operator>, OperatorError> {
    let [_, h, w] = shape;
    let n = k.len() as i64;
    check_fits(n, n, h, w)?;
    // Centre tap of an even kernel: the later of the two middle taps.
    let c = n / 2;
    let a_h = conv_matrix(k, c, h);
    let a_w = conv_matrix(k, c, w);
    Ok(Box::new(Separable::new(
        format!("{name} {w}×{h}"),
        shape,
        &a_h,
        &a_w,
    )?))
}

/// Normalised 1-D Gaussian with taps `−⌈3σ⌉ ..= ⌈3σ⌉`.
pub fn gaussian_kernel(sigma: f64) -> Result<Vec<f64>, OperatorError> {
    Blur::Gaussian { sigma }.validate()?;
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-r..=r)
        .map(|t| (-(t * t) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    Ok(k.into_iter().map(|v| v / s).collect())
}

/// A line of `length` pixels through the centre at `angle` degrees (counter-clockwise,
/// y up on screen, so rows go the other way), rasterised by splatting 8 samples per pixel
/// of length bilinearly, normalised to sum 1. Returns `(weights, height, width)`, odd sizes.
pub fn motion_kernel(length: f64, angle: f64) -> Result<(Vec<f64>, i64, i64), OperatorError> {
    Blur::Motion { length, angle }.validate()?;
    let half = length / 2.0;
    let r = half.ceil() as i64 + 1;
    let n = 2 * r + 1;
    let mut k = vec![0f64; (n * n) as usize];
    let (dx, dy) = (angle.to_radians().cos(), -angle.to_radians().sin());
    let samples = (8.0 * length).ceil() as i64 + 1;
    for i in 0..samples {
        let t = if samples == 1 {
            0.0
        } else {
            -half + length * i as f64 / (samples - 1) as f64
        };
        let (x, y) = (r as f64 + t * dx, r as f64 + t * dy);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        for (yy, wy) in [(y0 as i64, 1.0 - fy), (y0 as i64 + 1, fy)] {
            for (xx, wx) in [(x0 as i64, 1.0 - fx), (x0 as i64 + 1, fx)] {
                if (0..n).contains(&yy) && (0..n).contains(&xx) {
                    k[(yy * n + xx) as usize] += wy * wx;
                }
            }
        }
    }
    // Trim empty border rows and columns in pairs so the centre stays put.
    let row_empty = |k: &[f64], i: i64, n: i64| (0..n).all(|j| k[(i * n + j) as usize] == 0.0);
    let col_empty = |k: &[f64], j: i64, n: i64| (0..n).all(|i| k[(i * n + j) as usize] == 0.0);
    let (mut top, mut left) = (0, 0);
    while n - 2 * top > 1 && row_empty(&k, top, n) && row_empty(&k, n - 1 - top, n) {
        top += 1;
    }
    while n - 2 * left > 1 && col_empty(&k, left, n) && col_empty(&k, n - 1 - left, n) {
        left += 1;
    }
    let (kh, kw) = (n - 2 * top, n - 2 * left);
    let mut out = Vec::with_capacity((kh * kw) as usize);
    for i in top..n - top {
        for j in left..n - left {
            out.push(k[(i * n + j) as usize]);
        }
    }
    let s: f64 = out.iter().sum();
    Ok((out.into_iter().map(|v| v / s).collect(), kh, kw))
}
