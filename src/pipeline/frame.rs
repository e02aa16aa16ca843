//! Restoring a JPEG in the orientation its pixels were stored in.
//!
//! A camera or phone writes the sensor's pixels as they came and records in EXIF how to
//! turn them upright; decoding turns them (`io::decode`). The compression happened before
//! that turn: its 8×8 blocks and chroma cells are aligned with the stored image's top-left
//! corner and its tables index the stored rows and columns. Upright, the block grid of a
//! half-turned image whose sides are not multiples of 16 no longer starts at the corner,
//! and a quarter turn transposes every table. So a `jpeg` task turns the picture (and the
//! mask, and a blur kernel that is not symmetric) back into the stored orientation, is
//! solved there, and its result is turned upright again.

use crate::error::{Error, Result};
use crate::io::{inverse, orient_plane, Orientation, Picture};
use crate::operators::blur::motion_kernel;
use crate::pipeline::Settings;
use crate::task::{Blur, Task};

/// The orientation to undo before solving: the input's, for a `jpeg` task of a turned
/// input; `None` when nothing needs turning.
pub(super) fn stored_orientation(task: &Task, settings: &Settings) -> Option<Orientation> {
    let o = settings.input_orientation;
    (matches!(task, Task::Jpeg { .. }) && o != Orientation::NoTransforms).then_some(o)
}

/// The task, picture and mask of an input turned upright by `o`, in the stored orientation.
/// `task` has passed `Task::validate` (a custom kernel has `width × height` weights).
pub(super) fn to_stored(
    task: &Task,
    image: &Picture,
    mask: Option<&Picture>,
    o: Orientation,
) -> Result<(Task, Picture, Option<Picture>)> {
    let back = inverse(o);
    Ok((
        stored_task(task, back)?,
        image.oriented(back),
        mask.map(|m| m.oriented(back)),
    ))
}

/// `task` as it acts on pixels turned by `back`. Only blur kernels depend on the
/// orientation: super-resolution's cells, masks (turned with the picture), noise and
/// colour do not.
fn stored_task(task: &Task, back: Orientation) -> Result<Task> {
    Ok(match task {
        Task::Jpeg {
            quality,
            sampling,
            tables,
            inner,
        } => Task::Jpeg {
            quality: *quality,
            sampling: *sampling,
            tables: tables.clone(),
            inner: match inner {
                Some(t) => Some(Box::new(stored_task(t, back)?)),
                None => None,
            },
        },
        Task::Deblur(blur) => Task::Deblur(stored_blur(blur, back)?),
        t => t.clone(),
    })
}

/// A blur of upright pixels as a blur of pixels turned by `back`: the kernel turned the
/// same way about its centre tap. Gaussian and odd box kernels are symmetric under every
/// turn and flip, so they stay as they are.
fn stored_blur(blur: &Blur, back: Orientation) -> Result<Blur> {
    let (weights, height, width) = match blur {
        Blur::Gaussian { .. } => return Ok(blur.clone()),
        Blur::Uniform { size } if size % 2 == 1 => return Ok(blur.clone()),
        Blur::Uniform { size } => {
            return Err(Error::Usage(format!(
                "a {size}×{size} box blur has no centre pixel, so it cannot be turned into the \
                 orientation this JPEG was stored in (its EXIF orientation is not upright); \
                 use an odd size"
            )))
        }
        Blur::Motion { length, angle } => {
            let (k, h, w) = motion_kernel(*length, *angle)?;
            (
                k.iter().map(|&v| v as f32).collect(),
                h as usize,
                w as usize,
            )
        }
        Blur::Custom {
            width,
            height,
            weights,
        } => (weights.clone(), *height as usize, *width as usize),
    };
    // The centre tap of an even side is the later middle one (operators::circular); a zero
    // row or column after it makes the side odd with the same centre, so that the turn
    // keeps it at the centre.
    let (pw, ph) = (width | 1, height | 1);
    let mut padded = vec![0f32; pw * ph];
    for (y, row) in weights.chunks(width).enumerate() {
        padded[y * pw..y * pw + width].copy_from_slice(row);
    }
    let (turned, tw, th) = orient_plane(&padded, pw, ph, back);
    Ok(Blur::Custom {
        width: tw as u32,
        height: th as u32,
        weights: turned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ORIENTATIONS;
    use crate::operators;
    use tch::{Kind, Tensor};

    /// `(1, 3, h, w)` tensor of a picture's colour planes, and back.
    fn tensor(p: &Picture) -> Tensor {
        Tensor::from_slice(&p.color).view([1, 3, p.height as i64, p.width as i64])
    }

    fn picture(t: &Tensor) -> Picture {
        let s = t.size();
        Picture {
            width: s[3] as u32,
            height: s[2] as u32,
            channels: 3,
            color: Vec::<f32>::try_from(t.contiguous().view([-1])).unwrap(),
            alpha: None,
            sixteen_bit: false,
        }
    }

    /// Blurring upright pixels and turning the result back equals blurring the turned-back
    /// pixels with the stored task's kernel, for every orientation and every kernel kind
    /// (an even custom kernel included).
    #[test]
    fn a_blur_turned_into_the_stored_orientation_commutes_with_the_turn() {
        let (w, h) = (23i64, 17i64);
        let x = picture(&Tensor::rand([1, 3, h, w], (Kind::Float, tch::Device::Cpu)));
        let blurs = [
            Blur::Motion {
                length: 7.0,
                angle: 30.0,
            },
            Blur::Custom {
                width: 4,
                height: 3,
                weights: (1..=12).map(|v| v as f32).collect(),
            },
            Blur::Gaussian { sigma: 1.5 },
            Blur::Uniform { size: 3 },
        ];
        for o in ORIENTATIONS {
            let back = inverse(o);
            for blur in &blurs {
                let upright = operators::build(&Task::Deblur(blur.clone()), [3, h, w], None)
                    .unwrap()
                    .forward(&tensor(&x));
                let want = tensor(&picture(&upright).oriented(back));
                let Task::Deblur(stored) = stored_task(&Task::Deblur(blur.clone()), back).unwrap()
                else {
                    unreachable!()
                };
                let xs = x.oriented(back);
                let got = operators::build(
                    &Task::Deblur(stored),
                    [3, xs.height as i64, xs.width as i64],
                    None,
                )
                .unwrap()
                .forward(&tensor(&xs));
                let err = (&got - &want).abs().max().double_value(&[]);
                assert!(err < 1e-5, "{o:?} {blur:?}: {err}");
            }
        }
    }

    #[test]
    fn only_a_jpeg_of_a_turned_input_is_turned_and_an_even_box_is_refused() {
        let blur = Task::Deblur(Blur::Uniform { size: 4 });
        let jpeg = Task::Jpeg {
            quality: Some(30),
            sampling: None,
            tables: None,
            inner: Some(Box::new(blur.clone())),
        };
        let mut settings = Settings::default();
        assert_eq!(stored_orientation(&jpeg, &settings), None);
        settings.input_orientation = Orientation::Rotate90;
        assert_eq!(stored_orientation(&blur, &settings), None);
        assert_eq!(
            stored_orientation(&jpeg, &settings),
            Some(Orientation::Rotate90)
        );
        assert!(matches!(
            stored_task(&jpeg, Orientation::Rotate270),
            Err(Error::Usage(_))
        ));
    }
}
