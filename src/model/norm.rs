//! `GroupNorm32`: 32 groups, computed in float32 whatever the activation dtype, as the
//! reference does (half-precision statistics are too coarse).

use tch::{nn, Kind, Tensor};

#[derive(Debug)]
pub struct GroupNorm32 {
    inner: nn::GroupNorm,
}

impl GroupNorm32 {
    pub fn new(p: nn::Path, channels: i64) -> Self {
        Self {
            inner: nn::group_norm(p, 32, channels, Default::default()),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let y = if kind == Kind::Float {
            x.apply(&self.inner)
        } else {
            let w = self.inner.ws.as_ref().map(|w| w.to_kind(Kind::Float));
            let b = self.inner.bs.as_ref().map(|b| b.to_kind(Kind::Float));
            x.to_kind(Kind::Float)
                .group_norm(32, w.as_ref(), b.as_ref(), 1e-5, false)
        };
        y.to_kind(kind)
    }
}
