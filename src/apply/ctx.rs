//! What every step handler works with: the cloud, the options, where
//! progress goes and the outputs of the steps done so far. [`Ctx`] turns
//! the plan's references to earlier steps (a group created, instances
//! launched, a volume created) into cloud IDs, retries cloud calls and
//! reads, and polls waits until they are done or time out.

use super::{ApplyOptions, Progress, StepError};
use crate::cloud::{Cloud, CloudError, ErrorKind, Op, Outcome};
use converge_core::desired::Attr;
use converge_core::ids::{GatewayId, GroupId, InstanceId, RouteTableId, SubnetId, VolumeId, VpcId};
use converge_core::observed::{InstanceState, ObservedInstance, VolumeState};
use converge_core::plan::{
    GatewayRef, GroupRef, InstanceRef, Ref, RouteTableRef, StepId, SubnetRef, UserDataPart,
    VolumeRef, VpcRef,
};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a finished step hands to the steps after it.
#[derive(Clone, Debug)]
pub(super) enum Output {
    /// Nothing later steps need.
    None,
    /// The VPC it created.
    Vpc(VpcId),
    /// The subnet it created.
    Subnet(SubnetId),
    /// The internet gateway it created.
    Gateway(GatewayId),
    /// The route table it created.
    RouteTable(RouteTableId),
    /// The security group it created.
    Group(GroupId),
    /// The instances it launched, running.
    Instances(Vec<ObservedInstance>),
    /// The volume it created.
    Volume(VolumeId),
    /// The DNS name of the balancer it created.
    Balancer(String),
    /// The distribution it created.
    Distribution {
        /// Its domain name.
        domain_name: String,
    },
    /// The hosted zone it created.
    Zone {
        /// Its ID.
        id: String,
        /// Its name servers.
        name_servers: Vec<String>,
    },
}

/// The context a step runs in, shared by all steps of one apply.
pub(super) struct Ctx {
    /// The cloud the plan is carried out on.
    pub(super) cloud: Arc<dyn Cloud>,
    /// How the plan is carried out.
    pub(super) opts: ApplyOptions,
    /// Where progress goes.
    pub(super) progress: Arc<dyn Progress>,
    /// The outputs of the steps done so far.
    pub(super) outputs: Mutex<BTreeMap<StepId, Output>>,
}

/// Locks a mutex; a poisoned one is used as it is (a step task that
/// panicked is reported by the graph walk, it does not stop the apply).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error for a cloud call that answered with the wrong kind of
/// outcome (`RunInstances answered Done`).
pub(super) fn answered(call: &str, other: &Outcome) -> StepError {
    StepError::Unexpected(format!("{call} answered {other:?}"))
}

impl Ctx {
    /// The output of a finished step.
    pub(super) fn output(&self, step: StepId) -> Result<Output, StepError> {
        lock(&self.outputs)
            .get(&step)
            .cloned()
            .ok_or_else(|| StepError::Unexpected(format!("step {step} has no output")))
    }

    /// The ID of a group, known or created by an earlier step.
    pub(super) fn group(&self, g: &GroupRef) -> Result<GroupId, StepError> {
        match g {
            GroupRef::Known(id) => Ok(id.clone()),
            GroupRef::Created(s) => match self.output(*s)? {
                Output::Group(id) => Ok(id),
                _ => Err(StepError::Unexpected(format!("step {s} created no group"))),
            },
        }
    }

    /// The ID of a VPC, known or created by an earlier step.
    pub(super) fn vpc(&self, r: &VpcRef) -> Result<VpcId, StepError> {
        self.net(r, "VPC", |o| match o {
            Output::Vpc(v) => Some(v),
            _ => None,
        })
    }

    /// The ID of a subnet, known or created by an earlier step.
    pub(super) fn subnet(&self, r: &SubnetRef) -> Result<SubnetId, StepError> {
        self.net(r, "subnet", |o| match o {
            Output::Subnet(v) => Some(v),
            _ => None,
        })
    }

