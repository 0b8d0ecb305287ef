//! CloudFront distributions.
//!
//! ListDistributions returns neither caller references nor tags, so
//! converge marks the distributions it creates in their comment: the
//! comment CloudFront holds is `[converge:STACK]` followed by a space and
//! the manifest's `comment` (if any). Observing is one paginated
//! ListDistributions; only the distributions whose comment carries the
//! stack's marker are read further (GetDistribution for the settings the
//! list leaves out, ListTagsForResource for ownership and tags), and the
//! tags decide: a marker without converge's tags is not converge's. The
//! marker is stripped from the comment converge observes and added back
//! when it writes one, so the planner never sees it.

use super::error::{refuse, sdk_error};
use super::origin_access::{OacNames, oac_names, stack_oacs};
use super::{AwsCloud, bounded, lock, tags_from};
use crate::cloud::{CloudError, ErrorKind, Outcome, answered_id};
use aws_sdk_cloudfront::types::{
    Aliases, DefaultCacheBehavior, DistributionConfig as CfConfig, DistributionConfigWithTags,
    LoggingConfig, MinimumProtocolVersion, Origin, Origins, S3OriginConfig, SslSupportMethod, Tag,
    TagKeys, Tags as CfTags, ViewerCertificate as CfViewer, ViewerProtocolPolicy,
};
use converge_core::desired::Tags;
use converge_core::ids::{DistributionId, Kind, ResourceName, tags};
use converge_core::observed::{
    DistributionConfig, DistributionStatus, ObservedDistribution, ObservedOriginAccess, Owner,
};
use std::sync::Arc;

/// The longest comment CloudFront accepts.
const MAX_COMMENT: usize = 128;
/// The origin ID converge gives the bucket origin.
const ORIGIN_ID: &str = "converge-origin";
/// AWS's managed cache policy "CachingOptimized".
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
/// How often an update is retried when the distribution changed between
/// reading its ETag and writing.
const UPDATE_ATTEMPTS: usize = 5;

/// The marker converge puts in front of the comment of a distribution of
/// `stack`.
pub(super) fn marker(stack: &str) -> String {
    format!("[converge:{stack}]")
}

/// The comment CloudFront holds for a manifest comment.
pub(super) fn marked_comment(stack: &str, comment: &str) -> String {
    if comment.is_empty() {
        marker(stack)
    } else {
        format!("{} {comment}", marker(stack))
    }
}

/// The stack a held comment names and the manifest comment, or `None` for
/// a comment without converge's marker.
pub(super) fn parse_comment(held: &str) -> Option<(&str, &str)> {
    let rest = held.strip_prefix("[converge:")?;
    let (stack, rest) = rest.split_once(']')?;
    if stack.is_empty() || stack.contains(' ') {
        return None;
    }
    match rest {
        "" => Some((stack, "")),
        r => Some((stack, r.strip_prefix(' ')?)),
    }
}

fn comment_for(stack: &str, comment: &str, op: &'static str) -> Result<String, CloudError> {
    let held = marked_comment(stack, comment);
    if held.chars().count() > MAX_COMMENT {
        return Err(refuse(
            op,
            "InvalidArgument",
            format!(
                "the comment is too long: CloudFront holds at most {MAX_COMMENT} characters and converge adds \"{} \" in front ({} in all)",
                marker(stack),
                held.chars().count()
            ),
        ));
    }
    Ok(held)
}

/// AWS's rule, checked by converge because the emulator does not: only a
/// disabled, deployed distribution can be deleted.
pub(super) fn check_deletable(
    id: &DistributionId,
    status: DistributionStatus,
    enabled: bool,
) -> Result<(), CloudError> {
    if enabled {
        return Err(CloudError::new(
            ErrorKind::InvalidState,
            "DeleteDistribution",
            "DistributionNotDisabled",
            format!("distribution {id} is enabled: it must be disabled and deployed first"),
        ));
    }
    if status != DistributionStatus::Deployed {
        return Err(CloudError::new(
            ErrorKind::InvalidState,
            "DeleteDistribution",
            "DistributionNotDisabled",
            format!("distribution {id} is still deploying: it can be deleted once deployed"),
        ));
    }
    Ok(())
}

fn status(s: &str) -> DistributionStatus {
    if s == "Deployed" {
        DistributionStatus::Deployed
    } else {
        DistributionStatus::InProgress
    }
}

