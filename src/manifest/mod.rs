//! Manifests: YAML documents loaded, validated and resolved into the
//! desired state.
//!
//! A stack is a directory of `*.yaml`/`*.yml` files, read in sorted order,
//! each holding documents separated by `---`. Every document has `kind`,
//! `name` and `spec` (see `docs/manifests.md`). Loading goes in stages so
//! that one bad document never hides the problems of another:
//!
//! 1. read each file, refusing oversized ones ([`MAX_FILE_BYTES`],
//!    [`MAX_STACK_BYTES`]);
//! 2. parse it into a lightly typed tree that remembers every value's line
//!    and column, under budgets that stop alias bombs and deep nesting;
//! 3. decode each document's `spec` into its kind's type (`raw`), which is
//!    also where the JSON Schemas come from;
//! 4. check every value and reference, and the rules that span resources,
//!    building the [`Desired`] state as it goes.
//!
//! Every problem becomes a [`Diagnostic`] naming file, line, resource and
//! field; [`load`] returns them all.

pub(crate) mod check;
mod decode;
mod diagnostics;
mod node;
pub mod raw;
mod resolve;
mod template;
mod yaml;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use raw::schemas;

use converge_core::Desired;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most manifest bytes read for one stack.
pub const MAX_STACK_BYTES: u64 = 10 * 1024 * 1024;

/// A stack's manifests, loaded and validated.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The desired state they declare.
    pub desired: Desired,
    /// The manifest files read, in the order they were read.
    pub files: Vec<PathBuf>,
}

/// Loads and validates a stack directory. `env` reads environment variables
/// (for `${env:NAME}`); their values end up only in
/// [`Secret`](converge_core::desired::Secret)s.
pub fn load(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, Diagnostics> {
    let mut diags = Vec::new();
    let sources = read_dir(dir, &mut diags);
    let files: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    if sources.is_empty() && diags.is_empty() {
        diags.push(Diagnostic::new(
            dir,
            "no manifest files: expected *.yaml or *.yml files in this directory",
        ));
    }
    let desired = if sources.is_empty() {
        None
    } else {
        resolve::resolve(dir, sources, env, &mut diags)
    };
    match desired {
        Some(desired) if diags.is_empty() => Ok(Loaded { desired, files }),
        _ => {
            // File order, then position; the sort is stable, so problems at
            // the same place keep the order they were found in.
            diags.sort_by(|a, b| {
                (&a.file, a.line.unwrap_or(0), a.column.unwrap_or(0)).cmp(&(
                    &b.file,
                    b.line.unwrap_or(0),
                    b.column.unwrap_or(0),
                ))
            });
            Err(Diagnostics(diags))
        }
    }
}

/// Reads the manifest files of a directory, in name order.
fn read_dir(dir: &Path, diags: &mut Vec<Diagnostic>) -> Vec<resolve::Source> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let message = match e.kind() {
                std::io::ErrorKind::NotFound => "stack directory not found".to_owned(),
                std::io::ErrorKind::NotADirectory => {
                    "expected a directory of manifest files, found a file".to_owned()
                }
                _ => format!("cannot read the stack directory: {}", io_reason(&e)),
            };
            diags.push(Diagnostic::new(dir, message));
            return Vec::new();
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::new(
                    dir,
                    format!("cannot list the stack directory: {}", io_reason(&e)),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Hidden files (editor backups, lock files) are not manifests.
        if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let path = entry.path();
        // Directories named like manifests are skipped; symlinks are followed.
        if path.is_dir() {
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    let mut total: u64 = 0;
    let mut sources = Vec::new();
    for path in paths {
        match read_file(&path) {
            Ok(text) => {
                total += text.len() as u64;
                if total > MAX_STACK_BYTES {
                    diags.push(Diagnostic::new(
                        dir,
                        format!(
                            "refused: the stack's manifests exceed {} MiB in all (at {})",
                            MAX_STACK_BYTES / (1024 * 1024),
                            path.display()
                        ),
                    ));
                    break;
                }
                sources.push(resolve::Source { path, text });
            }
            Err(d) => diags.push(*d),
        }
    }
    sources
}

fn read_file(path: &Path) -> Result<String, Box<Diagnostic>> {
    let fail = |m: String| Box::new(Diagnostic::new(path, m));
    let file = std::fs::File::open(path)
        .map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
    let too_big = |size: u64| {
        fail(format!(
            "refused: the file is {} bytes; manifest files are limited to {} MiB",
            size,
            MAX_FILE_BYTES / (1024 * 1024)
        ))
    };
    if let Ok(meta) = file.metadata()
        && meta.len() > MAX_FILE_BYTES
    {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.remove(0);
            }
            Ok(text)
        }
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let column = good.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
            Err(Box::new(
                Diagnostic::new(path, "expected UTF-8 text, found invalid bytes")
                    .at(Some(line), Some(column)),
            ))
        }
    }
}

/// An I/O error as a lowercase reason, without the OS error number.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = match e.kind() {
        std::io::ErrorKind::NotFound => return "no such file".into(),
        std::io::ErrorKind::PermissionDenied => return "permission denied".into(),
        _ => e.to_string(),
    };
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
