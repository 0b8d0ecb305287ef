//! AWS's rules for EBS volumes, in one place: the size, IOPS and
//! throughput each volume type allows, the KMS key forms CreateVolume
//! accepts, and the cool-down between two modifications of a volume.
//! Manifest validation, the planner and the local cloud all check with
//! these, so that bad input is refused before any call and the local
//! cloud refuses what AWS refuses (moto checks none of the ranges).
//!
//! Sources:
//! - the EBS volume types page,
//!   <https://docs.aws.amazon.com/ebs/latest/userguide/ebs-volume-types.html>
//!   (gp3 3,000–16,000 IOPS at most 500 per GiB, 125–1,000 MiB/s at most
//!   0.25 MiB/s per IOPS, baseline 3,000 IOPS and 125 MiB/s; io1 100–64,000
//!   IOPS at most 50 per GiB; io2 100–256,000 IOPS at most 1,000 per GiB);
//! - the CreateVolume API reference,
//!   <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html>
//!   (`Iops` required for io1 and io2, not supported for gp2, st1, sc1 and
//!   standard; `Throughput` only for gp3; `KmsKeyId` as a key ID, key ARN,
//!   alias name or alias ARN, and only with `Encrypted`; the size ranges);
//! - "Requirements for EBS volume modifications",
//!   <https://docs.aws.amazon.com/ebs/latest/userguide/modify-volume-requirements.html>,
//!   and the ModifyVolume API reference: after modifying a volume, wait at
//!   least six hours, and until the volume is `in-use` or `available`
//!   with the modification complete, before modifying it again.
//!
//! Later AWS releases raised some gp3 and io2 limits; converge keeps the
//! limits above, which every region accepts.

use crate::desired::VolumeType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// gp3's baseline IOPS: what a gp3 volume gets when none are declared.
pub const GP3_BASELINE_IOPS: u32 = 3_000;
/// gp3's baseline throughput in MiB/s.
pub const GP3_BASELINE_THROUGHPUT: u32 = 125;
/// How long after a modification starts before the volume can be
/// modified again.
pub const MODIFICATION_COOLDOWN: Duration = Duration::from_secs(6 * 3600);

/// The sizes a volume type allows, in GiB.
pub fn size_range(t: VolumeType) -> (u32, u32) {
    match t {
        VolumeType::Gp2 | VolumeType::Gp3 => (1, 16_384),
        VolumeType::Io1 | VolumeType::Io2 => (4, 16_384),
        VolumeType::St1 | VolumeType::Sc1 => (125, 16_384),
        VolumeType::Standard => (1, 1_024),
    }
}

/// What a volume type allows of provisioned IOPS: the range and the most
/// per GiB. `None` for types whose IOPS cannot be set.
pub fn iops_rule(t: VolumeType) -> Option<IopsRule> {
    let (min, max, per_gib) = match t {
        VolumeType::Gp3 => (GP3_BASELINE_IOPS, 16_000, 500),
        VolumeType::Io1 => (100, 64_000, 50),
        VolumeType::Io2 => (100, 256_000, 1_000),
        VolumeType::Gp2 | VolumeType::St1 | VolumeType::Sc1 | VolumeType::Standard => {
            return None;
        }
    };
    Some(IopsRule { min, max, per_gib })
}

/// The provisioned IOPS a volume type allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IopsRule {
    /// The fewest.
    pub min: u32,
    /// The most.
    pub max: u32,
    /// The most per GiB of size.
    pub per_gib: u32,
}

/// Whether the type needs its IOPS given (io1, io2).
pub fn requires_iops(t: VolumeType) -> bool {
    matches!(t, VolumeType::Io1 | VolumeType::Io2)
}

/// Whether the type takes a throughput (gp3 only).
pub fn takes_throughput(t: VolumeType) -> bool {
    t == VolumeType::Gp3
}

/// The gp3 throughput range, in MiB/s.
pub const GP3_THROUGHPUT: (u32, u32) = (GP3_BASELINE_THROUGHPUT, 1_000);

/// The IOPS a volume of this type ends up with when `declared` is what
/// was asked for: the declared value, gp3's baseline when none is, and
/// `None` for types whose IOPS converge does not manage.
pub fn effective_iops(t: VolumeType, declared: Option<u32>) -> Option<u32> {
    match t {
        VolumeType::Gp3 => Some(declared.unwrap_or(GP3_BASELINE_IOPS)),
        VolumeType::Io1 | VolumeType::Io2 => declared,
        _ => None,
    }
}

