//! Reading a Bucket's `content` (issue 11 B): the files under `dir`
//! (relative to the manifest's file), each with its key (`prefix` + its
//! path under `dir`, with `/`), MD5, size and `Content-Type`. The only
//! file reading of the resolver besides the manifests themselves; the
//! planner sees the list, never the disk.
//!
//! Refused, each naming file, resource and field: a `dir` that is not a
//! directory, a prefix with a leading `/` or without a trailing one, a
//! symlink that leads out of `dir`, a file over 5 GiB (converge uploads
//! with single PUTs), a path that is not UTF-8 or a key over 1024 bytes.

use super::At;
use crate::manifest::diagnostics::Diagnostic;
use crate::manifest::node::FieldPath;
use crate::manifest::raw;
use converge_core::desired::{BucketContent, ContentFile};
use converge_core::s3::{MAX_PUT_BYTES, content_type, glob_match};
use md5::{Digest, Md5};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The longest key S3 takes, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Reads the content a Bucket declares; `None` after reporting what is
/// wrong.
pub(super) fn read(
    at: &At<'_>,
    c: &raw::BucketContent,
    out: &mut Vec<Diagnostic>,
) -> Option<BucketContent> {
    let field = FieldPath::spec().key("content");
    let before = out.len();
    if c.prefix.starts_with('/') || (!c.prefix.is_empty() && !c.prefix.ends_with('/')) {
        out.push(at.diag(
            &field.key("prefix"),
            false,
            format!(
                "expected a key prefix without a leading slash and ending in one, like \"assets/\", found {:?}",
                c.prefix
            ),
        ));
    }
    if let Some(cc) = &c.cache_control
        && (cc.is_empty() || !cc.chars().all(|ch| (' '..='~').contains(&ch)))
    {
        out.push(at.diag(
            &field.key("cacheControl"),
            false,
            format!(
                "expected a header value of printable ASCII, like \"max-age=300\", found {cc:?}"
            ),
        ));
    }
    let base = at.file.parent().unwrap_or(Path::new("."));
    let dir = base.join(&c.dir);
    let root = match std::fs::canonicalize(&dir) {
        Ok(r) if r.is_dir() => r,
        Ok(_) => {
            out.push(at.diag(
                &field.key("dir"),
                false,
                format!("{} is not a directory", dir.display()),
            ));
            return None;
        }
        Err(e) => {
            out.push(at.diag(
                &field.key("dir"),
                false,
                format!("directory {} cannot be read: {e}", dir.display()),
            ));
            return None;
        }
    };
    let mut walk = Walk {
        at,
        field: &field,
        root: &root,
        content: c,
        files: Vec::new(),
        seen: BTreeSet::new(),
    };
    walk.dir(&root, "", out);
    let mut files = walk.files;
    files.sort_by(|a, b| a.key.cmp(&b.key));
    if out.len() > before {
        return None;
    }
    Some(BucketContent {
        prefix: c.prefix.clone(),
        delete: c.delete,
        cache_control: c.cache_control.clone(),
        exclude: c.exclude.clone(),
        files,
    })
}

/// A walk of the content directory.
struct Walk<'a> {
    at: &'a At<'a>,
    field: &'a FieldPath,
    root: &'a Path,
    content: &'a raw::BucketContent,
    files: Vec<ContentFile>,
    /// Directories walked (by canonical path), against symlink loops.
    seen: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    fn diag(&self, out: &mut Vec<Diagnostic>, message: String) {
        out.push(self.at.diag(&self.field.key("dir"), false, message));
    }

    fn dir(&mut self, dir: &Path, rel: &str, out: &mut Vec<Diagnostic>) {
        let Ok(canonical) = std::fs::canonicalize(dir) else {
            return;
        };
        if !self.seen.insert(canonical) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.diag(out, format!("{} cannot be read: {e}", dir.display())),
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                self.diag(
                    out,
                    format!("{}: the file name is not UTF-8", path.display()),
                );
                continue;
            };
            let rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            if self.content.exclude.iter().any(|g| glob_match(g, &rel)) {
                continue;
            }
            self.entry(&path, &rel, out);
        }
    }

    fn entry(&mut self, path: &Path, rel: &str, out: &mut Vec<Diagnostic>) {
        let target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) => return self.diag(out, format!("{} cannot be read: {e}", path.display())),
        };
        if !target.starts_with(self.root) {
            return self.diag(
                out,
                format!(
                    "{} is a symlink to {}, outside {}",
                    path.display(),
                    target.display(),
                    self.root.display()
                ),
            );
        }
        if target.is_dir() {
            return self.dir(path, rel, out);
        }
        let key = format!("{}{rel}", self.content.prefix);
        if key.len() > MAX_KEY_BYTES {
            return self.diag(
                out,
                format!(
                    "the key of {} is over {MAX_KEY_BYTES} bytes",
                    path.display()
                ),
            );
        }
        match hash(&target) {
            Ok((_, size)) if size > MAX_PUT_BYTES => self.diag(
                out,
                format!(
                    "{} is {size} bytes: converge uploads with single PUTs, at most 5 GiB",
                    path.display()
                ),
            ),
            Ok((md5, size)) => self.files.push(ContentFile {
                content_type: content_type(&key).to_owned(),
                key,
                path: target.to_string_lossy().into_owned(),
                md5,
                size,
            }),
            Err(e) => self.diag(out, format!("{} cannot be read: {e}", path.display())),
        }
    }
}

/// A file's MD5 (lowercase hex) and size, read in one pass; a file over
/// 5 GiB is not read past its size.
fn hash(path: &Path) -> std::io::Result<(String, u64)> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_PUT_BYTES {
        return Ok((String::new(), size));
    }
    let mut file = std::fs::File::open(path)?;
    let mut h = Md5::new();
    std::io::copy(&mut file, &mut h)?;
    Ok((hex::encode(h.finalize()), size))
}
