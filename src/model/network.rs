//! A loaded network: the UNet, its weights and the precision it runs in.

use super::{load::load_strict, LoadError, UNet, UNetConfig};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Arithmetic precision of the network's weights and activations. Half precisions are for
/// CUDA; normalisation and softmax stay in float32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "f32" => Some(Self::Fp32),
            "fp16" | "float16" | "f16" | "half" => Some(Self::Fp16),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Fp32 => Kind::Float,
            Self::Fp16 => Kind::Half,
            Self::Bf16 => Kind::BFloat16,
        }
    }
}

/// For command-line flags and the protocol: the same names as `parse`, and an error that
/// lists them.
impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("bad precision '{s}': fp32, fp16 or bf16"))
    }
}

serde_by_name!(Precision);

pub struct Network {
    unet: UNet,
    vs: VarStore,
    precision: Precision,
    weights: PathBuf,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("weights", &self.weights)
            .field("device", &self.vs.device())
            .field("precision", &self.precision)
            .finish()
    }
}

impl Network {
    /// Builds the UNet for `cfg` on `device` and loads `weights` strictly.
    pub fn open(
        weights: &Path,
        cfg: &UNetConfig,
        device: Device,
        precision: Precision,
    ) -> Result<Self, LoadError> {
        let mut vs = VarStore::new(device);
        let unet = UNet::new(&vs.root(), cfg).map_err(LoadError::Other)?;
        load_strict(&mut vs, weights)?;
        vs.freeze();
        if precision != Precision::Fp32 {
            vs.set_kind(precision.kind());
        }
        Ok(Self {
            unet,
            vs,
            precision,
            weights: weights.to_owned(),
        })
    }

    pub fn config(&self) -> &UNetConfig {
        self.unet.config()
    }
    pub fn device(&self) -> Device {
        self.vs.device()
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    pub fn weights_path(&self) -> &Path {
        &self.weights
    }
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    /// Raw output in float32 for a float32 input, whatever the network's precision.
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let x = x.to_device(self.device());
        let t = t.to_device(self.device());
        if self.precision == Precision::Fp32 {
            self.unet.forward(&x, &t)
        } else {
            self.unet
                .forward(&x.to_kind(self.precision.kind()), &t)
                .to_kind(Kind::Float)
        }
    }
}