fn cf_tags(t: &Tags, op: &'static str) -> Result<CfTags, CloudError> {
    let items = t
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| refuse(op, "InvalidTag", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CfTags::builder().set_items(Some(items)).build())
}

fn aliases(v: &[String], op: &'static str) -> Result<Aliases, CloudError> {
    Aliases::builder()
        .quantity(i32::try_from(v.len()).unwrap_or(i32::MAX))
        .set_items(Some(v.to_vec()))
        .build()
        .map_err(|e| refuse(op, "InvalidArgument", e.to_string()))
}

fn logging(l: &Option<(String, String)>, op: &'static str) -> Result<LoggingConfig, CloudError> {
    let (enabled, bucket, prefix) = match l {
        Some((b, p)) => (true, b.clone(), p.clone()),
        None => (false, String::new(), String::new()),
    };
    let config = LoggingConfig::builder()
        .enabled(enabled)
        .include_cookies(false)
        .bucket(bucket)
        .prefix(prefix)
        .build();
    let _ = op;
    Ok(config)
}

/// A distribution's viewer certificate as CloudFront takes it: an ACM
/// certificate served by SNI, or the default `*.cloudfront.net` one.
/// CloudFront refuses (InvalidViewerCertificate) aliases without a
/// certificate and a certificate outside us-east-1; moto does not, so
/// converge refuses both before the call.
fn viewer(c: &DistributionConfig, op: &'static str) -> Result<CfViewer, CloudError> {
    let refuse_viewer = |m: String| refuse(op, "InvalidViewerCertificate", m);
    match &c.viewer_certificate {
        None if !c.aliases.is_empty() => Err(refuse_viewer(
            "aliases need a viewer certificate covering them".into(),
        )),
        None => Ok(CfViewer::builder()
            .cloud_front_default_certificate(true)
            .build()),
        Some(v) => {
            let region = converge_core::acm::arn_region(&v.arn);
            if region != Some(converge_core::acm::CDN_REGION) {
                return Err(refuse_viewer(format!(
                    "certificate {} is not an ACM certificate of {}",
                    v.arn,
                    converge_core::acm::CDN_REGION
                )));
            }
            Ok(CfViewer::builder()
                .acm_certificate_arn(&v.arn)
                .ssl_support_method(SslSupportMethod::SniOnly)
                .minimum_protocol_version(MinimumProtocolVersion::from(
                    v.minimum_protocol_version.as_str(),
                ))
                .cloud_front_default_certificate(false)
                .build())
        }
    }
}

/// A new distribution's settings: one S3 origin, HTTPS enforced, AWS's
/// managed caching policy.
fn new_config(
    caller_reference: &str,
    c: &DistributionConfig,
    comment: String,
    oac_id: Option<&str>,
) -> Result<CfConfig, CloudError> {
    const OP: &str = "CreateDistributionWithTags";
    let bad =
        |e: aws_sdk_cloudfront::error::BuildError| refuse(OP, "InvalidArgument", e.to_string());
    let origin = Origin::builder()
        .id(ORIGIN_ID)
        .domain_name(&c.origin_domain)
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .set_origin_access_control_id(oac_id.map(str::to_owned))
        .build()
        .map_err(bad)?;
    CfConfig::builder()
        .caller_reference(caller_reference)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .map_err(bad)?,
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id(ORIGIN_ID)
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .cache_policy_id(CACHING_OPTIMIZED)
                .compress(true)
                .build()
                .map_err(bad)?,
        )
        .aliases(aliases(&c.aliases, OP)?)
        .logging(logging(&c.logging, OP)?)
        .default_root_object(c.default_root_object.clone().unwrap_or_default())
        .viewer_certificate(viewer(c, OP)?)
        .comment(comment)
        .enabled(c.enabled)
        .build()
        .map_err(bad)
}

