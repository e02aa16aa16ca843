//! Operator identities on random float64 data, for every task and several shapes
//! (square, non-square, odd, batch 2): adjoint, SVD reconstruction, orthonormal U and V,
//! `H H⁺ H = H`, `H⁺` against the dense pseudo-inverse, and the error cases.

mod common;

use common::NoSvd;
use tch::{Device, Kind, Tensor};
use vml::operators::{self, Operator, OperatorError, PINV_RTOL};
use vml::task::{Blur, SrKind, Task};

const TOL: f64 = 1e-9;

fn randn(shape: &[i64], seed: u64) -> Tensor {
    operators::gaussian_noise(shape, seed)
}

fn batch(shape: [i64; 3], seed: u64) -> Tensor {
    randn(&[2, shape[0], shape[1], shape[2]], seed)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// `‖a − b‖∞ / max(1, ‖b‖∞)`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    max_abs(&(a - b)) / max_abs(b).max(1.0)
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    (a * b).sum(Kind::Double).double_value(&[])
}

/// The dense matrix of `H` (`dim y × dim x`), column by column.
fn dense(op: &dyn Operator) -> Tensor {
    let d: i64 = op.x_shape().iter().product();
    let [c, h, w] = op.x_shape();
    let eye = Tensor::eye(d, (Kind::Double, Device::Cpu)).reshape([d, c, h, w]);
    op.forward(&eye).reshape([d, -1]).tr()
}

fn check_operator(op: &dyn Operator, seed: u64) {
    let name = op.name();
    let xs = op.x_shape();
    let ys = op.y_shape();
    let x = batch(xs, seed);
    let y = batch(ys, seed + 1);
    let hx = op.forward(&x);
    assert_eq!(hx.size(), vec![2, ys[0], ys[1], ys[2]], "{name}: y shape");

    // ⟨Hx, y⟩ = ⟨x, Hᵀy⟩.
    let (l, r) = (dot(&hx, &y), dot(&x, &op.adjoint(&y)));
    assert!(
        (l - r).abs() <= TOL * l.abs().max(1.0),
        "{name}: adjoint {l} vs {r}"
    );

    // H H⁺ H = H.
    let hphx = op.forward(&op.pinv(&hx));
    assert!(
        rel_err(&hphx, &hx) < 1e-8,
        "{name}: H H⁺ H x ≠ H x ({})",
        rel_err(&hphx, &hx)
    );

    // H⁺ equals the dense pseudo-inverse (least-squares minimum-norm solution).
    let a = dense(op);
    let want = a
        .linalg_pinv(PINV_RTOL, false)
        .matmul(&y.reshape([2, -1]).tr())
        .tr();
    let got = op.pinv(&y).reshape([2, -1]);
    assert!(
        rel_err(&got, &want) < 1e-7,
        "{name}: H⁺ vs dense pinv ({})",
        rel_err(&got, &want)
    );
    // Dense forward agrees with the operator on x (sanity of `dense`).
    let dx = a.matmul(&x.reshape([2, -1]).tr()).tr();
    assert!(rel_err(&dx, &hx.reshape([2, -1])) < TOL, "{name}: dense H");

    let svd = op.svd().unwrap_or_else(|| panic!("{name}: no SVD"));
    let s = svd.singular_values();
    let m = s.size()[0];
    let d: i64 = xs.iter().product();
    assert!(m <= d && m <= ys.iter().product::<i64>(), "{name}: M = {m}");
    assert!(
        s.min().double_value(&[]) >= 0.0,
        "{name}: negative singular value"
    );

    // H x = u(s ⊙ vt(x)[..M]).
    let c = svd.vt(&x);
    assert_eq!(c.size(), vec![2, d], "{name}: vt shape");
    let rec = svd.u(&(c.narrow(1, 0, m) * &s));
    assert!(
        rel_err(&rec, &hx) < TOL,
        "{name}: U Σ Vᵀ x ≠ H x ({})",
        rel_err(&rec, &hx)
    );

    // V orthonormal (square): vt(v(c)) = c and v(vt(x)) = x.
    let cr = randn(&[2, d], seed + 2);
    assert!(rel_err(&svd.vt(&svd.v(&cr)), &cr) < TOL, "{name}: Vᵀ V ≠ I");
    assert!(rel_err(&svd.v(&c), &x) < TOL, "{name}: V Vᵀ ≠ I");
    // U has orthonormal columns: ut(u(c)) = c; and ⟨u(c), y⟩ = ⟨c, ut(y)⟩.
    let cm = randn(&[2, m], seed + 3);
    let ucm = svd.u(&cm);
    assert_eq!(ucm.size(), vec![2, ys[0], ys[1], ys[2]], "{name}: u shape");
    assert!(rel_err(&svd.ut(&ucm), &cm) < TOL, "{name}: Uᵀ U ≠ I");
    let (l, r) = (dot(&ucm, &y), dot(&cm, &svd.ut(&y)));
    assert!(
        (l - r).abs() <= TOL * l.abs().max(1.0),
        "{name}: ut is not the adjoint of u"
    );
    // Σ matches the dense singular values.
    let want_s = Vec::<f64>::try_from(&a.svd(true, false).1).unwrap();
    let mut got_s = Vec::<f64>::try_from(&s).unwrap();
    got_s.sort_by(|a, b| b.partial_cmp(a).unwrap());
    for (i, (g, w)) in got_s.iter().zip(want_s.iter()).enumerate() {
        assert!((g - w).abs() < 1e-9, "{name}: σ_{i} {g} vs {w}");
    }
    // ‖H‖² from the SVD, and by power iteration when the SVD is hidden.
    let top = want_s[0] * want_s[0];
    let n2 = operators::norm_squared(op);
    assert!(
        (n2 - top).abs() < 1e-9 * top.max(1.0),
        "{name}: ‖H‖² {n2} vs {top}"
    );
    let n2 = operators::norm_squared(&NoSvd(op));
    assert!(
        (n2 - top).abs() < 1e-2 * top,
        "{name}: power-iteration ‖H‖² {n2} vs {top}"
    );

    // Float32 on the same data stays close (the operators follow their input's kind).
    let x32 = x.to_kind(Kind::Float);
    let hx32 = op.forward(&x32);
    assert_eq!(hx32.kind(), Kind::Float, "{name}: f32 in, f32 out");
    assert!(
        rel_err(&hx32.to_kind(Kind::Double), &hx) < 1e-4,
        "{name}: f32 forward"
    );
}

