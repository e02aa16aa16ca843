//! `cargo run --release --example train -- --out DIR ...`: the `train` subcommand on its
//! own, for long background runs with a binary that does not change under them.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Train the default diffusion model (same flags as `vml-filter train`)")]
struct Cli {
    #[command(flatten)]
    train: vml::train::TrainArgs,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match vml::train::run(&cli.train) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train: {e}");
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}
