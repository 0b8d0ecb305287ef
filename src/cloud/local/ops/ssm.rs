//! SSM Parameter Store, as far as converge needs it: `String` parameters
//! made with `converge local add parameter` (which also publishes a new
//! AMI under a name), read with GetParameters.

use super::{Ctx, Errs};
use crate::cloud::CloudError;
use crate::cloud::local::world::{Parameter, World};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// The most names one GetParameters call takes ("Names … Maximum number
/// of 10 items",
/// <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html>).
pub(crate) const MAX_NAMES: usize = 10;

/// GetParameters: the values of the names that exist, and the names that
/// do not (SSM's `InvalidParameters`, not an error). More than
/// [`MAX_NAMES`] names is a `ValidationException`, as in SSM.
pub(crate) fn get_parameters(
    w: &World,
    cx: &Ctx<'_>,
    e: &Errs,
    names: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>), CloudError> {
    if names.len() > MAX_NAMES {
        return Err(e.invalid(
            "ValidationException",
            format!(
                "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAMES}, found {}",
                names.len()
            ),
        ));
    }
    let region = w.parameters.get(cx.region);
    let mut found = BTreeMap::new();
    let mut invalid = Vec::new();
    for n in names {
        match region.and_then(|r| r.get(n)) {
            Some(p) => {
                found.insert(n.clone(), p.value.clone());
            }
            None => invalid.push(n.clone()),
        }
    }
    Ok((found, invalid))
}

/// PutParameter with `Overwrite`: creates the parameter or replaces its
/// value; answers its version (1, then one more each time). The name is
/// held to SSM's rules (checked by the caller, as the manifest loader
/// does); names under `/aws/` are allowed here, so that the local cloud
/// can hold what AWS publishes (the public AMI parameters).
pub(crate) fn put_parameter(
    w: &mut World,
    e: &Errs,
    region: &str,
    name: &str,
    value: &str,
    now: Timestamp,
) -> Result<u64, CloudError> {
    if value.is_empty() || value.len() > 4096 {
        return Err(e.invalid(
            "ValidationException",
            "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length between 1 and 4096",
        ));
    }
    let params = w.parameters.entry(region.to_owned()).or_default();
    let version = params.get(name).map_or(1, |p| p.version + 1);
    params.insert(
        name.to_owned(),
        Parameter {
            value: value.to_owned(),
            version,
            modified_at: now,
        },
    );
    Ok(version)
}

/// DeleteParameter; an unknown name is `ParameterNotFound`.
pub(crate) fn delete_parameter(
    w: &mut World,
    e: &Errs,
    region: &str,
    name: &str,
) -> Result<(), CloudError> {
    let removed = w
        .parameters
        .get_mut(region)
        .and_then(|params| params.remove(name));
    if removed.is_none() {
        return Err(e.not_found("ParameterNotFound", format!("Parameter {name} not found.")));
    }
    if w.parameters.get(region).is_some_and(BTreeMap::is_empty) {
        w.parameters.remove(region);
    }
    Ok(())
}