const SHAPES: [[i64; 3]; 4] = [[3, 8, 8], [3, 12, 10], [1, 9, 7], [2, 5, 11]];

#[test]
fn denoise_identities() {
    for (i, s) in SHAPES.iter().enumerate() {
        let op = operators::build(&Task::Denoise { sigma: 0.1 }, *s, None).unwrap();
        check_operator(op.as_ref(), 10 + i as u64);
    }
}

#[test]
fn inpaint_identities() {
    for (i, &[c, h, w]) in SHAPES.iter().enumerate() {
        let masks = [
            operators::box_mask(h, w, 3).unwrap(),
            operators::random_mask(h, w, 0.4, i as u64).unwrap(),
            operators::half_mask(h, w).unwrap(),
        ];
        for (j, m) in masks.iter().enumerate() {
            let op = operators::build(&Task::Inpaint, [c, h, w], Some(m)).unwrap();
            check_operator(op.as_ref(), 20 + 3 * i as u64 + j as u64);
        }
    }
}

#[test]
fn inpaint_measurement_zero_where_unknown() {
    let m = operators::box_mask(9, 7, 3).unwrap();
    let op = operators::build(&Task::Inpaint, [3, 9, 7], Some(&m)).unwrap();
    let x = batch([3, 9, 7], 5);
    let y = operators::degrade(&x, op.as_ref(), 0.1, 3);
    let unknown = m.to_kind(Kind::Double).reshape([1, 1, 9, 7]);
    assert_eq!(
        max_abs(&(&y * &unknown)),
        0.0,
        "noise leaked into unknown pixels"
    );
    assert!(
        max_abs(&((&y - op.forward(&x)) * (1.0 - &unknown))) > 0.0,
        "no noise on known pixels"
    );
    // Reading an image back ignores what lies under the mask.
    let back = operators::measurement_from_image(&(&y + &unknown * 0.7), op.as_ref()).unwrap();
    assert_eq!(max_abs(&(&back - &y)), 0.0);
}

#[test]
fn mask_generators() {
    let b = operators::box_mask(10, 12, 4).unwrap();
    assert_eq!(b.sum(Kind::Double).double_value(&[]), 16.0);
    assert_eq!(b.double_value(&[5, 6]), 1.0);
    assert_eq!(b.double_value(&[0, 0]), 0.0);
    let r1 = operators::random_mask(16, 16, 0.25, 7).unwrap();
    let r2 = operators::random_mask(16, 16, 0.25, 7).unwrap();
    let r3 = operators::random_mask(16, 16, 0.25, 8).unwrap();
    assert_eq!(r1.sum(Kind::Double).double_value(&[]), 64.0);
    assert_eq!(max_abs(&(&r1 - &r2)), 0.0, "same seed, same mask");
    assert!(
        max_abs(&(&r1 - &r3)) > 0.0,
        "different seed, different mask"
    );
    let h = operators::half_mask(4, 5).unwrap();
    assert_eq!(h.sum(Kind::Double).double_value(&[]), 12.0);
    assert_eq!(h.double_value(&[0, 1]), 0.0);
    assert_eq!(h.double_value(&[0, 2]), 1.0);
    let img = Tensor::from_slice(&[0.0f32, 0.4, 0.6, 1.0, 0.9, 0.1]).reshape([1, 1, 2, 3]);
    let m = operators::mask_from_image(&img).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(&m.reshape([-1])).unwrap(),
        vec![0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    );
    assert!(operators::box_mask(4, 4, 0).is_err());
    assert!(operators::random_mask(4, 4, 1.5, 0).is_err());
    assert!(operators::random_mask(4, 4, f64::NAN, 0).is_err());
}

