//! The ACM steps: requesting a certificate (idempotent by its token),
//! validating it (its DNS validation records, with their marks, written
//! into its zone, then a bounded wait until ACM issues it), deleting it
//! and its validation records; and the ARN a requested certificate got
//! put into the listeners and distributions that wait for it.

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{Op, Outcome};
use converge_core::acm::{CertificateStatus, ObservedCertificate, ValidationMark};
use converge_core::desired::Tags;
use converge_core::ids::ResourceName;
use converge_core::plan::{Ref, Step, StepId};
use converge_core::route53::{ChangeAction, RecordChange, RecordType};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Carries out one ACM step.
pub(super) async fn run_acm_step(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    match step {
        Step::RequestCertificate {
            region,
            domains,
            token,
            tags,
            ..
        } => request_certificate(ctx, region, domains, token, tags).await,
        Step::ValidateCertificate {
            stack,
            name,
            region,
            arn,
            zone,
            domain,
        } => validate_certificate(ctx, id, (stack, name), region, (arn, zone), domain).await,
        Step::DeleteCertificate { region, arn, .. } => delete_certificate(ctx, region, arn).await,
        Step::DeleteValidationRecords { zone, changes, .. } => {
            delete_validation_records(ctx, id, zone, changes).await
        }
        _ => Err(StepError::Unexpected(format!(
            "not an ACM step: {}",
            step.describe()
        ))),
    }
}

/// Requests a certificate validated by DNS and hands on its ARN.
async fn request_certificate(
    ctx: &Ctx,
    region: &str,
    domains: &[String],
    token: &str,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::RequestCertificate {
        region: region.to_owned(),
        domains: domains.to_vec(),
        token: token.to_owned(),
        tags: tags.clone(),
    };
    match ctx.call(&op, false).await? {
        Outcome::Certificate(arn) => Ok(Output::Certificate(arn)),
        other => Err(answered("RequestCertificate", &other)),
    }
}

/// The ARN of a certificate, known or requested by an earlier step.
fn arn_of(ctx: &Ctx, r: &Ref<String>) -> Result<String, StepError> {
    match r {
        Ref::Known(a) => Ok(a.clone()),
        Ref::Created(s) => match ctx.output(*s)? {
            Output::Certificate(a) => Ok(a),
            _ => Err(StepError::Unexpected(format!(
                "step {s} requested no certificate"
            ))),
        },
    }
}

/// The certificate as ACM describes it now; gone is stale.
async fn describe(ctx: &Ctx, region: &str, arn: &str) -> Result<ObservedCertificate, StepError> {
    ctx.read(|| ctx.cloud.certificate(region, arn))
        .await?
        .ok_or_else(|| StepError::Stale(format!("certificate {arn} does not exist")))
}

/// Writes a certificate's validation records into its zone (each once,
/// with its mark; one that is there already with its value is left as
/// it is), then waits until ACM issues the certificate. A certificate
/// that failed or timed out fails the step, saying why.
async fn validate_certificate(
    ctx: &Ctx,
    step: StepId,
    (stack, name): (&ResourceName, &ResourceName),
    region: &str,
    (arn, zone): (&Ref<String>, &Ref<String>),
    domain: &str,
) -> Result<Output, StepError> {
    let arn = arn_of(ctx, arn)?;
    let zone = super::route53::zone_id(ctx, zone)?;
    // ACM names the validation records a few seconds after the request.
    let records = std::sync::Mutex::new(Vec::new());
    ctx.wait_until(
        step,
        &format!("ACM to name the validation records of {arn}"),
        || async {
            let c = describe(ctx, region, &arn).await?;
            let named = !c.validation.is_empty() && c.validation.len() >= c.domains.len();
            if named {
                *super::ctx::lock(&records) = c.validation;
            }
            Ok(named || c.status == CertificateStatus::Issued)
        },
    )
    .await?;
    let records = records.into_inner().unwrap_or_else(|e| e.into_inner());
    write_validation_records(ctx, step, (stack, name), &zone, domain, &records).await?;
    ctx.wait_until(step, &format!("certificate {arn} to be issued"), || async {
        let c = describe(ctx, region, &arn).await?;
        match c.status {
            CertificateStatus::Issued => Ok(true),
            CertificateStatus::PendingValidation => Ok(false),
            other => Err(StepError::Unexpected(format!(
                "certificate {arn} is {other}, not issued: ACM could not validate it (are its validation records in zone {domain}, and is the zone delegated?)"
            ))),
        }
    })
    .await?;
    Ok(Output::Certificate(arn))
}

