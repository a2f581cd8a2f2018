//! The `lifeboat` binary: parses options, wires the library crates together,
//! draws progress, maps failures to exit codes. No backup logic lives here.

mod cli;
mod commands;
mod config;
mod exit;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_logging(args.global.verbose, args.global.quiet);
    match commands::run(args) {
        Ok(code) => code.into(),
        Err(err) => {
            let (code, hint) = exit::classify(&err);
            if code == exit::Code::Ok {
                return code.into();
            }
            eprintln!("error: {}", exit::render(&err));
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            code.into()
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter =
        EnvFilter::try_from_env("LIFEBOAT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
