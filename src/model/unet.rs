//! The ADM UNet (Dhariwal & Nichol 2021; guided-diffusion `unet.py`), reproduced so that
//! the published checkpoints load unchanged: every field path below is a checkpoint key.

use super::attention::AttentionBlock;
use super::config::UNetConfig;
use super::norm::GroupNorm32;
use super::resblock::{Downsample, ResBlock, Resample, Upsample};
use super::timestep::timestep_embedding;
use tch::{nn, Kind, Tensor};

/// One entry of a `TimestepEmbedSequential`.
// A few hundred layers built once per model: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Layer {
    Conv(nn::Conv2D),
    Res(ResBlock),
    Attention(AttentionBlock),
    Down(Downsample),
    Up(Upsample),
}

impl Layer {
    fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Tensor {
        match self {
            Layer::Conv(c) => x.apply(c),
            Layer::Res(r) => r.forward(x, emb, train),
            Layer::Attention(a) => a.forward(x),
            Layer::Down(d) => d.forward(x),
            Layer::Up(u) => u.forward(x),
        }
    }
}

/// A sequence of layers that all receive the timestep embedding.
#[derive(Debug, Default)]
struct Block {
    layers: Vec<Layer>,
}

impl Block {
    fn forward(&self, x: &Tensor, emb: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = layer.forward(&h, emb, train);
        }
        h
    }
}

#[derive(Debug)]
pub struct UNet {
    cfg: UNetConfig,
    /// `time_embed.0` and `time_embed.2` (1 is SiLU).
    time_embed: (nn::Linear, nn::Linear),
    label_emb: Option<nn::Embedding>,
    input_blocks: Vec<Block>,
    middle_block: Block,
    output_blocks: Vec<Block>,
    /// `out.0` norm and `out.2` conv.
    out: (GroupNorm32, nn::Conv2D),
}

