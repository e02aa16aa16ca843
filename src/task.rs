//! What the user asks for: the degradation to undo. Shared by the CLI, the protocol and
//! `degrade`; `operators::build` turns a task into the linear operator `H`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How super-resolution down-sampled the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "sr_downsample")]
pub enum SrKind {
    /// Mean of each s×s block.
    #[default]
    Avgpool,
    /// Bicubic (Keys, a = −0.5) anti-aliased down-sampling, as in common SR benchmarks.
    Bicubic,
}

/// A blur kernel. (The schema's ranges are those `operators::blur` enforces.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kernel", rename_all = "lowercase")]
#[schemars(rename = "blur")]
pub enum Blur {
    /// Isotropic Gaussian with standard deviation `sigma` pixels.
    Gaussian {
        #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 10000))]
        sigma: f64,
    },
    /// Box of `size`×`size` pixels.
    Uniform {
        #[schemars(range(min = 1))]
        size: u32,
    },
    /// Line of `length` pixels at `angle` degrees (counter-clockwise from the x axis).
    Motion {
        #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 10000))]
        length: f64,
        angle: f64,
    },
    /// Any kernel, row-major `height`×`width` non-negative weights, normalised to sum 1
    /// when built.
    Custom {
        #[schemars(range(min = 1))]
        width: u32,
        #[schemars(range(min = 1))]
        height: u32,
        #[schemars(inner(range(min = 0.0)))]
        weights: Vec<f32>,
    },
}

/// A JPEG file's quantisation tables and chroma sampling, as a request carries them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "jpeg_tables")]
pub struct JpegTables {
    /// The luma component's sampling factors `[h, v]`, chroma's being 1: `[2, 2]` is
    /// 4:2:0, `[2, 1]` 4:2:2, `[1, 1]` 4:4:4.
    #[schemars(extend("items" = { "type": "integer", "enum": [1, 2] }, "minItems" = 2, "maxItems" = 2))]
    pub sampling: [u8; 2],
    /// One table (a gray file), or the luma table then chroma's (one for both chroma
    /// components, or one each): 64 steps each, in natural row-major order (not zig-zag).
    #[schemars(extend(
        "minItems" = 1,
        "maxItems" = 3,
        "items" = {
            "type": "array",
            "minItems": 64,
            "maxItems": 64,
            "items": { "type": "integer", "minimum": 1, "maximum": 65535 }
        }
    ))]
    pub quant: Vec<Vec<u16>>,
}

impl JpegTables {
    /// The tables in the form the operator takes (checked by [`Task::validate`] first).
    pub fn to_tables(&self) -> Result<crate::jpeg::Tables, TaskError> {
        self.validate()?;
        let table = |q: &[u16]| {
            let mut t = [0u16; 64];
            t.copy_from_slice(q);
            t
        };
        let c = |h, v, q: &[u16]| crate::jpeg::Component {
            h,
            v,
            quant: table(q),
        };
        let [h, v] = self.sampling;
        let components = match self.quant.as_slice() {
            [y] => vec![c(h, v, y)],
            [y, ch] => vec![c(h, v, y), c(1, 1, ch), c(1, 1, ch)],
            [y, cb, cr] => vec![c(h, v, y), c(1, 1, cb), c(1, 1, cr)],
            _ => unreachable!("validated: 1 to 3 tables"),
        };
        Ok(crate::jpeg::Tables {
            components,
            progressive: false,
            width: 0,
            height: 0,
        })
    }

    fn validate(&self) -> Result<(), TaskError> {
        let bad = |m: String| Err(TaskError(m));
        check_sampling(&self.sampling)?;
        if !(1..=3).contains(&self.quant.len()) {
            return bad(format!(
                "JPEG tables: 1 (gray) to 3 tables, got {}",
                self.quant.len()
            ));
        }
        if let Some(t) = self.quant.iter().find(|t| t.len() != 64) {
            return bad(format!("a JPEG table has 64 steps, got {}", t.len()));
        }
        if self.quant.iter().flatten().any(|&q| q == 0) {
            return bad("JPEG table with a zero step".into());
        }
        Ok(())
    }
}