/// The throughput a volume of this type ends up with: the declared value,
/// gp3's baseline when none is, `None` for the other types.
pub fn effective_throughput(t: VolumeType, declared: Option<u32>) -> Option<u32> {
    takes_throughput(t).then(|| declared.unwrap_or(GP3_BASELINE_THROUGHPUT))
}

/// One way a volume's size, IOPS or throughput breaks AWS's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The size is outside the type's range.
    #[error("expected a size from {min} to {max} GiB for {} volume, found {size}", .volume_type.with_article())]
    Size {
        /// The type.
        volume_type: VolumeType,
        /// The size.
        size: u32,
        /// The smallest.
        min: u32,
        /// The largest.
        max: u32,
    },
    /// io1 and io2 volumes need their IOPS.
    #[error("{} volume needs its iops (from {} to {})", .volume_type.with_article(), .rule.min, .rule.max)]
    IopsRequired {
        /// The type.
        volume_type: VolumeType,
        /// What it allows.
        rule: IopsRule,
    },
    /// The type's IOPS cannot be set.
    #[error("{} volume takes no iops: only gp3, io1 and io2 volumes do", .volume_type.with_article())]
    IopsNotSupported {
        /// The type.
        volume_type: VolumeType,
    },
    /// IOPS outside the type's range.
    #[error("expected iops from {} to {} for {} volume, found {iops}", .rule.min, .rule.max, .volume_type.with_article())]
    IopsRange {
        /// The type.
        volume_type: VolumeType,
        /// What it allows.
        rule: IopsRule,
        /// The IOPS.
        iops: u32,
    },
    /// More IOPS than the size allows.
    #[error("{} volume allows at most {per_gib} iops per GiB: {size} GiB allow at most {allowed}, found {iops}", .volume_type.with_article())]
    IopsPerGib {
        /// The type.
        volume_type: VolumeType,
        /// The most per GiB.
        per_gib: u32,
        /// The most at this size.
        allowed: u32,
        /// The size.
        size: u32,
        /// The IOPS.
        iops: u32,
    },
    /// A throughput on a type other than gp3.
    #[error("{} volume takes no throughput: only gp3 volumes do", .volume_type.with_article())]
    ThroughputNotSupported {
        /// The type.
        volume_type: VolumeType,
    },
    /// A gp3 throughput outside its range.
    #[error("expected a throughput from {} to {} MiB/s, found {throughput}", GP3_THROUGHPUT.0, GP3_THROUGHPUT.1)]
    ThroughputRange {
        /// The throughput.
        throughput: u32,
    },
    /// More throughput than the IOPS allow (0.25 MiB/s per IOPS).
    #[error("a gp3 volume allows at most 0.25 MiB/s per iops: {iops} iops allow at most {} MiB/s, found {throughput}", .iops / 4)]
    ThroughputPerIops {
        /// The throughput.
        throughput: u32,
        /// The IOPS it comes with.
        iops: u32,
    },
}

impl Problem {
    /// The manifest field the problem is about (`sizeGiB`, `iops`,
    /// `throughput`).
    pub fn field(&self) -> &'static str {
        match self {
            Problem::Size { .. } => "sizeGiB",
            Problem::IopsRequired { .. }
            | Problem::IopsNotSupported { .. }
            | Problem::IopsRange { .. }
            | Problem::IopsPerGib { .. } => "iops",
            Problem::ThroughputNotSupported { .. }
            | Problem::ThroughputRange { .. }
            | Problem::ThroughputPerIops { .. } => "throughput",
        }
    }
}

