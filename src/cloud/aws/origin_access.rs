//! CloudFront origin access controls and invalidations (issue 11 B).
//!
//! Origin access controls carry no tags: converge finds its own by name
//! (`converge-STACK-CDN`, unique per account) and description (starting
//! `converge:`), with one paginated ListOriginAccessControls per
//! observation. Distributions name their control by ID; converge's
//! desired state names it, so IDs are mapped to names when a
//! distribution is read and back when one is written.
//!
//! Rules AWS enforces and the emulator does not, checked here before the
//! call: a control's name is unique (`OriginAccessControlAlreadyExists`),
//! a control in use by a distribution is not deleted
//! (`OriginAccessControlInUse`), a distribution names a control that
//! exists (`NoSuchOriginAccessControl`).

use super::AwsCloud;
use super::error::{refuse, sdk_error};
use crate::cloud::{CloudError, ErrorKind, Outcome};
use aws_sdk_cloudfront::types::{
    InvalidationBatch, OriginAccessControlConfig, OriginAccessControlOriginTypes,
    OriginAccessControlSigningBehaviors, OriginAccessControlSigningProtocols, Paths,
};
use converge_core::ids::{DistributionId, ResourceName};
use converge_core::observed::{DistributionConfig, ObservedOriginAccess, OriginAccessSettings};
use converge_core::s3::OAC_DESCRIPTION_PREFIX;
use std::collections::BTreeMap;

/// Origin access control names by ID.
pub(super) type OacNames = BTreeMap<String, String>;

/// Names by ID, for reading distributions.
pub(super) fn oac_names(all: &[ObservedOriginAccess]) -> OacNames {
    all.iter().map(|a| (a.id.clone(), a.name.clone())).collect()
}

