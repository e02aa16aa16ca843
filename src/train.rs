//! `vml-filter train`: the default model's training loop.