/// Every rule a volume of type `t` with this size and these declared IOPS
/// and throughput breaks (none: it can be created or modified so).
pub fn check(t: VolumeType, size: u32, iops: Option<u32>, throughput: Option<u32>) -> Vec<Problem> {
    let mut out = Vec::new();
    let (min, max) = size_range(t);
    if !(min..=max).contains(&size) {
        out.push(Problem::Size {
            volume_type: t,
            size,
            min,
            max,
        });
    }
    match (iops_rule(t), iops) {
        (None, Some(_)) => out.push(Problem::IopsNotSupported { volume_type: t }),
        (Some(rule), None) if requires_iops(t) => out.push(Problem::IopsRequired {
            volume_type: t,
            rule,
        }),
        (Some(rule), Some(n)) if !(rule.min..=rule.max).contains(&n) => {
            out.push(Problem::IopsRange {
                volume_type: t,
                rule,
                iops: n,
            })
        }
        // gp3's baseline is had at any size; only IOPS above it count
        // against the size.
        (Some(rule), Some(n)) => {
            let allowed = rule.per_gib.saturating_mul(size);
            if (t != VolumeType::Gp3 || n > GP3_BASELINE_IOPS) && n > allowed {
                out.push(Problem::IopsPerGib {
                    volume_type: t,
                    per_gib: rule.per_gib,
                    allowed,
                    size,
                    iops: n,
                })
            }
        }
        _ => {}
    }
    match (takes_throughput(t), throughput) {
        (false, Some(_)) => out.push(Problem::ThroughputNotSupported { volume_type: t }),
        (true, Some(mbs)) if !(GP3_THROUGHPUT.0..=GP3_THROUGHPUT.1).contains(&mbs) => {
            out.push(Problem::ThroughputRange { throughput: mbs })
        }
        (true, Some(mbs)) => {
            let iops = iops.unwrap_or(GP3_BASELINE_IOPS);
            if u64::from(mbs) * 4 > u64::from(iops) {
                out.push(Problem::ThroughputPerIops {
                    throughput: mbs,
                    iops,
                })
            }
        }
        _ => {}
    }
    out
}

/// A KMS key as CreateVolume's `KmsKeyId` takes it: a key ID, a key ARN,
/// an alias name or an alias ARN.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct KmsKey {
    text: String,
    form: KmsKeyForm,
}

/// How a [`KmsKey`] names its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KmsKeyForm {
    /// `1234abcd-12ab-34cd-56ef-1234567890ab`.
    KeyId,
    /// `arn:aws:kms:us-east-1:111122223333:key/1234abcd-…`.
    KeyArn,
    /// `alias/ExampleAlias`.
    AliasName,
    /// `arn:aws:kms:us-east-1:111122223333:alias/ExampleAlias`.
    AliasArn,
}

impl KmsKey {
    /// Reads a key reference; the error says which forms are accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let form = if is_key_id(s) {
            KmsKeyForm::KeyId
        } else if is_alias_name(s) {
            KmsKeyForm::AliasName
        } else {
            match arn_resource(s) {
                Some(r) if r.strip_prefix("key/").is_some_and(is_key_id) => KmsKeyForm::KeyArn,
                Some(r) if is_alias_name(r) => KmsKeyForm::AliasArn,
                _ => {
                    return Err(format!(
                        "expected a KMS key ID (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN \
                         (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME) or an \
                         alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME), found {s:?}"
                    ));
                }
            }
        };
        Ok(Self {
            text: s.to_owned(),
            form,
        })
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How it names its key.
    pub fn form(&self) -> KmsKeyForm {
        self.form
    }

    /// Whether a volume whose key ARN is `arn` is encrypted with this key,
    /// as far as the text tells: `Some` for key IDs and key ARNs, `None`
    /// for aliases (only KMS knows which key an alias points at).
    pub fn matches_key_arn(&self, arn: &str) -> Option<bool> {
        match self.form {
            KmsKeyForm::KeyArn => Some(self.text == arn),
            KmsKeyForm::KeyId => Some(arn.rsplit('/').next() == Some(self.text.as_str())),
            KmsKeyForm::AliasName | KmsKeyForm::AliasArn => None,
        }
    }
}

impl fmt::Display for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for KmsKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl TryFrom<String> for KmsKey {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// A key ID: a UUID (8-4-4-4-12 hex digits), or a multi-Region key's
/// `mrk-` and 32 hex digits.
fn is_key_id(s: &str) -> bool {
    let hex = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(rest) = s.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && hex(p))
}

/// An alias name: `alias/` then letters, digits, `/_-`, at most 256
/// characters in all.
fn is_alias_name(s: &str) -> bool {
    s.len() <= 256
        && s.strip_prefix("alias/").is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
        })
}

/// The resource part of a KMS ARN (`key/…`, `alias/…`):
/// `arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE`, the account 12 digits.
fn arn_resource(s: &str) -> Option<&str> {
    let mut parts = s.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let ok = arn == "arn"
        && partition.starts_with("aws")
        && service == "kms"
        && !region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit());
    ok.then_some(resource)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test fails
mod tests {
    use super::*;

