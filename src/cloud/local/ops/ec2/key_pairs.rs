//! EC2 key pairs: imported public keys, by name.

use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs};
use crate::cloud::local::world::{KeyPair, World};
use crate::cloud::{CloudError, Outcome};
use converge_core::desired::Tags;
use converge_core::ids::KeyPairId;

pub(crate) fn create_key_pair(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
    public_key: &str,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    if name.is_empty() || name.len() > 255 || !name.is_ascii() {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("Invalid key pair name '{name}': 1 to 255 ASCII characters."),
        ));
    }
    check_public_key(public_key).map_err(|m| e.invalid("InvalidKey.Format", m))?;
    check_tags(e, tags)?;
    if w.key_pairs
        .values()
        .any(|k| k.region == cx.region && k.name == *name)
    {
        return Err(e.exists(
            "InvalidKeyPair.Duplicate",
            format!("The keypair '{name}' already exists."),
        ));
    }
    let id: KeyPairId = e.id(format!("key-{}", w.next_hex(17)))?;
    w.key_pairs.insert(
        id.clone(),
        KeyPair {
            id,
            region: cx.region.to_owned(),
            name: name.to_owned(),
            public_key: public_key.trim().to_owned(),
            tags: tags.clone(),
            created_at: cx.now,
        },
    );
    Ok(Outcome::Done)
}

pub(crate) fn delete_key_pair(
    w: &mut World,
    cx: &Ctx<'_>,
    name: &str,
) -> Result<Outcome, CloudError> {
    // As in EC2, deleting a key pair that does not exist succeeds.
    w.key_pairs
        .retain(|_, k| !(k.region == cx.region && k.name == *name));
    Ok(Outcome::Done)
}

pub(crate) fn find_key_pair<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    name: &str,
) -> Result<&'w KeyPair, CloudError> {
    w.key_pairs
        .values()
        .find(|k| k.region == cx.region && k.name == name && cx.sees(k.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{name}' does not exist"),
            )
        })
}

fn check_public_key(key: &str) -> Result<(), String> {
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let body = words.next().unwrap_or("");
    let known = matches!(
        kind,
        "ssh-rsa"
            | "ssh-ed25519"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    );
    let base64 = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if known && base64 {
        Ok(())
    } else {
        Err("Key is not in valid OpenSSH public key format".to_owned())
    }
}