/// Sets the fields converge manages on an existing configuration, keeping
/// everything else as it is.
fn apply_config(
    cf: &mut CfConfig,
    c: &DistributionConfig,
    comment: String,
    oac_id: Option<&str>,
) -> Result<(), CloudError> {
    const OP: &str = "UpdateDistribution";
    let target = cf
        .default_cache_behavior
        .as_ref()
        .map(|b| b.target_origin_id.clone());
    if let Some(origins) = cf.origins.as_mut() {
        let idx = origins
            .items
            .iter()
            .position(|o| Some(&o.id) == target.as_ref())
            .unwrap_or(0);
        if let Some(o) = origins.items.get_mut(idx) {
            o.domain_name = c.origin_domain.clone();
            // Origin access (issue 11 B): the control, and no legacy OAI.
            o.origin_access_control_id = oac_id.map(str::to_owned);
            if oac_id.is_some() {
                o.s3_origin_config =
                    Some(S3OriginConfig::builder().origin_access_identity("").build());
            }
        }
    }
    cf.aliases = Some(aliases(&c.aliases, OP)?);
    cf.logging = Some(logging(&c.logging, OP)?);
    cf.default_root_object = Some(c.default_root_object.clone().unwrap_or_default());
    cf.viewer_certificate = Some(viewer(c, OP)?);
    cf.comment = comment;
    cf.enabled = c.enabled;
    Ok(())
}

/// The settings converge compares, read from CloudFront's; `None` when the
/// comment is not converge's.
fn read_config(cf: &CfConfig, oac_names: &OacNames) -> Option<DistributionConfig> {
    let (_, comment) = parse_comment(cf.comment())?;
    let target = cf.default_cache_behavior().map(|b| b.target_origin_id());
    let origins = cf.origins().map(|o| o.items()).unwrap_or_default();
    let first = origins
        .iter()
        .find(|o| Some(o.id()) == target)
        .or(origins.first());
    let origin = first
        .map(|o| o.domain_name().to_owned())
        .unwrap_or_default();
    let origin_access_control = first
        .and_then(|o| o.origin_access_control_id())
        .filter(|id| !id.is_empty())
        .map(|id| oac_names.get(id).cloned().unwrap_or_else(|| id.to_owned()));
    let mut aliases: Vec<String> = cf.aliases().map(|a| a.items().to_vec()).unwrap_or_default();
    aliases.sort();
    Some(DistributionConfig {
        origin_domain: origin,
        aliases,
        enabled: cf.enabled(),
        logging: cf
            .logging()
            .filter(|l| l.enabled())
            .map(|l| (l.bucket().to_owned(), l.prefix().to_owned())),
        comment: comment.to_owned(),
        default_root_object: cf
            .default_root_object()
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        origin_access_control,
        viewer_certificate: cf.viewer_certificate().and_then(|v| {
            let arn = v.acm_certificate_arn().filter(|a| !a.is_empty())?;
            Some(converge_core::observed::ViewerCertificate {
                arn: arn.to_owned(),
                minimum_protocol_version: v
                    .minimum_protocol_version()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            })
        }),
    })
}

/// The distribution ID in CloudFront's DistributionAlreadyExists message
/// ("… Already exists: E1ABCDEF").
fn existing_id(message: &str) -> Option<DistributionId> {
    let (_, rest) = message.rsplit_once("exists:")?;
    let id = rest.trim().trim_end_matches('.');
    DistributionId::new(id).ok()
}

/// One distribution as CloudFront describes it, with its tags.
struct Read {
    id: DistributionId,
    arn: String,
    domain_name: String,
    status: DistributionStatus,
    config: CfConfig,
    etag: Option<String>,
}

impl AwsCloud {
    /// Every distribution of the account, as ListDistributions summarises
    /// them (100 a page).
    pub(super) async fn distribution_summaries(
        &self,
    ) -> Result<Vec<aws_sdk_cloudfront::types::DistributionSummary>, CloudError> {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .cloudfront
                .list_distributions()
                .max_items(100)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListDistributions", e))?;
            let Some(list) = out.distribution_list() else {
                break;
            };
            all.extend(list.items().iter().cloned());
            match list.next_marker() {
                Some(m) if list.is_truncated() && !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        Ok(all)
    }

    pub(super) async fn observe_distributions(
        &self,
        stack: &ResourceName,
    ) -> Result<(Vec<ObservedDistribution>, Vec<ObservedOriginAccess>), CloudError> {
        let (oacs, summaries) = tokio::try_join!(self.list_oacs(), self.distribution_summaries())?;
        let names = Arc::new(oac_names(&oacs));
        let mut candidates: Vec<DistributionId> = Vec::new();
        for d in summaries {
            if parse_comment(d.comment()).is_some_and(|(s, _)| s == stack.as_str()) {
                let id: DistributionId = answered_id("ListDistributions", d.id())?;
                lock(&self.distribution_arns).insert(id.clone(), d.arn().to_owned());
                candidates.push(id);
            }
        }
        let cf = self.cloudfront.clone();
        let stack2 = stack.clone();
        let found = bounded(candidates, 4, move |id| {
            let cf = cf.clone();
            let stack = stack2.clone();
            let names = names.clone();
            async move {
                let Some(r) = read(&cf, &id).await? else {
                    return Ok(None);
                };
                let t = tags_of(&cf, &r.arn).await?;
                Ok(observed(r, t, &names).filter(|d| d.owner.stack == stack))
            }
        })
        .await?;
        let mut out: Vec<ObservedDistribution> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| a.owner.name.cmp(&b.owner.name).then(a.id.cmp(&b.id)));
        Ok((out, stack_oacs(oacs, stack)))
    }

