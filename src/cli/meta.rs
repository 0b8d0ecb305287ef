//! The commands about converge itself (`version`, `completions`, `man`)
//! and the one place that decides whether output is coloured.

use anyhow::{Context as _, Result};
use clap::{Command, ValueEnum};
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::OnceLock;

/// `--color`: whether plans and logs use ANSI colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When the stream is a terminal, unless `NO_COLOR` is set (or
    /// `CLICOLOR_FORCE` forces it).
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

static COLOR: OnceLock<ColorChoice> = OnceLock::new();

/// Records the `--color` given, once, at start.
pub fn set_color(choice: ColorChoice) {
    let _ = COLOR.set(choice);
}

/// Whether a stream gets colour: `--color always|never` decide; `auto`
/// follows <https://no-color.org> (`NO_COLOR` set and not empty: no
/// colour) and <https://bixense.com/clicolors/> (`CLICOLOR_FORCE` set and
/// not `0`: colour even when not a terminal), else whether the stream is
/// a terminal.
pub fn colored(is_terminal: bool) -> bool {
    decide(
        COLOR.get().copied().unwrap_or_default(),
        is_terminal,
        |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
    )
}

/// Whether stdout gets colour.
pub fn stdout_colored() -> bool {
    colored(std::io::stdout().is_terminal())
}

/// Whether stderr gets colour.
pub fn stderr_colored() -> bool {
    colored(std::io::stderr().is_terminal())
}

fn decide(choice: ColorChoice, is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("NO_COLOR") => false,
        ColorChoice::Auto
            if set("CLICOLOR_FORCE") && var("CLICOLOR_FORCE").as_deref() != Some("0") =>
        {
            true
        }
        ColorChoice::Auto => is_terminal,
    }
}

/// `--version`'s text: the version, commit and build date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CONVERGE_COMMIT"),
    ", built ",
    env!("CONVERGE_BUILD_DATE"),
    ")"
);

/// The version, the commit it was built from and the build date.
pub fn version(json: bool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("CONVERGE_COMMIT");
    let date = env!("CONVERGE_BUILD_DATE");
    if json {
        serde_json::json!({
            "version": version,
            "commit": commit,
            "build_date": date,
            "target": std::env::consts::ARCH.to_owned() + "-" + std::env::consts::OS,
        })
        .to_string()
    } else {
        format!("converge {version} (commit {commit}, built {date})")
    }
}

/// Writes the completion script for `shell` to stdout (a closed pipe,
/// as with `| head`, ends it quietly).
pub fn completions(shell: clap_complete::Shell, mut command: Command) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "converge", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(()),
    }
}

/// Writes one man page per command into `out` (`converge.1`,
/// `converge-plan.1`, `converge-local-ls.1`, …); returns the files made.
pub fn man(out: &Path, command: Command) -> Result<Vec<String>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    // Building the root gives every subcommand its full `bin_name`
    // (`converge local ls`), which the synopses show.
    let mut command = command;
    command.build();
    write_pages(out, command, "converge", &mut written)?;
    Ok(written)
}

/// The page of `command`, whose words are `words` (`converge local ls`),
/// and of its subcommands.
fn write_pages(out: &Path, command: Command, words: &str, written: &mut Vec<String>) -> Result<()> {
    // `converge-local-ls(1)` in the title and file name, as git's pages
    // are named; `converge local ls` in the synopsis.
    let name = words.replace(' ', "-");
    let command = command.display_name(name.clone());
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let file = format!("{name}.1");
    let path = out.join(&file);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&page))
        .with_context(|| format!("writing {}", path.display()))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(
            out,
            sub.clone(),
            &format!("{name}-{}", sub.get_name()),
            written,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_flag_then_no_color_then_clicolor_force_then_the_terminal() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        use ColorChoice::*;
        assert!(decide(Always, false, env(&[("NO_COLOR", "1")])));
        assert!(!decide(Never, true, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(decide(Auto, true, env(&[])));
        assert!(!decide(Auto, false, env(&[])));
        assert!(!decide(Auto, true, env(&[("NO_COLOR", "1")])));
        assert!(decide(Auto, true, env(&[("NO_COLOR", "")])));
        assert!(decide(Auto, false, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!decide(Auto, false, env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!decide(
            Auto,
            false,
            env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")])
        ));
    }

    #[test]
    fn version_names_the_commit_and_date() {
        assert!(version(false).starts_with(concat!(
            "converge ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        )));
        let v: serde_json::Value = serde_json::from_str(&version(true)).unwrap();
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["commit"].is_string() && v["build_date"].is_string());
    }
}
