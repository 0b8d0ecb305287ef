//! What every step handler works with: the cloud, the options, where
//! progress goes and the outputs of the steps done so far. [`Ctx`] turns
//! the plan's references to earlier steps (a group created, instances
//! launched, a volume created) into cloud IDs, retries cloud calls and
//! reads, and polls waits until they are done or time out.
//!
//! Every step runs in a [`StepScope`]: the instances its handler aimed it
//! at (resolved with [`Ctx::instances`], or named with [`Ctx::watch`]) and
//! its deadline. The generic machinery uses it so that no handler has to:
//! a wait ([`Ctx::wait_until`] and the waits built on it) fails at its
//! next poll as [`StepError::Stale`] once one of those instances is
//! terminated, shutting down, stopped or gone; a call's retries of "not
//! visible yet" or "not in the right state yet" stop as stale the same
//! way; and waits and retries give up at the step's deadline, or at once
//! when the run is stopping ([`StepError::Stopped`]). A call in flight is
//! never cut short.

use super::{ApplyOptions, Progress, StepError};
use crate::cloud::retry::sleep_unless;
use crate::cloud::{Cloud, CloudError, ErrorKind, Launched, Op, Outcome};
use converge_core::desired::Attr;
use converge_core::ids::{
    DistributionId, GatewayId, GroupId, InstanceId, RouteTableId, SubnetId, VolumeId, VpcId,
};
use converge_core::observed::{InstanceState, ObservedInstance, VolumeState};
use converge_core::plan::{
    GatewayRef, GroupRef, InstanceRef, Ref, RouteTableRef, StepId, SubnetRef, UserDataPart,
    VolumeRef, VpcRef,
};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    /// The step the current task runs.
    static STEP: StepScope;
}

/// What the generic wait and retry machinery knows of the step running in
/// a task (see the module's documentation).
#[derive(Debug, Default)]
pub(super) struct StepScope {
    /// The instances the step aims at.
    watched: Mutex<Vec<InstanceId>>,
    /// When its waits and retries give up (`None`: each wait has the wait
    /// timeout, each call its retry window).
    deadline: Option<Instant>,
}

impl StepScope {
    /// A scope whose waits and retries give up `bound` from now.
    pub(super) fn new(bound: Option<Duration>) -> Self {
        Self {
            watched: Mutex::new(Vec::new()),
            deadline: bound.map(|b| Instant::now() + b),
        }
    }

    /// Runs `f` as the step of this scope.
    pub(super) async fn run<F: std::future::Future>(self, f: F) -> F::Output {
        STEP.scope(self, f).await
    }
}

/// The current step's deadline, if it has one.
fn deadline() -> Option<Instant> {
    STEP.try_with(|s| s.deadline).ok().flatten()
}

/// The instances the current step aims at.
fn watched() -> Vec<InstanceId> {
    STEP.try_with(|s| lock(&s.watched).clone())
        .unwrap_or_default()
}

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
    /// The instances a launch step started, as RunInstances answered
    /// (pending): what the step publishes early ([`Ctx::publish_early`])
    /// for the launches that only need their addresses.
    Launched(Vec<Launched>),
    /// The volume it created.
    Volume(VolumeId),
    /// The balancer it created.
    Balancer {
        /// Its DNS name.
        dns_name: String,
        /// The hosted zone of its DNS name.
        zone_id: String,
    },
    /// The distribution it created.
    Distribution {
        /// Its ID.
        id: DistributionId,
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
    /// The certificate it requested (or validated): its ARN.
    Certificate(String),
}

/// The context a step runs in, shared by all steps of one apply.
pub(super) struct Ctx {
    /// The cloud the plan is carried out on.
    pub(super) cloud: Arc<dyn Cloud>,
    /// How the plan is carried out.
    pub(super) opts: ApplyOptions,
    /// Where progress goes.
    pub(super) progress: Arc<dyn Progress>,
    /// The outputs of the steps done so far (and those published early).
    pub(super) outputs: Mutex<BTreeMap<StepId, Output>>,
    /// Where a step says it published an output early: the executor then
    /// starts the steps that only need that output.
    pub(super) early: tokio::sync::mpsc::UnboundedSender<StepId>,
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
    /// Publishes `out` as `step`'s output before the step is done, and
    /// tells the executor, which starts the steps that need only that
    /// (see `early_dependents` in the executor). The step's final output
    /// replaces it when it is done.
    pub(super) fn publish_early(&self, step: StepId, out: Output) {
        lock(&self.outputs).insert(step, out);
        // The executor holds the receiver for as long as steps run.
        let _ = self.early.send(step);
    }

    /// The output of an earlier step.
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

