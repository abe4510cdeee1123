//! The `aviary` binary: hands the command line to `cli::main`.

fn main() -> std::process::ExitCode {
    cli::main()
}
