//! Small dense operators for the closed-form tests: `H` as an explicit `M × D` matrix with its
//! SVD from LibTorch, so the tests do not depend on the production operators' code paths.
#![allow(dead_code)]

use tch::{Device, Kind, Tensor};
use vml::operators::{Operator, Svd};

/// A matrix kept as plain data (operators must be `Sync`, tensors are not).
struct Mat {
    data: Vec<f32>,
    shape: Vec<i64>,
}

impl Mat {
    fn new(t: &Tensor) -> Self {
        let t = t.to_kind(Kind::Float).contiguous();
        let shape = t.size();
        let data = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        Mat { data, shape }
    }
    fn t(&self) -> Tensor {
        Tensor::from_slice(&self.data).reshape(self.shape.as_slice())
    }
    /// On the device and in the kind of `like`: operators compute where and in the precision
    /// their argument is, as the production ones do.
    fn on(&self, like: &Tensor) -> Tensor {
        self.t().to_device(like.device()).to_kind(like.kind())
    }
}

pub struct Dense {
    name: String,
    x_shape: [i64; 3],
    y_shape: [i64; 3],
    h: Mat,
    pinv: Mat,
    u: Mat,
    s: Mat,
    vh: Mat,
}

impl Dense {
    pub fn new(name: &str, x_shape: [i64; 3], y_shape: [i64; 3], h: Tensor) -> Self {
        let h = h.to_kind(Kind::Double);
        let (u, s, v) = h.svd(false, true);
        let pinv = h.linalg_pinv(1e-6, false);
        let f = |t: &Tensor| Mat::new(t);
        Dense {
            name: name.into(),
            x_shape,
            y_shape,
            h: f(&h),
            pinv: f(&pinv),
            u: f(&u),
            s: f(&s),
            vh: f(&v.tr()),
        }
    }

    fn flat(t: &Tensor) -> Tensor {
        let n = t.size()[0];
        t.reshape([n, -1])
    }

    fn img(t: &Tensor, shape: [i64; 3]) -> Tensor {
        let n = t.size()[0];
        t.reshape([n, shape[0], shape[1], shape[2]])
    }
}

impl Operator for Dense {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn x_shape(&self) -> [i64; 3] {
        self.x_shape
    }
    fn y_shape(&self) -> [i64; 3] {
        self.y_shape
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        Self::img(&Self::flat(x).matmul(&self.h.on(x).tr()), self.y_shape)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        Self::img(&Self::flat(y).matmul(&self.h.on(y)), self.x_shape)
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        Self::img(&Self::flat(y).matmul(&self.pinv.on(y).tr()), self.x_shape)
    }
    fn svd(&self) -> Option<&dyn Svd> {
        Some(self)
    }
}

impl Svd for Dense {
    fn vt(&self, x: &Tensor) -> Tensor {
        Self::flat(x).matmul(&self.vh.on(x).tr())
    }
    fn v(&self, c: &Tensor) -> Tensor {
        Self::img(&c.matmul(&self.vh.on(c)), self.x_shape)
    }
    fn ut(&self, y: &Tensor) -> Tensor {
        Self::flat(y).matmul(&self.u.on(y))
    }
    fn u(&self, c: &Tensor) -> Tensor {
        Self::img(&c.matmul(&self.u.on(c).tr()), self.y_shape)
    }
    fn singular_values(&self) -> Tensor {
        self.s.t()
    }
}

/// Pixel index in a `(C, H, W)` image.
fn idx(shape: [i64; 3], c: i64, i: i64, j: i64) -> i64 {
    (c * shape[1] + i) * shape[2] + j
}

/// Inpainting: keep every pixel outside the box `rows × cols`; the measurement is image-shaped
/// with zeros in the box.
pub fn inpaint_box(
    shape: [i64; 3],
    rows: std::ops::Range<i64>,
    cols: std::ops::Range<i64>,
) -> Dense {
    let d = shape.iter().product::<i64>();
    let mut keep = vec![1.0f64; d as usize];
    for c in 0..shape[0] {
        for i in rows.clone() {
            for j in cols.clone() {
                keep[idx(shape, c, i, j) as usize] = 0.0;
            }
        }
    }
    let h = Tensor::from_slice(&keep).diag(0);
    Dense::new("inpaint-box", shape, shape, h)
}