    /// The ID of a gateway, known or created by an earlier step.
    pub(super) fn gateway(&self, r: &GatewayRef) -> Result<GatewayId, StepError> {
        self.net(r, "internet gateway", |o| match o {
            Output::Gateway(v) => Some(v),
            _ => None,
        })
    }

    /// The ID of a route table, known or created by an earlier step.
    pub(super) fn route_table(&self, r: &RouteTableRef) -> Result<RouteTableId, StepError> {
        self.net(r, "route table", |o| match o {
            Output::RouteTable(v) => Some(v),
            _ => None,
        })
    }

    fn net<T: Clone>(
        &self,
        r: &Ref<T>,
        what: &str,
        pick: fn(Output) -> Option<T>,
    ) -> Result<T, StepError> {
        match r {
            Ref::Known(id) => Ok(id.clone()),
            Ref::Created(s) => pick(self.output(*s)?)
                .ok_or_else(|| StepError::Unexpected(format!("step {s} created no {what}"))),
        }
    }

    /// The IDs of groups, each known or created by an earlier step.
    pub(super) fn groups(&self, refs: &[GroupRef]) -> Result<Vec<GroupId>, StepError> {
        refs.iter().map(|g| self.group(g)).collect()
    }

    /// The IDs of instances, known or launched by earlier steps.
    pub(super) fn instances(&self, refs: &[InstanceRef]) -> Result<Vec<InstanceId>, StepError> {
        let mut out = Vec::new();
        for r in refs {
            match r {
                InstanceRef::Known(id) => out.push(id.clone()),
                InstanceRef::Launched(s) => match self.output(*s)? {
                    Output::Instances(is) => out.extend(is.into_iter().map(|i| i.id)),
                    _ => return Err(StepError::Unexpected(format!("step {s} launched nothing"))),
                },
            }
        }
        Ok(out)
    }

    /// The ID of a volume, known or created by an earlier step.
    pub(super) fn volume(&self, v: &VolumeRef) -> Result<VolumeId, StepError> {
        match v {
            VolumeRef::Known(id) => Ok(id.clone()),
            VolumeRef::Created(s) => match self.output(*s)? {
                Output::Volume(id) => Ok(id),
                _ => Err(StepError::Unexpected(format!("step {s} created no volume"))),
            },
        }
    }

    /// Assembles user data from its parts, now that the steps it waits for
    /// are done.
    pub(super) fn user_data(&self, parts: &[UserDataPart]) -> Result<String, StepError> {
        let mut s = String::new();
        for p in parts {
            match p {
                UserDataPart::Text(t) => s.push_str(t),
                UserDataPart::Secret(v) => s.push_str(v.expose()),
                UserDataPart::StepOutput { step, attr } => match (self.output(*step)?, attr) {
                    (Output::Balancer(dns), Attr::DnsName) => s.push_str(&dns),
                    (Output::Distribution { domain_name }, Attr::DomainName) => {
                        s.push_str(&domain_name)
                    }
                    (Output::Volume(id), Attr::Id) => s.push_str(id.as_str()),
                    (Output::Zone { name_servers, .. }, Attr::NameServers) => {
                        s.push_str(&name_servers.join(","))
                    }
                    _ => {
                        return Err(StepError::Unexpected(format!(
                            "step {step} has no {}",
                            attr.as_str()
                        )));
                    }
                },
                UserDataPart::FleetIps {
                    known,
                    launches,
                    single,
                } => {
                    let mut ips: Vec<Ipv4Addr> = known.clone();
                    for l in launches {
                        if let Output::Instances(is) = self.output(*l)? {
                            ips.extend(is.iter().filter_map(|i| i.private_ip));
                        }
                    }
                    ips.sort();
                    let text: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                    if *single {
                        s.push_str(text.first().map(String::as_str).unwrap_or(""));
                    } else {
                        s.push_str(&text.join(","));
                    }
                }
            }
        }
        Ok(s)
    }

