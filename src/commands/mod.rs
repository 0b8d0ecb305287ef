//! What the CLI's commands share: observing and planning a stack, and the
//! stack's outputs (addresses and names people need after an apply).

pub mod planfile;

use crate::apply::RetryPolicy;
use crate::cloud::{Cloud, CloudError};
use converge_core::Refused;
use converge_core::desired::{Desired, ImageSource, Network, NetworkVpc};
use converge_core::ids::{ImageId, Kind, ParameterName, ResourceKey, ResourceName, SubnetId};
use converge_core::observed::Observed;
use converge_core::plan::{Plan, PlanError, PlanInput};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    /// Observing the cloud failed.
    #[error("observing stack {stack}: {source}")]
    Observe {
        /// The stack.
        stack: ResourceName,
        /// Why.
        source: CloudError,
    },
    /// The planner refused.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The plan breaks an invariant: it is not carried out.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A `--target` names nothing of the stack.
    #[error("--target {0}: the stack has no such resource, in the manifests or in the cloud")]
    UnknownTarget(ResourceKey),
}

/// Observes the stack, retrying what the cloud throttles with the default
/// [`RetryPolicy`] (backoff with jitter, bounded in time).
pub async fn observe(cloud: &dyn Cloud, desired: &Desired) -> Result<Observed, CloudError> {
    observe_with(cloud, desired, &RetryPolicy::default()).await
}

/// Observes the stack, retrying transient errors under `policy`: what
/// carries its tags, and the subnets of an existing VPC its Network names
/// (one more call, by ID, as they carry no tags of converge's).
pub async fn observe_with(
    cloud: &dyn Cloud,
    desired: &Desired,
    policy: &RetryPolicy,
) -> Result<Observed, CloudError> {
    let mut observed = cloud.observe_retrying(&desired.stack, policy).await?;
    if let Some(Network {
        vpc: NetworkVpc::Existing { subnets, .. },
        ..
    }) = &desired.network
    {
        let ids: Vec<SubnetId> = subnets.values().cloned().collect();
        let found = policy.run("observe", false, || cloud.subnets(&ids)).await?;
        for s in found {
            if !observed.subnets.iter().any(|o| o.id == s.id) {
                observed.subnets.push(s);
            }
        }
    }
    // A bucket's declared content is compared with its objects under the
    // prefix: ListObjectsV2 pages, for the buckets that declare content.
    for (name, spec) in &desired.buckets {
        let Some(content) = &spec.content else {
            continue;
        };
        let Some(b) = observed
            .buckets
            .iter_mut()
            .find(|b| b.name.as_str() == name.as_str())
        else {
            continue;
        };
        let bucket = b.name.clone();
        let objects = policy
            .run("observe", false, || {
                cloud.bucket_objects(&bucket, &content.prefix)
            })
            .await?;
        b.objects = Some(objects);
    }
    if let Some(domains) = dns_domains(desired) {
        observed.dns_zones = policy
            .run("observe", false, || {
                cloud.dns_zones(&desired.stack, &domains)
            })
            .await?;
    }
    Ok(observed)
}

/// The domains of the existing hosted zones the stack's records name, when
/// Route 53 is to be observed: the stack declares DNS, or it is being
/// destroyed (nothing is declared). A stack that declares no DNS costs no
/// Route 53 call.
fn dns_domains(desired: &Desired) -> Option<Vec<String>> {
    use converge_core::route53::ZoneRef;
    let destroying = desired.fleets.is_empty()
        && desired.volumes.is_empty()
        && desired.balancers.is_empty()
        && desired.buckets.is_empty()
        && desired.cdns.is_empty()
        && desired.security_groups.is_empty()
        && desired.key_pairs.is_empty()
        && desired.certificates.is_empty()
        && desired.network.is_none();
    if destroying {
        return Some(vec![converge_core::route53::ALL_ZONES.to_owned()]);
    }
    if desired.dns_zones.is_empty()
        && desired.dns_records.is_empty()
        && desired.certificates.is_empty()
    {
        return None;
    }
    // The zones of records and of certificates' validation records.
    let domains: BTreeSet<String> = desired
        .dns_records
        .values()
        .map(|r| &r.zone)
        .chain(desired.certificates.values().map(|c| &c.zone))
        .filter_map(|z| match z {
            ZoneRef::Existing(d) => Some(d.clone()),
            ZoneRef::Stack(_) => None,
        })
        .collect();
    Some(domains.into_iter().collect())
}

/// Observes the stack and what planning its fleets needs besides it
/// ([`read_launch_inputs`]), retrying transient errors under `policy`.
pub async fn observe_for(
    cloud: &dyn Cloud,
    desired: &Desired,
    policy: &RetryPolicy,
) -> Result<Observed, CloudError> {
    let mut observed = observe_with(cloud, desired, policy).await?;
    read_launch_inputs(cloud, desired, &mut observed, policy).await?;
    Ok(observed)
}

