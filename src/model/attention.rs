//! Spatial self-attention (guided-diffusion `AttentionBlock` with `QKVAttention` or
//! `QKVAttentionLegacy`). `qkv` and `proj_out` are 1×1 convolutions over the flattened
//! pixels, stored as conv1d weights `(3C, C, 1)` and `(C, C, 1)`.

use super::norm::GroupNorm32;
use tch::{nn, Kind, Tensor};

#[derive(Debug)]
pub struct AttentionBlock {
    norm: GroupNorm32,
    qkv: nn::Conv1D,
    proj_out: nn::Conv1D,
    heads: i64,
    /// `use_new_attention_order`: split q, k, v before the heads (new) or after (legacy).
    new_order: bool,
}

impl AttentionBlock {
    pub fn new(
        p: &nn::Path,
        channels: i64,
        num_heads: i64,
        num_head_channels: i64,
        new_order: bool,
    ) -> Self {
        let heads = if num_head_channels == -1 {
            num_heads
        } else {
            channels / num_head_channels
        };
        Self {
            norm: GroupNorm32::new(p / "norm", channels),
            qkv: nn::conv1d(p / "qkv", channels, 3 * channels, 1, Default::default()),
            proj_out: nn::conv1d(p / "proj_out", channels, channels, 1, Default::default()),
            heads,
            new_order,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let (b, c) = (size[0], size[1]);
        let x = x.reshape([b, c, -1]);
        let qkv = self.norm.forward(&x).apply(&self.qkv);
        let h = self.attend(&qkv).apply(&self.proj_out);
        (x + h).reshape(size.as_slice())
    }

    /// `qkv` is `(B, 3·H·c, T)`; returns `(B, H·c, T)`.
    fn attend(&self, qkv: &Tensor) -> Tensor {
        let s = qkv.size();
        let (b, width, len) = (s[0], s[1], s[2]);
        let ch = width / (3 * self.heads);
        let (q, k, v) = if self.new_order {
            let parts = qkv.chunk(3, 1);
            let heads = |t: &Tensor| t.reshape([b * self.heads, ch, len]);
            (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]))
        } else {
            let parts = qkv.reshape([b * self.heads, 3 * ch, len]).split(ch, 1);
            (
                parts[0].shallow_clone(),
                parts[1].shallow_clone(),
                parts[2].shallow_clone(),
            )
        };
        // Scaling q and k by ch^(-1/4) each (rather than the product by ch^(-1/2)) is what
        // the reference does; it keeps fp16 products in range.
        let scale = 1.0 / (ch as f64).sqrt().sqrt();
        let weight = Tensor::einsum("bct,bcs->bts", &[q * scale, k * scale], None::<i64>);
        let weight = weight
            .to_kind(Kind::Float)
            .softmax(-1, Kind::Float)
            .to_kind(qkv.kind());
        let a = Tensor::einsum("bts,bcs->bct", &[weight, v], None::<i64>);
        a.reshape([b, -1, len])
    }
}