/// Super-resolution: mean of each `s × s` block.
pub fn sr_avgpool(shape: [i64; 3], s: i64) -> Dense {
    let [c, hh, ww] = shape;
    let ys = [c, hh / s, ww / s];
    let d = shape.iter().product::<i64>();
    let m = ys.iter().product::<i64>();
    let mut h = vec![0.0f64; (m * d) as usize];
    for k in 0..c {
        for i in 0..hh {
            for j in 0..ww {
                let r = idx(ys, k, i / s, j / s);
                h[(r * d + idx(shape, k, i, j)) as usize] = 1.0 / (s * s) as f64;
            }
        }
    }
    Dense::new(
        &format!("sr{s}"),
        shape,
        ys,
        Tensor::from_slice(&h).reshape([m, d]),
    )
}

/// Circular Gaussian blur with standard deviation `sigma` pixels (kernel radius 2).
pub fn blur_gaussian(shape: [i64; 3], sigma: f64) -> Dense {
    let r = 2i64;
    let mut k = Vec::new();
    for di in -r..=r {
        for dj in -r..=r {
            k.push((
                di,
                dj,
                (-((di * di + dj * dj) as f64) / (2.0 * sigma * sigma)).exp(),
            ));
        }
    }
    blur(shape, &k, "blur-gaussian")
}

/// Circular 2×2 box blur: its frequency response vanishes at the Nyquist frequency, so `H`
/// has a null space and its other singular values are not tiny.
pub fn blur_box2(shape: [i64; 3]) -> Dense {
    let k: Vec<(i64, i64, f64)> = vec![(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0)];
    blur(shape, &k, "blur-box2")
}

fn blur(shape: [i64; 3], k: &[(i64, i64, f64)], name: &str) -> Dense {
    let [c, hh, ww] = shape;
    let d = shape.iter().product::<i64>();
    let total: f64 = k.iter().map(|t| t.2).sum();
    let mut h = vec![0.0f64; (d * d) as usize];
    for ch in 0..c {
        for i in 0..hh {
            for j in 0..ww {
                let row = idx(shape, ch, i, j);
                for &(di, dj, w) in k {
                    let col = idx(shape, ch, (i + di).rem_euclid(hh), (j + dj).rem_euclid(ww));
                    h[(row * d + col) as usize] += w / total;
                }
            }
        }
    }
    Dense::new(name, shape, shape, Tensor::from_slice(&h).reshape([d, d]))
}

pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let num = (a - b).norm().double_value(&[]);
    let den = b.norm().double_value(&[]);
    num / den
}

pub fn cpu() -> Device {
    Device::Cpu
}

/// Where the closed-form tests run: `VML_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`), else the CPU.
pub fn test_device() -> Device {
    match std::env::var("VML_TEST_DEVICE") {
        Ok(name) => vml::device::parse_device(&name).expect("VML_TEST_DEVICE"),
        Err(_) => Device::Cpu,
    }
}

/// The same operator with its SVD hidden: for the "needs an SVD" errors and the generic
/// paths of code that prefers the SVD.
pub struct NoSvd<'a>(pub &'a dyn Operator);

impl Operator for NoSvd<'_> {
    fn name(&self) -> String {
        format!("{} (no SVD)", self.0.name())
    }
    fn x_shape(&self) -> [i64; 3] {
        self.0.x_shape()
    }
    fn y_shape(&self) -> [i64; 3] {
        self.0.y_shape()
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.0.forward(x)
    }
    fn adjoint(&self, y: &Tensor) -> Tensor {
        self.0.adjoint(y)
    }
    fn pinv(&self, y: &Tensor) -> Tensor {
        self.0.pinv(y)
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Solvers draw from LibTorch's global generator; tests that check seeded results hold this
/// so that parallel test threads do not interleave their draws.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
