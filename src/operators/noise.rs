//! Estimating the measurement noise σ_y from the measurement itself (`--sigma-y auto`).
//!
//! The estimator is patch PCA: the covariance of the 7×7 patches of each channel has, for
//! white noise of variance σ², every eigenvalue raised by σ², and natural images put their
//! energy in a few directions, so the smallest eigenvalues are σ² plus little. The
//! estimate is the mean of the smallest eigenvalues, as many as still look like one
//! population (as many above their mean as below: Chen, Zhu and Heng, ICCV 2015), taken
//! over the weak-texture patches only (Liu, Tanaka and Okutomi, TIP 2013): on a photo
//! textured everywhere (Kodak's kodim01) even the smallest eigenvalue over all patches is
//! texture, 2.7 times a noise σ of 0.01. Donoho's MAD of the finest diagonal Haar band
//! (`mad_sigma`), the other common choice, reads texture as noise too; tests/noise.rs
//! prints both.
//!
//! It works on the measurement, i.e. on the range of `H`: the small image for SR, the gray
//! image for colorization, the known pixels only for inpainting (`keep`).

use tch::{Kind, Tensor};

/// Side of the patches.
const PATCH: i64 = 7;
/// At most this many patches per channel enter the covariance (a regular subsample).
const MAX_PATCHES: i64 = 200_000;

/// σ of white Gaussian noise in `y` `(N, C, H, W)` on its own scale, by patch PCA over
/// weak-texture patches; `keep` `(H, W)`, where given, limits it to patches whose pixels
/// are all 1 there. `None` when there are too few patches (an image under about 16×16
/// known pixels).
pub fn estimate_sigma(y: &Tensor, keep: Option<&Tensor>) -> Option<f64> {
    let y = y.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let size = y.size();
    if size.len() != 4 || size[2] < PATCH || size[3] < PATCH {
        return None;
    }
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let planes = y.reshape([n * c, 1, h, w]);
    let count = (h - PATCH + 1) * (w - PATCH + 1) * n * c;
    let stride = ((count as f64 / MAX_PATCHES as f64).sqrt().ceil() as i64).max(1);
    // (49, P): one column per patch.
    let cols = planes.im2col([PATCH, PATCH], [1, 1], [0, 0], [stride, stride]);
    let d = PATCH * PATCH;
    let mut cols = cols.permute([1, 0, 2]).reshape([d, -1]);
    if let Some(k) = keep {
        let k = k
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .view([1, 1, h, w]);
        let full = k
            .im2col([PATCH, PATCH], [1, 1], [0, 0], [stride, stride])
            .min_dim(1, false)
            .0
            .reshape([-1])
            .ge(0.5)
            .repeat([n * c]);
        let idx = full.nonzero().reshape([-1]);
        cols = cols.index_select(1, &idx);
    }
    if cols.size()[1] < 4 * d {
        return None;
    }
    // Liu, Tanaka and Okutomi's selection (TIP 2013): keep the patches whose gradient
    // energy noise of the current σ would reach with probability 0.99, re-estimate σ on
    // them, until it settles. Texture then no longer reads as noise.
    let xi = texture(&cols);
    let tau = unit_noise_texture_quantile();
    let mut sigma = floor_sigma(&cols)?;
    for _ in 0..10 {
        let idx = xi.lt(sigma * sigma * tau).nonzero().reshape([-1]);
        if idx.size()[0] < 4 * d {
            break;
        }
        let next = floor_sigma(&cols.index_select(1, &idx))?;
        let settled = (next - sigma).abs() <= 1e-4 * sigma;
        sigma = next;
        if settled {
            break;
        }
    }
    Some(sigma)
}

/// The noise σ from the covariance of patches `(49, P)` (`pca_floor`).
fn floor_sigma(cols: &Tensor) -> Option<f64> {
    let p = cols.size()[1];
    let centred = cols - cols.mean_dim(1, true, Kind::Double);
    let cov = centred.matmul(&centred.tr()) / (p - 1).max(1) as f64;
    let ev = Vec::<f64>::try_from(cov.linalg_eigvalsh("L")).ok()?;
    pca_floor(&ev).map(|v| v.max(0.0).sqrt())
}

