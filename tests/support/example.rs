//! The example stack (`manifests/smallpayroll/`) copied for a test.

#![allow(dead_code, clippy::unwrap_used)] // each test uses what it needs

use std::path::Path;

/// Copies the example stack into `dir/stack`; with `prefix`, under a
/// stack and bucket name of its own (`PREFIX-N`, `PREFIX-assets-N`), so
/// that tests sharing an AWS account or a moto server do not meet.
/// Returns the `N` used.
pub fn copy_into(dir: &Path, prefix: Option<&str>) -> u32 {
    let stack = dir.join("stack");
    std::fs::create_dir(&stack).unwrap();
    let suffix = fastrand::u32(..);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            // The bucket's content (`public/`).
            copy_dir(&entry.path(), &stack.join(entry.file_name()));
            continue;
        }
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        if let Some(p) = prefix {
            text = text
                .replace("name: smallpayroll\n", &format!("name: {p}-{suffix}\n"))
                .replace("smallpayroll-assets", &format!("{p}-assets-{suffix}"));
        }
        std::fs::write(stack.join(entry.file_name()), text).unwrap();
    }
    suffix
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Gives the example's assets bucket (`smallpayroll-assets`) the name
/// `new`, and its distribution the new origin: bucket names are global on
/// a moto server, across accounts.
pub fn rename_assets_bucket(d: &mut converge::core::desired::Desired, new: &str) {
    use converge::core::ids::ResourceName;
    let old = ResourceName::from("smallpayroll-assets");
    let new = ResourceName::new(new).unwrap();
    let bucket = d.buckets.remove(&old).unwrap();
    d.buckets.insert(new.clone(), bucket);
    for cdn in d.cdns.values_mut() {
        if cdn.origin_bucket == old {
            cdn.origin_bucket = new.clone();
        }
    }
}

/// Drops the example's certificates and what uses them: the listeners
/// naming one and the Cdns' viewer certificates (and so their aliases).
pub fn drop_certificates(d: &mut converge::core::desired::Desired) {
    d.certificates.clear();
    for b in d.balancers.values_mut() {
        b.listeners.retain(|l| {
            !l.certificate
                .as_deref()
                .is_some_and(|c| c.starts_with("Certificate/"))
        });
    }
    for cdn in d.cdns.values_mut() {
        if cdn.certificate.take().is_some() {
            cdn.aliases.clear();
        }
    }
}