/// Luma sampling factors the JPEG operator models: 1 or 2 on each axis.
fn check_sampling(f: &[u8; 2]) -> Result<(), TaskError> {
    match f.iter().all(|f| (1..=2).contains(f)) {
        true => Ok(()),
        false => Err(TaskError(format!(
            "JPEG sampling factors must be 1 or 2, got {f:?}"
        ))),
    }
}

/// The degradation to undo: `kind` and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[schemars(rename = "task")]
pub enum Task {
    /// Fill the pixels where the mask is set (white = unknown); needs a mask.
    Inpaint,
    /// Undo down-sampling by `scale` (2, 4 or 8).
    Sr {
        #[schemars(extend("enum" = [2, 4, 8]))]
        scale: u32,
        /// How the low-resolution image was made (`"downsample": "bicubic"`).
        #[serde(default)]
        downsample: SrKind,
    },
    /// Undo a blur.
    Deblur(Blur),
    /// Remove Gaussian noise of standard deviation `sigma`. Like every σ in this crate
    /// (σ_y included) it is on the engine's [-1, 1] pixel scale, as in the papers, so at
    /// most 1: larger values are on another scale and refused.
    Denoise {
        #[schemars(range(min = 0.0, max = 1.0))]
        sigma: f64,
    },
    /// Undo JPEG compression, after the degradation `inner` when given (`--sr 2 --jpeg
    /// auto`: a JPEG of a low-resolution image). `quality` names libjpeg's standard tables
    /// at that quality (1–100; 4:2:0 chroma unless `sampling` says); `tables` gives a
    /// file's own; with neither,
    /// the tables and chroma sampling are those of the input file, which must be a JPEG.
    Jpeg {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 100))]
        quality: Option<u32>,
        /// With `quality`: the luma sampling factors `[h, v]` of the file (`[2, 2]`, 4:2:0,
        /// when absent; `[1, 1]` is 4:4:4, `[2, 1]` 4:2:2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(extend("items" = { "type": "integer", "enum": [1, 2] }, "minItems" = 2, "maxItems" = 2))]
        sampling: Option<[u8; 2]>,
        /// The file's own tables, for a client that sends decoded pixels (the GIMP plug-in
        /// reads them from the file the image was opened from); excludes `quality`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tables: Option<JpegTables>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inner: Option<Box<Task>>,
    },
    /// Recover colour from a gray image (gray = mean of R, G, B).
    Colorize,
}

impl Task {
    /// A short name for layer names, logs and file names.
    pub fn label(&self) -> String {
        match self {
            Task::Inpaint => "inpaint".into(),
            Task::Sr { scale, .. } => format!("sr{scale}"),
            Task::Deblur(_) => "deblur".into(),
            Task::Denoise { .. } => "denoise".into(),
            Task::Colorize => "colorize".into(),
            Task::Jpeg { inner: None, .. } => "jpeg".into(),
            Task::Jpeg { inner: Some(t), .. } => format!("{}-jpeg", t.label()),
        }
    }

    /// The degradation under the JPEG compression, if any: what decides the output size,
    /// the mask's meaning and the image kept outside the mask. A plain `jpeg` is its own.
    pub fn base(&self) -> &Task {
        match self {
            Task::Jpeg { inner: Some(t), .. } => t.base(),
            t => t,
        }
    }

    /// Whether the input's own JPEG tables are needed (`jpeg` with neither a quality nor
    /// tables).
    pub fn needs_jpeg_tables(&self) -> bool {
        matches!(
            self,
            Task::Jpeg {
                quality: None,
                tables: None,
                ..
            }
        )
    }
}

/// Why a task's own parameters cannot be used, in the words of its fields.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(pub String);

/// The super-resolution factors the operators model.
pub const SR_SCALES: [u32; 3] = [2, 4, 8];

/// Largest blur σ or motion length accepted, in pixels: far beyond any photo, small enough
/// that building the kernel cannot exhaust memory.
pub const MAX_BLUR_EXTENT: f64 = 1e4;

