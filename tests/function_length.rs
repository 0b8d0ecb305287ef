//! No function outside tests is longer than 150 lines (docs/architecture.md):
//! a kind that grows a dispatch into a giant match fails here, not in
//! review. An exception needs a `// long-function: <why>` comment on one
//! of the lines just above the `fn`.
//!
//! The scan is textual (the crate needs no parser): a `fn` item's body is
//! measured from its line to the line closing its outermost brace, with
//! string and character literals and `//` comments ignored; everything
//! from a file's first `#[cfg(test)]` on is test code and skipped.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::fs;
use std::path::{Path, PathBuf};

/// The longest a function may be, in lines, signature and body included.
const LIMIT: usize = 150;

#[test]
fn no_function_outside_tests_is_longer_than_150_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "crates/core/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut too_long = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        for f in functions(&text) {
            if f.lines > LIMIT && !f.excused {
                let shown = path.strip_prefix(root).unwrap_or(path).display();
                too_long.push(format!(
                    "{shown}:{} fn {} is {} lines",
                    f.line, f.name, f.lines
                ));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions over {LIMIT} lines (split them, or say why with `// long-function:`):\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_scan_measures_what_it_claims() {
    let src = "fn short() {\n    let s = \"}\";\n}\n\n// long-function: a table\nfn excused() {\n}\n#[cfg(test)]\nfn hidden() {\n}\n";
    let fs = functions(src);
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert_eq!(
        (fs[0].name.as_str(), fs[0].lines, fs[0].excused),
        ("short", 3, false)
    );
    assert_eq!((fs[1].name.as_str(), fs[1].excused), ("excused", true));
    let long = format!("fn big() {{\n{}}}\n", "    x();\n".repeat(LIMIT));
    assert!(functions(&long)[0].lines > LIMIT);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A function found in a file.
#[derive(Debug)]
struct Function {
    name: String,
    /// 1-based line of its `fn`.
    line: usize,
    lines: usize,
    excused: bool,
}

/// The functions of a file before its first `#[cfg(test)]`.
fn functions(text: &str) -> Vec<Function> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    let mut out = Vec::new();
    let mut i = 0;
    while i < end {
        if let Some(name) = fn_name(lines[i])
            && let Some(last) = body_end(&lines, i)
        {
            let excused = lines[i.saturating_sub(3)..i]
                .iter()
                .any(|l| l.contains("// long-function:"));
            out.push(Function {
                name,
                line: i + 1,
                lines: last - i + 1,
                excused,
            });
        }
        i += 1;
    }
    out
}

/// The name of the function a line starts, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "pub" | "const" | "async" | "unsafe" | "extern" => continue,
            w if w.starts_with("pub(") => continue,
            "fn" => {
                let name: String = words
                    .next()?
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            _ => return None,
        }
    }
    None
}

/// The line closing the body of the function starting at `start`; `None`
/// for a declaration without a body.
fn body_end(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut opened = false;
    for (j, line) in lines.iter().enumerate().skip(start) {
        let code = strip(line);
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if !opened && code.trim_end().ends_with(';') {
            return None;
        }
        if opened && depth == 0 {
            return Some(j);
        }
    }
    None
}

/// A line without its string and character literals and `//` comment.
fn strip(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '{'), or a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    chars.next();
                    chars.next();
                    while chars.next().is_some_and(|d| d != '\'') {}
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            c => out.push(c),
        }
    }
    out
}
