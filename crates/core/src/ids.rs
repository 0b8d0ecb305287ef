//! Identifiers: one newtype per kind of name or cloud ID, so that an instance
//! ID can never be passed where a volume ID is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
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

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// The name of a resource in a manifest (`app`, `pgdata`): lowercase
    /// letters, digits and hyphens, validated by the manifest loader.
    ResourceName
);
string_id!(
    /// An EC2 instance ID (`i-…`).
    InstanceId
);
string_id!(
    /// An EBS volume ID (`vol-…`).
    VolumeId
);
string_id!(
    /// An EBS snapshot ID (`snap-…`).
    SnapshotId
);
string_id!(
    /// A security group ID (`sg-…`).
    GroupId
);
string_id!(
    /// A key pair ID (`key-…`).
    KeyPairId
);
string_id!(
    /// A CloudFront distribution ID.
    DistributionId
);
string_id!(
    /// An availability zone (`us-east-1a`).
    Zone
);
string_id!(
    /// A machine image ID (`ami-…`).
    ImageId
);

/// The kinds of document a manifest may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// The stack itself: region and common tags.
    Stack,
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
}

impl Kind {
    /// Every kind, in the order resources are listed in plans.
    pub const ALL: [Kind; 8] = [
        Kind::Stack,
        Kind::KeyPair,
        Kind::SecurityGroup,
        Kind::Fleet,
        Kind::Volume,
        Kind::Balancer,
        Kind::Bucket,
        Kind::Cdn,
    ];

    /// The kind as written in manifests and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Stack => "Stack",
            Kind::KeyPair => "KeyPair",
            Kind::SecurityGroup => "SecurityGroup",
            Kind::Fleet => "Fleet",
            Kind::Volume => "Volume",
            Kind::Balancer => "Balancer",
            Kind::Bucket => "Bucket",
            Kind::Cdn => "Cdn",
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
}
