//! The launch-spec hash: a digest of what cannot change on a running
//! instance (image, instance type, key pair, user data, root volume). It is kept as a tag
//! on each instance, so a changed spec shows up as a replacement without a
//! state file.

use sha2::{Digest, Sha256};

/// Hashes a launch spec. `user_data` is the fully resolved text;
/// `root_volume` is [`crate::desired::RootVolume::tag_value`], left out of
/// the digest when the image's own root volume is kept (so that instances
/// launched before root volumes were declared keep their hash).
pub fn launch_spec_hash(
    image: &str,
    instance_type: &str,
    key_name: Option<&str>,
    user_data: &str,
    root_volume: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    let parts = [image, instance_type, key_name.unwrap_or(""), user_data];
    for part in parts.into_iter().chain(root_volume) {
        // Length-prefix each part so that no two specs share a hash by
        // moving bytes between fields.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// A short, stable digest of any text, for names and tokens.
pub fn short_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_bleed_into_each_other() {
        assert_ne!(
            launch_spec_hash("ami-1", "m1.small", None, "ab", None),
            launch_spec_hash("ami-1", "m1.smalla", None, "b", None)
        );
        assert_ne!(
            launch_spec_hash("ami-1", "t", Some("a"), "x", None),
            launch_spec_hash("ami-1", "t", Some("b"), "x", None)
        );
        assert_ne!(
            launch_spec_hash("ami-1", "t", Some("k"), "x", None),
            launch_spec_hash("ami-1", "t", None, "kx", None)
        );
    }

    #[test]
    fn is_stable() {
        assert_eq!(
            launch_spec_hash("ami-147f977d", "m1.small", Some("k"), "role=app", None),
            launch_spec_hash("ami-147f977d", "m1.small", Some("k"), "role=app", None)
        );
        assert_ne!(
            launch_spec_hash("ami-1", "t", None, "x", None),
            launch_spec_hash("ami-1", "t", None, "x", Some("20:gp3:encrypted"))
        );
        assert_eq!(short_digest(&["a"]).len(), 16);
    }
}
