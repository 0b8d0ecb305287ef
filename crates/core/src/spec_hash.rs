//! The launch-spec hash: a digest of what cannot change on a running
//! instance (image, instance type, key pair, user data). It is kept as a tag
//! on each instance, so a changed spec shows up as a replacement without a
//! state file.

use sha2::{Digest, Sha256};

/// Hashes a launch spec. `user_data` is the fully resolved text.
pub fn launch_spec_hash(
    image: &str,
    instance_type: &str,
    key_name: Option<&str>,
    user_data: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [image, instance_type, key_name.unwrap_or(""), user_data] {
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
            launch_spec_hash("ami-1", "m1.small", None, "ab"),
            launch_spec_hash("ami-1", "m1.smalla", None, "b")
        );
        assert_ne!(
            launch_spec_hash("ami-1", "t", Some("a"), "x"),
            launch_spec_hash("ami-1", "t", Some("b"), "x")
        );
        assert_ne!(
            launch_spec_hash("ami-1", "t", Some("k"), "x"),
            launch_spec_hash("ami-1", "t", None, "kx")
        );
    }

    #[test]
    fn is_stable() {
        assert_eq!(
            launch_spec_hash("ami-147f977d", "m1.small", Some("k"), "role=app"),
            launch_spec_hash("ami-147f977d", "m1.small", Some("k"), "role=app")
        );
        assert_eq!(short_digest(&["a"]).len(), 16);
    }
}
