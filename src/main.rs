//! The `vml-filter` binary: parse the command line, run the library, map the error to an
//! exit code (docs/protocol.md). Nothing but image or protocol bytes goes to stdout.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use vml::app::cli::{self, Cli};
use vml::Error;

/// A parser error as the one line every other error is (docs/reliability.md): clap's first
/// line without its `error:` tag, and what to do about it.
fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // `vml-filter a.jpg b.jpg`: clap takes the stray path for a subcommand name.
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidSubcommand) {
            return format!(
                "unexpected argument '{arg}': the image comes from stdin or -i FILE, one per run \
                 (for many files: vml-filter batch INPUT… -o OUTDIR, see docs/batch.md)"
            );
        }
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see vml-filter --help)")
}

fn main() -> ExitCode {
    vml::pipeline::signals::install();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version are not errors and go to stdout, as users expect.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "vml-filter: usage: {}", usage_line(&e));
            return ExitCode::from(vml::error::exit::USAGE as u8);
        }
    };
    let mut logger = env_logger::Builder::new();
    logger
        .filter_level(cli.common.log_level())
        .format(|buf, record| {
            writeln!(
                buf,
                "vml-filter: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        logger.parse_filters(&spec);
    }
    logger.target(env_logger::Target::Stderr).init();

    // A panic (LibTorch reports some failures that way) becomes one error line and an exit
    // code like any other error, not a backtrace.
    std::panic::set_hook(Box::new(|info| log::debug!("panic: {info}")));
    let result = std::panic::catch_unwind(|| cli::run(cli))
        .unwrap_or_else(|p| Err(vml::pipeline::panic_error(p)));
    let code = match result {
        Ok(code) => code,
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            log::debug!("stdout closed by the reader");
            cli::EXIT_BROKEN_PIPE
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "vml-filter: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
