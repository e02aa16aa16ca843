//! Circular (periodic-boundary) 2-D convolution with any kernel, and its real SVD.
//!
//! `H x = F⁻¹(k̂ ⊙ F x)` per channel, with `k̂` the DFT of the kernel placed with its centre
//! tap `(⌊kh/2⌋, ⌊kw/2⌋)` at the origin. `Hᵀ` multiplies by `conj(k̂)`, `H⁺` by
//! `conj(k̂)/|k̂|²` (0 below the tolerance).
//!
//! Real SVD. For real images the orthonormal DFT `x̂` satisfies `x̂(−ω) = conj(x̂(ω))`. The
//! real Fourier basis takes, for each self-conjugate frequency (`ω ≡ −ω`: rows 0 and H/2,
//! columns 0 and W/2), the real number `x̂(ω)`, and for each pair `{ω, −ω}` the two numbers
//! `√2 Re x̂(ω)`, `√2 Im x̂(ω)`: an orthonormal change of basis (Parseval). On a pair, `H`
//! multiplies `x̂(ω)` by `|k̂| e^{iφ}`, i.e. scales by `|k̂|` and rotates by `φ`; on a
//! self-conjugate frequency `k̂` is real. So `V` = the real Fourier basis, `Σ = |k̂|` and
//! `U = V` with each pair rotated by `φ` (each self-conjugate entry signed by `k̂`).
//!
//! Computed with `rfft2`: its half-spectrum holds one representative of every pair, except
//! in the columns 0 and W/2 (W even), which hold both `(r, c)` and `(−r, c)`; there the
//! representatives are rows `0 < r < H/2`, and `v`/`u` write the conjugate partner back
//! before `irfft2`, so the inverse transform sees an exactly Hermitian spectrum.

use super::{pinv_diag, Host, Indices, Operator, OperatorError, Svd};
use std::f64::consts::SQRT_2;
use tch::{Kind, Tensor};

pub struct Circular {
    name: String,
    shape: [i64; 3],
    /// `(H, W/2+1, 2)` real and imaginary parts of `k̂`, of `e^{iφ}` and of `k̂⁺`.
    khat: Host,
    khat_conj: Host,
    phase: Host,
    khat_pinv: Host,
    /// Offsets into the flattened `(H, W/2+1, 2)` real view of a half-spectrum.
    sc_re: Indices,
    rep_re: Indices,
    rep_im: Indices,
    /// Conjugate partners in columns 0 and W/2: targets and their source in the rep list.
    partner_re: Indices,
    partner_im: Indices,
    partner_src: Indices,
    /// Singular values of one channel, in coefficient order.
    s: Vec<f64>,
}

