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
    tune_allocator();
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

/// glibc's malloc raises its mmap threshold each time a large block is
/// freed, so later blocks of that size come from its arenas and stay
/// resident once freed: a first backup of a million small objects (pack
/// headers, index files, sealing buffers of a few MB, made and freed over
/// and over in several threads) peaked at 254 MB instead of 180 MB
/// (docs/BENCHMARKS.md). A fixed threshold (glibc's initial 128 KiB) gives
/// every large block back when it is freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets a malloc parameter; it is called before any
    // other thread exists, with a documented parameter and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
