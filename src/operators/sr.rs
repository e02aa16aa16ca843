//! Super-resolution operators: down-sampling by an integer factor `s ∈ {2, 4, 8}` from an
//! `sH'×sW'` image to `H'×W'`, separable (see `separable`).
//!
//! - Block mean: `y[i] = mean(x[s·i .. s·i + s])` per axis.
//! - Bicubic: anti-aliased Keys cubic (a = −0.5) stretched by `s`, as in MATLAB's `imresize`
//!   and the SR benchmarks built on it: output pixel `i` is centred at `(i + ½)s − ½` in
//!   input pixels, weights `k((j − centre)/s)/s` over `|j − centre| < 2s`, symmetric
//!   boundary, each row normalised to sum 1.

use super::separable::{reflect, Separable};
use super::OperatorError;
use crate::task::{SrKind, Task};
use tch::Tensor;

pub fn build(shape: [i64; 3], scale: u32, kind: SrKind) -> Result<Separable, OperatorError> {
    Task::Sr {
        scale,
        downsample: kind,
    }
    .validate()?;
    let s = i64::from(scale);
    let [_, h, w] = shape;
    if h % s != 0 || w % s != 0 {
        return Err(OperatorError::Invalid(format!(
            "super-resolution ×{s} needs an image size divisible by {s}, got {w}×{h}"
        )));
    }
    let (a_h, a_w, label) = match kind {
        SrKind::Avgpool => (block_mean(h, s), block_mean(w, s), "avgpool"),
        SrKind::Bicubic => (bicubic(h, s), bicubic(w, s), "bicubic"),
    };
    Separable::new(
        format!("sr×{s}({label}) {w}×{h} → {}×{}", w / s, h / s),
        shape,
        &a_h,
        &a_w,
    )
}

/// `(n/s) × n`, rows `1/s` over each block.
pub fn block_mean(n: i64, s: i64) -> Tensor {
    let m = n / s;
    let mut a = vec![0f64; (m * n) as usize];
    for i in 0..m {
        for j in i * s..(i + 1) * s {
            a[(i * n + j) as usize] = 1.0 / s as f64;
        }
    }
    Tensor::from_slice(&a).reshape([m, n])
}

/// Keys' cubic convolution kernel with a = −0.5.
pub(crate) fn keys(t: f64) -> f64 {
    const A: f64 = -0.5;
    let t = t.abs();
    if t <= 1.0 {
        ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0
    } else if t < 2.0 {
        ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A
    } else {
        0.0
    }
}

/// `(n/s) × n` anti-aliased bicubic down-sampling matrix.
pub fn bicubic(n: i64, s: i64) -> Tensor {
    let m = n / s;
    let sf = s as f64;
    let mut a = vec![0f64; (m * n) as usize];
    for i in 0..m {
        let centre = (i as f64 + 0.5) * sf - 0.5;
        let lo = (centre - 2.0 * sf).floor() as i64;
        let hi = (centre + 2.0 * sf).ceil() as i64;
        let row = &mut a[(i * n) as usize..((i + 1) * n) as usize];
        for j in lo..=hi {
            let wgt = keys((j as f64 - centre) / sf);
            row[reflect(j, n)] += wgt;
        }
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    Tensor::from_slice(&a).reshape([m, n])
}
