//! `UNetConfig`: the guided-diffusion `create_model` arguments, as data.
pub struct UNetConfig;