impl UNet {
    /// Builds the network under `p`; variables are created with the names of the
    /// reference's `state_dict`.
    pub fn new(p: &nn::Path, cfg: &UNetConfig) -> Result<Self, String> {
        cfg.validate()?;
        let mc = cfg.num_channels;
        let emb_dim = 4 * mc;
        let attn_ds = cfg.attention_ds();
        let heads_up = if cfg.num_heads_upsample == -1 {
            cfg.num_heads
        } else {
            cfg.num_heads_upsample
        };
        let res = |p: &nn::Path, cin: i64, cout: i64, resample: Resample| {
            ResBlock::new(
                p,
                cin,
                emb_dim,
                cout,
                cfg.use_scale_shift_norm,
                resample,
                cfg.dropout,
            )
        };
        let attention = |p: &nn::Path, ch: i64, heads: i64| {
            AttentionBlock::new(
                p,
                ch,
                heads,
                cfg.num_head_channels,
                cfg.use_new_attention_order,
            )
        };

        let te = p / "time_embed";
        let time_embed = (
            nn::linear(&te / 0, mc, emb_dim, Default::default()),
            nn::linear(&te / 2, emb_dim, emb_dim, Default::default()),
        );
        let label_emb = match (cfg.class_cond, cfg.num_classes) {
            (true, Some(n)) => Some(nn::embedding(
                p / "label_emb",
                n,
                emb_dim,
                Default::default(),
            )),
            _ => None,
        };

        // 1. Down path: remember each block's output width for the skip connections.
        let ip = p / "input_blocks";
        let mut ch = cfg.channel_mult[0] * mc;
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut input_blocks = vec![Block {
            layers: vec![Layer::Conv(nn::conv2d(
                &ip / 0 / 0,
                cfg.in_channels,
                ch,
                3,
                conv_cfg,
            ))],
        }];
        let mut skip_chans = vec![ch];
        let mut ds = 1;
        let levels = cfg.channel_mult.len();
        for (level, &mult) in cfg.channel_mult.iter().enumerate() {
            for _ in 0..cfg.num_res_blocks {
                let bp = &ip / input_blocks.len();
                let mut layers = vec![Layer::Res(res(&(&bp / 0), ch, mult * mc, Resample::None))];
                ch = mult * mc;
                if attn_ds.contains(&ds) {
                    layers.push(Layer::Attention(attention(&(&bp / 1), ch, cfg.num_heads)));
                }
                input_blocks.push(Block { layers });
                skip_chans.push(ch);
            }
            if level + 1 != levels {
                let lp = &ip / input_blocks.len() / 0;
                let layer = if cfg.resblock_updown {
                    Layer::Res(res(&lp, ch, ch, Resample::Down))
                } else {
                    Layer::Down(Downsample::new(&lp, ch, ch, true))
                };
                input_blocks.push(Block {
                    layers: vec![layer],
                });
                skip_chans.push(ch);
                ds *= 2;
            }
        }

        // 2. Middle: residual, attention, residual.
        let mp = p / "middle_block";
        let middle_block = Block {
            layers: vec![
                Layer::Res(res(&(&mp / 0), ch, ch, Resample::None)),
                Layer::Attention(attention(&(&mp / 1), ch, cfg.num_heads)),
                Layer::Res(res(&(&mp / 2), ch, ch, Resample::None)),
            ],
        };

        // 3. Up path: one more block per level, each concatenating a skip.
        let op = p / "output_blocks";
        let mut output_blocks = Vec::new();
        for (level, &mult) in cfg.channel_mult.iter().enumerate().rev() {
            for i in 0..=cfg.num_res_blocks {
                let bp = &op / output_blocks.len();
                let skip = skip_chans
                    .pop()
                    .ok_or("internal: skip channel stack empty")?;
                let mut layers = vec![Layer::Res(res(
                    &(&bp / 0),
                    ch + skip,
                    mc * mult,
                    Resample::None,
                ))];
                ch = mc * mult;
                if attn_ds.contains(&ds) {
                    layers.push(Layer::Attention(attention(&(&bp / 1), ch, heads_up)));
                }
                if level > 0 && i == cfg.num_res_blocks {
                    let lp = &bp / layers.len();
                    layers.push(if cfg.resblock_updown {
                        Layer::Res(res(&lp, ch, ch, Resample::Up))
                    } else {
                        Layer::Up(Upsample::new(&lp, ch, ch, true))
                    });
                    ds /= 2;
                }
                output_blocks.push(Block { layers });
            }
        }

        let outp = p / "out";
        let out = (
            GroupNorm32::new(&outp / 0, ch),
            nn::conv2d(&outp / 2, ch, cfg.out_channels(), 3, conv_cfg),
        );
        Ok(Self {
            cfg: cfg.clone(),
            time_embed,
            label_emb,
            input_blocks,
            middle_block,
            output_blocks,
            out,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Raw network output for `x` `(N, C, H, W)` at (real-valued) timesteps `t` `(N,)`:
    /// `(N, C, H, W)`, or `(N, 2C, H, W)` with `learn_sigma` (ε first).
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.forward_t(x, t, None, false)
    }

    /// As `forward`, with class labels `y` `(N,)` for class-conditional models and the
    /// training flag (dropout).
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, y: Option<&Tensor>, train: bool) -> Tensor {
        // 1. Time (and class) embedding.
        let mut emb = timestep_embedding(t, self.cfg.num_channels)
            .to_kind(x.kind())
            .apply(&self.time_embed.0)
            .silu()
            .apply(&self.time_embed.1);
        if let (Some(table), Some(y)) = (&self.label_emb, y) {
            emb += y.to_kind(Kind::Int64).apply(table);
        }
        // 2. Down path, keeping every output for the skips.
        let mut skips = Vec::with_capacity(self.input_blocks.len());
        let mut h = x.shallow_clone();
        for block in &self.input_blocks {
            h = block.forward(&h, &emb, train);
            skips.push(h.shallow_clone());
        }
        // 3. Middle.
        h = self.middle_block.forward(&h, &emb, train);
        // 4. Up path.
        for block in &self.output_blocks {
            let skip = skips
                .pop()
                .expect("one skip per output block, by construction");
            h = block.forward(&Tensor::cat(&[h, skip], 1), &emb, train);
        }
        // 5. Output head.
        self.out.0.forward(&h).silu().apply(&self.out.1)
    }
}