    /// One cloud call with retries. `lagging` says "not found" may mean
    /// "not visible yet" (the call names something created moments ago).
    pub(super) async fn call(&self, op: &Op, lagging: bool) -> Result<Outcome, CloudError> {
        self.opts
            .retry
            .run(op.name(), lagging, || async {
                match self.cloud.act(op).await {
                    // Deleting what is gone already is done.
                    Err(e) if e.kind == ErrorKind::NotFound && op.is_delete() => Ok(Outcome::Done),
                    r => r,
                }
            })
            .await
    }

    /// One call whose outcome the steps after it do not need.
    pub(super) async fn perform(&self, op: &Op, lagging: bool) -> Result<Output, StepError> {
        self.call(op, lagging).await?;
        Ok(Output::None)
    }

    /// A read with the same retries as [`Ctx::call`].
    pub(super) async fn read<T, F, Fut>(&self, f: F) -> Result<T, CloudError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        self.opts.retry.run("read", true, f).await
    }

    /// Polls a lookup until it finds something or the visibility window ends.
    pub(super) async fn find_after<T, F, Fut>(&self, f: F) -> Result<Option<T>, StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, CloudError>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = self.read(&f).await? {
                return Ok(Some(v));
            }
            if start.elapsed() >= self.opts.retry.visibility {
                return Ok(None);
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    /// Polls `check` until it says done, reporting progress and giving up
    /// after the wait timeout.
    pub(super) async fn wait_until<F, Fut>(
        &self,
        step: StepId,
        what: &str,
        check: F,
    ) -> Result<(), StepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StepError>>,
    {
        let start = Instant::now();
        let mut last_report = Instant::now();
        loop {
            if check().await? {
                return Ok(());
            }
            let elapsed = start.elapsed();
            if elapsed >= self.opts.wait_timeout {
                return Err(StepError::Timeout {
                    what: what.to_owned(),
                    secs: elapsed.as_secs(),
                });
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                self.progress.waiting(step, what, elapsed);
                last_report = Instant::now();
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    /// Waits until the instances run; fails if one ends before it ran.
    /// Returns them as last seen, sorted by ID.
    pub(super) async fn wait_running(
        &self,
        step: StepId,
        ids: &[InstanceId],
    ) -> Result<Vec<ObservedInstance>, StepError> {
        let found: Mutex<Vec<ObservedInstance>> = Mutex::new(Vec::new());
        self.wait_until(
            step,
            &format!("{} instance(s) to run", ids.len()),
            || async {
                let seen = self.read(|| self.cloud.instances(ids)).await?;
                for i in &seen {
                    if matches!(
                        i.state,
                        InstanceState::Terminated | InstanceState::ShuttingDown
                    ) {
                        return Err(StepError::Unexpected(format!(
                            "instance {} is {} before it ran",
                            i.id,
                            i.state.as_str()
                        )));
                    }
                }
                let all_running = seen.len() == ids.len()
                    && seen.iter().all(|i| i.state == InstanceState::Running);
                if all_running {
                    *lock(&found) = seen;
                }
                Ok(all_running)
            },
        )
        .await?;
        let mut v = found.into_inner().unwrap_or_else(|e| e.into_inner());
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    /// Waits until a volume is in state `want`; `gone_ok` says a volume
    /// the cloud no longer shows counts as done.
    pub(super) async fn wait_volume(
        &self,
        step: StepId,
        id: &VolumeId,
        want: VolumeState,
        gone_ok: bool,
    ) -> Result<(), StepError> {
        self.wait_until(
            step,
            &format!("volume {id} to be {}", want.as_str()),
            || async {
                let seen = self
                    .read(|| self.cloud.volumes(std::slice::from_ref(id)))
                    .await?;
                match seen.first() {
                    Some(v) if v.state == VolumeState::Error => Err(StepError::Unexpected(
                        format!("volume {id} is in state error"),
                    )),
                    Some(v) => Ok(v.state == want),
                    None => Ok(gone_ok),
                }
            },
        )
        .await
    }
}
