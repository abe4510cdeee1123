//! The `aviary-demo` binary: `demo::main` does the work, so the `aviary` binary can act as
//! `aviary-demo` too.

use std::process::ExitCode;

fn main() -> ExitCode {
    demo::main()
}