/// Gradient energy of each patch `(49, P)`: the squared horizontal and vertical
/// differences inside it, summed.
fn texture(cols: &Tensor) -> Tensor {
    let p = cols.tr().reshape([-1, PATCH, PATCH]);
    let gh = p.narrow(2, 1, PATCH - 1) - p.narrow(2, 0, PATCH - 1);
    let gv = p.narrow(1, 1, PATCH - 1) - p.narrow(1, 0, PATCH - 1);
    gh.square()
        .sum_dim_intlist([1, 2].as_slice(), false, Kind::Double)
        + gv.square()
            .sum_dim_intlist([1, 2].as_slice(), false, Kind::Double)
}

/// The 0.99 quantile of `texture` for patches of unit white noise, from 20 000 seeded
/// draws (the gamma law Liu et al. fit to it, without its fit).
fn unit_noise_texture_quantile() -> f64 {
    let d = PATCH * PATCH;
    let draws = 20_000;
    let noise = super::gaussian_noise(&[d, draws], 0x7A11);
    texture(&noise)
        .quantile_scalar(0.99, None, false, "linear")
        .double_value(&[])
}

/// Chen et al.'s rule on eigenvalues (any order): sorted ascending, the largest `m` such
/// that the mean of the `m` smallest has as many of them above it as below; that mean.
fn pca_floor(ev: &[f64]) -> Option<f64> {
    let mut ev: Vec<f64> = ev.iter().copied().filter(|v| v.is_finite()).collect();
    ev.sort_by(f64::total_cmp);
    for m in (1..=ev.len()).rev() {
        let tail = &ev[..m];
        let mean = tail.iter().sum::<f64>() / m as f64;
        let above = tail.iter().filter(|&&v| v > mean).count();
        let below = tail.iter().filter(|&&v| v < mean).count();
        if above == below {
            return Some(mean);
        }
    }
    None
}

/// Donoho's estimate: the median absolute finest diagonal Haar coefficient over 0.6745,
/// over all channels (for comparison; `estimate_sigma` is the one used).
pub fn mad_sigma(y: &Tensor) -> Option<f64> {
    let size = y.size();
    if size.len() != 4 || size[2] < 2 || size[3] < 2 {
        return None;
    }
    let (h, w) = (size[2] / 2 * 2, size[3] / 2 * 2);
    let y = y.to_kind(Kind::Double).narrow(2, 0, h).narrow(3, 0, w);
    let a = |dy: i64, dx: i64| y.slice(2, dy, h, 2).slice(3, dx, w, 2);
    let hh = (a(0, 0) - a(0, 1) - a(1, 0) + a(1, 1)) / 2.0;
    let med = hh.abs().reshape([-1]).median().double_value(&[]);
    Some(med / 0.6745)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_noise_alone_is_measured() {
        tch::manual_seed(1);
        let y = Tensor::randn([1, 3, 64, 64], (Kind::Double, tch::Device::Cpu)) * 0.05;
        let s = estimate_sigma(&y, None).unwrap();
        assert!((s - 0.05).abs() < 0.003, "{s}");
        let m = mad_sigma(&y).unwrap();
        assert!((m - 0.05).abs() < 0.005, "{m}");
        // Too small for 7×7 patches, or nothing known: no estimate.
        assert!(estimate_sigma(&y.narrow(2, 0, 5), None).is_none());
        let none = Tensor::zeros([64, 64], (Kind::Double, tch::Device::Cpu));
        assert!(estimate_sigma(&y, Some(&none)).is_none());
    }

    #[test]
    fn the_floor_rule_takes_the_flat_tail() {
        // Eight signal directions above a floor of 1: the floor is found.
        let mut ev = vec![1.0, 0.98, 1.02, 0.99, 1.01, 1.0, 0.97, 1.03];
        ev.extend([5.0, 9.0, 20.0, 50.0]);
        let f = pca_floor(&ev).unwrap();
        assert!((f - 1.0).abs() < 0.02, "{f}");
    }
}
