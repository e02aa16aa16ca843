//! `UNetConfig`: the arguments of guided-diffusion's `create_model`, as data.
//!
//! The JSON form uses the same argument names, so a config can be written from the
//! command line that trained a checkpoint. `attention_resolutions` are image resolutions
//! (e.g. `[16]` means "at 16×16 when the input is `image_size`"), as in the reference.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::LoadError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    /// Training resolution; with `attention_resolutions` it fixes where attention sits.
    pub image_size: i64,
    /// Input channels (3 for RGB).
    #[serde(default = "three")]
    pub in_channels: i64,
    /// Base channel count (`model_channels` in the reference).
    pub num_channels: i64,
    /// Residual blocks per level on the way down (one more on the way up).
    pub num_res_blocks: i64,
    /// Channel multiplier per level; the number of levels is its length.
    pub channel_mult: Vec<i64>,
    /// Resolutions with self-attention after each residual block.
    #[serde(default)]
    pub attention_resolutions: Vec<i64>,
    /// Attention heads (used when `num_head_channels` is -1).
    #[serde(default = "one")]
    pub num_heads: i64,
    /// Channels per head; -1 means "use `num_heads`".
    #[serde(default = "minus_one")]
    pub num_head_channels: i64,
    /// Heads on the way up; -1 means "same as `num_heads`".
    #[serde(default = "minus_one")]
    pub num_heads_upsample: i64,
    /// FiLM-style conditioning on the timestep (scale and shift after the norm).
    #[serde(default)]
    pub use_scale_shift_norm: bool,
    /// Residual blocks instead of plain convs/pools for up- and down-sampling.
    #[serde(default)]
    pub resblock_updown: bool,
    /// The network also predicts the variance: 6 output channels instead of 3.
    #[serde(default)]
    pub learn_sigma: bool,
    /// Dropout rate (training only; inference ignores it).
    #[serde(default)]
    pub dropout: f64,
    /// Class-conditional (adds `label_emb`).
    #[serde(default)]
    pub class_cond: bool,
    /// Number of classes when `class_cond`.
    #[serde(default)]
    pub num_classes: Option<i64>,
    /// QKV split order: new (`QKVAttention`) or legacy (`QKVAttentionLegacy`).
    #[serde(default)]
    pub use_new_attention_order: bool,
}

fn three() -> i64 {
    3
}
fn one() -> i64 {
    1
}
fn minus_one() -> i64 {
    -1
}

impl UNetConfig {
    /// `ffhq_10m.pt` from the DPS project (guided-diffusion arguments in docs/vml-map.md).
    pub fn ffhq_256() -> Self {
        Self {
            image_size: 256,
            in_channels: 3,
            num_channels: 128,
            num_res_blocks: 1,
            channel_mult: vec![1, 1, 2, 2, 4, 4],
            attention_resolutions: vec![16],
            num_heads: 4,
            num_head_channels: 64,
            num_heads_upsample: -1,
            use_scale_shift_norm: true,
            resblock_updown: true,
            learn_sigma: true,
            dropout: 0.0,
            class_cond: false,
            num_classes: None,
            use_new_attention_order: false,
        }
    }

    /// OpenAI's `256x256_diffusion_uncond.pt`.
    pub fn imagenet_256_uncond() -> Self {
        Self {
            num_channels: 256,
            num_res_blocks: 2,
            attention_resolutions: vec![32, 16, 8],
            ..Self::ffhq_256()
        }
    }

    /// The model this project trains and ships (models/default/config.json).
    pub fn shipped_default() -> Self {
        Self {
            image_size: 64,
            in_channels: 3,
            num_channels: 32,
            num_res_blocks: 1,
            channel_mult: vec![1, 2, 2, 2],
            attention_resolutions: vec![],
            num_heads: 1,
            num_head_channels: -1,
            num_heads_upsample: -1,
            use_scale_shift_norm: true,
            resblock_updown: false,
            learn_sigma: false,
            dropout: 0.0,
            class_cond: false,
            num_classes: None,
            use_new_attention_order: false,
        }
    }

    /// A named architecture (`ffhq-256`, `imagenet-256`, `default`) or a JSON file.
    pub fn from_name_or_file(spec: &str) -> Result<Self, LoadError> {
        match spec {
            "ffhq-256" | "ffhq" => Ok(Self::ffhq_256()),
            "imagenet-256" | "imagenet" => Ok(Self::imagenet_256_uncond()),
            "default" => Ok(Self::shipped_default()),
            path => Self::from_file(Path::new(path)),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Config {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| LoadError::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| LoadError::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Checks the arguments the reference would reject (or silently mis-build).
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("image_size", self.image_size),
            ("in_channels", self.in_channels),
            ("num_channels", self.num_channels),
            ("num_res_blocks", self.num_res_blocks),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(format!("{name} must be positive, got {v}"));
            }
        }
        if self.channel_mult.is_empty() || self.channel_mult.iter().any(|&m| m <= 0) {
            return Err(format!(
                "channel_mult must be non-empty and positive, got {:?}",
                self.channel_mult
            ));
        }
        for &r in &self.attention_resolutions {
            if r <= 0 || self.image_size % r != 0 {
                return Err(format!(
                    "attention resolution {r} does not divide image_size {}",
                    self.image_size
                ));
            }
        }
        if self.class_cond && self.num_classes.unwrap_or(0) <= 0 {
            return Err("class_cond needs num_classes > 0".into());
        }
        for mult in &self.channel_mult {
            let ch = mult * self.num_channels;
            if ch % 32 != 0 {
                return Err(format!(
                    "{ch} channels cannot be split into 32 normalisation groups"
                ));
            }
            if self.num_head_channels > 0
                && !self.attention_resolutions.is_empty()
                && ch % self.num_head_channels != 0
            {
                return Err(format!(
                    "{ch} channels are not a multiple of num_head_channels {}",
                    self.num_head_channels
                ));
            }
        }
        Ok(())
    }

    /// Output channels: ε, plus the variance interpolation when `learn_sigma`.
    pub fn out_channels(&self) -> i64 {
        if self.learn_sigma {
            2 * self.in_channels
        } else {
            self.in_channels
        }
    }

    /// Image sides must be multiples of this (one halving per level after the first).
    pub fn size_multiple(&self) -> i64 {
        1 << (self.channel_mult.len() - 1)
    }

    /// Down-sampling factors ("ds" in the reference) at which attention is used.
    pub fn attention_ds(&self) -> Vec<i64> {
        self.attention_resolutions
            .iter()
            .map(|r| self.image_size / r)
            .collect()
    }
}