#[test]
fn colorize_identities() {
    for (i, &[_, h, w]) in SHAPES.iter().enumerate() {
        let op = operators::build(&Task::Colorize, [3, h, w], None).unwrap();
        check_operator(op.as_ref(), 40 + i as u64);
    }
}

#[test]
fn sr_identities() {
    let cases: [([i64; 3], u32); 5] = [
        ([3, 8, 8], 2),
        ([3, 12, 20], 4),
        ([1, 10, 6], 2),
        ([1, 16, 8], 8),
        ([2, 24, 8], 8),
    ];
    for (i, (shape, scale)) in cases.iter().enumerate() {
        for method in [SrKind::Avgpool, SrKind::Bicubic] {
            let op = operators::build(
                &Task::Sr {
                    scale: *scale,
                    downsample: method,
                },
                *shape,
                None,
            )
            .unwrap();
            assert_eq!(
                op.y_shape(),
                [shape[0], shape[1] / *scale as i64, shape[2] / *scale as i64]
            );
            check_operator(op.as_ref(), 50 + i as u64);
        }
    }
}

#[test]
fn sr_avgpool_is_block_mean_and_bicubic_keeps_constants() {
    let x = batch([3, 12, 8], 1);
    let op = operators::build(
        &Task::Sr {
            scale: 4,
            downsample: SrKind::Avgpool,
        },
        [3, 12, 8],
        None,
    )
    .unwrap();
    let want = x.avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None);
    assert!(rel_err(&op.forward(&x), &want) < TOL);
    let op = operators::build(
        &Task::Sr {
            scale: 2,
            downsample: SrKind::Bicubic,
        },
        [1, 10, 6],
        None,
    )
    .unwrap();
    let ones = Tensor::ones([1, 1, 10, 6], (Kind::Double, Device::Cpu));
    assert!(
        max_abs(&(op.forward(&ones) - 1.0)) < 1e-12,
        "rows of the bicubic matrix sum to 1"
    );
}

fn blurs() -> Vec<Blur> {
    vec![
        Blur::Gaussian { sigma: 0.6 },
        Blur::Uniform { size: 3 },
        Blur::Uniform { size: 4 },
        Blur::Motion {
            length: 4.0,
            angle: 30.0,
        },
        Blur::Motion {
            length: 3.0,
            angle: 90.0,
        },
        Blur::Custom {
            width: 3,
            height: 2,
            weights: vec![1.0, 2.0, 0.5, 0.0, 3.0, 1.0],
        },
    ]
}

#[test]
fn blur_identities() {
    for (i, shape) in SHAPES.iter().enumerate() {
        for (j, b) in blurs().into_iter().enumerate() {
            let op = operators::build(&Task::Deblur(b), *shape, None).unwrap();
            check_operator(op.as_ref(), 100 + 10 * i as u64 + j as u64);
        }
    }
}