impl Circular {
    /// `kernel` is `kh×kw` row-major; the caller checks it fits in the image.
    pub fn new(
        name: String,
        shape: [i64; 3],
        kernel: &[f64],
        kh: i64,
        kw: i64,
    ) -> Result<Self, OperatorError> {
        let [_, h, w] = shape;
        if kh > h || kw > w || kernel.len() as i64 != kh * kw {
            return Err(OperatorError::Invalid(format!(
                "kernel {kw}×{kh} does not fit the image {w}×{h}"
            )));
        }
        let wp = w / 2 + 1;
        // 1. The kernel on the periodic grid, centre tap at the origin.
        let mut grid = vec![0f64; (h * w) as usize];
        let (ch, cw) = (kh / 2, kw / 2);
        for a in 0..kh {
            for b in 0..kw {
                let i = (a - ch).rem_euclid(h);
                let j = (b - cw).rem_euclid(w);
                grid[(i * w + j) as usize] += kernel[(a * kw + b) as usize];
            }
        }
        let khat = Tensor::from_slice(&grid).reshape([h, w]).fft_rfft2(
            [h, w].as_slice(),
            [0, 1].as_slice(),
            "backward",
        );
        let khat = Host::from_tensor(&khat.view_as_real())?;
        let khat_conj = Host::new(
            khat.data().chunks(2).flat_map(|p| [p[0], -p[1]]).collect(),
            &[h, wp, 2],
        );

        // 2. Which half-spectrum entries are self-conjugate, which represent a pair, and
        //    where the partners of representatives in the self-paired columns live.
        let self_col = |c: i64| c == 0 || (w % 2 == 0 && c == w / 2);
        let self_row = |r: i64| r == 0 || (h % 2 == 0 && r == h / 2);
        let (mut sc, mut rep, mut partner, mut partner_src) = (vec![], vec![], vec![], vec![]);
        for r in 0..h {
            for c in 0..wp {
                let g = r * wp + c;
                if self_col(c) {
                    if self_row(r) {
                        sc.push(g);
                    } else if r < h - r {
                        partner_src.push(rep.len() as i64);
                        partner.push((h - r) * wp + c);
                        rep.push(g);
                    }
                } else {
                    rep.push(g);
                }
            }
        }
        debug_assert_eq!(sc.len() + 2 * rep.len(), (h * w) as usize);

        // 3. Magnitude, phase (exactly ±1 on self-conjugate entries) and pseudo-inverse.
        let kd = khat.data();
        let n_half = (h * wp) as usize;
        let mag: Vec<f64> = (0..n_half)
            .map(|g| kd[2 * g].hypot(kd[2 * g + 1]))
            .collect();
        let mut phase = vec![0f64; 2 * n_half];
        for g in 0..n_half {
            if mag[g] > 0.0 {
                phase[2 * g] = kd[2 * g] / mag[g];
                phase[2 * g + 1] = kd[2 * g + 1] / mag[g];
            } else {
                phase[2 * g] = 1.0;
            }
        }
        for &g in &sc {
            let g = g as usize;
            phase[2 * g] = if kd[2 * g] < 0.0 { -1.0 } else { 1.0 };
            phase[2 * g + 1] = 0.0;
        }
        let inv = pinv_diag(&mag);
        let mut khat_pinv = vec![0f64; 2 * n_half];
        for g in 0..n_half {
            // conj(k̂)/|k̂|² = conj(phase)/|k̂|.
            khat_pinv[2 * g] = phase[2 * g] * inv[g];
            khat_pinv[2 * g + 1] = -phase[2 * g + 1] * inv[g];
        }
        let s: Vec<f64> = sc
            .iter()
            .chain(rep.iter())
            .chain(rep.iter())
            .map(|&g| mag[g as usize])
            .collect();
        let re = |v: &[i64]| Indices::new(v.iter().map(|g| 2 * g).collect());
        let im = |v: &[i64]| Indices::new(v.iter().map(|g| 2 * g + 1).collect());
        Ok(Circular {
            name: format!("{name} {w}×{h} (periodic)"),
            shape,
            khat,
            khat_conj,
            phase: Host::new(phase, &[h, wp, 2]),
            khat_pinv: Host::new(khat_pinv, &[h, wp, 2]),
            sc_re: re(&sc),
            rep_re: re(&rep),
            rep_im: im(&rep),
            partner_re: re(&partner),
            partner_im: im(&partner),
            partner_src: Indices::new(partner_src),
            s,
        })
    }

    fn wp(&self) -> i64 {
        self.shape[2] / 2 + 1
    }

    /// Multiplies the spectrum of `x` by the complex table `t` and transforms back.
    fn filter(&self, x: &Tensor, t: &Host) -> Tensor {
        let [_, h, w] = self.shape;
        let f = x.fft_rfft2([h, w].as_slice(), [-2, -1].as_slice(), "backward");
        let t = t.like(&real_kind(x)).view_as_complex();
        (f * t).fft_irfft2([h, w].as_slice(), [-2, -1].as_slice(), "backward")
    }

