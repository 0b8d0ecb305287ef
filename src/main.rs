//! The `converge` command line: a thin layer over the library. Arguments
//! are parsed in two stages, raw flags (clap) and then a checked
//! configuration; errors print once, with their chain, and map to the exit
//! codes documented in the README: 0 success (or no changes), 1 error,
//! 2 changes present (`plan --detailed-exitcode`).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