/// `data_prox` against the dense solve of `(HᵀH/σ² + I/τ²) x = Hᵀy/σ² + x0/τ²`, with τ² the
/// residual's excess over the noise, `max(0, ‖y − H x0‖² − mσ²) / Σ s_k²`, computed here from
/// the dense matrix (its squared Frobenius norm is Σ s_k²; m its nonzero rows' count for a
/// mask, its rows otherwise). Also: the null space of H is left as it was, an `x0` that
/// explains `y` within the noise is left alone, and an operator without an SVD gets `None`.
#[test]
fn data_prox_is_the_proximal_step_with_the_residual_tau() {
    let shape = [3, 8, 8];
    let mask = operators::box_mask(8, 8, 3).unwrap();
    let cases: Vec<(Task, Option<&Tensor>)> = vec![
        (
            Task::Sr {
                scale: 2,
                downsample: SrKind::Avgpool,
            },
            None,
        ),
        (Task::Deblur(Blur::Gaussian { sigma: 0.8 }), None),
        (Task::Inpaint, Some(&mask)),
        (Task::Denoise { sigma: 0.1 }, None),
    ];
    let d: i64 = shape.iter().product();
    for (k, (task, m)) in cases.into_iter().enumerate() {
        let op = operators::build(&task, shape, m).unwrap();
        let h = dense(op.as_ref());
        let sigma = 0.05;
        let x0 = randn(&[1, 3, 8, 8], 300 + k as u64) * 0.5;
        let x = randn(&[1, 3, 8, 8], 310 + k as u64) * 0.5;
        let hx = op.forward(&x);
        // Noise where H measures (a mask's y is zero elsewhere, as `degrade` makes it).
        let noise = |seed: u64, s: f64| op.forward(&op.pinv(&(randn(&hx.size(), seed) * s)));
        let y = &hx + noise(320 + k as u64, sigma);
        let got = operators::data_prox(op.as_ref(), &x0, &y, sigma).expect("has an SVD");

        let r = (&y - op.forward(&x0)).reshape([-1]);
        let rows = h.abs().sum_dim_intlist(1, false, Kind::Double).gt(0.0);
        let m = rows.sum(Kind::Double).double_value(&[]);
        let fro = h.square().sum(Kind::Double).double_value(&[]);
        let tau2 =
            (r.square().sum(Kind::Double).double_value(&[]) - m * sigma * sigma).max(0.0) / fro;
        assert!(tau2 > 0.0, "{task:?}: a random x0 is far from y");
        let lhs = h.tr().matmul(&h) / (sigma * sigma)
            + Tensor::eye(d, (Kind::Double, Device::Cpu)) / tau2;
        let rhs = h.tr().matmul(&y.reshape([-1, 1])) / (sigma * sigma) + x0.reshape([-1, 1]) / tau2;
        let want = lhs.inverse().matmul(&rhs).reshape([1, 3, 8, 8]);
        let e = rel_err(&got, &want);
        println!("{task:?}: τ² = {tau2:.4}, error {e:.2e}");
        assert!(e < 1e-8, "{task:?}: data_prox off the dense solve by {e}");

        // H⁺H (got − x0) = got − x0: the step lies in the range of Hᵀ.
        let step = &got - &x0;
        let back = op.pinv(&op.forward(&step));
        assert!(
            rel_err(&back, &step) < 1e-8,
            "{task:?}: the step left the range of Hᵀ"
        );

        // The truth explains y to within the noise: its residual is noise at half σ, whose
        // energy stays below mσ², so τ = 0 and the step is exactly zero.
        let quiet = &hx + noise(330 + k as u64, sigma * 0.5);
        let kept = operators::data_prox(op.as_ref(), &x, &quiet, sigma).unwrap();
        assert_eq!(
            max_abs(&(&kept - &x)),
            0.0,
            "{task:?}: an x0 within the noise moved"
        );

        assert!(operators::data_prox(&NoSvd(op.as_ref()), &x0, &y, sigma).is_none());
    }
}

/// The periodic operator is the true circular convolution with the kernel centred at
/// `(⌊kh/2⌋, ⌊kw/2⌋)`, checked by a direct sum.
#[test]
fn custom_kernel_is_circular_convolution() {
    let (kh, kw) = (2i64, 3i64);
    let weights = [1.0f32, 2.0, 0.5, 0.0, 3.0, 1.0];
    let total: f64 = weights.iter().map(|&v| v as f64).sum();
    let op = operators::build(
        &Task::Deblur(Blur::Custom {
            width: kw as u32,
            height: kh as u32,
            weights: weights.to_vec(),
        }),
        [1, 5, 6],
        None,
    )
    .unwrap();
    let x = batch([1, 5, 6], 9).narrow(0, 0, 1);
    let xv = Vec::<f64>::try_from(&x.reshape([-1])).unwrap();
    let y = Vec::<f64>::try_from(&op.forward(&x).reshape([-1])).unwrap();
    let (h, w) = (5i64, 6i64);
    for i in 0..h {
        for j in 0..w {
            let mut acc = 0.0;
            for a in 0..kh {
                for b in 0..kw {
                    let (si, sj) = (
                        (i - (a - kh / 2)).rem_euclid(h),
                        (j - (b - kw / 2)).rem_euclid(w),
                    );
                    acc +=
                        weights[(a * kw + b) as usize] as f64 / total * xv[(si * w + sj) as usize];
                }
            }
            assert!(
                (acc - y[(i * w + j) as usize]).abs() < 1e-12,
                "pixel ({i}, {j})"
            );
        }
    }
}