    pub(super) async fn get_distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError> {
        let Some(r) = read(&self.cloudfront, id).await? else {
            return Ok(None);
        };
        let t = tags_of(&self.cloudfront, &r.arn).await?;
        let uses_oac = r.config.origins().is_some_and(|o| {
            o.items()
                .iter()
                .any(|o| o.origin_access_control_id().is_some_and(|i| !i.is_empty()))
        });
        let names = if uses_oac {
            oac_names(&self.list_oacs().await?)
        } else {
            OacNames::new()
        };
        match observed(r, t, &names) {
            Some(d) => Ok(Some(d)),
            None => Err(refuse(
                "GetDistribution",
                "NotConverge",
                format!("distribution {id} does not carry converge's tags"),
            )),
        }
    }

    pub(super) async fn create_distribution(
        &self,
        caller_reference: &str,
        config: &DistributionConfig,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateDistributionWithTags";
        let Some(stack) = tags.get(tags::STACK) else {
            return Err(refuse(
                OP,
                "InvalidTags",
                "a distribution needs the converge:stack tag",
            ));
        };
        let comment = comment_for(stack, &config.comment, OP)?;
        let oac = self.oac_id(config, OP).await?;
        let with_tags = DistributionConfigWithTags::builder()
            .distribution_config(new_config(
                caller_reference,
                config,
                comment,
                oac.as_deref(),
            )?)
            .tags(cf_tags(tags, OP)?)
            .build();
        match self
            .cloudfront
            .create_distribution_with_tags()
            .distribution_config_with_tags(with_tags)
            .send()
            .await
        {
            Ok(out) => {
                let d = out.distribution().ok_or_else(|| {
                    CloudError::new(
                        ErrorKind::Unavailable,
                        OP,
                        "MissingDistribution",
                        "the response carried no distribution",
                    )
                })?;
                let id: DistributionId = answered_id(OP, d.id())?;
                lock(&self.distribution_arns).insert(id.clone(), d.arn().to_owned());
                Ok(Outcome::Distribution {
                    id,
                    domain_name: d.domain_name().to_owned(),
                })
            }
            Err(e) => {
                let e = sdk_error(OP, e);
                if e.code != "DistributionAlreadyExists" {
                    return Err(e);
                }
                // Created by an earlier, interrupted attempt with the same
                // caller reference: answer with it, if it is this stack's.
                let Some(id) = existing_id(&e.message) else {
                    return Err(e);
                };
                let Some(r) = read(&self.cloudfront, &id).await? else {
                    return Err(e);
                };
                let t = tags_of(&self.cloudfront, &r.arn).await?;
                let mine = Owner::from_tags(&t).is_some()
                    && Owner::from_tags(&t) == Owner::from_tags(tags);
                if !mine || r.config.caller_reference() != caller_reference {
                    return Err(refuse(
                        OP,
                        &e.code,
                        format!(
                            "caller reference {caller_reference} belongs to distribution {id}, which is not this stack's"
                        ),
                    ));
                }
                Ok(Outcome::Distribution {
                    id: r.id,
                    domain_name: r.domain_name,
                })
            }
        }
    }

