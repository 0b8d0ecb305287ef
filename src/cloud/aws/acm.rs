//! ACM: certificates requested with DNS validation, in the stack's region
//! and in us-east-1 (where a CloudFront distribution's must be).
//!
//! Observing is a constant number of calls per certificate: ListCertificates
//! pages (1000 a page) in each of the two regions, then, per certificate
//! listed, DescribeCertificate (domains, status, validation records, what
//! uses it) and ListTagsForCertificate (ListCertificates names no tags, so
//! ownership is read per certificate). A stack in us-east-1 lists one
//! region.

use super::AwsCloud;
use super::error::{refuse, sdk_error};
use crate::cloud::{CloudError, Outcome};
use aws_sdk_acm::types::{Tag, ValidationMethod};
use converge_core::acm::{self, CertificateStatus, ObservedCertificate, ValidationRecord};
use converge_core::desired::Tags;
use converge_core::ids::ResourceName;
use converge_core::observed::Owner;

impl AwsCloud {
    /// The ACM client of `region`: the stack's, or us-east-1.
    fn acm_in(
        &self,
        operation: &'static str,
        region: &str,
    ) -> Result<&aws_sdk_acm::Client, CloudError> {
        if region == self.region {
            Ok(&self.acm)
        } else if region == acm::CDN_REGION {
            Ok(&self.acm_cdn)
        } else {
            Err(refuse(
                operation,
                "UnsupportedRegion",
                format!(
                    "converge manages certificates in the stack's region ({}) and in {} only, not in {region}",
                    self.region,
                    acm::CDN_REGION
                ),
            ))
        }
    }

    /// The regions certificates are observed in.
    fn certificate_regions(&self) -> Vec<String> {
        let mut out = vec![self.region.clone()];
        if self.region != acm::CDN_REGION {
            out.push(acm::CDN_REGION.to_owned());
        }
        out
    }

    /// The stack's certificates in its region and in us-east-1.
    pub(super) async fn observe_certificates(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedCertificate>, CloudError> {
        let mut out = Vec::new();
        for region in self.certificate_regions() {
            let client = self.acm_in("ListCertificates", &region)?;
            let mut next: Option<String> = None;
            let mut arns = Vec::new();
            loop {
                let page = client
                    .list_certificates()
                    .set_next_token(next.clone())
                    .max_items(1000)
                    .send()
                    .await
                    .map_err(|e| sdk_error("ListCertificates", e))?;
                arns.extend(
                    page.certificate_summary_list()
                        .iter()
                        .filter_map(|c| c.certificate_arn().map(str::to_owned)),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                    _ => break,
                }
            }
            for arn in arns {
                if let Some(c) = self.describe_certificate(&region, &arn).await?
                    && c.owner.as_ref().is_some_and(|o| o.stack == *stack)
                {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// One certificate (DescribeCertificate, ListTagsForCertificate), if
    /// it exists.
    pub(super) async fn describe_certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Option<ObservedCertificate>, CloudError> {
        let client = self.acm_in("DescribeCertificate", region)?;
        let d = match client
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) => {
                let e = sdk_error("DescribeCertificate", e);
                if e.kind == crate::cloud::ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let Some(c) = d.certificate() else {
            return Ok(None);
        };
        let mut domains = Vec::new();
        for dn in c
            .domain_name()
            .into_iter()
            .chain(c.subject_alternative_names().iter().map(String::as_str))
        {
            let dn = dn.trim_end_matches('.').to_ascii_lowercase();
            if !domains.contains(&dn) {
                domains.push(dn);
            }
        }
        let validation = c
            .domain_validation_options()
            .iter()
            .filter_map(|v| {
                let r = v.resource_record()?;
                Some(ValidationRecord {
                    domain: v.domain_name().to_ascii_lowercase(),
                    name: r.name().trim_end_matches('.').to_ascii_lowercase(),
                    value: r.value().trim_end_matches('.').to_ascii_lowercase(),
                })
            })
            .collect();
        let status = c
            .status()
            .and_then(|s| CertificateStatus::parse(s.as_str()))
            .unwrap_or(CertificateStatus::Inactive);
        let tags = self.certificate_tags(client, arn).await?;
        Ok(Some(ObservedCertificate {
            arn: arn.to_owned(),
            region: region.to_owned(),
            domains,
            status,
            validation,
            owner: Owner::from_tags(&tags),
            tags,
            in_use_by: c.in_use_by().to_vec(),
        }))
    }

    /// A certificate's tags.
    async fn certificate_tags(
        &self,
        client: &aws_sdk_acm::Client,
        arn: &str,
    ) -> Result<Tags, CloudError> {
        let t = client
            .list_tags_for_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error("ListTagsForCertificate", e))?;
        Ok(t.tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect())
    }

    /// RequestCertificate with DNS validation, tagged at request.
    pub(super) async fn request_certificate(
        &self,
        region: &str,
        domains: &[String],
        token: &str,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "RequestCertificate";
        let client = self.acm_in(OP, region)?;
        let Some((primary, rest)) = domains.split_first() else {
            return Err(refuse(
                OP,
                "ValidationException",
                "a certificate needs a domain name",
            ));
        };
        let mut sdk_tags = Vec::new();
        for (k, v) in tags {
            sdk_tags.push(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| refuse(OP, "ValidationException", e.to_string()))?,
            );
        }
        let mut req = client
            .request_certificate()
            .domain_name(primary)
            .validation_method(ValidationMethod::Dns)
            .idempotency_token(token)
            .set_tags(Some(sdk_tags));
        if !rest.is_empty() {
            req = req.set_subject_alternative_names(Some(domains.to_vec()));
        }
        let out = req.send().await.map_err(|e| sdk_error(OP, e))?;
        let arn = out
            .certificate_arn()
            .ok_or_else(|| refuse(OP, "NoArn", "RequestCertificate answered no ARN"))?;
        Ok(Outcome::Certificate(arn.to_owned()))
    }

    /// AddTagsToCertificate `tags`, then RemoveTagsFromCertificate `keys`
    /// (each only when not empty).
    pub(super) async fn tag_certificate(
        &self,
        arn: &str,
        tags: &Tags,
        keys: &[String],
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "AddTagsToCertificate";
        let region = acm::arn_region(arn).unwrap_or(&self.region).to_owned();
        let client = self.acm_in(OP, &region)?;
        let build = |k: &str, v: Option<&str>| {
            Tag::builder()
                .key(k)
                .set_value(v.map(str::to_owned))
                .build()
                .map_err(|e| refuse(OP, "ValidationException", e.to_string()))
        };
        if !tags.is_empty() {
            let items = tags
                .iter()
                .map(|(k, v)| build(k, Some(v)))
                .collect::<Result<Vec<_>, _>>()?;
            client
                .add_tags_to_certificate()
                .certificate_arn(arn)
                .set_tags(Some(items))
                .send()
                .await
                .map_err(|e| sdk_error(OP, e))?;
        }
        if !keys.is_empty() {
            let items = keys
                .iter()
                .map(|k| build(k, None))
                .collect::<Result<Vec<_>, _>>()?;
            client
                .remove_tags_from_certificate()
                .certificate_arn(arn)
                .set_tags(Some(items))
                .send()
                .await
                .map_err(|e| sdk_error("RemoveTagsFromCertificate", e))?;
        }
        Ok(Outcome::Done)
    }

    /// DeleteCertificate.
    pub(super) async fn delete_certificate(
        &self,
        region: &str,
        arn: &str,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "DeleteCertificate";
        self.acm_in(OP, region)?
            .delete_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        Ok(Outcome::Done)
    }
}