#[test]
fn gaussian_blur_keeps_constants_and_mean() {
    let op = operators::build(
        &Task::Deblur(Blur::Gaussian { sigma: 1.5 }),
        [1, 16, 13],
        None,
    )
    .unwrap();
    let ones = Tensor::ones([1, 1, 16, 13], (Kind::Double, Device::Cpu));
    assert!(max_abs(&(op.forward(&ones) - 1.0)) < 1e-12);
    let (k, kh, kw) = operators::blur::motion_kernel(7.0, 45.0).unwrap();
    assert_eq!((kh % 2, kw % 2), (1, 1));
    assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn degrade_is_reproducible_and_noisy() {
    let op = operators::build(
        &Task::Sr {
            scale: 2,
            downsample: SrKind::Bicubic,
        },
        [3, 8, 6],
        None,
    )
    .unwrap();
    let x = batch([3, 8, 6], 1);
    let a = operators::degrade(&x, op.as_ref(), 0.05, 42);
    let b = operators::degrade(&x, op.as_ref(), 0.05, 42);
    let c = operators::degrade(&x, op.as_ref(), 0.05, 43);
    assert_eq!(max_abs(&(&a - &b)), 0.0);
    assert!(max_abs(&(&a - &c)) > 0.0);
    let clean = operators::degrade(&x, op.as_ref(), 0.0, 42);
    let resid = &a - &clean;
    let std = (resid.square().mean(Kind::Double)).sqrt().double_value(&[]);
    assert!((std - 0.05).abs() < 0.02, "noise std {std}");
    assert_eq!(max_abs(&(&clean - op.forward(&x))), 0.0);
}

#[test]
fn measurement_images_round_trip() {
    let op = operators::build(&Task::Colorize, [3, 6, 5], None).unwrap();
    let x = batch([3, 6, 5], 3).clamp(-1.0, 1.0);
    let y = operators::measurement_to_image(&op.forward(&x));
    assert_eq!(y.size(), vec![2, 1, 6, 5]);
    let back = operators::measurement_from_image(&y, op.as_ref()).unwrap();
    assert_eq!(max_abs(&(&back - &y)), 0.0);
    // A gray picture stored as RGB reads back as the same gray.
    let rgb = operators::measurement_from_image(&y.repeat([1, 3, 1, 1]), op.as_ref()).unwrap();
    assert!(max_abs(&(&rgb - &y)) < 1e-12);
    let sr = operators::build(
        &Task::Sr {
            scale: 4,
            downsample: SrKind::Avgpool,
        },
        [3, 8, 12],
        None,
    )
    .unwrap();
    assert!(operators::measurement_from_image(&y, sr.as_ref()).is_err());
    let task = Task::Sr {
        scale: 4,
        downsample: SrKind::Avgpool,
    };
    assert_eq!(
        operators::x_shape_for(&task, [3, 2, 3]).unwrap(),
        [3, 8, 12]
    );
    assert_eq!(
        operators::x_shape_for(&Task::Colorize, [1, 2, 3]).unwrap(),
        [3, 2, 3]
    );
}

fn err(task: Task, shape: [i64; 3], mask: Option<&Tensor>) -> OperatorError {
    match operators::build(&task, shape, mask) {
        Ok(op) => panic!("{} should have been refused", op.name()),
        Err(e) => e,
    }
}

#[test]
fn bad_parameters_are_errors() {
    let s = [3, 16, 16];
    let m = operators::box_mask(8, 16, 4).unwrap();
    assert!(matches!(
        err(Task::Inpaint, s, Some(&m)),
        OperatorError::MaskSize { got_h: 8, .. }
    ));
    assert!(matches!(
        err(Task::Inpaint, s, None),
        OperatorError::MissingMask
    ));
    let empty = Tensor::zeros([16, 16], (Kind::Float, Device::Cpu));
    assert!(matches!(
        err(Task::Inpaint, s, Some(&empty)),
        OperatorError::EmptyMask
    ));
    let nan = Tensor::full([16, 16], f64::NAN, (Kind::Float, Device::Cpu));
    err(Task::Inpaint, s, Some(&nan));
    for scale in [0, 1, 3, 16] {
        err(
            Task::Sr {
                scale,
                downsample: SrKind::Avgpool,
            },
            s,
            None,
        );
    }
    err(
        Task::Sr {
            scale: 4,
            downsample: SrKind::Bicubic,
        },
        [3, 18, 16],
        None,
    );
    for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        err(Task::Deblur(Blur::Gaussian { sigma }), s, None);
    }
    err(Task::Deblur(Blur::Gaussian { sigma: 3.0 }), s, None); // 19 taps > 16 pixels
    err(Task::Deblur(Blur::Uniform { size: 0 }), s, None);
    err(Task::Deblur(Blur::Uniform { size: 17 }), s, None);
    for (length, angle) in [
        (-3.0, 0.0),
        (0.0, 0.0),
        (f64::NAN, 0.0),
        (5.0, f64::INFINITY),
        (40.0, 0.0),
    ] {
        err(Task::Deblur(Blur::Motion { length, angle }), s, None);
    }
    let custom = |w: u32, h: u32, weights: Vec<f32>| {
        Task::Deblur(Blur::Custom {
            width: w,
            height: h,
            weights,
        })
    };
    err(custom(2, 2, vec![1.0; 3]), s, None);
    err(custom(2, 2, vec![1.0, -1.0, 1.0, 1.0]), s, None);
    err(custom(2, 2, vec![0.0; 4]), s, None);
    err(custom(2, 2, vec![1.0, f32::NAN, 1.0, 1.0]), s, None);
    err(custom(17, 1, vec![1.0; 17]), s, None);
    for sigma in [-0.1, f64::NAN] {
        err(Task::Denoise { sigma }, s, None);
    }
    err(Task::Colorize, [1, 16, 16], None);
    err(Task::Denoise { sigma: 0.1 }, [3, 0, 16], None);
}

