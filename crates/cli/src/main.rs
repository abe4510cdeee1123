//! The `aviary` binary: parses arguments and hands them to `cli::run`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Args::parse())
}
