//! AWS errors as [`CloudError`]s: the failing operation, the AWS error code
//! and message, and a [`ErrorKind`] that tells the executor whether
//! retrying can help.

use crate::cloud::{CloudError, ErrorKind, causes};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Turns an SDK error into a [`CloudError`] for `operation`.
/// An answer where "not found" means there is none: `Ok(None)`, other
/// errors as they are.
pub(crate) fn found<T>(answer: Result<T, CloudError>) -> Result<Option<T>, CloudError> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn sdk_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let message = e.message().map(str::to_owned).unwrap_or_else(|| causes(e));
            let status = se.raw().status().as_u16();
            let kind = classify_answer(operation, &code, &message, Some(status));
            CloudError::new(kind, operation, code, message)
        }
        SdkError::TimeoutError(_) => {
            CloudError::new(ErrorKind::Unavailable, operation, "Timeout", causes(&err))
        }
        SdkError::DispatchFailure(d) => {
            let message = causes(&err);
            // Credentials that cannot be found or loaded surface here (or as
            // construction failures): retrying cannot fix them.
            if message.contains("credentials") || message.contains("Credentials") {
                CloudError::new(ErrorKind::AccessDenied, operation, "NoCredentials", message)
            } else if d.is_user() {
                CloudError::new(ErrorKind::Invalid, operation, "DispatchFailure", message)
            } else {
                CloudError::new(
                    ErrorKind::Unavailable,
                    operation,
                    "DispatchFailure",
                    message,
                )
            }
        }
        SdkError::ResponseError(_) => CloudError::new(
            ErrorKind::Unavailable,
            operation,
            "ResponseError",
            causes(&err),
        ),
        SdkError::ConstructionFailure(_) => {
            let message = causes(&err);
            if message.contains("credentials") || message.contains("Credentials") {
                CloudError::new(ErrorKind::AccessDenied, operation, "NoCredentials", message)
            } else {
                CloudError::new(
                    ErrorKind::Invalid,
                    operation,
                    "ConstructionFailure",
                    message,
                )
            }
        }
        _ => CloudError::new(ErrorKind::Unavailable, operation, "Unknown", causes(&err)),
    }
}

/// The codes with which AWS answers both "not yet" (an instance still
/// pending) and "never" (an instance terminated or shutting down): their
/// message says which.
pub(crate) const STATE_CODES: &[&str] = &[
    "IncorrectState",
    "IncorrectInstanceState",
    "InvalidInstance",
    // elbv2 RegisterTargets: "The following targets are not in a running
    // state and cannot be registered".
    "InvalidTarget",
];

/// The instance states in a [`STATE_CODES`] message that mean the target
/// will not get there: the world moved since it was observed.
const GONE_STATES: &[&str] = &[
    "terminated",
    "shutting-down",
    "stopping",
    "stopped",
    "not in a running state",
];

/// Operations for which a gone instance is no failure of their own.
const REMOVALS: &[&str] = &[
    "DeregisterInstancesFromLoadBalancer",
    "DeregisterTargets",
    "DetachVolume",
    "TerminateInstances",
];

/// What kind of failure an AWS answer is: [`classify`] by its code, except
/// that an answer with one of [`STATE_CODES`] whose message names a state
/// the target will not leave (`Instance 'i-…' is not 'running'
/// (terminated)`, `EC2 instance i-… is not in a valid state (terminated)`)
/// is [`ErrorKind::Stale`]: not retried within the call, re-planned by the
/// next pass of the loop (docs/failure-handling.md). Not for the
/// operations that take something off an instance ([`REMOVALS`]): there a
/// gone instance means done, as their handlers read the code's kind.
pub(crate) fn classify_answer(
    operation: &str,
    code: &str,
    message: &str,
    status: Option<u16>,
) -> ErrorKind {
    let kind = classify(code, status);
    let lower = message.to_ascii_lowercase();
    if STATE_CODES.contains(&code)
        && !REMOVALS.contains(&operation)
        && GONE_STATES.iter().any(|s| lower.contains(s))
    {
        ErrorKind::Stale
    } else {
        kind
    }
}