// ---- classical baselines -------------------------------------------------------------

use vml::diffusion::Denoiser;
use vml::operators::classical;
use vml::solvers::{self, Control, Problem, SolverOptions};

/// A smooth colour image `(1, 3, h, w)` in about [-0.8, 0.8].
fn smooth(h: i64, w: i64) -> Tensor {
    let i = Tensor::arange(h, (Kind::Double, Device::Cpu)).reshape([1, 1, h, 1]) / h as f64;
    let j = Tensor::arange(w, (Kind::Double, Device::Cpu)).reshape([1, 1, 1, w]) / w as f64;
    let phase = Tensor::from_slice(&[0.0, 1.0, 2.0]).reshape([1, 3, 1, 1]);
    ((&i * 5.0 + &phase).sin() * (&j * 4.0 - &phase * 0.5).cos() * 0.5
        + (&i * 3.0 + &j * 2.0).sin() * 0.3)
        .to_kind(Kind::Float)
}

/// `smooth` plus a bright disc and a dark bar: edges for the deblurring tests.
fn cartoon(h: i64, w: i64) -> Tensor {
    let i = Tensor::arange(h, (Kind::Double, Device::Cpu)).reshape([1, 1, h, 1]);
    let j = Tensor::arange(w, (Kind::Double, Device::Cpu)).reshape([1, 1, 1, w]);
    let r2 = (&i - h as f64 / 2.0).square() + (&j - w as f64 / 3.0).square();
    let disc = r2.lt((h.min(w) as f64 / 4.0).powi(2)).to_kind(Kind::Double);
    let bar = j
        .ge(2.0 * w as f64 / 3.0)
        .logical_and(&j.lt(2.0 * w as f64 / 3.0 + 3.0))
        .to_kind(Kind::Double);
    (smooth(h, w).to_kind(Kind::Double) * 0.5 + disc * 0.5 - bar * 0.6).to_kind(Kind::Float)
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    10.0 * (4.0 / mse).log10()
}

#[test]
fn classical_sr_bicubic_beats_nearest() {
    let x = smooth(32, 48);
    for downsample in [SrKind::Avgpool, SrKind::Bicubic] {
        let op = operators::build(
            &Task::Sr {
                scale: 4,
                downsample,
            },
            [3, 32, 48],
            None,
        )
        .unwrap();
        let y = op.forward(&x);
        let bic = classical::restore(op.as_ref(), &y, 0.0);
        let nn = y.upsample_nearest2d([32, 48], None, None);
        let (pb, pn) = (psnr(&bic, &x), psnr(&nn, &x));
        eprintln!("{downsample:?}: bicubic {pb:.2} dB, nearest {pn:.2} dB");
        assert!(
            pb > pn + 1.0,
            "{downsample:?}: bicubic {pb:.2} dB vs nearest {pn:.2} dB"
        );
    }
}

#[test]
fn classical_wiener_improves_blurred_images() {
    let x = cartoon(40, 36);
    for (blur, sigma_y) in [
        (Blur::Gaussian { sigma: 1.5 }, 0.01),
        (Blur::Uniform { size: 5 }, 0.0),
        (
            Blur::Motion {
                length: 7.0,
                angle: 20.0,
            },
            0.02,
        ),
    ] {
        let op = operators::build(&Task::Deblur(blur.clone()), [3, 40, 36], None).unwrap();
        let y = operators::degrade(&x, op.as_ref(), sigma_y, 1);
        let r = classical::restore(op.as_ref(), &y, sigma_y);
        let (pr, py) = (psnr(&r, &x), psnr(&y, &x));
        eprintln!("{blur:?} σ_y={sigma_y}: Wiener {pr:.2} dB, blurred {py:.2} dB");
        assert!(
            pr > py + 1.0,
            "{blur:?}: Wiener {pr:.2} dB vs blurred {py:.2} dB"
        );
    }
}

