//! Separable operators `H x = A_h X A_wᵀ` per channel (block-mean and bicubic
//! down-sampling, Gaussian and uniform blur), with `A_h: H'×H`, `A_w: W'×W`, `H' ≤ H`.
//!
//! SVD by the Kronecker rule: with `A_h = U_h S_h V_hᵀ` and `A_w = U_w S_w V_wᵀ` (full
//! `V`s, from LibTorch at build time), `H = (U_h ⊗ U_w)(S_h ⊗ S_w)(V_h ⊗ V_w)ᵀ`. The
//! spectral coefficients of an image are the grid `G = V_hᵀ X V_w` (`H×W` per channel);
//! the `H'×W'` corner pairs with the singular values `s_h[i]·s_w[j]` and comes first, the
//! rest of the grid (null space) follows.

use super::{pinv_diag, Host, Operator, OperatorError, Svd};
use std::sync::OnceLock;
use tch::Tensor;

pub struct Separable {
    name: String,
    shape: [i64; 3],
    out: [i64; 2],
    a_h: Host,
    a_w: Host,
    /// Computed on first use: the SVD of a 1024-pixel axis takes seconds, and forward /
    /// adjoint (Wiener, DPS, plain VML-MAP) never need it.
    svd: OnceLock<Result<Factors, String>>,
}

/// The Kronecker SVD pieces.
struct Factors {
    shape: [i64; 3],
    out: [i64; 2],
    u_h: Host,
    u_w: Host,
    /// `V_hᵀ` (`H×H`) and `V_wᵀ` (`W×W`).
    vt_h: Host,
    vt_w: Host,
    /// `s_h ⊗ s_w`, `(H', W')`, and its pseudo-inverse.
    s: Host,
    s_inv: Host,
}

impl Separable {
    /// `a_h` is `H'×H` and `a_w` is `W'×W` for images `shape = (C, H, W)`.
    pub fn new(
        name: String,
        shape: [i64; 3],
        a_h: &Tensor,
        a_w: &Tensor,
    ) -> Result<Self, OperatorError> {
        let [_, h, w] = shape;
        let (sh, sw) = (a_h.size(), a_w.size());
        if sh.len() != 2
            || sw.len() != 2
            || sh[1] != h
            || sw[1] != w
            || sh[0] > h
            || sw[0] > w
            || sh[0] < 1
            || sw[0] < 1
        {
            return Err(OperatorError::Invalid(format!(
                "separable factors {sh:?} and {sw:?} do not fit images {w}×{h}"
            )));
        }
        let a_h = Host::from_tensor(a_h)?;
        let a_w = Host::from_tensor(a_w)?;
        if a_h.data().iter().chain(a_w.data()).any(|v| !v.is_finite()) {
            return Err(OperatorError::Invalid(
                "separable factors have NaN or infinite entries".into(),
            ));
        }
        Ok(Separable {
            name,
            shape,
            out: [sh[0], sw[0]],
            a_h,
            a_w,
            svd: OnceLock::new(),
        })
    }

    /// `A_h` (`H'×H`) and `A_w` (`W'×W`) in the kind and on the device of `like`.
    pub fn factors(&self, like: &Tensor) -> (Tensor, Tensor) {
        (self.a_h.like(like), self.a_w.like(like))
    }

    /// The SVD pieces, computed once.
    fn decomposed(&self) -> Result<&Factors, &str> {
        self.svd
            .get_or_init(|| Factors::new(self).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| e.as_str())
    }
}

impl Factors {
    fn new(op: &Separable) -> Result<Self, OperatorError> {
        let (u_h, s_h, v_h) = full_svd(&op.a_h.tensor())?;
        // Square images with one factor for both axes (blur, SR): decompose it once.
        let (u_w, s_w, v_w) = if op.a_h.data() == op.a_w.data() && op.out[0] == op.out[1] {
            (
                u_h.shallow_clone(),
                s_h.shallow_clone(),
                v_h.shallow_clone(),
            )
        } else {
            full_svd(&op.a_w.tensor())?
        };
        let s = Host::from_tensor(&(s_h.unsqueeze(1) * s_w.unsqueeze(0)))?;
        let s_inv = Host::new(pinv_diag(s.data()), &op.out);
        Ok(Factors {
            shape: op.shape,
            out: op.out,
            u_h: Host::from_tensor(&u_h)?,
            u_w: Host::from_tensor(&u_w)?,
            vt_h: Host::from_tensor(&v_h.tr())?,
            vt_w: Host::from_tensor(&v_w.tr())?,
            s,
            s_inv,
        })
    }
}

/// `A = U diag(S) Vᵀ` with square `U` and `V`. `Tensor::svd` rather than `linalg_svd`:
/// the latter's string `driver` argument cannot express "none" through tch.
fn full_svd(a: &Tensor) -> Result<(Tensor, Tensor, Tensor), OperatorError> {
    a.f_svd(false, true)
        .map_err(|e| OperatorError::Invalid(format!("SVD failed: {e}")))
}

