//! The ADM UNet of OpenAI's guided-diffusion, with module paths equal to the checkpoint
//! keys (`input_blocks.1.0.in_layers.0.weight`, …), and its strict loader.

pub mod config;
pub mod load;

pub use config::UNetConfig;
pub use load::LoadError;