/// What kind of failure an AWS error code (and, where the code says
/// little, an HTTP status) is.
pub(crate) fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    const THROTTLED: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "EC2ThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
    ];
    // elbv2: TargetGroupNotFound, SubnetNotFound, and InvalidTarget (an
    // instance that is gone, or not visible or running yet: done for a
    // deregistration, retried for a registration, as classic's
    // InvalidInstance). CertificateNotFound is not here: converge creates
    // no certificates, so a missing one is the manifest's mistake.
    // InvalidSecurityGroup is ELB's "the specified security group does not
    // exist" (both APIs' CreateLoadBalancer and SetSecurityGroups), which
    // for a group made moments ago means "not visible yet".
    const NOT_FOUND: &[&str] = &[
        "LoadBalancerNotFound",
        "AccessPointNotFound",
        "ListenerNotFound",
        "InvalidInstance",
        "TargetGroupNotFound",
        "InvalidTarget",
        "SubnetNotFound",
        "InvalidSecurityGroup",
        "NotFound",
        "ResourceNotFoundException",
    ];
    const ALREADY_EXISTS: &[&str] = &[
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "DistributionAlreadyExists",
        "DuplicateLoadBalancerName",
        "DuplicateAccessPointName",
        "DuplicateListener",
        "DuplicateTargetGroupName",
        "HostedZoneAlreadyExists",
    ];
    const INVALID_STATE: &[&str] = &[
        "DependencyViolation",
        "IncorrectState",
        "IncorrectInstanceState",
        "IncorrectModificationState",
        "VolumeInUse",
        "InvalidSnapshot.InUse",
        "DistributionNotDisabled",
        "InvalidIfMatchVersion",
        "PreconditionFailed",
        "OperationAborted",
        "ConcurrentModification",
        "ResourceInUse",
        // ACM's DeleteCertificate while a listener or distribution still
        // uses the certificate (its in-use list lags their changes).
        "ResourceInUseException",
        "InvalidState",
        // RunInstances with a declared address its predecessor still
        // holds while it shuts down: free once that one is terminated.
        "InvalidIPAddress.InUse",
    ];
    const ACCESS_DENIED: &[&str] = &[
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "Blocked",
        "OptInRequired",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
    ];
    const UNAVAILABLE: &[&str] = &[
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InsufficientInstanceCapacity",
        "RequestTimeout",
        "RequestTimeoutException",
    ];
    if THROTTLED.contains(&code) || status == Some(429) {
        ErrorKind::Throttled
    } else if NOT_FOUND.contains(&code) || code.ends_with(".NotFound") || code.starts_with("NoSuch")
    {
        ErrorKind::NotFound
    } else if ALREADY_EXISTS.contains(&code) || code.ends_with(".Duplicate") {
        ErrorKind::AlreadyExists
    } else if INVALID_STATE.contains(&code) {
        ErrorKind::InvalidState
    } else if ACCESS_DENIED.contains(&code) || status == Some(403) {
        ErrorKind::AccessDenied
    } else if UNAVAILABLE.contains(&code) || status.is_some_and(|s| s >= 500) {
        ErrorKind::Unavailable
    } else if status == Some(404) && code == "Unknown" {
        ErrorKind::NotFound
    } else {
        ErrorKind::Invalid
    }
}

