//! Adam (Kingma & Ba 2015, Algorithm 1), written out so that its state — the moments and
//! the update count — can be saved with the weights and a resumed run is exact.
//!
//!   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
//!   θ ← θ − lr · m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ).
//!
//! Gradients are first clipped to a global L2 norm (Pascanu et al. 2013), as the
//! guided-diffusion recipe does for its small-batch runs.

use tch::Tensor;

#[derive(Debug)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Updates made with the current moments (the `t` of the bias correction).
    pub t: i64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    /// Fresh moments shaped like `params`.
    pub fn new(params: &[Tensor]) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: params.iter().map(Tensor::zeros_like).collect(),
            v: params.iter().map(Tensor::zeros_like).collect(),
        }
    }

    /// Global L2 norm of the gradients (0 for parameters without one).
    pub fn grad_norm(params: &[Tensor]) -> f64 {
        let mut sq = 0.0;
        for p in params {
            let g = p.grad();
            if g.defined() {
                sq += g.square().sum(tch::Kind::Double).double_value(&[]);
            }
        }
        sq.sqrt()
    }

    /// One update with learning rate `lr`, after scaling the gradients by `scale`
    /// (the clipping factor). Clears the gradients.
    pub fn step(&mut self, params: &mut [Tensor], lr: f64, scale: f64) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        tch::no_grad(|| {
            for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let mut grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let g = &grad * scale;
                let _ = m
                    .g_mul_scalar_(self.beta1)
                    .g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v
                    .g_mul_scalar_(self.beta2)
                    .g_add_(&(g.square() * (1.0 - self.beta2)));
                let denom = (&*v / bc2).sqrt() + self.eps;
                let update = (&*m / bc1) / denom * lr;
                let _ = p.g_sub_(&update);
                let _ = grad.zero_();
            }
        });
    }
}