    pub(super) async fn update_distribution(
        &self,
        id: &DistributionId,
        config: &DistributionConfig,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "UpdateDistribution";
        let oac = self.oac_id(config, OP).await?;
        let mut last = None;
        for _ in 0..UPDATE_ATTEMPTS {
            let out = self
                .cloudfront
                .get_distribution_config()
                .id(id.as_str())
                .send()
                .await
                .map_err(|e| sdk_error("GetDistributionConfig", e))?;
            let (Some(mut cf), Some(etag)) = (
                out.distribution_config().cloned(),
                out.e_tag().map(str::to_owned),
            ) else {
                return Err(CloudError::new(
                    ErrorKind::Unavailable,
                    "GetDistributionConfig",
                    "MissingConfig",
                    format!("distribution {id}: the response carried no configuration or ETag"),
                ));
            };
            let stack = match parse_comment(cf.comment()) {
                Some((s, _)) => s.to_owned(),
                None => {
                    return Err(refuse(
                        OP,
                        "NotConverge",
                        format!(
                            "distribution {id} does not carry converge's marker in its comment"
                        ),
                    ));
                }
            };
            let comment = comment_for(&stack, &config.comment, OP)?;
            apply_config(&mut cf, config, comment, oac.as_deref())?;
            match self
                .cloudfront
                .update_distribution()
                .id(id.as_str())
                .if_match(etag)
                .distribution_config(cf)
                .send()
                .await
            {
                Ok(_) => return Ok(Outcome::Done),
                Err(e) => {
                    let e = sdk_error(OP, e);
                    // Changed since it was read: read it again.
                    if e.code != "PreconditionFailed" {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            CloudError::new(
                ErrorKind::InvalidState,
                OP,
                "PreconditionFailed",
                "the distribution kept changing",
            )
        }))
    }

    pub(super) async fn delete_distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteDistribution";
        let Some(r) = read(&self.cloudfront, id).await? else {
            return Err(CloudError::new(
                ErrorKind::NotFound,
                OP,
                "NoSuchDistribution",
                format!("distribution {id} does not exist"),
            ));
        };
        check_deletable(id, r.status, r.config.enabled())?;
        self.cloudfront
            .delete_distribution()
            .id(id.as_str())
            .set_if_match(r.etag)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        lock(&self.distribution_arns).remove(id);
        Ok(Outcome::Done)
    }

    pub(super) async fn arn(
        &self,
        id: &DistributionId,
        op: &'static str,
    ) -> Result<String, CloudError> {
        if let Some(a) = lock(&self.distribution_arns).get(id) {
            return Ok(a.clone());
        }
        match read(&self.cloudfront, id).await? {
            Some(r) => {
                lock(&self.distribution_arns).insert(id.clone(), r.arn.clone());
                Ok(r.arn)
            }
            None => Err(CloudError::new(
                ErrorKind::NotFound,
                op,
                "NoSuchDistribution",
                format!("distribution {id} does not exist"),
            )),
        }
    }

