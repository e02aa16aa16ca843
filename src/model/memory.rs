//! How much memory one restoring iteration of a UNet takes on an `h × w` image: a forward
//! with autograd and its vector-Jacobian product, the most any solver holds at once. The
//! pipeline compares this with `--max-memory` to choose between the whole image and tiles.
//!
//! Two terms, both measured (docs/protocol.md, "Memory and tiles"):
//! - feature maps: every layer's output is kept for the backward pass, so memory grows with
//!   the sum of the feature maps' sizes. [`feature_width`] counts it from the architecture
//!   in channels per input pixel; each such value costs [`BYTES_PER_FEATURE`] bytes;
//! - attention: each attention block keeps its `T × T` softmax (`T` = pixels at its
//!   resolution) for every head, quadratic in the image area. The middle block always has
//!   one, so a whole 4000×3000 photo through the default model would need ~140 GB here.

use super::UNetConfig;

/// Bytes per unit of [`feature_width`] per pixel: a fit of the peak resident memory of
/// `vml-filter --steps 1 --iters 1` on the default and `ffhq-256` architectures at several
/// sizes (docs/protocol.md), rounded up so that neither model is underestimated.
pub const BYTES_PER_FEATURE: f64 = 9.5;

/// Bytes of one float32 attention weight.
const ATTENTION_BYTES: f64 = 4.0;

/// Sum over the UNet's feature maps of their channels divided by their down-sampling area
/// (`ds²`): values per input pixel. Follows the construction in `unet.rs`: the input conv,
/// each residual block's input and output, each attention, down/up-sampling outputs, the
/// concatenated skips on the way up, and the output head.
pub fn feature_width(cfg: &UNetConfig) -> f64 {
    let mc = cfg.num_channels as f64;
    let attn = cfg.attention_ds();
    let area = |ds: i64| (ds * ds) as f64;
    let levels = cfg.channel_mult.len();
    let mut ds = 1i64;
    let mut ch = cfg.channel_mult[0] as f64 * mc;
    let mut skips = vec![ch];
    let mut width = ch;
    // 1. Down path.
    for (level, &mult) in cfg.channel_mult.iter().enumerate() {
        for _ in 0..cfg.num_res_blocks {
            let out = mult as f64 * mc;
            width += (ch + out) / area(ds);
            ch = out;
            if attn.contains(&ds) {
                width += ch / area(ds);
            }
            skips.push(ch);
        }
        if level + 1 != levels {
            width += ch / area(2 * ds);
            if cfg.resblock_updown {
                width += ch / area(ds);
            }
            skips.push(ch);
            ds *= 2;
        }
    }
    // 2. Middle: residual, attention, residual.
    width += 5.0 * ch / area(ds);
    // 3. Up path: each block reads its input concatenated with a skip.
    for (level, &mult) in cfg.channel_mult.iter().enumerate().rev() {
        for i in 0..=cfg.num_res_blocks {
            let skip = skips.pop().unwrap_or(ch);
            let out = mult as f64 * mc;
            width += (2.0 * (ch + skip) + out) / area(ds);
            ch = out;
            if attn.contains(&ds) {
                width += ch / area(ds);
            }
            if level > 0 && i == cfg.num_res_blocks {
                width += ch / area(ds / 2);
                if cfg.resblock_updown {
                    width += ch / area(ds);
                }
                ds /= 2;
            }
        }
    }
    // 4. Output head.
    width + ch + cfg.out_channels() as f64
}

/// Bytes of the attention weights kept for the backward pass on an `h × w` input: one
/// `T × T` matrix per head and block (`T = h·w / ds²`).
pub fn attention_bytes(cfg: &UNetConfig, h: i64, w: i64) -> f64 {
    let heads = |ch: i64| {
        if cfg.num_head_channels > 0 {
            (ch / cfg.num_head_channels).max(1)
        } else {
            cfg.num_heads.max(1)
        }
    };
    let tokens = |ds: i64| ((h / ds).max(1) * (w / ds).max(1)) as f64;
    let mc = cfg.num_channels;
    let attn = cfg.attention_ds();
    let mut total = 0.0;
    let mut ds = 1;
    for (level, &mult) in cfg.channel_mult.iter().enumerate() {
        if attn.contains(&ds) {
            // num_res_blocks on the way down, one more on the way up.
            let blocks = (2 * cfg.num_res_blocks + 1) as f64;
            total += blocks * heads(mult * mc) as f64 * tokens(ds).powi(2);
        }
        if level + 1 != cfg.channel_mult.len() {
            ds *= 2;
        }
    }
    let deepest = cfg.channel_mult.last().copied().unwrap_or(1) * mc;
    total += heads(deepest) as f64 * tokens(ds).powi(2);
    total * ATTENTION_BYTES
}

/// Estimated peak bytes of one forward-with-autograd plus VJP on an `h × w` input, beyond
/// the process and the weights.
pub fn iteration_bytes(cfg: &UNetConfig, h: i64, w: i64) -> u64 {
    let pixels = (h.max(1) * w.max(1)) as f64;
    let bytes = feature_width(cfg) * BYTES_PER_FEATURE * pixels + attention_bytes(cfg, h, w);
    bytes.min(u64::MAX as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_architectures_cost_more_per_pixel() {
        let small = UNetConfig::shipped_default();
        let ffhq = UNetConfig::ffhq_256();
        let imagenet = UNetConfig::imagenet_256_uncond();
        assert!(feature_width(&small) < feature_width(&ffhq));
        assert!(feature_width(&ffhq) < feature_width(&imagenet));
        // Linear in the area while attention is negligible…
        let (a, b) = (
            iteration_bytes(&ffhq, 128, 128),
            iteration_bytes(&ffhq, 256, 256),
        );
        assert!((b as f64 / a as f64 - 4.0).abs() < 0.1, "{a} {b}");
        // …and quadratic once it dominates: the default model's middle block at ds 8.
        let (a, b) = (
            attention_bytes(&small, 2048, 2048),
            attention_bytes(&small, 4096, 4096),
        );
        assert!((b / a - 16.0).abs() < 1e-9);
        assert_eq!(attention_bytes(&small, 1024, 1024), 4.0 * 16384f64.powi(2));
    }
}