/// UPSERTs the validation records a zone lacks, each with the mark that
/// names the stack and the certificate, in one batch, and waits until it
/// is in sync.
async fn write_validation_records(
    ctx: &Ctx,
    step: StepId,
    (stack, name): (&ResourceName, &ResourceName),
    zone: &str,
    domain: &str,
    records: &[converge_core::acm::ValidationRecord],
) -> Result<(), StepError> {
    let domains = [domain.to_owned()];
    let zones = ctx.read(|| ctx.cloud.dns_zones(stack, &domains)).await?;
    let observed = zones.iter().find(|z| z.id == zone);
    // One change per record name: `example.com` and `*.example.com`, or
    // two certificates of one domain, share their validation record.
    let mut wanted = BTreeMap::new();
    for r in records {
        wanted
            .entry(r.name.clone())
            .or_insert_with(|| r.record_set());
    }
    let mark = ValidationMark {
        stack: stack.clone(),
        certificate: name.clone(),
    };
    let mut changes = Vec::new();
    for (rname, set) in wanted {
        let held = observed.and_then(|z| z.record(&rname, RecordType::Cname));
        let ours = observed
            .and_then(|z| ValidationMark::of(z, &rname))
            .is_some_and(|m| m.stack == *stack);
        match held {
            // There as ACM asks (ours, another certificate's, or written
            // by hand): ACM reads it as it is.
            Some(h) if h.values == set.values => continue,
            // Someone else's record of that name: never overwritten.
            Some(h) if !ours => {
                return Err(StepError::Unexpected(format!(
                    "Certificate/{name}: the validation record {rname} exists in zone {domain} with another value ({}) and is not converge's; remove it, or set it to {}",
                    h.values.join(", "),
                    set.values.join(", ")
                )));
            }
            _ => {}
        }
        changes.push(RecordChange {
            action: ChangeAction::Upsert,
            set: set.clone(),
        });
        changes.push(RecordChange {
            action: ChangeAction::Upsert,
            set: mark.record_set(&rname),
        });
    }
    if changes.is_empty() {
        return Ok(());
    }
    super::route53::send_and_wait(ctx, step, zone, changes).await
}

/// Deletes a certificate (ACM refuses while a listener or distribution
/// uses it: ResourceInUseException).
async fn delete_certificate(ctx: &Ctx, region: &str, arn: &str) -> Result<Output, StepError> {
    let op = Op::DeleteCertificate {
        region: region.to_owned(),
        arn: arn.to_owned(),
    };
    ctx.perform(&op, false).await
}

/// Deletes validation records and their marks, exactly as observed.
async fn delete_validation_records(
    ctx: &Ctx,
    step: StepId,
    zone: &str,
    changes: &[RecordChange],
) -> Result<Output, StepError> {
    super::route53::send_and_wait(ctx, step, zone, changes.to_vec()).await?;
    Ok(Output::None)
}

/// The step with the ARNs of the certificates requested earlier in the
/// plan put into its listeners or viewer certificate; other steps as
/// they are.
pub(super) fn with_certificates<'s>(ctx: &Ctx, step: &'s Step) -> Result<Cow<'s, Step>, StepError> {
    let arn = |s: &StepId| arn_of(ctx, &Ref::Created(*s));
    match step {
        Step::CreateBalancer { certificates, .. } | Step::SetListeners { certificates, .. }
            if !certificates.is_empty() =>
        {
            let mut owned = step.clone();
            let arns: BTreeMap<u16, String> = certificates
                .iter()
                .map(|(p, s)| Ok((*p, arn(s)?)))
                .collect::<Result<_, StepError>>()?;
            let lists = match &mut owned {
                Step::CreateBalancer { listeners, .. } => vec![listeners],
                Step::SetListeners { add, modify, .. } => vec![add, modify],
                _ => Vec::new(),
            };
            for l in lists.into_iter().flatten() {
                if let Some(a) = arns.get(&l.port) {
                    l.certificate = Some(a.clone());
                }
            }
            Ok(Cow::Owned(owned))
        }
        Step::CreateDistribution {
            certificate: Some(s),
            ..
        }
        | Step::UpdateDistribution {
            certificate: Some(s),
            ..
        } => {
            let a = arn(s)?;
            let mut owned = step.clone();
            if let Step::CreateDistribution { config, .. } | Step::UpdateDistribution { config, .. } =
                &mut owned
                && let Some(v) = &mut config.viewer_certificate
            {
                v.arn = a;
            }
            Ok(Cow::Owned(owned))
        }
        _ => Ok(Cow::Borrowed(step)),
    }
}