    /// The ID of a distribution, known or created by an earlier step.
    pub(super) fn distribution(
        &self,
        r: &Ref<DistributionId>,
    ) -> Result<DistributionId, StepError> {
        self.net(r, "distribution", |o| match o {
            Output::Distribution { id, .. } => Some(id),
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
        self.watch(&out);
        Ok(out)
    }

    /// Names instances the current step aims at, so that its waits and
    /// retries fail fast as stale once one of them is gone.
    /// [`Ctx::instances`] does it for the instances it resolves.
    pub(super) fn watch(&self, ids: &[InstanceId]) {
        let _ = STEP.try_with(|s| {
            let mut w = lock(&s.watched);
            for id in ids {
                if !w.contains(id) {
                    w.push(id.clone());
                }
            }
        });
    }

    /// Why the current step's target is gone, if one is: an instance it
    /// aims at is terminated, shutting down, stopped, or no longer listed.
    /// One DescribeInstances, only for a step that aims at instances; a
    /// read that fails says nothing (the wait goes on).
    pub(super) async fn gone(&self) -> Option<String> {
        let ids = watched();
        if ids.is_empty() {
            return None;
        }
        let seen = self.cloud.instances(&ids).await.ok()?;
        for id in &ids {
            match seen.iter().find(|i| i.id == *id) {
                None => return Some(format!("instance {id} is gone")),
                Some(i) if !i.state.is_live() => {
                    return Some(format!("instance {id} is {}", i.state.as_str()));
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Whether waits and retries must give up now: the run is stopping or
    /// the step's deadline passed.
    fn halted(&self) -> bool {
        self.stopping() || deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Now by the cloud's clock, in whole seconds.
    pub(super) async fn cloud_now(&self) -> Result<jiff::Timestamp, StepError> {
        Ok(crate::cloud::cloud_now(self.cloud.as_ref(), self.opts.clock.as_ref()).await?)
    }

    /// Whether the run is stopping.
    fn stopping(&self) -> bool {
        self.opts.stop.load(Ordering::SeqCst)
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
                    (Output::Balancer { dns_name, .. }, Attr::DnsName) => s.push_str(&dns_name),
                    (Output::Balancer { zone_id, .. }, Attr::ZoneId) => s.push_str(&zone_id),
                    (Output::Distribution { domain_name, .. }, Attr::DomainName) => {
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
                        match self.output(*l)? {
                            Output::Instances(is) => {
                                ips.extend(is.iter().filter_map(|i| i.private_ip))
                            }
                            Output::Launched(is) => {
                                ips.extend(is.iter().filter_map(|i| i.private_ip))
                            }
                            _ => {}
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
    /// Such an answer, or "not in the right state yet", is taken as stale
    /// at once when the step's target is gone ([`Ctx::gone`]).
    pub(super) async fn call(&self, op: &Op, lagging: bool) -> Result<Outcome, CloudError> {
        let halted = || self.halted();
        self.opts
            .retry
            .run_until(op.name(), lagging, &halted, || async {
                match self.cloud.act(op).await {
                    // Deleting what is gone already is done.
                    Err(e) if e.kind == ErrorKind::NotFound && op.is_delete() => Ok(Outcome::Done),
                    Err(e)
                        if (e.kind == ErrorKind::NotFound && lagging)
                            || e.kind == ErrorKind::InvalidState =>
                    {
                        match self.gone().await {
                            Some(why) => Err(CloudError {
                                kind: ErrorKind::Stale,
                                message: format!("{} ({why})", e.message),
                                ..e
                            }),
                            None => Err(e),
                        }
                    }
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
        let halted = || self.halted();
        self.opts.retry.run_until("read", true, &halted, f).await
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
            self.pause(self.opts.poll_interval).await?;
        }
    }

    /// Sleeps between polls; [`StepError::Stopped`] at once when the run
    /// is stopping. Ends early at the step's deadline (the caller's next
    /// look at the time says so).
    async fn pause(&self, d: Duration) -> Result<(), StepError> {
        let d = match deadline() {
            Some(end) => d.min(end.saturating_duration_since(Instant::now())),
            None => d,
        };
        if sleep_unless(d, &|| self.stopping()).await {
            Ok(())
        } else {
            Err(StepError::Stopped)
        }
    }

    /// Polls `check` until it says done, reporting progress. Gives up as
    /// [`StepError::Stale`] when the step's target is gone ([`Ctx::gone`],
    /// looked at after each poll that is not done yet), as a timeout after
    /// the wait timeout or at the step's deadline, and as
    /// [`StepError::Stopped`] at once when the run is stopping.
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
            if self.stopping() {
                return Err(StepError::Stopped);
            }
            if check().await? {
                return Ok(());
            }
            if let Some(why) = self.gone().await {
                return Err(StepError::Stale(format!("waiting for {what}: {why}")));
            }
            let elapsed = start.elapsed();
            let past_deadline = deadline().is_some_and(|d| Instant::now() >= d);
            if elapsed >= self.opts.wait_timeout || past_deadline {
                return Err(StepError::Timeout {
                    what: what.to_owned(),
                    secs: elapsed.as_secs(),
                });
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                self.progress.waiting(step, what, elapsed);
                last_report = Instant::now();
            }
            self.pause(self.opts.poll_interval).await?;
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
                        return Err(StepError::Stale(format!(
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
        let start = Instant::now();
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
                    None if gone_ok => Ok(true),
                    // Not listed: not visible yet, within the window in
                    // which describes lag behind creates; gone after it.
                    None if start.elapsed() < self.opts.retry.visibility => Ok(false),
                    None => Err(StepError::Stale(format!("volume {id} is gone"))),
                }
            },
        )
        .await
    }
}