impl Operator for Separable {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn x_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn y_shape(&self) -> [i64; 3] {
        [self.shape[0], self.out[0], self.out[1]]
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.a_h.like(x).matmul(x).matmul(&self.a_w.like(x).tr())
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.a_h.like(y).tr().matmul(y).matmul(&self.a_w.like(y))
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        match self.decomposed() {
            Ok(f) => f.pinv(y),
            Err(e) => {
                // Not reachable for the finite factors `new` accepts; no panic regardless.
                log::error!("{}: no SVD ({e}); H⁺ y replaced by Hᵀ y", self.name);
                self.adjoint(y)
            }
        }
    }
    fn svd(&self) -> Option<&dyn Svd> {
        self.decomposed().ok().map(|f| f as &dyn Svd)
    }
    /// Super-resolution (a smaller image, by one whole factor in both directions): bicubic
    /// interpolation; a blur: the Wiener filter.
    fn classical(&self, _y: &Tensor, sigma_y: f64) -> super::classical::Estimate {
        let [c, h, w] = self.x_shape();
        let [yc, yh, yw] = self.y_shape();
        if yc == c && (yh, yw) != (h, w) && h % yh == 0 && w % yw == 0 && h / yh == w / yw {
            super::classical::Estimate::Bicubic
        } else {
            super::classical::Estimate::Wiener { sigma: sigma_y }
        }
    }
}

impl Factors {
    fn pinv(&self, y: &Tensor) -> Tensor {
        let [hp, wp] = self.out;
        let z = self.u_h.like(y).tr().matmul(y).matmul(&self.u_w.like(y)) * self.s_inv.like(y);
        let vt_h = self.vt_h.like(y).narrow(0, 0, hp);
        let vt_w = self.vt_w.like(y).narrow(0, 0, wp);
        vt_h.tr().matmul(&z).matmul(&vt_w)
    }
}

impl Svd for Factors {
    fn vt(&self, x: &Tensor) -> Tensor {
        let [c, h, w] = self.shape;
        let [hp, wp] = self.out;
        let n = x.size()[0];
        let g = self.vt_h.like(x).matmul(x).matmul(&self.vt_w.like(x).tr());
        let top = g.narrow(2, 0, hp);
        let corner = top.narrow(3, 0, wp).reshape([n, c * hp * wp]);
        let right = top.narrow(3, wp, w - wp).reshape([n, c * hp * (w - wp)]);
        let bottom = g.narrow(2, hp, h - hp).reshape([n, c * (h - hp) * w]);
        Tensor::cat(&[corner, right, bottom], 1)
    }
    fn v(&self, coef: &Tensor) -> Tensor {
        let [c, h, w] = self.shape;
        let [hp, wp] = self.out;
        let n = coef.size()[0];
        let (a, b) = (c * hp * wp, c * hp * (w - wp));
        let corner = coef.narrow(1, 0, a).reshape([n, c, hp, wp]);
        let right = coef.narrow(1, a, b).reshape([n, c, hp, w - wp]);
        let bottom = coef
            .narrow(1, a + b, c * (h - hp) * w)
            .reshape([n, c, h - hp, w]);
        let g = Tensor::cat(&[Tensor::cat(&[corner, right], 3), bottom], 2);
        self.vt_h
            .like(coef)
            .tr()
            .matmul(&g)
            .matmul(&self.vt_w.like(coef))
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        let n = y.size()[0];
        self.u_h
            .like(y)
            .tr()
            .matmul(y)
            .matmul(&self.u_w.like(y))
            .reshape([n, -1])
    }
    fn u(&self, coef: &Tensor) -> Tensor {
        let [c, _, _] = self.shape;
        let [hp, wp] = self.out;
        let z = coef.reshape([coef.size()[0], c, hp, wp]);
        self.u_h
            .like(coef)
            .matmul(&z)
            .matmul(&self.u_w.like(coef).tr())
    }
    fn singular_values(&self) -> Tensor {
        self.s
            .tensor()
            .reshape([1, -1])
            .repeat([self.shape[0], 1])
            .reshape([-1])
    }
}

/// Folds an index onto `0..n` by half-sample symmetric reflection (`-1 → 0`, `n → n-1`),
/// with period `2n` so any offset is valid: the boundary rule of every separable matrix.
pub(crate) fn reflect(j: i64, n: i64) -> usize {
    let p = 2 * n;
    let m = j.rem_euclid(p);
    (if m < n { m } else { p - 1 - m }) as usize
}

/// The `n×n` matrix of `y[i] = Σ_t k[t] x[i + t - centre]` under `reflect`.
pub(crate) fn conv_matrix(kernel: &[f64], centre: i64, n: i64) -> Tensor {
    let mut a = vec![0f64; (n * n) as usize];
    for i in 0..n {
        for (t, &k) in kernel.iter().enumerate() {
            let j = reflect(i + t as i64 - centre, n);
            a[(i * n) as usize + j] += k;
        }
    }
    Tensor::from_slice(&a).reshape([n, n])
}
