//! Overlapping tiles for images too large to restore whole, blended by a partition of
//! unity: each tile's weight ramps linearly from ~0 to 1 across the overlap on the sides
//! it shares with a neighbour (and is flat on the image border), and the blended output is
//! `Σ wₖ xₖ / Σ wₖ`, so overlaps fade from one tile to the next without a seam.

use tch::{Device, Kind, Tensor};

/// One tile in output pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub y0: i64,
    pub x0: i64,
    pub h: i64,
    pub w: i64,
}

/// How an output of `height × width` is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    pub height: i64,
    pub width: i64,
    /// Tile side; equal to the image size on each axis when not tiling.
    pub tile: i64,
    pub overlap: i64,
}

/// Peak bytes per pixel assumed for a denoiser that gives no estimate of its own
/// ([`crate::diffusion::Denoiser::iteration_bytes`]): the ffhq-256 architecture's measured
/// ~28 KiB per pixel (docs/protocol.md) with room to spare.
pub const FALLBACK_BYTES_PER_PIXEL: u64 = 48 << 10;

/// Peak bytes per pixel of the `classical` methods: a few image-sized buffers.
pub const CLASSICAL_BYTES_PER_PIXEL: u64 = 256;

impl TilePlan {
    /// `tile`: `None` chooses from the memory budget, `Some(0)` never tiles, `Some(n)` asks
    /// for tiles of `n` pixels. `estimate(h, w)` gives the peak bytes of restoring an
    /// `h × w` piece; the whole image is taken when it fits `max_memory`, else the largest
    /// square tile (a multiple of 64) that fits. Tiles are multiples of `align` (a multiple
    /// of the SR scale that the network needs) and overlaps multiples of the SR `scale`, so
    /// tiles line up with input pixels. `height` and `width` must be multiples of `align`.
    pub fn choose(
        height: i64,
        width: i64,
        scale: i64,
        align: i64,
        tile: Option<u32>,
        max_memory: u64,
        estimate: &dyn Fn(i64, i64) -> u64,
    ) -> TilePlan {
        let whole = TilePlan {
            height,
            width,
            tile: height.max(width),
            overlap: 0,
        };
        let side = match tile {
            Some(0) => return whole,
            Some(n) => i64::from(n),
            None => {
                if estimate(height, width) <= max_memory {
                    return whole;
                }
                // Memory grows with the area (and faster with attention), so walk down.
                let mut side = height.max(width) / 64 * 64;
                let fits = |s: i64| estimate(s.min(height), s.min(width)) <= max_memory;
                while side > 64 && !fits(side) {
                    side -= 64;
                }
                side.max(64)
            }
        };
        let side = (side.max(2 * align) / align) * align;
        if side >= height && side >= width {
            return whole;
        }
        // An eighth of the tile, at least 8 pixels, aligned to the scale.
        let overlap =
            (((side / 8).max(8) + scale - 1) / scale * scale).min(side / 2 / scale * scale);
        TilePlan {
            height,
            width,
            tile: side,
            overlap,
        }
    }

    pub fn is_whole(&self) -> bool {
        self.tile >= self.height && self.tile >= self.width
    }

    pub fn describe(&self) -> String {
        if self.is_whole() {
            "whole image".into()
        } else {
            format!(
                "{} tiles of {} px, overlap {}",
                self.tiles().len(),
                self.tile,
                self.overlap
            )
        }
    }

    fn starts(&self, len: i64) -> Vec<i64> {
        let side = self.tile.min(len);
        if side >= len {
            return vec![0];
        }
        let step = (self.tile - self.overlap).max(1);
        let mut v: Vec<i64> = (0..)
            .map(|k| k * step)
            .take_while(|&s| s + side < len)
            .collect();
        v.push(len - side);
        v.dedup();
        v
    }

    pub fn tiles(&self) -> Vec<Tile> {
        let (th, tw) = (self.tile.min(self.height), self.tile.min(self.width));
        let mut out = Vec::new();
        for &y0 in &self.starts(self.height) {
            for &x0 in &self.starts(self.width) {
                out.push(Tile {
                    y0,
                    x0,
                    h: th,
                    w: tw,
                });
            }
        }
        out
    }

