//! Which commands take which of the shared options. The options are
//! defined once, on the root, so that they may stand before or after the
//! command (`converge --cloud aws plan …` and `converge plan --cloud aws
//! …`); each command's help then shows only those it uses, and giving
//! another one on the command line is an error naming it, rather than an
//! option silently ignored.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The cloud options: which cloud, the local cloud's state and behaviour,
/// the AWS connection, and the API call counts.
const CLOUD: &[&str] = &[
    "cloud",
    "state_dir",
    "local_faults",
    "local_delays",
    "region",
    "profile",
    "endpoint_url",
    "stats",
];

/// The local cloud's own options.
const LOCAL: &[&str] = &["state_dir", "local_faults", "local_delays"];

/// The stack lease's options.
const LEASE: &[&str] = &["lease_bucket", "lease_wait"];

/// Every scoped option (the others, such as `--color`, apply everywhere).
const SCOPED: &[&str] = &[
    "cloud",
    "state_dir",
    "local_faults",
    "local_delays",
    "region",
    "profile",
    "endpoint_url",
    "stats",
    "lease_bucket",
    "lease_wait",
];

/// The scoped options a command (by its name under the root) uses.
fn used_by(command: &str) -> Vec<&'static str> {
    match command {
        "plan" | "output" => CLOUD.to_vec(),
        "apply" | "destroy" | "reconcile" => [CLOUD, LEASE].concat(),
        // `--cloud` too: the local commands refuse any other cloud.
        "local" => [LOCAL, &["cloud"]].concat(),
        _ => Vec::new(),
    }
}

/// The command line with each command's help showing only the options
/// it uses (also for completions and man pages).
pub fn command(mut root: Command) -> Command {
    // Propagates the root's global options to every command.
    root.build();
    for sub in root.get_subcommands_mut() {
        let used = used_by(sub.get_name());
        *sub = hide(std::mem::take(sub), &used);
    }
    root
}

fn hide(command: Command, used: &[&str]) -> Command {
    let mut command = command.mut_args(|a| {
        let id = a.get_id().as_str();
        if SCOPED.contains(&id) && !used.contains(&id) {
            a.hide(true)
        } else {
            a
        }
    });
    for sub in command.get_subcommands_mut() {
        *sub = hide(std::mem::take(sub), used);
    }
    command
}

/// Refuses a scoped option given on the command line to a command that
/// does not use it (`converge validate --region …`).
pub fn check(matches: &ArgMatches) -> Result<(), String> {
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(());
    };
    let used = used_by(name);
    for id in SCOPED.iter().filter(|id| !used.contains(id)) {
        let given = |m: &ArgMatches| {
            m.try_get_raw(id).is_ok_and(|v| v.is_some())
                && m.value_source(id) == Some(ValueSource::CommandLine)
        };
        if given(matches) || given(sub) || nested(sub, id) {
            return Err(format!(
                "--{} is not used by `converge {name}`",
                id.replace('_', "-")
            ));
        }
    }
    Ok(())
}

/// Whether a nested command (`local add vpc`) was given `id`.
fn nested(matches: &ArgMatches, id: &str) -> bool {
    match matches.subcommand() {
        Some((_, sub)) => {
            (sub.try_get_raw(id).is_ok_and(|v| v.is_some())
                && sub.value_source(id) == Some(ValueSource::CommandLine))
                || nested(sub, id)
        }
        None => false,
    }
}
