//! Writes a checkpoint with random weights for a named architecture (or a config JSON), plus
//! its `config.json`, so that `--model DIR/model.safetensors` runs that network. Peak memory
//! and time do not depend on the weights' values, so this measures large architectures
//! (e.g. `ffhq-256`) without downloading them (docs/protocol.md, "Memory and tiles").
//!
//! `cargo run --release --example random_checkpoint -- ARCH OUT_DIR`

use tch::{nn::VarStore, Device};
use vml::model::{UNet, UNetConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(arch), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: random_checkpoint ARCH OUT_DIR");
        std::process::exit(2);
    };
    let cfg = UNetConfig::from_name_or_file(arch).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(4);
    });
    let dir = std::path::Path::new(out);
    std::fs::create_dir_all(dir).expect("create OUT_DIR");
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let _ = UNet::new(&vs.root(), &cfg).expect("valid config");
    vs.save(dir.join("model.safetensors"))
        .expect("write weights");
    let json = serde_json::to_string(&cfg).expect("config to JSON");
    std::fs::write(dir.join("config.json"), json).expect("write config.json");
    println!("{}", dir.join("model.safetensors").display());
}
