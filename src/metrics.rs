//! Image quality metrics for benchmarks, the demo and `vml-filter compare`.
//!
//! PSNR with peak 1 on [0, 1] images; SSIM as Wang et al. 2004 with an 11×11 Gaussian window
//! (σ = 1.5), K1 = 0.01, K2 = 0.03, computed per channel over the "valid" window positions
//! and averaged (the common benchmark convention).

use tch::{Kind, Tensor};

/// Peak signal-to-noise ratio in dB of `a` against `b`, both `(C, H, W)` or `(N, C, H, W)` in
/// [0, 1]. Infinite for identical images.
pub fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double);
    let mse = mse.double_value(&[]);
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

fn gaussian_window(size: i64, sigma: f64) -> Tensor {
    let r = (size - 1) as f64 / 2.0;
    let g: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let g = Tensor::from_slice(&g);
    let g = &g / g.sum(Kind::Double);
    g.unsqueeze(1).matmul(&g.unsqueeze(0))
}

/// Structural similarity of `a` against `b` (same layout and range as `psnr`). Images
/// smaller than the 11×11 window use a window as large as the smaller side.
pub fn ssim(a: &Tensor, b: &Tensor) -> f64 {
    let as4 = |t: &Tensor| {
        let t = t.to_kind(Kind::Double);
        if t.dim() == 3 {
            t.unsqueeze(0)
        } else {
            t
        }
    };
    let (a, b) = (as4(a), as4(b));
    let s = a.size();
    let c = s[1];
    let side = s[2].min(s[3]).min(11);
    let w = gaussian_window(side, 1.5 * side as f64 / 11.0).to_device(a.device());
    let w = w.view([1, 1, side, side]).repeat([c, 1, 1, 1]);
    let filt = |t: &Tensor| t.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], c);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (mu_a, mu_b) = (filt(&a), filt(&b));
    let var_a = filt(&(&a * &a)) - mu_a.square();
    let var_b = filt(&(&b * &b)) - mu_b.square();
    let cov = filt(&(&a * &b)) - &mu_a * &mu_b;
    let num = (&mu_a * &mu_b * 2.0 + c1) * (cov * 2.0 + c2);
    let den = (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2);
    let map = num / den;
    map.mean(Kind::Double).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_are_perfect() {
        let x = Tensor::rand([3, 32, 40], (Kind::Float, tch::Device::Cpu));
        assert!(psnr(&x, &x).is_infinite());
        assert!((ssim(&x, &x) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn psnr_of_a_known_error() {
        let a = Tensor::zeros([1, 8, 8], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::full([1, 8, 8], 0.1, (Kind::Float, tch::Device::Cpu));
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-4);
    }

    #[test]
    fn ssim_falls_with_noise_and_ignores_nothing() {
        tch::manual_seed(0);
        let x = Tensor::rand([3, 48, 48], (Kind::Float, tch::Device::Cpu));
        let little = &x + Tensor::randn_like(&x) * 0.02;
        let much = &x + Tensor::randn_like(&x) * 0.2;
        let (s1, s2) = (ssim(&little, &x), ssim(&much, &x));
        assert!(s1 < 1.0 && s2 < s1, "{s1} {s2}");
        // A constant shift lowers SSIM's luminance term only slightly, PSNR a lot.
        let shifted = &x + 0.05;
        assert!(ssim(&shifted, &x) > 0.95);
    }
}