/// The controls that are the stack's: named for it, described as
/// converge's.
pub(super) fn stack_oacs(
    all: Vec<ObservedOriginAccess>,
    stack: &ResourceName,
) -> Vec<ObservedOriginAccess> {
    let prefix = format!("converge-{stack}-");
    let mut out: Vec<ObservedOriginAccess> = all
        .into_iter()
        .filter(|a| {
            a.name.starts_with(&prefix)
                && a.settings.description.starts_with(OAC_DESCRIPTION_PREFIX)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

fn oac_config(
    name: &str,
    s: &OriginAccessSettings,
    op: &'static str,
) -> Result<OriginAccessControlConfig, CloudError> {
    OriginAccessControlConfig::builder()
        .name(name)
        .description(&s.description)
        .signing_protocol(OriginAccessControlSigningProtocols::from(
            s.signing_protocol.as_str(),
        ))
        .signing_behavior(OriginAccessControlSigningBehaviors::from(
            s.signing_behavior.as_str(),
        ))
        .origin_access_control_origin_type(OriginAccessControlOriginTypes::from(
            s.origin_type.as_str(),
        ))
        .build()
        .map_err(|e| refuse(op, "InvalidArgument", e.to_string()))
}

impl AwsCloud {
    /// Every origin access control of the account (ListOriginAccessControls
    /// pages).
    pub(super) async fn list_oacs(&self) -> Result<Vec<ObservedOriginAccess>, CloudError> {
        const OP: &str = "ListOriginAccessControls";
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .cloudfront
                .list_origin_access_controls()
                .max_items(100)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error(OP, e))?;
            let Some(list) = page.origin_access_control_list() else {
                break;
            };
            for a in list.items() {
                out.push(ObservedOriginAccess {
                    id: a.id().to_owned(),
                    name: a.name().to_owned(),
                    settings: OriginAccessSettings {
                        description: a.description().to_owned(),
                        signing_protocol: a.signing_protocol().as_str().to_owned(),
                        signing_behavior: a.signing_behavior().as_str().to_owned(),
                        origin_type: a.origin_access_control_origin_type().as_str().to_owned(),
                    },
                });
            }
            match list.next_marker() {
                Some(m) if list.is_truncated() && !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The ID of the control a distribution's settings name, if any: a
    /// name, or an ID no control's name is.
    pub(super) async fn oac_id(
        &self,
        c: &DistributionConfig,
        op: &'static str,
    ) -> Result<Option<String>, CloudError> {
        let Some(want) = &c.origin_access_control else {
            return Ok(None);
        };
        let all = self.list_oacs().await?;
        all.iter()
            .find(|a| a.name == *want)
            .or_else(|| all.iter().find(|a| a.id == *want))
            .map(|a| Some(a.id.clone()))
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    op,
                    "NoSuchOriginAccessControl",
                    format!("origin access control {want} does not exist"),
                )
            })
    }

    pub(super) async fn create_oac(
        &self,
        name: &str,
        settings: &OriginAccessSettings,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateOriginAccessControl";
        if self.list_oacs().await?.iter().any(|a| a.name == name) {
            return Err(CloudError::new(
                ErrorKind::AlreadyExists,
                OP,
                "OriginAccessControlAlreadyExists",
                format!("an origin access control named {name} exists already"),
            ));
        }
        self.cloudfront
            .create_origin_access_control()
            .origin_access_control_config(oac_config(name, settings, OP)?)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    async fn oac_etag(&self, id: &str, op: &'static str) -> Result<Option<String>, CloudError> {
        let out = self
            .cloudfront
            .get_origin_access_control()
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_error(op, e))?;
        Ok(out.e_tag().map(str::to_owned))
    }

    pub(super) async fn update_oac(
        &self,
        id: &str,
        name: &str,
        settings: &OriginAccessSettings,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "UpdateOriginAccessControl";
        let etag = self.oac_etag(id, OP).await?;
        self.cloudfront
            .update_origin_access_control()
            .id(id)
            .set_if_match(etag)
            .origin_access_control_config(oac_config(name, settings, OP)?)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_oac(&self, id: &str) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteOriginAccessControl";
        if let Some(user) = self.distribution_using_oac(id).await? {
            return Err(CloudError::new(
                ErrorKind::InvalidState,
                OP,
                "OriginAccessControlInUse",
                format!("origin access control {id} is in use by distribution {user}"),
            ));
        }
        let etag = self.oac_etag(id, OP).await?;
        self.cloudfront
            .delete_origin_access_control()
            .id(id)
            .set_if_match(etag)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    /// A distribution whose origins use the control (ListDistributions
    /// pages: the summaries list origins).
    async fn distribution_using_oac(&self, id: &str) -> Result<Option<String>, CloudError> {
        Ok(self
            .distribution_summaries()
            .await?
            .into_iter()
            .find(|d| {
                d.origins().is_some_and(|o| {
                    o.items()
                        .iter()
                        .any(|o| o.origin_access_control_id() == Some(id))
                })
            })
            .map(|d| d.id().to_owned()))
    }

    pub(super) async fn create_invalidation(
        &self,
        id: &DistributionId,
        caller_reference: &str,
        paths: &[String],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateInvalidation";
        let bad =
            |e: aws_sdk_cloudfront::error::BuildError| refuse(OP, "InvalidArgument", e.to_string());
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(i32::try_from(paths.len()).unwrap_or(i32::MAX))
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .map_err(bad)?,
            )
            .caller_reference(caller_reference)
            .build()
            .map_err(bad)?;
        let out = self
            .cloudfront
            .create_invalidation()
            .distribution_id(id.as_str())
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let inv = out
            .invalidation()
            .map(|i| i.id().to_owned())
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::Unavailable,
                    OP,
                    "MissingInvalidation",
                    "the response carried no invalidation",
                )
            })?;
        Ok(Outcome::Invalidation(inv))
    }

    /// GetInvalidation: `Completed` (the emulator says `COMPLETED`).
    pub(super) async fn get_invalidation(
        &self,
        distribution: &DistributionId,
        id: &str,
    ) -> Result<bool, CloudError> {
        let out = self
            .cloudfront
            .get_invalidation()
            .distribution_id(distribution.as_str())
            .id(id)
            .send()
            .await
            .map_err(|e| sdk_error("GetInvalidation", e))?;
        Ok(out
            .invalidation()
            .is_some_and(|i| i.status().eq_ignore_ascii_case("completed")))
    }
}