    /// Real Fourier coefficients of an orthonormal half-spectrum `(N, C, H, W/2+1)`.
    fn coefficients(&self, f: &Tensor) -> Tensor {
        let [c, h, w] = self.shape;
        let n = f.size()[0];
        let r = f.view_as_real().reshape([n, c, -1]);
        let sc = r.index_select(2, &self.sc_re.on(&r));
        let re = r.index_select(2, &self.rep_re.on(&r)) * SQRT_2;
        let im = r.index_select(2, &self.rep_im.on(&r)) * SQRT_2;
        Tensor::cat(&[sc, re, im], 2).reshape([n, c * h * w])
    }

    /// The Hermitian half-spectrum `(N, C, H, W/2+1)` whose coefficients are `coef`.
    fn spectrum(&self, coef: &Tensor) -> Tensor {
        let [c, h, _] = self.shape;
        let n = coef.size()[0];
        let coef = coef.reshape([n, c, -1]);
        let (nsc, nrep) = (self.sc_re.len(), self.rep_re.len());
        let sc = coef.narrow(2, 0, nsc);
        let re = coef.narrow(2, nsc, nrep) / SQRT_2;
        let im = coef.narrow(2, nsc + nrep, nrep) / SQRT_2;
        let src = self.partner_src.on(&coef);
        let z = Tensor::zeros([n, c, h * self.wp() * 2], (coef.kind(), coef.device()))
            .index_copy(2, &self.sc_re.on(&coef), &sc)
            .index_copy(2, &self.rep_re.on(&coef), &re)
            .index_copy(2, &self.rep_im.on(&coef), &im)
            .index_copy(2, &self.partner_re.on(&coef), &re.index_select(2, &src))
            .index_copy(2, &self.partner_im.on(&coef), &(-im.index_select(2, &src)));
        z.reshape([n, c, h, self.wp(), 2]).view_as_complex()
    }

    fn image_of_spectrum(&self, f: &Tensor) -> Tensor {
        let [_, h, w] = self.shape;
        f.fft_irfft2([h, w].as_slice(), [-2, -1].as_slice(), "ortho")
    }

    /// The kernel's DFT `(H, W/2+1)` as a complex f64 tensor on the CPU.
    pub fn kernel_spectrum(&self) -> Tensor {
        self.khat.tensor().view_as_complex()
    }
}

/// A real tensor of the same precision as `x` (complex inputs map to their real kind).
fn real_kind(x: &Tensor) -> Tensor {
    match x.kind() {
        Kind::ComplexDouble | Kind::Double => Tensor::zeros([0], (Kind::Double, x.device())),
        _ => Tensor::zeros([0], (Kind::Float, x.device())),
    }
}

impl Operator for Circular {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn x_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn y_shape(&self) -> [i64; 3] {
        self.shape
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.filter(x, &self.khat)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.filter(y, &self.khat_conj)
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        self.filter(y, &self.khat_pinv)
    }
    fn svd(&self) -> Option<&dyn Svd> {
        Some(self)
    }
}

impl Svd for Circular {
    fn vt(&self, x: &Tensor) -> Tensor {
        let [_, h, w] = self.shape;
        self.coefficients(&x.fft_rfft2([h, w].as_slice(), [-2, -1].as_slice(), "ortho"))
    }
    fn v(&self, c: &Tensor) -> Tensor {
        self.image_of_spectrum(&self.spectrum(c))
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        let [_, h, w] = self.shape;
        let f = y.fft_rfft2([h, w].as_slice(), [-2, -1].as_slice(), "ortho");
        let p = self.phase.like(&real_kind(y)).view_as_complex().conj();
        self.coefficients(&(f * p))
    }
    fn u(&self, c: &Tensor) -> Tensor {
        let p = self.phase.like(&real_kind(c)).view_as_complex();
        self.image_of_spectrum(&(self.spectrum(c) * p))
    }
    fn singular_values(&self) -> Tensor {
        Tensor::from_slice(&self.s).repeat([self.shape[0]])
    }
}