    #[test]
    fn gp3_rules() {
        let gp3 = VolumeType::Gp3;
        assert!(
            check(gp3, 1, None, None).is_empty(),
            "the baseline at any size"
        );
        assert!(check(gp3, 1, Some(3000), Some(125)).is_empty());
        assert!(check(gp3, 32, Some(16_000), Some(1000)).is_empty());
        assert_eq!(check(gp3, 100, Some(2999), None)[0].field(), "iops");
        assert!(matches!(
            check(gp3, 100, Some(16_001), None)[..],
            [Problem::IopsRange { .. }]
        ));
        assert!(matches!(
            check(gp3, 10, Some(6000), None)[..],
            [Problem::IopsPerGib { size: 10, .. }]
        ));
        assert!(matches!(
            check(gp3, 100, None, Some(1001))[..],
            [Problem::ThroughputRange { .. }]
        ));
        assert!(matches!(
            check(gp3, 100, None, Some(751))[..],
            [Problem::ThroughputPerIops { iops: 3000, .. }]
        ));
        assert!(check(gp3, 100, None, Some(750)).is_empty());
    }

    #[test]
    fn io_rules() {
        for t in [VolumeType::Io1, VolumeType::Io2] {
            assert!(matches!(
                check(t, 100, None, None)[..],
                [Problem::IopsRequired { .. }]
            ));
            assert!(check(t, 100, Some(100), None).is_empty());
            assert!(matches!(
                check(t, 100, Some(99), None)[..],
                [Problem::IopsRange { .. }]
            ));
            assert!(matches!(
                check(t, 100, Some(1000), Some(200))[..],
                [Problem::ThroughputNotSupported { .. }]
            ));
        }
        assert!(check(VolumeType::Io1, 100, Some(5000), None).is_empty());
        assert!(matches!(
            check(VolumeType::Io1, 100, Some(5001), None)[..],
            [Problem::IopsPerGib { .. }]
        ));
        assert!(check(VolumeType::Io2, 256, Some(256_000), None).is_empty());
        assert!(matches!(
            check(VolumeType::Io2, 100, Some(100_001), None)[..],
            [Problem::IopsPerGib { .. }]
        ));
    }

    #[test]
    fn other_types_take_neither() {
        for t in [
            VolumeType::Gp2,
            VolumeType::St1,
            VolumeType::Sc1,
            VolumeType::Standard,
        ] {
            let size = size_range(t).0;
            assert!(check(t, size, None, None).is_empty());
            assert!(matches!(
                check(t, size, Some(3000), None)[..],
                [Problem::IopsNotSupported { .. }]
            ));
            assert!(matches!(
                check(t, size, None, Some(125))[..],
                [Problem::ThroughputNotSupported { .. }]
            ));
        }
        assert!(matches!(
            check(VolumeType::St1, 100, None, None)[..],
            [Problem::Size { min: 125, .. }]
        ));
    }

    #[test]
    fn effective_values() {
        assert_eq!(effective_iops(VolumeType::Gp3, None), Some(3000));
        assert_eq!(effective_throughput(VolumeType::Gp3, None), Some(125));
        assert_eq!(effective_iops(VolumeType::Io2, Some(500)), Some(500));
        assert_eq!(effective_iops(VolumeType::Gp2, None), None);
        assert_eq!(effective_throughput(VolumeType::Io1, None), None);
    }

    #[test]
    fn kms_key_forms() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
        let cases = [
            (id.to_owned(), KmsKeyForm::KeyId),
            (
                "mrk-1234abcd12ab34cd56ef1234567890ab".into(),
                KmsKeyForm::KeyId,
            ),
            (arn.clone(), KmsKeyForm::KeyArn),
            ("alias/pgdata".into(), KmsKeyForm::AliasName),
            ("alias/aws/ebs".into(), KmsKeyForm::AliasName),
            (
                "arn:aws:kms:us-east-1:111122223333:alias/pgdata".into(),
                KmsKeyForm::AliasArn,
            ),
        ];
        for (s, form) in cases {
            assert_eq!(KmsKey::parse(&s).map(|k| k.form()), Ok(form), "{s}");
        }
        for bad in [
            "",
            "pgdata",
            "alias/",
            "alias/with space",
            "1234abcd-12ab-34cd-56ef",
            "arn:aws:kms:us-east-1:1111:key/x",
            "arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:key/not-a-uuid",
        ] {
            assert!(KmsKey::parse(bad).is_err(), "{bad}");
        }
        let key = KmsKey::parse(id).unwrap();
        assert_eq!(key.matches_key_arn(&arn), Some(true));
        assert_eq!(
            KmsKey::parse(&arn).unwrap().matches_key_arn(&arn),
            Some(true)
        );
        assert_eq!(
            KmsKey::parse("alias/pgdata").unwrap().matches_key_arn(&arn),
            None
        );
    }
}