    pub(super) async fn tag_distribution(
        &self,
        id: &DistributionId,
        t: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "TagResource";
        let arn = self.arn(id, OP).await?;
        self.cloudfront
            .tag_resource()
            .resource(arn)
            .tags(cf_tags(t, OP)?)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn untag_distribution(
        &self,
        id: &DistributionId,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "UntagResource";
        let arn = self.arn(id, OP).await?;
        self.cloudfront
            .untag_resource()
            .resource(arn)
            .tag_keys(TagKeys::builder().set_items(Some(keys.to_vec())).build())
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }
}

/// GetDistribution: settings, status, ARN and ETag; `None` if it is gone.
async fn read(
    cf: &aws_sdk_cloudfront::Client,
    id: &DistributionId,
) -> Result<Option<Read>, CloudError> {
    let out = match cf.get_distribution().id(id.as_str()).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = sdk_error("GetDistribution", e);
            return if e.kind == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    let Some(d) = out.distribution() else {
        return Ok(None);
    };
    let Some(config) = d.distribution_config().cloned() else {
        return Ok(None);
    };
    Ok(Some(Read {
        id: answered_id("GetDistribution", d.id())?,
        arn: d.arn().to_owned(),
        domain_name: d.domain_name().to_owned(),
        status: status(d.status()),
        config,
        etag: out.e_tag().map(str::to_owned),
    }))
}

async fn tags_of(cf: &aws_sdk_cloudfront::Client, arn: &str) -> Result<Tags, CloudError> {
    let out = cf
        .list_tags_for_resource()
        .resource(arn)
        .send()
        .await
        .map_err(|e| sdk_error("ListTagsForResource", e))?;
    Ok(out
        .tags()
        .map(|t| tags_from(t.items().iter().map(|t| (Some(t.key()), t.value()))))
        .unwrap_or_default())
}

fn observed(r: Read, t: Tags, oac_names: &OacNames) -> Option<ObservedDistribution> {
    let owner = Owner::from_tags(&t).filter(|o| o.kind == Kind::Cdn)?;
    Some(ObservedDistribution {
        config: read_config(&r.config, oac_names)?,
        arn: r.arn.clone(),
        id: r.id,
        owner,
        domain_name: r.domain_name,
        status: r.status,
        tags: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DistributionConfig {
        DistributionConfig {
            origin_domain: "assets.s3.amazonaws.com".into(),
            aliases: vec!["cdn0.example".into(), "cdn1.example".into()],
            enabled: true,
            logging: None,
            comment: "static assets".into(),
            default_root_object: Some("index.html".into()),
            origin_access_control: None,
            viewer_certificate: Some(converge_core::observed::ViewerCertificate {
                arn: "arn:aws:acm:us-east-1:123456789012:certificate/abc".into(),
                minimum_protocol_version: "TLSv1.2_2021".into(),
            }),
        }
    }

    #[test]
    fn the_marker_round_trips_and_is_invisible_to_the_planner() {
        assert_eq!(
            marked_comment("payroll", "static assets"),
            "[converge:payroll] static assets"
        );
        assert_eq!(
            parse_comment("[converge:payroll] static assets"),
            Some(("payroll", "static assets"))
        );
        assert_eq!(marked_comment("payroll", ""), "[converge:payroll]");
        assert_eq!(parse_comment("[converge:payroll]"), Some(("payroll", "")));
        assert_eq!(parse_comment("static assets"), None);
        assert_eq!(parse_comment("[converge:payroll]x"), None);
        assert_eq!(parse_comment("[converge:] x"), None);
        let c = config();
        let cf = new_config("ref", &c, marked_comment("payroll", &c.comment), None).expect("valid");
        assert_eq!(read_config(&cf, &OacNames::new()), Some(c));
    }

    #[test]
    fn an_update_changes_only_converges_fields() {
        let c = config();
        let mut cf =
            new_config("ref", &c, marked_comment("payroll", &c.comment), None).expect("valid");
        cf.price_class = Some(aws_sdk_cloudfront::types::PriceClass::PriceClass100);
        let mut want = c.clone();
        want.enabled = false;
        want.aliases = vec!["cdn9.example".into()];
        want.logging = Some(("logs.s3.amazonaws.com".into(), "cdn/".into()));
        want.comment = String::new();
        apply_config(&mut cf, &want, marked_comment("payroll", ""), None).expect("valid");
        assert_eq!(read_config(&cf, &OacNames::new()), Some(want));
        assert_eq!(cf.caller_reference(), "ref");
        assert_eq!(
            cf.price_class,
            Some(aws_sdk_cloudfront::types::PriceClass::PriceClass100)
        );
    }

    #[test]
    fn a_comment_too_long_for_the_marker_is_refused() {
        let long = "x".repeat(120);
        let e = comment_for("payroll", &long, "CreateDistributionWithTags").expect_err("too long");
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.message.contains("[converge:payroll]"));
        assert!(comment_for("payroll", "short", "CreateDistributionWithTags").is_ok());
    }

    #[test]
    fn only_a_disabled_deployed_distribution_is_deleted() {
        let id = DistributionId::from("E1");
        assert!(check_deletable(&id, DistributionStatus::Deployed, false).is_ok());
        for (status, enabled) in [
            (DistributionStatus::Deployed, true),
            (DistributionStatus::InProgress, false),
            (DistributionStatus::InProgress, true),
        ] {
            let e = check_deletable(&id, status, enabled).expect_err("refused");
            assert_eq!(e.kind, ErrorKind::InvalidState);
            assert_eq!(e.code, "DistributionNotDisabled");
        }
    }

    #[test]
    fn the_existing_id_is_read_from_the_error() {
        assert_eq!(
            existing_id(
                "The caller reference that you are using to create a distribution is associated with another distribution. Already exists: E2QWRUHAPOMQZL"
            ),
            Some(DistributionId::from("E2QWRUHAPOMQZL"))
        );
        assert_eq!(existing_id("something else"), None);
    }
}
