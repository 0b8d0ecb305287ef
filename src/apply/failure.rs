//! How a failed step is classified, for the reconcile loop's backoff
//! (docs/failure-handling.md): stale (the world moved since it was
//! observed: re-plan at once), transient (back off, then try the same
//! again) or permanent (the same request would fail again in an unchanged
//! world: back off slowly). The same rules for both clouds: the local
//! cloud and the AWS backend give each error its [`ErrorKind`]
//! (`src/cloud/aws/error.rs` maps AWS's codes), and this module reads only
//! the kind and, for "not found", the code.

use super::StepError;
use crate::cloud::ErrorKind;

/// What a failure says about trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureClass {
    /// The world moved since it was observed: the target died, a resource
    /// is in a state it will not leave, something just observed is gone, a
    /// conflicting change won. The next pass re-observes and re-plans at
    /// once, with no backoff (the same step failing so again does back
    /// off: something else is wrong).
    Stale,
    /// Throttling, a service or network failure, a wait that ran out of
    /// time: the same step may succeed later; it backs off on the normal
    /// schedule.
    Transient,
    /// What the same request would hit again in an unchanged world:
    /// access denied, an invalid or missing image, an unsupported instance
    /// type, a quota. Backs off on the slow schedule.
    Permanent,
}

impl FailureClass {
    /// The class as docs and logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Stale => "stale",
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        }
    }
}

/// "Not found" codes that name an input of the manifests rather than
/// something converge observed: the image, the snapshot a volume is
/// restored from, an instance profile, an SSM parameter, a KMS key. They
/// would be missing again in an unchanged world.
pub const MISSING_INPUTS: &[&str] = &[
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Unavailable",
    "InvalidSnapshot.NotFound",
    "NoSuchEntity",
    "ParameterNotFound",
    "InvalidKMSKey.NotFound",
    "NotFoundException",
];

impl StepError {
    /// The failure's class.
    pub fn class(&self) -> FailureClass {
        match self {
            StepError::Cloud(c) => match c.kind {
                ErrorKind::Stale => FailureClass::Stale,
                ErrorKind::NotFound if MISSING_INPUTS.contains(&c.code.as_str()) => {
                    FailureClass::Permanent
                }
                // Something observed or just created is not there any
                // more (past the visibility window), a resource stayed in
                // the wrong state past the call's retries, a create raced
                // another: a fresh observation knows better.
                ErrorKind::NotFound | ErrorKind::InvalidState | ErrorKind::AlreadyExists => {
                    FailureClass::Stale
                }
                ErrorKind::Throttled | ErrorKind::Unavailable => FailureClass::Transient,
                ErrorKind::Invalid | ErrorKind::AccessDenied => FailureClass::Permanent,
            },
            StepError::Stale(_) => FailureClass::Stale,
            StepError::Timeout { .. } | StepError::Stopped | StepError::Unexpected(_) => {
                FailureClass::Transient
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CloudError;

    #[test]
    fn each_kind_has_its_class() {
        let e = |kind, code: &str| StepError::Cloud(CloudError::new(kind, "X", code, "m"));
        let cases = [
            (e(ErrorKind::Stale, "IncorrectState"), FailureClass::Stale),
            (
                e(ErrorKind::NotFound, "InvalidInstanceID.NotFound"),
                FailureClass::Stale,
            ),
            (
                e(ErrorKind::NotFound, "InvalidAMIID.NotFound"),
                FailureClass::Permanent,
            ),
            (
                e(ErrorKind::InvalidState, "DependencyViolation"),
                FailureClass::Stale,
            ),
            (
                e(ErrorKind::Throttled, "RequestLimitExceeded"),
                FailureClass::Transient,
            ),
            (
                e(ErrorKind::Unavailable, "InternalError"),
                FailureClass::Transient,
            ),
            (
                e(ErrorKind::Invalid, "InstanceLimitExceeded"),
                FailureClass::Permanent,
            ),
            (
                e(ErrorKind::AccessDenied, "UnauthorizedOperation"),
                FailureClass::Permanent,
            ),
            (
                StepError::Stale("instance i-1 is terminated".into()),
                FailureClass::Stale,
            ),
            (StepError::Unexpected("?".into()), FailureClass::Transient),
        ];
        for (err, class) in cases {
            assert_eq!(err.class(), class, "{err}");
        }
    }
}
