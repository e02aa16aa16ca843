//! Colorization: `y = (R + G + B)/3` per pixel, `(N, 3, H, W)` → `(N, 1, H, W)`.
//!
//! Per pixel `H = ⅓[1 1 1]` has the single singular value `1/√3` with right vector
//! `[1 1 1]/√3`; `[1 −1 0]/√2` and `[1 1 −2]/√6` complete an orthonormal basis (the null
//! space, colour). `U = 1`. The coefficients are the three planes, luminance first.
//! `H⁺ y = y` copied to the three channels.

use super::{check_shape, Operator, OperatorError, Svd};
use tch::{Kind, Tensor};

pub struct Colorize {
    shape: [i64; 3],
}

impl Colorize {
    pub fn new(shape: [i64; 3]) -> Result<Self, OperatorError> {
        check_shape(shape)?;
        if shape[0] != 3 {
            return Err(OperatorError::Invalid(format!(
                "colorization restores 3 channels, the image shape has {}",
                shape[0]
            )));
        }
        Ok(Colorize { shape })
    }

    /// Rows: the orthonormal basis `v₁, v₂, v₃`.
    fn basis(like: &Tensor) -> Tensor {
        let (a, b, c) = (1.0 / 3f64.sqrt(), 1.0 / 2f64.sqrt(), 1.0 / 6f64.sqrt());
        Tensor::from_slice(&[a, a, a, b, -b, 0.0, c, c, -2.0 * c])
            .reshape([3, 3])
            .to_device(like.device())
            .to_kind(like.kind())
    }
}

impl Operator for Colorize {
    fn name(&self) -> String {
        format!("colorize {}×{}", self.shape[2], self.shape[1])
    }
    fn x_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn y_shape(&self) -> [i64; 3] {
        [1, self.shape[1], self.shape[2]]
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        x.mean_dim(1, true, x.kind())
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        (y / 3.0).repeat([1, 3, 1, 1])
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        y.repeat([1, 3, 1, 1])
    }
    fn svd(&self) -> Option<&dyn Svd> {
        Some(self)
    }
    fn classical(&self, _y: &Tensor, _sigma_y: f64) -> super::classical::Estimate {
        super::classical::Estimate::PseudoInverse
    }
}

impl Svd for Colorize {
    fn vt(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        Colorize::basis(x)
            .matmul(&x.reshape([n, 3, -1]))
            .reshape([n, -1])
    }
    fn v(&self, c: &Tensor) -> Tensor {
        let n = c.size()[0];
        let [_, h, w] = self.shape;
        Colorize::basis(c)
            .tr()
            .matmul(&c.reshape([n, 3, -1]))
            .reshape([n, 3, h, w])
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        y.reshape([y.size()[0], -1])
    }
    fn u(&self, c: &Tensor) -> Tensor {
        let [_, h, w] = self.shape;
        c.reshape([c.size()[0], 1, h, w])
    }
    fn singular_values(&self) -> Tensor {
        Tensor::full(
            [self.shape[1] * self.shape[2]],
            1.0 / 3f64.sqrt(),
            (Kind::Double, tch::Device::Cpu),
        )
    }
}