#[test]
fn classical_harmonic_fill_is_smooth_and_keeps_known_pixels() {
    let x = smooth(33, 30);
    let m = operators::box_mask(33, 30, 12).unwrap();
    let op = operators::build(&Task::Inpaint, [3, 33, 30], Some(&m)).unwrap();
    let y = op.forward(&x);
    let r = classical::restore(op.as_ref(), &y, 0.0);
    let keep = 1.0 - m.reshape([1, 1, 33, 30]);
    assert!(max_abs(&((&r - &x) * &keep)) < 1e-6, "known pixels changed");
    // The discrete Laplacian vanishes on the filled pixels.
    let lap = classical::gradient_normal(&r.to_kind(Kind::Double)) * (1.0 - &keep);
    assert!(max_abs(&lap) < 1e-4, "not harmonic: {}", max_abs(&lap));
    // Far better than filling with the mean of the known pixels.
    let mean = (&y.sum_dim_intlist([2, 3].as_slice(), true, Kind::Float)) / keep.sum(Kind::Float);
    let mean_fill = &y + (1.0 - &keep) * mean;
    let (ph, pm) = (psnr(&r, &x), psnr(&mean_fill, &x));
    eprintln!("box fill: harmonic {ph:.2} dB, mean {pm:.2} dB");
    assert!(ph > pm + 3.0, "harmonic {ph:.2} dB vs mean fill {pm:.2} dB");
}

#[test]
fn classical_denoise_and_colorize() {
    let x = smooth(32, 32);
    let op = operators::build(&Task::Denoise { sigma: 0.1 }, [3, 32, 32], None).unwrap();
    let y = operators::degrade(&x, op.as_ref(), 0.1, 4);
    let r = classical::restore(op.as_ref(), &y, 0.1);
    assert!(psnr(&r, &x) > psnr(&y, &x) + 3.0);
    let op = operators::build(&Task::Colorize, [3, 32, 32], None).unwrap();
    let y = op.forward(&x);
    let r = classical::restore(op.as_ref(), &y, 0.0);
    assert_eq!(r.size(), vec![1, 3, 32, 32]);
    assert!(max_abs(&(r - y.repeat([1, 3, 1, 1]))) < 1e-6);
}

struct NoDenoiser;
impl Denoiser for NoDenoiser {
    fn denoise(&self, x: &Tensor, _sigma: f64) -> Tensor {
        x.shallow_clone()
    }
    fn sigma_min(&self) -> f64 {
        0.002
    }
    fn sigma_max(&self) -> f64 {
        80.0
    }
}

#[test]
fn classical_solver_by_name() {
    let solver = solvers::build(solvers::Method::Classical, &SolverOptions::default()).unwrap();
    assert_eq!(solver.name(), "classical");
    let x = smooth(16, 16);
    let op = operators::build(
        &Task::Sr {
            scale: 2,
            downsample: SrKind::Bicubic,
        },
        [3, 16, 16],
        None,
    )
    .unwrap();
    let problem = Problem {
        op: op.as_ref(),
        y: op.forward(&x),
        sigma_y: 0.0,
    };
    let mut calls = 0;
    let out = solver.solve(&NoDenoiser, &problem, 0, &mut |_| {
        calls += 1;
        Control::Continue
    });
    let out = out.unwrap().expect("finished");
    assert_eq!(out.size(), vec![1, 3, 16, 16]);
    assert!(out.abs().max().double_value(&[]) <= 1.0);
    assert_eq!(calls, 1);
    let stopped = solver.solve(&NoDenoiser, &problem, 0, &mut |_| Control::Stop);
    assert!(stopped.unwrap().is_none());
    let bad = Problem {
        op: op.as_ref(),
        y: x.shallow_clone(),
        sigma_y: 0.0,
    };
    assert!(solver
        .solve(&NoDenoiser, &bad, 0, &mut |_| Control::Continue)
        .is_err());
}

/// Gradients flow through every operator (DPS differentiates `‖y − H D(x)‖²`), and the
/// gradient of `⟨H x, y⟩` is `Hᵀ y`.
#[test]
fn autograd_through_forward_gives_adjoint() {
    let m = operators::random_mask(12, 10, 0.3, 1).unwrap();
    let tasks = [
        (Task::Inpaint, Some(m)),
        (
            Task::Sr {
                scale: 2,
                downsample: SrKind::Bicubic,
            },
            None,
        ),
        (Task::Deblur(Blur::Gaussian { sigma: 1.0 }), None),
        (
            Task::Deblur(Blur::Motion {
                length: 5.0,
                angle: 10.0,
            }),
            None,
        ),
        (Task::Colorize, None),
        (Task::Denoise { sigma: 0.1 }, None),
    ];
    for (i, (task, mask)) in tasks.iter().enumerate() {
        let op = operators::build(task, [3, 12, 10], mask.as_ref()).unwrap();
        let x = batch([3, 12, 10], 300 + i as u64).set_requires_grad(true);
        let y = batch(op.y_shape(), 310 + i as u64);
        (op.forward(&x) * &y).sum(Kind::Double).backward();
        let g = x.grad();
        assert!(
            rel_err(&g, &op.adjoint(&y)) < TOL,
            "{}: ∇⟨Hx, y⟩ ≠ Hᵀy",
            op.name()
        );
        // Through the SVD pieces too (preconditioned steps use them inside graphs).
        let svd = op.svd().unwrap();
        let x2 = x.detach().set_requires_grad(true);
        let c = batch([3, 12, 10], 320 + i as u64).reshape([2, -1]);
        (svd.vt(&x2) * &c).sum(Kind::Double).backward();
        assert!(
            rel_err(&x2.grad(), &svd.v(&c)) < TOL,
            "{}: ∇⟨Vᵀx, c⟩ ≠ V c",
            op.name()
        );
    }
}

