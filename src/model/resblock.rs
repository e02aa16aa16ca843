//! Residual block with timestep conditioning (guided-diffusion `ResBlock`), and the plain
//! `Downsample`/`Upsample` layers. Field names are the checkpoint key segments.

use super::norm::GroupNorm32;
use tch::{nn, nn::Module, Tensor};

/// Optional 2× resampling inside a residual block (`resblock_updown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    None,
    Up,
    Down,
}

fn conv3(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 3, cfg)
}

fn nearest_up(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], Some(2.0), Some(2.0))
}

fn avg_down(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
}

#[derive(Debug)]
pub struct ResBlock {
    /// `in_layers.0` norm, `in_layers.2` conv (1 is SiLU).
    in_norm: GroupNorm32,
    in_conv: nn::Conv2D,
    /// `emb_layers.1` (0 is SiLU).
    emb_linear: nn::Linear,
    /// `out_layers.0` norm, `out_layers.3` conv (1 SiLU, 2 dropout).
    out_norm: GroupNorm32,
    out_conv: nn::Conv2D,
    /// `skip_connection`: a 1×1 conv when the channel count changes.
    skip: Option<nn::Conv2D>,
    resample: Resample,
    scale_shift: bool,
    dropout: f64,
}

impl ResBlock {
    pub fn new(
        p: &nn::Path,
        channels: i64,
        emb_channels: i64,
        out_channels: i64,
        scale_shift: bool,
        resample: Resample,
        dropout: f64,
    ) -> Self {
        let in_layers = p / "in_layers";
        let out_layers = p / "out_layers";
        let emb_out = if scale_shift {
            2 * out_channels
        } else {
            out_channels
        };
        let skip = (out_channels != channels).then(|| {
            nn::conv2d(
                p / "skip_connection",
                channels,
                out_channels,
                1,
                Default::default(),
            )
        });
        Self {
            in_norm: GroupNorm32::new(&in_layers / 0, channels),
            in_conv: conv3(&in_layers / 2, channels, out_channels, 1),
            emb_linear: nn::linear(
                p / "emb_layers" / 1,
                emb_channels,
                emb_out,
                Default::default(),
            ),
            out_norm: GroupNorm32::new(&out_layers / 0, out_channels),
            out_conv: conv3(&out_layers / 3, out_channels, out_channels, 1),
            skip,
            resample,
            scale_shift,
            dropout,
        }
    }

    pub fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Tensor {
        // 1. Norm and activation, then resample both paths before the conv (the reference
        //    does it in this order so the conv runs at the new resolution).
        let h = self.in_norm.forward(x).silu();
        let (h, x) = match self.resample {
            Resample::None => (h, x.shallow_clone()),
            Resample::Up => (nearest_up(&h), nearest_up(x)),
            Resample::Down => (avg_down(&h), avg_down(x)),
        };
        let h = h.apply(&self.in_conv);
        // 2. Timestep conditioning, broadcast over the spatial dimensions.
        let e = emb
            .silu()
            .apply(&self.emb_linear)
            .to_kind(h.kind())
            .unsqueeze(-1)
            .unsqueeze(-1);
        let h = if self.scale_shift {
            let parts = e.chunk(2, 1);
            self.out_norm.forward(&h) * (parts[0].shallow_clone() + 1.0) + &parts[1]
        } else {
            self.out_norm.forward(&(h + e))
        };
        // 3. Output conv and the skip path.
        let h = h.silu().dropout(self.dropout, train).apply(&self.out_conv);
        match &self.skip {
            Some(conv) => x.apply(conv) + h,
            None => x + h,
        }
    }
}

/// 2× down-sampling without a residual block: a strided conv (`op`) or average pooling.
#[derive(Debug)]
pub struct Downsample {
    op: Option<nn::Conv2D>,
}

impl Downsample {
    pub fn new(p: &nn::Path, channels: i64, out_channels: i64, use_conv: bool) -> Self {
        Self {
            op: use_conv.then(|| conv3(p / "op", channels, out_channels, 2)),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match &self.op {
            Some(conv) => x.apply(conv),
            None => avg_down(x),
        }
    }
}

/// 2× nearest up-sampling, optionally followed by a 3×3 conv (`conv`).
#[derive(Debug)]
pub struct Upsample {
    conv: Option<nn::Conv2D>,
}

impl Upsample {
    pub fn new(p: &nn::Path, channels: i64, out_channels: i64, use_conv: bool) -> Self {
        Self {
            conv: use_conv.then(|| conv3(p / "conv", channels, out_channels, 1)),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = nearest_up(x);
        match &self.conv {
            Some(conv) => conv.forward(&h),
            None => h,
        }
    }
}