impl Task {
    /// The one check of a task's own parameters (ranges and combinations), whoever made
    /// the task: the command line, a protocol request, a library caller; `operators::build`
    /// runs it too. What also depends on the image (a kernel larger than it, a mask of
    /// another size, a size the SR factor does not divide) is the operator's to refuse.
    pub fn validate(&self) -> Result<(), TaskError> {
        let bad = |m: String| Err(TaskError(m));
        if let Task::Jpeg {
            tables: Some(t), ..
        } = self
        {
            t.validate()?;
        }
        match self {
            Task::Inpaint | Task::Colorize => Ok(()),
            Task::Sr { scale, .. } if !SR_SCALES.contains(scale) => {
                bad(format!("SR scale must be 2, 4 or 8, got {scale}"))
            }
            Task::Sr { .. } => Ok(()),
            Task::Deblur(b) => b.validate(),
            Task::Denoise { sigma } if !sigma.is_finite() || *sigma <= 0.0 => bad(format!(
                "denoise sigma must be a finite number > 0, got {sigma}"
            )),
            // The whole pixel range is 2 wide; a σ above 1 is a value on another scale
            // (0–255 is the common one), which would flatten the image, not denoise it.
            Task::Denoise { sigma } if *sigma > 1.0 => bad(format!(
                "denoise sigma {sigma} is too large: it is on the [-1, 1] pixel scale (at most \
                 1); for {sigma} levels of 255 give {:.3}",
                sigma / 127.5
            )),
            Task::Denoise { .. } => Ok(()),
            Task::Jpeg {
                quality: Some(q), ..
            } if !(1..=100).contains(q) => bad(format!("JPEG quality must be 1–100, got {q}")),
            Task::Jpeg {
                quality: Some(_),
                tables: Some(_),
                ..
            } => bad("a JPEG task takes a quality or tables, not both".into()),
            Task::Jpeg {
                quality: None,
                sampling: Some(_),
                ..
            } => bad("JPEG sampling goes with a quality (tables carry their own)".into()),
            Task::Jpeg {
                sampling: Some(f), ..
            } if check_sampling(f).is_err() => check_sampling(f),
            Task::Jpeg { inner: None, .. } => Ok(()),
            Task::Jpeg { inner: Some(t), .. } => match t.as_ref() {
                Task::Jpeg { .. } => bad("a JPEG of a JPEG is not modelled".into()),
                Task::Colorize => bad(
                    "JPEG after colorization is not modelled (gray JPEG files are: use --jpeg \
                     alone)"
                        .into(),
                ),
                t => t.validate(),
            },
        }
    }

    /// Whether `H` is linear: every task but JPEG compression (rounding).
    pub fn is_linear(&self) -> bool {
        !matches!(self, Task::Jpeg { .. })
    }
}

