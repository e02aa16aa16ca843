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
    /// at that quality (1–100, 4:2:0 chroma); absent, the tables and chroma sampling are
    /// those of the input file, which must then be a JPEG.
    Jpeg {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = 100))]
        quality: Option<u32>,
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

    /// Whether the input's own JPEG tables are needed (`jpeg` without a quality).
    pub fn needs_jpeg_tables(&self) -> bool {
        matches!(self, Task::Jpeg { quality: None, .. })
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
}