/// An error converge raises itself, before or instead of a call AWS would
/// accept (where the emulator is laxer than AWS, or a rule is converge's).
pub(crate) fn refuse(
    operation: &'static str,
    code: &str,
    message: impl Into<String>,
) -> CloudError {
    CloudError::new(ErrorKind::Invalid, operation, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose `Debug` differs from its `Display`, with a cause.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_messages_once_each_and_never_debug() {
        let e = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error",
                Some(Box::new(Layer(
                    "io error",
                    Some(Box::new(Layer("refused", None))),
                ))),
            ))),
        );
        assert_eq!(causes(&e), "dispatch failure: io error: refused");
    }

    #[test]
    fn errors_whose_fix_is_outside_converge_say_what_to_try() {
        let hint = |code: &str| CloudError::new(ErrorKind::Invalid, "Op", code, "m").hint();
        assert!(hint("NoCredentials").is_some_and(|h| h.contains("aws configure")));
        assert!(hint("UnauthorizedOperation").is_some_and(|h| h.contains("get-caller-identity")));
        assert!(hint("ExpiredToken").is_some_and(|h| h.contains("expired")));
        assert!(hint("DispatchFailure").is_some_and(|h| h.contains("HTTPS_PROXY")));
        assert_eq!(hint("InvalidAMIID.NotFound"), None);
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("Throttling", ErrorKind::Throttled),
            ("ThrottlingException", ErrorKind::Throttled),
            ("SlowDown", ErrorKind::Throttled),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            ("InvalidAMIID.NotFound", ErrorKind::NotFound),
            ("InvalidGroup.NotFound", ErrorKind::NotFound),
            ("NoSuchBucket", ErrorKind::NotFound),
            ("NoSuchDistribution", ErrorKind::NotFound),
            ("LoadBalancerNotFound", ErrorKind::NotFound),
            // elbv2.
            ("TargetGroupNotFound", ErrorKind::NotFound),
            ("ListenerNotFound", ErrorKind::NotFound),
            ("InvalidTarget", ErrorKind::NotFound),
            ("SubnetNotFound", ErrorKind::NotFound),
            ("InvalidSecurityGroup", ErrorKind::NotFound),
            ("DuplicateTargetGroupName", ErrorKind::AlreadyExists),
            ("DuplicateLoadBalancerName", ErrorKind::AlreadyExists),
            ("DuplicateListener", ErrorKind::AlreadyExists),
            ("ResourceInUse", ErrorKind::InvalidState),
            ("CertificateNotFound", ErrorKind::Invalid),
            ("ValidationError", ErrorKind::Invalid),
            ("InvalidConfigurationRequest", ErrorKind::Invalid),
            ("UnsupportedProtocol", ErrorKind::Invalid),
            ("TooManyTargets", ErrorKind::Invalid),
            ("DuplicateTagKeys", ErrorKind::Invalid),
            ("InvalidKeyPair.Duplicate", ErrorKind::AlreadyExists),
            ("InvalidGroup.Duplicate", ErrorKind::AlreadyExists),
            ("InvalidPermission.Duplicate", ErrorKind::AlreadyExists),
            ("BucketAlreadyOwnedByYou", ErrorKind::AlreadyExists),
            ("DistributionAlreadyExists", ErrorKind::AlreadyExists),
            ("DependencyViolation", ErrorKind::InvalidState),
            ("IncorrectState", ErrorKind::InvalidState),
            ("VolumeInUse", ErrorKind::InvalidState),
            ("DistributionNotDisabled", ErrorKind::InvalidState),
            ("InvalidIfMatchVersion", ErrorKind::InvalidState),
            ("PreconditionFailed", ErrorKind::InvalidState),
            ("AccessDenied", ErrorKind::AccessDenied),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("InternalError", ErrorKind::Unavailable),
            ("InsufficientInstanceCapacity", ErrorKind::Unavailable),
            ("InvalidParameterValue", ErrorKind::Invalid),
            ("InvalidVolume.ZoneMismatch", ErrorKind::Invalid),
            ("IdempotentParameterMismatch", ErrorKind::Invalid),
            ("CNAMEAlreadyExists", ErrorKind::Invalid),
            ("BucketNotEmpty", ErrorKind::Invalid),
            // Six hours between modifications of a volume: no retry within
            // a run helps; the next plan holds the change back.
            ("VolumeModificationRateExceeded", ErrorKind::Invalid),
            ("IncorrectModificationState", ErrorKind::InvalidState),
            ("InvalidIPAddress.InUse", ErrorKind::InvalidState),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(code, None), kind, "{code}");
        }
    }

    #[test]
    fn status_decides_when_the_code_says_little() {
        assert_eq!(classify("Unknown", Some(503)), ErrorKind::Unavailable);
        assert_eq!(classify("Unknown", Some(429)), ErrorKind::Throttled);
        assert_eq!(classify("Unknown", Some(403)), ErrorKind::AccessDenied);
        assert_eq!(classify("Unknown", Some(404)), ErrorKind::NotFound);
        assert_eq!(classify("Unknown", Some(400)), ErrorKind::Invalid);
        // S3 throttles with a 503: the code wins over the status.
        assert_eq!(classify("SlowDown", Some(503)), ErrorKind::Throttled);
    }

    #[test]
    fn a_target_gone_is_stale_and_a_target_not_ready_is_not() {
        let stale = [
            (
                "IncorrectState",
                "Instance 'i-1' is not 'running' (terminated).",
            ),
            (
                "IncorrectInstanceState",
                "The instance 'i-1' is not in a state from which it can be changed (shutting-down).",
            ),
            (
                "InvalidInstance",
                "EC2 instance i-1 is not in a valid state (terminated)",
            ),
        ];
        for (code, message) in stale {
            let kind = classify_answer("AttachVolume", code, message, Some(400));
            assert_eq!(kind, ErrorKind::Stale, "{code}");
        }
        let pending = "Instance 'i-1' is not 'running'.";
        let kind = classify_answer("AttachVolume", "IncorrectState", pending, Some(400));
        assert_eq!(kind, ErrorKind::InvalidState);
        let ami = "The image id 'ami-1' does not exist (terminated)";
        let kind = classify_answer("RunInstances", "InvalidAMIID.NotFound", ami, Some(400));
        assert_eq!(kind, ErrorKind::NotFound);
        let gone = "EC2 instance i-1 is not in a valid state (terminated)";
        let kind = classify_answer(
            "DeregisterInstancesFromLoadBalancer",
            "InvalidInstance",
            gone,
            Some(400),
        );
        assert_eq!(kind, ErrorKind::NotFound, "a removal keeps its kind");
    }
}
