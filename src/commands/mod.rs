//! What the CLI's commands share: observing and planning a stack, and the
//! stack's outputs (addresses and names people need after an apply).

pub mod planfile;

use crate::apply::RetryPolicy;
use crate::cloud::{Cloud, CloudError};
use converge_core::Refused;
use converge_core::desired::{Desired, Network, NetworkVpc};
use converge_core::ids::{Kind, ResourceName, SubnetId};
use converge_core::observed::Observed;
use converge_core::plan::{Plan, PlanError, PlanInput};
use jiff::Timestamp;
use std::collections::BTreeMap;

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
    let mut observed = policy
        .run("observe", false, || cloud.observe(&desired.stack))
        .await?;
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
    Ok(observed)
}

/// Observes the stack (with retries) and plans it for `at`.
pub async fn observe_and_plan(
    cloud: &dyn Cloud,
    desired: &Desired,
    at: Timestamp,
    scale: &BTreeMap<ResourceName, u32>,
) -> Result<(Observed, Plan), PlanningError> {
    let observed = observe(cloud, desired)
        .await
        .map_err(|source| PlanningError::Observe {
            stack: desired.stack.clone(),
            source,
        })?;
    let input = PlanInput {
        scale,
        ..PlanInput::new(desired, &observed, at)
    };
    let plan = converge_core::checked(converge_core::plan(&input)?, &input)?;
    Ok((observed, plan))
}

/// The stack's outputs, as `(name, value)` pairs sorted by name:
/// `Balancer/web.dnsName`, `Cdn/assets.domainName`,
/// `Fleet/app.privateIps`, `Fleet/db.privateIp`, `Volume/pgdata.id`.
pub fn outputs(desired: &Desired, observed: &Observed) -> Vec<(String, String)> {
    let mut out = BTreeMap::new();
    for b in &observed.balancers {
        if desired.balancers.contains_key(&b.owner.name) {
            out.insert(
                format!("Balancer/{}.dnsName", b.owner.name),
                b.dns_name.clone(),
            );
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