impl Blur {
    /// The blur's own parameters (see [`Task::validate`]).
    pub fn validate(&self) -> Result<(), TaskError> {
        let extent = |what: &str, v: f64| {
            if !v.is_finite() || v <= 0.0 {
                Err(TaskError(format!(
                    "{what} must be a finite number > 0, got {v}"
                )))
            } else if v > MAX_BLUR_EXTENT {
                Err(TaskError(format!(
                    "{what} {v} is too large (at most {MAX_BLUR_EXTENT} pixels)"
                )))
            } else {
                Ok(())
            }
        };
        match self {
            Blur::Gaussian { sigma } => extent("gaussian blur sigma", *sigma),
            Blur::Uniform { size } if *size == 0 => {
                Err(TaskError("uniform blur size must be at least 1".into()))
            }
            Blur::Uniform { .. } => Ok(()),
            Blur::Motion { angle, .. } if !angle.is_finite() => Err(TaskError(format!(
                "motion blur angle must be a finite number of degrees, got {angle}"
            ))),
            Blur::Motion { length, .. } => extent("motion blur length", *length),
            Blur::Custom {
                width,
                height,
                weights,
            } => {
                let want = u64::from(*width) * u64::from(*height);
                if want == 0 || weights.len() as u64 != want {
                    Err(TaskError(format!(
                        "custom kernel is {width}×{height} but has {} weights",
                        weights.len()
                    )))
                } else if weights.iter().any(|v| !v.is_finite() || *v < 0.0) {
                    Err(TaskError(
                        "custom kernel weights must be finite and non-negative".into(),
                    ))
                } else if weights.iter().all(|&v| v == 0.0) {
                    Err(TaskError("custom kernel weights sum to zero".into()))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_shape_of_tasks() {
        let t: Task = serde_json::from_str(r#"{"kind":"sr","scale":4}"#).unwrap();
        assert_eq!(
            t,
            Task::Sr {
                scale: 4,
                downsample: SrKind::Avgpool
            }
        );
        let t: Task =
            serde_json::from_str(r#"{"kind":"deblur","kernel":"gaussian","sigma":3}"#).unwrap();
        assert_eq!(t, Task::Deblur(Blur::Gaussian { sigma: 3.0 }));
        let t: Task =
            serde_json::from_str(r#"{"kind":"deblur","kernel":"motion","length":9,"angle":30}"#)
                .unwrap();
        assert_eq!(
            t,
            Task::Deblur(Blur::Motion {
                length: 9.0,
                angle: 30.0
            })
        );
        assert!(serde_json::from_str::<Task>(r#"{"kind":"paint"}"#).is_err());
    }

    #[test]
    fn validate_refuses_each_bad_parameter_and_takes_the_good_ones() {
        let sr = |scale| Task::Sr {
            scale,
            downsample: SrKind::Avgpool,
        };
        let jpeg = |quality, inner: Option<Task>| Task::Jpeg {
            quality,
            sampling: None,
            tables: None,
            inner: inner.map(Box::new),
        };
        let sampled = |sampling| Task::Jpeg {
            quality: Some(90),
            sampling: Some(sampling),
            tables: None,
            inner: None,
        };
        let tables = |sampling, quant: Vec<Vec<u16>>| Task::Jpeg {
            quality: None,
            sampling: None,
            tables: Some(JpegTables { sampling, quant }),
            inner: None,
        };
        let custom = |weights: Vec<f32>| {
            Task::Deblur(Blur::Custom {
                width: 2,
                height: 1,
                weights,
            })
        };
        let good = [
            sr(2),
            sr(8),
            Task::Inpaint,
            Task::Colorize,
            Task::Denoise { sigma: 1.0 },
            Task::Deblur(Blur::Gaussian { sigma: 0.5 }),
            Task::Deblur(Blur::Uniform { size: 1 }),
            Task::Deblur(Blur::Motion {
                length: 9.0,
                angle: -30.0,
            }),
            custom(vec![0.0, 2.0]),
            jpeg(Some(1), None),
            jpeg(None, Some(sr(4))),
            tables([2, 2], vec![vec![16; 64], vec![17; 64]]),
            tables([1, 1], vec![vec![1; 64]]),
            sampled([1, 1]),
            sampled([2, 1]),
        ];
        for t in &good {
            assert_eq!(t.validate(), Ok(()), "{t:?}");
        }
        let bad = [
            sr(3),
            sr(0),
            Task::Denoise { sigma: 0.0 },
            Task::Denoise { sigma: 25.0 },
            Task::Denoise { sigma: f64::NAN },
            Task::Deblur(Blur::Gaussian { sigma: -1.0 }),
            Task::Deblur(Blur::Gaussian { sigma: 2e4 }),
            Task::Deblur(Blur::Uniform { size: 0 }),
            Task::Deblur(Blur::Motion {
                length: 9.0,
                angle: f64::INFINITY,
            }),
            Task::Deblur(Blur::Motion {
                length: 0.0,
                angle: 0.0,
            }),
            custom(vec![1.0]),
            custom(vec![1.0, -1.0]),
            custom(vec![0.0, 0.0]),
            custom(vec![1.0, f32::NAN]),
            jpeg(Some(0), None),
            jpeg(Some(101), None),
            jpeg(None, Some(jpeg(Some(50), None))),
            jpeg(None, Some(Task::Colorize)),
            jpeg(None, Some(sr(3))),
            tables([3, 1], vec![vec![16; 64]]),
            tables([2, 2], vec![vec![16; 63]]),
            tables([2, 2], vec![vec![16; 64], vec![0; 64]]),
            tables([2, 2], vec![]),
            tables([2, 2], vec![vec![16; 64]; 4]),
            sampled([4, 1]),
            Task::Jpeg {
                quality: None,
                sampling: Some([2, 2]),
                tables: None,
                inner: None,
            },
            Task::Jpeg {
                quality: Some(50),
                sampling: None,
                tables: Some(JpegTables {
                    sampling: [2, 2],
                    quant: vec![vec![16; 64]],
                }),
                inner: None,
            },
        ];
        for t in &bad {
            assert!(t.validate().is_err(), "{t:?}");
        }
    }
}
