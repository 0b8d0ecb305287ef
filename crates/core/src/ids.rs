//! Identifiers: one newtype per kind of name or cloud ID, so that an instance
//! ID can never be passed where a volume ID is expected. Each checks its
//! shape when it is made ([`InstanceId::new`], `FromStr`, deserializing),
//! so that a malformed ID cannot get past the border where text becomes an
//! ID. The checks are of shape only, loose enough for every ID the local
//! cloud, moto and AWS produce; the manifest loader and the cloud enforce
//! the stricter rules (S3's bucket naming, ELB's name length).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What is wrong with the text an identifier was to be made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdProblem {
    /// It is empty.
    Empty,
    /// It does not start as this kind of ID must (`i-`, a letter).
    BadPrefix(&'static str),
    /// It holds a character this kind of ID may not.
    BadChar(char),
    /// It has more characters than this kind of ID may.
    TooLong {
        /// How many it has.
        len: usize,
        /// How many it may have.
        max: usize,
    },
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdProblem::Empty => f.write_str("it is empty"),
            IdProblem::BadPrefix(want) => write!(f, "it does not start with {want}"),
            IdProblem::BadChar(c) => write!(f, "it holds {c:?}"),
            IdProblem::TooLong { len, max } => {
                write!(f, "it has {len} characters, at most {max} are allowed")
            }
        }
    }
}

/// Text that is not a valid identifier of some kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a valid {what}: {problem}")]
pub struct IdError {
    /// The kind of identifier (`instance ID`).
    pub what: &'static str,
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub problem: IdProblem,
}

/// The longest identifier of any kind: far above what the cloud makes, so
/// that only garbage is refused.
const MAX_ID: usize = 255;

/// Checks `s` has no more than `max` characters.
fn at_most(s: &str, max: usize) -> Result<(), IdProblem> {
    let len = s.chars().count();
    if len > max {
        return Err(IdProblem::TooLong { len, max });
    }
    Ok(())
}

/// Checks every character of `s` satisfies `ok`.
fn all_chars(s: &str, ok: impl Fn(char) -> bool) -> Result<(), IdProblem> {
    match s.chars().find(|c| !ok(*c)) {
        Some(c) => Err(IdProblem::BadChar(c)),
        None => Ok(()),
    }
}

fn lower_digit_hyphen(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// A cloud ID: `prefix` then one or more lowercase letters, digits and
/// hyphens (`i-0abc…`, and the fixtures' `i-app-1`).
fn prefixed(s: &str, prefix: &'static str) -> Result<(), IdProblem> {
    if s.is_empty() {
        return Err(IdProblem::Empty);
    }
    at_most(s, MAX_ID)?;
    match s.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() => all_chars(rest, lower_digit_hyphen),
        _ => Err(IdProblem::BadPrefix(prefix)),
    }
}

/// The manifest's rule for most names: lowercase letters, digits and
/// hyphens, starting with a letter, at most `max` characters. The manifest
/// loader reports a name breaking it in its own words; problems are found
/// in the order it reports them.
pub fn check_plain_name(s: &str, max: usize) -> Result<(), IdProblem> {
    if s.is_empty() {
        return Err(IdProblem::Empty);
    }
    // Bytes are compared (any name within the limit is ASCII), characters
    // reported.
    if s.len() > max {
        let len = s.chars().count();
        return Err(IdProblem::TooLong { len, max });
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(IdProblem::BadPrefix("a lowercase letter"));
    }
    all_chars(s, lower_digit_hyphen)
}

/// A manifest name: the plain rule ([`check_plain_name`], at most 63
/// characters), or the shape of an S3 bucket name (dots allowed, a digit
/// first), which Bucket names follow. S3's finer rules are the loader's.
fn resource_name(s: &str) -> Result<(), IdProblem> {
    check_plain_name(s, ResourceName::MAX_LEN).or_else(|plain| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let bucket_shaped = s.chars().count() <= ResourceName::MAX_LEN
            && s.starts_with(alnum)
            && s.chars().all(|c| lower_digit_hyphen(c) || c == '.');
        if bucket_shaped { Ok(()) } else { Err(plain) }
    })
}