    /// The blending weight of `t`, `(1, 1, h, w)`.
    pub fn weight(&self, t: &Tile, device: Device) -> Tensor {
        let ramp = |len: i64, at_start: bool, at_end: bool| -> Vec<f32> {
            let o = self.overlap.max(1) as f32;
            (0..len)
                .map(|i| {
                    let from_start = if at_start {
                        1.0
                    } else {
                        ((i as f32 + 0.5) / o).min(1.0)
                    };
                    let from_end = if at_end {
                        1.0
                    } else {
                        (((len - i) as f32 - 0.5) / o).min(1.0)
                    };
                    from_start.min(from_end)
                })
                .collect()
        };
        let wy = ramp(t.h, t.y0 == 0, t.y0 + t.h >= self.height);
        let wx = ramp(t.w, t.x0 == 0, t.x0 + t.w >= self.width);
        let wy = Tensor::from_slice(&wy).view([t.h, 1]);
        let wx = Tensor::from_slice(&wx).view([1, t.w]);
        (wy * wx)
            .view([1, 1, t.h, t.w])
            .to_kind(Kind::Float)
            .to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{memory::iteration_bytes, UNetConfig};

    fn classical(h: i64, w: i64) -> u64 {
        (h * w) as u64 * CLASSICAL_BYTES_PER_PIXEL
    }

    #[test]
    fn tiles_cover_and_weights_sum_to_positive() {
        let plan = TilePlan::choose(300, 200, 4, 4, Some(64), 0, &classical);
        assert!(!plan.is_whole());
        assert_eq!(plan.tile % 4, 0);
        assert_eq!(plan.overlap % 4, 0);
        let cover = Tensor::zeros([1, 1, 300, 200], (Kind::Float, Device::Cpu));
        for t in plan.tiles() {
            assert_eq!((t.y0 % 4, t.x0 % 4), (0, 0));
            assert!(t.y0 + t.h <= 300 && t.x0 + t.w <= 200);
            let mut view = cover.narrow(2, t.y0, t.h).narrow(3, t.x0, t.w);
            view += plan.weight(&t, Device::Cpu);
        }
        assert!(cover.min().double_value(&[]) > 0.0);
    }

    #[test]
    fn constant_tiles_blend_to_the_constant() {
        // A partition of unity: blending identical tiles gives the tile value back.
        let plan = TilePlan::choose(130, 97, 1, 1, Some(40), 0, &classical);
        let acc = Tensor::zeros([1, 1, 130, 97], (Kind::Float, Device::Cpu));
        let ws = Tensor::zeros([1, 1, 130, 97], (Kind::Float, Device::Cpu));
        for t in plan.tiles() {
            let w = plan.weight(&t, Device::Cpu);
            let mut a = acc.narrow(2, t.y0, t.h).narrow(3, t.x0, t.w);
            a += &w * 0.25;
            let mut b = ws.narrow(2, t.y0, t.h).narrow(3, t.x0, t.w);
            b += w;
        }
        let out = acc / ws;
        assert!((out - 0.25).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn tiles_fit_the_network() {
        // A 4000×3000 photo (padded to 4000×3008) under the default budget: every tile a
        // multiple of 32, every start a multiple of the SR scale.
        let net = |h, w| iteration_bytes(&UNetConfig::shipped_default(), h, w);
        let plan = TilePlan::choose(3008, 4000, 2, 32, None, 12 << 30, &net);
        assert!(plan.tiles().len() > 1);
        for t in plan.tiles() {
            assert_eq!(
                (t.h % 32, t.w % 32, t.y0 % 2, t.x0 % 2),
                (0, 0, 0, 0),
                "{t:?}"
            );
        }
        let plan = TilePlan::choose(96, 160, 1, 32, Some(40), 0, &net);
        assert!(plan.tiles().iter().all(|t| t.h % 32 == 0 && t.w % 32 == 0));
    }

    #[test]
    fn auto_plan_follows_the_budget_and_the_model() {
        let small = |h, w| iteration_bytes(&UNetConfig::shipped_default(), h, w);
        let ffhq = |h, w| iteration_bytes(&UNetConfig::ffhq_256(), h, w);
        let gib = 1u64 << 30;
        let photo = TilePlan::choose(3008, 4000, 1, 32, None, 12 * gib, &small);
        assert!(photo.tiles().len() > 1);
        // Every tile fits the budget.
        assert!(small(photo.tile, photo.tile) <= 12 * gib);
        assert!(TilePlan::choose(256, 256, 1, 32, None, 12 * gib, &small).is_whole());
        // 1024² fits whole with the small network but not with the large one, whose tiles
        // are smaller than the small network's would be.
        assert!(TilePlan::choose(1024, 1024, 1, 32, None, 12 * gib, &small).is_whole());
        let big = TilePlan::choose(1024, 1024, 1, 32, None, 12 * gib, &ffhq);
        assert!(!big.is_whole());
        assert!(big.tile < photo.tile);
        assert!(ffhq(big.tile, big.tile) <= 12 * gib);
        assert!(TilePlan::choose(3000, 4000, 1, 1, None, 12 * gib, &classical).is_whole());
        assert!(TilePlan::choose(100, 100, 1, 1, Some(0), 0, &classical).is_whole());
        // A thin strip is measured as the strip, not as a square.
        let strip = TilePlan::choose(64, 4096, 1, 32, None, small(64, 4096), &small);
        assert!(strip.is_whole());
    }
}
