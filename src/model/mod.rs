//! The ADM UNet of OpenAI's guided-diffusion, with module paths equal to the checkpoint
//! keys (`input_blocks.1.0.in_layers.0.weight`, …), and its strict loader.

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod load;
pub mod memory;
pub mod network;
pub mod norm;
pub mod resblock;
pub mod timestep;
pub mod unet;

pub use config::UNetConfig;
pub use load::LoadError;
pub use network::{Network, Precision};
pub use unet::UNet;
