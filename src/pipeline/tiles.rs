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

/// Rough peak bytes per output pixel of a restore, used only to decide whether to tile
/// (see docs/protocol.md). Network methods keep activations and one backward graph of the
/// UNet alive (about 3 GiB for a 256² image on the ADM 256 network); `classical` needs a
/// few image-sized buffers.
pub fn bytes_per_pixel(method: &str) -> u64 {
    if super::NETWORK_FREE_METHODS.contains(&method) {
        256
    } else {
        48 << 10
    }
}

impl TilePlan {
    /// `tile`: `None` chooses from the memory budget, `Some(0)` never tiles, `Some(n)` asks
    /// for tiles of `n` pixels. Tiles are multiples of `align` (a multiple of the SR scale
    /// that the network needs) and overlaps multiples of the SR `scale`, so tiles line up
    /// with input pixels. `height` and `width` must be multiples of `align`.
    #[allow(clippy::too_many_arguments)]
    pub fn choose(
        height: i64,
        width: i64,
        scale: i64,
        align: i64,
        method: &str,
        tile: Option<u32>,
        max_memory: u64,
    ) -> TilePlan {
        let whole = TilePlan {
            height,
            width,
            tile: height.max(width),
            overlap: 0,
        };
        let per_px = bytes_per_pixel(method);
        let side = match tile {
            Some(0) => return whole,
            Some(n) => i64::from(n),
            None => {
                let pixels = (height * width) as u64;
                if pixels.saturating_mul(per_px) <= max_memory {
                    return whole;
                }
                // The largest multiple of 64 whose square fits the budget.
                let fit = ((max_memory / per_px) as f64).sqrt() as i64;
                (fit / 64 * 64).max(64)
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

    #[test]
    fn tiles_cover_and_weights_sum_to_positive() {
        let plan = TilePlan::choose(300, 200, 4, 4, "classical", Some(64), 0);
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
        let plan = TilePlan::choose(130, 97, 1, 1, "classical", Some(40), 0);
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
        let plan = TilePlan::choose(3008, 4000, 2, 32, "vml-map", None, 12 << 30);
        assert!(plan.tiles().len() > 1);
        for t in plan.tiles() {
            assert_eq!(
                (t.h % 32, t.w % 32, t.y0 % 2, t.x0 % 2),
                (0, 0, 0, 0),
                "{t:?}"
            );
        }
        let plan = TilePlan::choose(96, 160, 1, 32, "vml-map", Some(40), 0);
        assert!(plan.tiles().iter().all(|t| t.h % 32 == 0 && t.w % 32 == 0));
    }

    #[test]
    fn auto_plan_follows_the_budget() {
        assert!(
            TilePlan::choose(3008, 4000, 1, 32, "vml-map", None, 12 << 30)
                .tiles()
                .len()
                > 1
        );
        assert!(TilePlan::choose(256, 256, 1, 32, "vml-map", None, 12 << 30).is_whole());
        assert!(TilePlan::choose(3000, 4000, 1, 1, "classical", None, 12 << 30).is_whole());
        assert!(TilePlan::choose(100, 100, 1, 1, "classical", Some(0), 0).is_whole());
    }
}