/// A mask that hides every pixel is legal: nothing is measured, `M = 0`.
#[test]
fn inpaint_full_mask_measures_nothing() {
    let m = Tensor::ones([6, 5], (Kind::Float, Device::Cpu));
    let op = operators::build(&Task::Inpaint, [3, 6, 5], Some(&m)).unwrap();
    let x = batch([3, 6, 5], 1);
    assert_eq!(max_abs(&op.forward(&x)), 0.0);
    let svd = op.svd().unwrap();
    assert_eq!(svd.singular_values().size(), vec![0]);
    assert_eq!(svd.ut(&x).size(), vec![2, 0]);
    assert!(rel_err(&svd.v(&svd.vt(&x)), &x) < TOL);
    let r = classical::restore(op.as_ref(), &op.forward(&x), 0.0);
    assert_eq!(max_abs(&r), 0.0, "no anchor: mid-gray");
}

/// Degrading for the denoising task adds the task's noise (and σ_y on top, in variance).
#[test]
fn denoise_degrade_adds_task_noise() {
    let op = operators::build(&Task::Denoise { sigma: 0.1 }, [3, 32, 32], None).unwrap();
    assert!((operators::measurement_sigma(op.as_ref(), 0.0) - 0.1).abs() < 1e-15);
    assert!((operators::measurement_sigma(op.as_ref(), 0.1) - 0.1 * 2f64.sqrt()).abs() < 1e-12);
    let x = smooth(32, 32).to_kind(Kind::Double);
    let y = operators::degrade(&x, op.as_ref(), 0.0, 5);
    let std = (&y - &x)
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[]);
    assert!((std - 0.1).abs() < 0.005, "noise std {std}");
    let sr = operators::build(
        &Task::Sr {
            scale: 2,
            downsample: SrKind::Avgpool,
        },
        [3, 8, 8],
        None,
    )
    .unwrap();
    assert_eq!(operators::measurement_sigma(sr.as_ref(), 0.03), 0.03);
}

/// The widest gap of a mask (chessboard distance from an unknown pixel to the nearest known
/// one) and with it whether the data fit suits every level: a 64² box in a 128² image is 32
/// from its edge (last level only), a 32² box 16, one missing pixel 1, 70 % missing at
/// random a few pixels at most (every level); blurs and SR have no gap and fit every level.
#[test]
fn a_wide_hole_asks_for_the_data_fit_on_the_last_level_only() {
    use vml::operators::inpaint::{box_mask, random_mask, Inpaint, NARROW_GAP};
    let shape = [3, 128, 128];
    let wide = Inpaint::new(shape, &box_mask(128, 128, 64).unwrap()).unwrap();
    assert_eq!(wide.widest_gap(), 32);
    assert!(!wide.fits_every_level());
    let small = Inpaint::new(shape, &box_mask(128, 128, 32).unwrap()).unwrap();
    assert_eq!(small.widest_gap(), 16);
    assert!(small.widest_gap() <= NARROW_GAP && small.fits_every_level());
    let one = Tensor::zeros([128, 128], (Kind::Float, Device::Cpu));
    let _ = one.narrow(0, 40, 1).narrow(1, 7, 1).fill_(1.0);
    assert_eq!(Inpaint::new(shape, &one).unwrap().widest_gap(), 1);
    let random = Inpaint::new(shape, &random_mask(128, 128, 0.7, 0).unwrap()).unwrap();
    assert!(
        (1..=4).contains(&random.widest_gap()) && random.fits_every_level(),
        "{}",
        random.widest_gap()
    );
    let all = Tensor::ones([128, 128], (Kind::Float, Device::Cpu));
    assert_eq!(Inpaint::new(shape, &all).unwrap().widest_gap(), i64::MAX);
    for task in [
        Task::Sr {
            scale: 4,
            downsample: SrKind::Avgpool,
        },
        Task::Deblur(Blur::Gaussian { sigma: 3.0 }),
    ] {
        assert!(operators::build(&task, shape, None)
            .unwrap()
            .fits_every_level());
    }
}
