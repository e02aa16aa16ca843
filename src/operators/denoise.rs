//! Denoising: `H = I` (the noise is the measurement noise σ); `U = V = I`, `Σ = 1`.

use super::{check_shape, Operator, OperatorError, Svd};
use tch::{Kind, Tensor};

pub struct Denoise {
    shape: [i64; 3],
    sigma: f64,
}

impl Denoise {
    /// `sigma` is the noise level of the task (in (0, 1], the [-1, 1] pixel scale; `Task::validate`).
    pub fn new(shape: [i64; 3], sigma: f64) -> Result<Self, OperatorError> {
        check_shape(shape)?;
        crate::task::Task::Denoise { sigma }.validate()?;
        Ok(Denoise { shape, sigma })
    }

    /// The task's noise standard deviation.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl Operator for Denoise {
    fn name(&self) -> String {
        format!(
            "denoise σ={} {}×{}",
            self.sigma, self.shape[2], self.shape[1]
        )
    }
    fn x_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn y_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        y.shallow_clone()
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        y.shallow_clone()
    }
    fn svd(&self) -> Option<&dyn Svd> {
        Some(self)
    }
    fn classical(&self, _y: &Tensor, sigma_y: f64) -> super::classical::Estimate {
        super::classical::Estimate::Wiener {
            sigma: self.sigma().max(sigma_y),
        }
    }
    fn own_noise(&self) -> f64 {
        self.sigma()
    }
}

impl Svd for Denoise {
    fn vt(&self, x: &Tensor) -> Tensor {
        x.reshape([x.size()[0], -1])
    }
    fn v(&self, c: &Tensor) -> Tensor {
        let [ch, h, w] = self.shape;
        c.reshape([c.size()[0], ch, h, w])
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        self.vt(y)
    }
    fn u(&self, c: &Tensor) -> Tensor {
        self.v(c)
    }
    fn singular_values(&self) -> Tensor {
        Tensor::ones(
            [self.shape.iter().product::<i64>()],
            (Kind::Double, tch::Device::Cpu),
        )
    }
}
