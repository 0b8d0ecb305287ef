//! Records the commit and the build date for `converge version`
//! (`CONVERGE_COMMIT`, `CONVERGE_BUILD_DATE`). Without git (a source
//! tarball), the commit is "unknown". `SOURCE_DATE_EPOCH` fixes the date
//! for reproducible builds.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
    let commit = if dirty && commit != "unknown" {
        format!("{commit}-dirty")
    } else {
        commit
    };
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|secs| {
            Command::new("date")
                .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d"])
                .output()
        })
        .unwrap_or_else(|| Command::new("date").args(["-u", "+%Y-%m-%d"]).output())
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CONVERGE_COMMIT={commit}");
    println!("cargo:rustc-env=CONVERGE_BUILD_DATE={date}");
    // Again when the checked-out commit moves (in a worktree `.git` is a
    // file; the HEAD path is then wrong, and the values are those of the
    // last full build).
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--git-path", "refs/heads"]) {
        println!("cargo:rerun-if-changed={refs}");
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}
