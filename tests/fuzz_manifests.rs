//! Issue 12, item 6: a fuzzer for the manifest loader. Random mutations of
//! the example stack (every kind it has, and kinds swapped): byte flips,
//! truncation, lines deleted and duplicated, deep and wide YAML, odd
//! Unicode, huge numbers, anchors and aliases. The loader never panics, and
//! every error names a file of the stack (or the directory). The CLI's
//! exit code follows from that (`validate` exits 1 on diagnostics, 0
//! otherwise); a few cases run the real binary to check it.
//!
//! In CI: 64 cases. A longer run: `CONVERGE_FUZZ_CASES=20000 cargo test
//! --release --test it fuzz_manifests::`.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example stack's files: name and text.
fn example() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Text inserted by [`Mutation::Insert`]: what breaks parsers.
fn nasty() -> Vec<String> {
    vec![
        "[".repeat(5000),
        format!("{}{}", "[".repeat(300), "]".repeat(300)),
        "{".repeat(2000),
        (0..3000).map(|i| format!("k{i}: {i}\n")).collect(),
        format!("[{}]", vec!["1"; 20000].join(",")),
        "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n".into(),
        "*undefined".into(),
        "\u{202e}\u{200b}\u{feff}\u{0}\u{1}\u{7f}".into(),
        "é𝕏\u{10ffff}\u{fffd}".into(),
        "99999999999999999999999999999999999999999".into(),
        "-1e400".into(),
        ".nan".into(),
        "0x7fffffffffffffffff".into(),
        "replicas: 4294967296".into(),
        "sizeGiB: -1".into(),
        "!!binary AAAA".into(),
        "!custom {a: 1}".into(),
        "---\n".into(),
        "...\n".into(),
        "? [a, b]\n: c\n".into(),
        "<<: {a: 1}\n".into(),
        "\t".into(),
        "\"unterminated".into(),
        "'${Fleet/db.privateIp}${env:NOPE}${'".into(),
    ]
}

/// The kinds a `kind:` line may be swapped to.
const KINDS: &[&str] = &[
    "Stack",
    "Network",
    "Fleet",
    "Volume",
    "Balancer",
    "SecurityGroup",
    "KeyPair",
    "Bucket",
    "Distribution",
    "Nope",
    "",
];

/// One change to one file.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte.
    Flip { at: usize, mask: u8 },
    /// Cut the text.
    Truncate { at: usize },
    /// Delete a line.
    DeleteLine { line: usize },
    /// Repeat a line.
    DuplicateLine { line: usize, times: usize },
    /// Insert a [`nasty`] text.
    Insert { at: usize, what: usize },
    /// Swap a `kind:` for another.
    SwapKind { nth: usize, kind: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        any::<usize>().prop_map(|line| Mutation::DeleteLine { line }),
        (any::<usize>(), 1usize..50)
            .prop_map(|(line, times)| Mutation::DuplicateLine { line, times }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, what)| Mutation::Insert { at, what }),
        (any::<usize>(), any::<usize>()).prop_map(|(nth, kind)| Mutation::SwapKind { nth, kind }),
    ]
}

/// Applies `m` to `text` (bytes: a flip may leave invalid UTF-8).
fn apply(text: &mut Vec<u8>, m: &Mutation) {
    let len = text.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if !text.is_empty() {
                let i = at % text.len();
                text[i] ^= mask;
            }
        }
        Mutation::Truncate { at } => text.truncate(at % len),
        Mutation::DeleteLine { line } | Mutation::DuplicateLine { line, .. } => {
            let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let i = line % lines.len();
            if let Mutation::DuplicateLine { times, .. } = m {
                let l = lines[i].clone();
                for _ in 0..*times {
                    lines.insert(i, l.clone());
                }
            } else {
                lines.remove(i);
            }
            *text = lines.join(&b'\n');
        }
        Mutation::Insert { at, what } => {
            let all = nasty();
            let s = &all[what % all.len()];
            let i = at % len.min(text.len() + 1);
            text.splice(i..i, s.bytes());
        }
        Mutation::SwapKind { nth, kind } => {
            let s = String::from_utf8_lossy(text).into_owned();
            let spots: Vec<usize> = s.match_indices("kind: ").map(|(i, _)| i).collect();
            if spots.is_empty() {
                return;
            }
            let start = spots[nth % spots.len()] + "kind: ".len();
            let end = s[start..].find('\n').map_or(s.len(), |e| start + e);
            let mut out = s[..start].to_owned();
            out.push_str(KINDS[kind % KINDS.len()]);
            out.push_str(&s[end..]);
            *text = out.into_bytes();
        }
    }
}

/// Writes the example with `mutations` (file index, change) applied.
fn mutated(mutations: &[(usize, Mutation)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = example()
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    for (f, m) in mutations {
        let n = files.len();
        apply(&mut files[f % n].1, m);
    }
    let mut paths = Vec::new();
    for (name, bytes) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    (dir, paths)
}

/// Loads the stack; fails the case on a panic or an error that names no
/// file of the stack.
fn check_loads(dir: &Path, files: &[PathBuf]) -> Result<(), TestCaseError> {
    let loaded = std::panic::catch_unwind(|| converge::manifest::load(dir, &|_| None));
    let Ok(result) = loaded else {
        return Err(TestCaseError::fail("the loader panicked"));
    };
    if let Err(diags) = result {
        prop_assert!(!diags.is_empty(), "an error without a diagnostic");
        for d in diags.iter() {
            prop_assert!(
                d.file == dir || files.contains(&d.file),
                "names no file of the stack: {d}"
            );
            let shown = d.to_string();
            let name = d.file.file_name().unwrap().to_string_lossy().into_owned();
            prop_assert!(shown.contains(&name), "the message names no file: {shown}");
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("CONVERGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_stacks_never_panic_and_every_error_names_a_file(
        mutations in prop::collection::vec((0usize..16, mutation()), 1..5)
    ) {
        let (dir, files) = mutated(&mutations);
        check_loads(dir.path(), &files)?;
    }
}

/// The CLI on a few mutated stacks: exit 0 or 1, never a crash, and an
/// error on stderr names a file.
#[test]
fn validate_exits_zero_or_one_on_mutated_stacks() {
    let samples = [
        vec![(2, Mutation::Insert { at: 7, what: 0 })],
        vec![(3, Mutation::Truncate { at: 40 })],
        vec![(4, Mutation::Flip { at: 3, mask: 0x80 })],
        vec![(5, Mutation::SwapKind { nth: 0, kind: 9 })],
        vec![(1, Mutation::DuplicateLine { line: 2, times: 3 })],
        vec![(6, Mutation::Insert { at: 0, what: 7 })],
    ];
    for m in samples {
        let (dir, _) = mutated(&m);
        let out = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(["validate", dir.path().to_str().unwrap()])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(code, Some(0 | 1)), "{m:?}: {code:?}: {stderr}");
        if code == Some(1) {
            assert!(stderr.contains(".yaml"), "{m:?}: {stderr}");
        }
    }
}
