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

/// LibTorch's OpenMP threads spin while they wait for work. When other processes want the
/// cores, the spinning takes their time slices and the threads end up waiting on each other:
/// docs/benchmarks.md ("Threads under contention") measured a restore on two threads 4.8×
/// slower than with passive waiting, which cost 2 % on the idle machine. libgomp reads
/// `OMP_WAIT_POLICY` once, when it is loaded, which is before `main`; so the only way to
/// choose it for this process is to run the binary again with the variable set (same PID,
/// file descriptors, arguments; about one more LibTorch start-up, 0.7 s here), and only
/// for runs long enough to repay that (`Cli::runs_parallel_torch`). A user's own
/// `OMP_WAIT_POLICY` or `OMP_NUM_THREADS=1` is respected, and `VML_OMP_SPIN=1` keeps the
/// spinning; an `exec` that fails goes on with the default policy.
fn prefer_passive_openmp(cli: &Cli) {
    use std::os::unix::process::CommandExt;
    let set = |v: &str| std::env::var_os(v).is_some();
    if set("OMP_WAIT_POLICY")
        || set("VML_OMP_SPIN")
        || std::env::var("OMP_NUM_THREADS").is_ok_and(|n| n.trim() == "1")
        || !cli.runs_parallel_torch()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .exec();
    log::debug!("could not run again with OMP_WAIT_POLICY=PASSIVE: {err}");
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
    prefer_passive_openmp(&cli);

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
