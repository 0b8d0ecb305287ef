//! IAM, as far as converge needs it: instance profiles that exist outside
//! any stack (made with `converge local add instance-profile`), and the
//! lookup EC2 does when a launch or an association names one by name or
//! ARN.

use super::Errs;
use crate::cloud::CloudError;
use crate::cloud::local::world::{InstanceProfileRecord, World};
use converge_core::ids::InstanceProfile;
use jiff::Timestamp;

/// The account the local cloud's ARNs name.
pub(crate) const ACCOUNT: &str = "123456789012";

/// The profile a launch or an association names, as EC2 looks it up: an
/// unknown name or ARN is `InvalidParameterValue`, with EC2's message
/// (`Value (x) for parameter iamInstanceProfile.name is invalid. Invalid
/// IAM Instance Profile name`).
pub(crate) fn find_profile<'w>(
    w: &'w World,
    e: &Errs,
    p: &InstanceProfile,
) -> Result<&'w InstanceProfileRecord, CloudError> {
    let found = if p.is_arn() {
        w.instance_profiles.values().find(|r| r.arn == p.as_str())
    } else {
        w.instance_profiles.get(p.as_str())
    };
    found.ok_or_else(|| {
        let (param, what) = if p.is_arn() {
            ("arn", "ARN")
        } else {
            ("name", "name")
        };
        e.invalid(
            "InvalidParameterValue",
            format!(
                "Value ({p}) for parameter iamInstanceProfile.{param} is invalid. Invalid IAM Instance Profile {what}"
            ),
        )
    })
}

/// Creates an instance profile (as `iam create-instance-profile`);
/// answers its ARN. A name IAM would refuse, or one taken, is an error
/// with IAM's code.
pub(crate) fn create_profile(
    w: &mut World,
    e: &Errs,
    name: &str,
    now: Timestamp,
) -> Result<String, CloudError> {
    // IAM: 1-128 characters of [\w+=,.@-]
    // (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateInstanceProfile.html).
    let ok = (1..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !ok {
        return Err(e.invalid(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{name}' at 'instanceProfileName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
            ),
        ));
    }
    if w.instance_profiles.contains_key(name) {
        return Err(e.exists(
            "EntityAlreadyExists",
            format!("Instance Profile {name} already exists."),
        ));
    }
    let arn = format!("arn:aws:iam::{ACCOUNT}:instance-profile/{name}");
    w.instance_profiles.insert(
        name.to_owned(),
        InstanceProfileRecord {
            name: name.to_owned(),
            arn: arn.clone(),
            created_at: now,
        },
    );
    Ok(arn)
}

/// Deletes an instance profile; answers its ARN. IAM refuses while it is
/// associated with an instance that still runs (`DeleteConflict`).
pub(crate) fn delete_profile(
    w: &mut World,
    e: &Errs,
    name: &str,
    now: Timestamp,
) -> Result<String, CloudError> {
    let Some(p) = w.instance_profiles.get(name) else {
        return Err(e.not_found(
            "NoSuchEntity",
            format!("Instance Profile {name} cannot be found."),
        ));
    };
    let arn = p.arn.clone();
    if let Some(i) = w
        .instances
        .values()
        .find(|i| !i.is_gone(now) && i.profile.as_ref().is_some_and(|a| a.arn == arn))
    {
        return Err(e.state(
            "DeleteConflict",
            format!(
                "Cannot delete entity, must remove roles from instance profile first. (Instance Profile {name} is in use by {})",
                i.id
            ),
        ));
    }
    w.instance_profiles.remove(name);
    Ok(arn)
}