/// Reads into `observed` what the planner needs to launch the stack's
/// fleets and that no tag finds: the values of the SSM parameters fleets
/// take their image from (one GetParameters per ten names, for all
/// fleets), then the root devices of the images fleets with a
/// `rootVolume` launch (one DescribeImages). Neither call is made when no
/// fleet needs it.
pub async fn read_launch_inputs(
    cloud: &dyn Cloud,
    desired: &Desired,
    observed: &mut Observed,
    policy: &RetryPolicy,
) -> Result<(), CloudError> {
    let names: Vec<ParameterName> = desired
        .fleets
        .values()
        .filter_map(|f| match &f.image {
            ImageSource::Parameter(p) => Some(p.clone()),
            ImageSource::Id(_) => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !names.is_empty() {
        observed.parameters = policy
            .run("GetParameters", false, || cloud.parameters(&names))
            .await?;
    }
    let images: Vec<ImageId> = desired
        .fleets
        .values()
        .filter(|f| f.root_volume.is_some())
        .filter_map(|f| match &f.image {
            ImageSource::Id(id) => Some(id.clone()),
            // A value that is no image ID is the planner's to refuse.
            ImageSource::Parameter(p) => observed.parameters.get(p)?.parse().ok(),
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !images.is_empty() {
        observed.images = policy
            .run("DescribeImages", false, || cloud.images(&images))
            .await?;
    }
    Ok(())
}

/// Observes the stack (with retries) and plans it for `at`.
pub async fn observe_and_plan(
    cloud: &dyn Cloud,
    desired: &Desired,
    at: Timestamp,
    scale: &BTreeMap<ResourceName, u32>,
) -> Result<(Observed, Plan), PlanningError> {
    observe_and_plan_requested(cloud, desired, at, scale, &PlanRequest::default()).await
}

/// What the command line asks of a plan beyond the manifests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanRequest {
    /// Fleets whose instances all roll although nothing changed
    /// (`--replace Fleet/NAME`).
    pub replace_fleets: BTreeSet<ResourceName>,
    /// Resources the plan is narrowed to, with what they depend on
    /// (`--target Kind/NAME`); empty: the whole stack.
    pub targets: BTreeSet<ResourceKey>,
}

/// [`observe_and_plan`] with a [`PlanRequest`]: the fleets to replace,
/// and the targets the plan is narrowed to before it is checked.
pub async fn observe_and_plan_requested(
    cloud: &dyn Cloud,
    desired: &Desired,
    at: Timestamp,
    scale: &BTreeMap<ResourceName, u32>,
    request: &PlanRequest,
) -> Result<(Observed, Plan), PlanningError> {
    let observed = observe_for(cloud, desired, &RetryPolicy::default())
        .await
        .map_err(|source| PlanningError::Observe {
            stack: desired.stack.clone(),
            source,
        })?;
    let input = PlanInput {
        scale,
        replace_fleets: &request.replace_fleets,
        ..PlanInput::new(desired, &observed, at)
    };
    let whole = converge_core::plan(&input)?;
    // Every resource of the stack, declared or found, has a change entry
    // (unchanged ones too).
    if let Some(t) = request
        .targets
        .iter()
        .find(|t| !whole.changes.iter().any(|c| c.key == **t))
    {
        return Err(PlanningError::UnknownTarget(t.clone()));
    }
    let plan = converge_core::plan::targeted(whole, &request.targets);
    let plan = converge_core::checked(plan, &input)?;
    Ok((observed, plan))
}

/// The stack's outputs, as `(name, value)` pairs sorted by name:
/// `Balancer/web.dnsName`, `Balancer/web.zoneId`, `Cdn/assets.domainName`,
/// `Fleet/app.privateIps`, `Fleet/db.privateIp`, `Volume/pgdata.id`.
pub fn outputs(desired: &Desired, observed: &Observed) -> Vec<(String, String)> {
    let mut out = BTreeMap::new();
    // While a balancer is replaced, the one of the declared type and scheme
    // is the balancer.
    for b in &observed.balancers {
        if let Some(spec) = desired.balancers.get(&b.owner.name) {
            let current = b.kind == spec.kind && b.scheme == spec.scheme;
            let key = format!("Balancer/{}.dnsName", b.owner.name);
            if current || !out.contains_key(&key) {
                out.insert(key, b.dns_name.clone());
                out.insert(
                    format!("Balancer/{}.zoneId", b.owner.name),
                    b.zone_id.clone(),
                );
            }
        }
    }
    for d in &observed.distributions {
        if desired.cdns.contains_key(&d.owner.name) {
            out.insert(
                format!("Cdn/{}.domainName", d.owner.name),
                d.domain_name.clone(),
            );
        }
    }
    for (name, fleet) in &desired.fleets {
        let mut ips: Vec<_> = observed
            .instances
            .iter()
            .filter(|i| i.owner.kind == Kind::Fleet && i.owner.name == *name && i.state.is_live())
            .filter_map(|i| i.private_ip)
            .collect();
        ips.sort();
        let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        let ips = if ips.is_empty() {
            vec!["(none)".to_owned()]
        } else {
            ips
        };
        let single = fleet.replicas == 1 && fleet.schedule.is_none() && fleet.autoscale.is_none();
        if single {
            out.insert(format!("Fleet/{name}.privateIp"), ips.join(","));
        } else {
            out.insert(format!("Fleet/{name}.privateIps"), ips.join(","));
        }
    }
    for z in &observed.dns_zones {
        if let Some(o) = &z.owner
            && o.kind == Kind::DnsZone
            && o.stack == desired.stack
            && desired.dns_zones.contains_key(&o.name)
        {
            out.insert(
                format!("DnsZone/{}.nameServers", o.name),
                z.name_servers.join(","),
            );
        }
    }
    for v in &observed.volumes {
        if desired
            .volumes
            .get(&v.owner.name)
            .is_some_and(|d| d.zone == v.zone)
        {
            out.insert(format!("Volume/{}.id", v.owner.name), v.id.to_string());
        }
    }
    out.into_iter().collect()
}