/// An availability zone: a region and a letter (`us-east-1a`) or a Local
/// Zone suffix (`us-east-1-bos-1a`): lowercase letters, digits and
/// hyphens, starting with a letter.
fn zone(s: &str) -> Result<(), IdProblem> {
    if s.is_empty() {
        return Err(IdProblem::Empty);
    }
    at_most(s, MAX_ID)?;
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(IdProblem::BadPrefix("a lowercase letter"));
    }
    all_chars(s, lower_digit_hyphen)
}

/// A CloudFront distribution ID: uppercase letters and digits.
fn distribution_id(s: &str) -> Result<(), IdProblem> {
    if s.is_empty() {
        return Err(IdProblem::Empty);
    }
    at_most(s, MAX_ID)?;
    all_chars(s, |c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A name the cloud knows a resource by (key pair, group, balancer,
/// bucket): only not empty, not absurdly long, and free of control
/// characters, since the cloud itself answers a name breaking its rules
/// with its own error code.
fn cloud_name(s: &str) -> Result<(), IdProblem> {
    if s.is_empty() {
        return Err(IdProblem::Empty);
    }
    at_most(s, MAX_ID)?;
    all_chars(s, |c| !c.is_control())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        // By hand, as `transparent` cannot go with `try_from`: written as
        // the bare string, so plans and state files keep their shape.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Makes the identifier, checking its shape.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                let check: fn(&str) -> Result<(), IdProblem> = $check;
                match check(&s) {
                    Ok(()) => Ok(Self(s)),
                    Err(problem) => Err(IdError {
                        what: $what,
                        text: s,
                        problem,
                    }),
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        /// For literals in code and tests only: text read at run time goes
        /// through `new`. A malformed literal is a bug, caught by a debug
        /// assertion.
        impl From<&'static str> for $name {
            fn from(s: &'static str) -> Self {
                debug_assert!(
                    $name::new(s).is_ok(),
                    "{s:?} is not a valid {}",
                    $what
                );
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// The name of a resource in a manifest (`app`, `pgdata`): lowercase
    /// letters, digits and hyphens starting with a letter, or for buckets
    /// the shape of an S3 bucket name; at most 63 characters.
    ResourceName,
    "resource name",
    resource_name
);

impl ResourceName {
    /// The longest manifest name.
    pub const MAX_LEN: usize = 63;
}

string_id!(
    /// An EC2 instance ID (`i-…`).
    InstanceId,
    "instance ID",
    |s| prefixed(s, "i-")
);
string_id!(
    /// An EBS volume ID (`vol-…`).
    VolumeId,
    "volume ID",
    |s| prefixed(s, "vol-")
);
string_id!(
    /// An EBS snapshot ID (`snap-…`).
    SnapshotId,
    "snapshot ID",
    |s| prefixed(s, "snap-")
);
string_id!(
    /// A security group ID (`sg-…`).
    GroupId,
    "security group ID",
    |s| prefixed(s, "sg-")
);
string_id!(
    /// A key pair ID (`key-…`).
    KeyPairId,
    "key pair ID",
    |s| prefixed(s, "key-")
);
string_id!(
    /// A CloudFront distribution ID (`E2QWRUHAPOMQZL`).
    DistributionId,
    "distribution ID",
    distribution_id
);
string_id!(
    /// An availability zone (`us-east-1a`).
    Zone,
    "availability zone",
    zone
);
string_id!(
    /// A VPC ID (`vpc-…`).
    VpcId,
    "VPC ID",
    |s| prefixed(s, "vpc-")
);
string_id!(
    /// A subnet ID (`subnet-…`).
    SubnetId,
    "subnet ID",
    |s| prefixed(s, "subnet-")
);
string_id!(
    /// An internet gateway ID (`igw-…`).
    GatewayId,
    "internet gateway ID",
    |s| prefixed(s, "igw-")
);
string_id!(
    /// A route table ID (`rtb-…`).
    RouteTableId,
    "route table ID",
    |s| prefixed(s, "rtb-")
);
string_id!(
    /// A route table association ID (`rtbassoc-…`).
    RouteTableAssociationId,
    "route table association ID",
    |s| prefixed(s, "rtbassoc-")
);
string_id!(
    /// A machine image ID (`ami-…`).
    ImageId,
    "image ID",
    |s| prefixed(s, "ami-")
);
string_id!(
    /// An SSM parameter's name (`/aws/service/ami-amazon-linux-latest/…`),
    /// whose value is a machine image ID. The shape is loose here; the
    /// manifest loader holds names to SSM's rules.
    ParameterName,
    "SSM parameter name",
    cloud_name
);
string_id!(
    /// An IAM instance profile as a manifest names it: its name
    /// (`app-role`) or its ARN
    /// (`arn:aws:iam::123456789012:instance-profile/app-role`). The
    /// manifest loader holds it to IAM's rules.
    InstanceProfile,
    "instance profile",
    cloud_name
);
string_id!(
    /// The ID of an instance profile's association with an instance
    /// (`iip-assoc-…`), which replacing or removing the profile needs.
    AssociationId,
    "instance profile association ID",
    |s| prefixed(s, "iip-assoc-")
);
string_id!(
    /// A key pair's name in the cloud (`shop-deploy`).
    KeyName,
    "key pair name",
    cloud_name
);
string_id!(
    /// A security group's name in the cloud (`shop-web-1a2b3c`).
    GroupName,
    "security group name",
    cloud_name
);
string_id!(
    /// A load balancer's name in the cloud: its manifest name for a classic
    /// one, with the type and scheme added for an elbv2 one
    /// ([`crate::elb::BalancerHandle::of`]).
    BalancerName,
    "balancer name",
    cloud_name
);
string_id!(
    /// An elbv2 target group's name in the cloud (`web-alb-80-3f2a`; see
    /// [`crate::elb::target_group_name`]).
    TargetGroupName,
    "target group name",
    cloud_name
);
string_id!(
    /// An S3 bucket's name: its manifest name.
    BucketName,
    "bucket name",
    cloud_name
);

/// Cloud names compare with text as the `String`s they were did, so that
/// a name can be checked against what a cloud or a test holds.
macro_rules! text_eq {
    ($($name:ident),*) => {$(
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    )*};
}

text_eq!(
    KeyName,
    GroupName,
    BalancerName,
    TargetGroupName,
    BucketName,
    ParameterName,
    InstanceProfile
);

impl KeyName {
    /// The cloud name converge gives a stack's key pair: `<stack>-<name>`,
    /// valid by construction.
    pub fn of(stack: &ResourceName, name: &ResourceName) -> Self {
        Self(format!("{stack}-{name}"))
    }
}

impl GroupName {
    /// The cloud name converge gives a stack's security group:
    /// `<stack>-<name>-<digest>`, where the digest (six hex digits) of its
    /// description, which a group cannot change, tells its versions apart.
    /// Valid by construction.
    pub fn of(stack: &ResourceName, name: &ResourceName, description: &str) -> Self {
        let digest = crate::spec_hash::short_digest(&[description]);
        Self(format!("{stack}-{name}-{}", &digest[..6]))
    }
}

impl InstanceProfile {
    /// The profile's name: the text itself, or an ARN's last path segment.
    pub fn name(&self) -> &str {
        match self.0.strip_prefix("arn:") {
            Some(rest) => rest.rsplit('/').next().unwrap_or(rest),
            None => &self.0,
        }
    }

    /// Whether this is an ARN rather than a name.
    pub fn is_arn(&self) -> bool {
        self.0.starts_with("arn:")
    }

    /// Whether the profile with this ARN is the one meant: the same ARN,
    /// or, for a name, the ARN's name.
    pub fn matches_arn(&self, arn: &str) -> bool {
        if self.is_arn() {
            self.0 == arn
        } else {
            arn.rsplit('/').next() == Some(self.0.as_str())
        }
    }
}

impl From<&ResourceName> for BalancerName {
    /// A balancer is called in the cloud by its manifest name.
    fn from(name: &ResourceName) -> Self {
        Self(name.0.clone())
    }
}

impl From<&ResourceName> for BucketName {
    /// A bucket is called in the cloud by its manifest name.
    fn from(name: &ResourceName) -> Self {
        Self(name.0.clone())
    }
}

/// The kinds of document a manifest may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The stack itself: region and common tags.
    Stack,
    /// A VPC network and its subnets (at most one per stack).
    Network,
    /// An SSH key pair.
    KeyPair,
    /// A security group and its ingress rules.
    SecurityGroup,
    /// A set of identical EC2 instances.
    Fleet,
    /// An EBS volume.
    Volume,
    /// A classic Elastic Load Balancer.
    Balancer,
    /// An S3 bucket.
    Bucket,
    /// A CloudFront distribution.
    Cdn,
    /// A Route 53 public hosted zone.
    DnsZone,
    /// A Route 53 record set.
    DnsRecord,
    /// An ACM certificate, validated by DNS.
    Certificate,
}

impl Kind {
    /// Every kind, in the order resources are listed in plans.
    pub const ALL: [Kind; 12] = [
        Kind::Stack,
        Kind::Network,
        Kind::KeyPair,
        Kind::SecurityGroup,
        Kind::Fleet,
        Kind::Volume,
        Kind::Balancer,
        Kind::Bucket,
        Kind::Cdn,
        Kind::DnsZone,
        Kind::DnsRecord,
        Kind::Certificate,
    ];

    /// The kind as written in manifests and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stack => "Stack",
            Kind::Network => "Network",
            Kind::KeyPair => "KeyPair",
            Kind::SecurityGroup => "SecurityGroup",
            Kind::Fleet => "Fleet",
            Kind::Volume => "Volume",
            Kind::Balancer => "Balancer",
            Kind::Bucket => "Bucket",
            Kind::Cdn => "Cdn",
            Kind::DnsZone => "DnsZone",
            Kind::DnsRecord => "DnsRecord",
            Kind::Certificate => "Certificate",
        }
    }

    /// Parses a kind as written in manifests; `None` for an unknown kind.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's identity within a stack: `Fleet/app`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// What kind of resource.
    pub kind: Kind,
    /// Its manifest name.
    pub name: ResourceName,
}

impl ResourceKey {
    /// Builds a key from a kind and a name.
    pub fn new(kind: Kind, name: impl Into<ResourceName>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The tag keys converge uses to recognise what it owns. Nothing without
/// them is ever touched.
pub mod tags {
    /// The stack a resource belongs to.
    pub const STACK: &str = "converge:stack";
    /// The resource's kind (`Fleet`, `Volume`, …).
    pub const KIND: &str = "converge:kind";
    /// The resource's manifest name.
    pub const NAME: &str = "converge:name";
    /// On instances: the hash of the fleet's immutable launch spec.
    pub const SPEC_HASH: &str = "converge:spec-hash";
    /// On snapshots: the volume (manifest name) it was taken for.
    pub const VOLUME: &str = "converge:volume";
    /// On snapshots: why it was taken (`scheduled`, `final`).
    pub const PURPOSE: &str = "converge:purpose";
    /// On volumes and buckets: the deletion policy, so that it still holds
    /// once the manifest that declared it is gone.
    pub const DELETION_POLICY: &str = "converge:deletion-policy";
    /// On encrypted volumes: the KMS key as the manifest named it when
    /// the volume was created (`default` for the account's default key),
    /// since EC2 reports only the key's ARN.
    pub const KMS_KEY: &str = "converge:kms-key";
    /// On a network's subnets: the subnet's manifest name (the kind and
    /// name tags say `Network/<network>`).
    pub const SUBNET: &str = "converge:subnet";
    /// On a hosted zone converge does not own, the prefix of the tag
    /// `converge:records:STACK` that says the stack has records in it, so
    /// that they are found (and deleted) once no manifest names the zone.
    pub const RECORDS_OF: &str = "converge:records:";

    /// The tag `converge:records:STACK` ([`RECORDS_OF`]).
    pub fn records_of(stack: &super::ResourceName) -> String {
        format!("{RECORDS_OF}{stack}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_and_fixture_ids_are_accepted() {
        for ok in ["i-0123456789abcdef0", "i-app-1", "i-1"] {
            assert!(InstanceId::new(ok).is_ok(), "{ok}");
        }
        assert!(VolumeId::new("vol-pgdata").is_ok());
        assert!(SnapshotId::new("snap-old").is_ok());
        assert!(GroupId::new("sg-0123456789abcdef0").is_ok());
        assert!(KeyPairId::new("key-0abc").is_ok());
        assert!(ImageId::new("ami-147f977d").is_ok());
        assert!(DistributionId::new("E2QWRUHAPOMQZL").is_ok());
        for ok in ["us-east-1a", "us-west-2-lax-1a", "a"] {
            assert!(Zone::new(ok).is_ok(), "{ok}");
        }
        for ok in ["app", "pgdata-1", "1st.assets.example", "assets-1"] {
            assert!(ResourceName::new(ok).is_ok(), "{ok}");
        }
        // Cloud names are the cloud's to refuse.
        assert!(BucketName::new("Not_A_Bucket").is_ok());
        assert!(KeyName::new("shop-deploy").is_ok());
    }

    #[test]
    fn malformed_ids_say_what_is_wrong() {
        let e = InstanceId::new("vol-1").expect_err("wrong prefix");
        assert_eq!(e.what, "instance ID");
        assert_eq!(e.problem, IdProblem::BadPrefix("i-"));
        assert_eq!(
            e.to_string(),
            "\"vol-1\" is not a valid instance ID: it does not start with i-"
        );
        assert_eq!(
            InstanceId::new("i-").map_err(|e| e.problem),
            Err(IdProblem::BadPrefix("i-"))
        );
        assert_eq!(
            VolumeId::new("vol-A").map_err(|e| e.problem),
            Err(IdProblem::BadChar('A'))
        );
        assert_eq!(Zone::new("").map_err(|e| e.problem), Err(IdProblem::Empty));
        assert_eq!(
            DistributionId::new("e1").map_err(|e| e.problem),
            Err(IdProblem::BadChar('e'))
        );
        assert_eq!(
            ResourceName::new("Web").map_err(|e| e.problem),
            Err(IdProblem::BadPrefix("a lowercase letter"))
        );
        assert_eq!(
            ResourceName::new("a".repeat(64)).map_err(|e| e.problem),
            Err(IdProblem::TooLong { len: 64, max: 63 })
        );
        assert!(ResourceName::new("../etc").is_err());
        assert!(GroupName::new("").is_err());
    }

    #[test]
    fn ids_read_and_write_as_bare_strings_and_are_checked_when_read() {
        let id: InstanceId = serde_json::from_str("\"i-app-1\"").expect("valid");
        assert_eq!(id, InstanceId::from("i-app-1"));
        assert_eq!(
            serde_json::to_string(&id).expect("serializes"),
            "\"i-app-1\""
        );
        let bad = serde_json::from_str::<InstanceId>("\"vol-1\"").expect_err("invalid");
        assert!(bad.to_string().contains("not a valid instance ID"), "{bad}");
        assert_eq!(
            "snap-old".parse::<SnapshotId>(),
            Ok(SnapshotId::from("snap-old"))
        );
    }
}
