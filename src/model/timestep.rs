//! Sinusoidal timestep embedding (guided-diffusion `timestep_embedding`, max period 10⁴).
//!
//! Timesteps are real-valued: the VE denoiser interpolates `t` between table entries.

use tch::{Kind, Tensor};

/// `[cos(t·f_k), sin(t·f_k)]` with `f_k = 10000^(−k/half)`, `k < half = dim/2`; a zero
/// column is appended for odd `dim`. `t` is `(N,)`; the result `(N, dim)` float32.
pub fn timestep_embedding(t: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let device = t.device();
    let k = Tensor::arange(half, (Kind::Float, device));
    let freqs = (k * (-(10000f64.ln()) / half as f64)).exp();
    let args = t.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    let emb = Tensor::cat(&[args.cos(), args.sin()], -1);
    if dim % 2 == 1 {
        let zeros = Tensor::zeros([emb.size()[0], 1], (Kind::Float, device));
        Tensor::cat(&[emb, zeros], -1)
    } else {
        emb
    }
}
