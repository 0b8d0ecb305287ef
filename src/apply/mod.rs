//! The executor: walks a plan's step graph against a cloud. Steps whose
//! dependencies are done run in parallel (bounded); each step is one
//! idempotent attempt at its action, retried on throttling and "not ready
//! yet", followed by the wait it needs (instances running, volume
//! attached, snapshot completed). A failing step skips only what depends
//! on it; the rest of the graph keeps going, and the report says what was
//! done, what failed and what was skipped.

pub mod retry;

use crate::cloud::{Cloud, CloudError, ErrorKind, Op, Outcome};
use converge_core::desired::Attr;
use converge_core::ids::{DistributionId, GroupId, InstanceId, ResourceName, VolumeId, tags};
use converge_core::observed::{
    CloudRule, CloudSource, DistributionStatus, InstanceState, MemberState, ObservedInstance,
    SnapshotState, VolumeState,
};
use converge_core::plan::{
    GroupRef, InstanceRef, Plan, SnapshotPurpose, Step, StepGraph, StepId, UserDataPart, VolumeRef,
    rule_ports,
};
use converge_core::spec_hash::launch_spec_hash;
pub use retry::RetryPolicy;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How a plan is carried out.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Steps running at once.
    pub parallelism: usize,
    /// Retries of cloud calls.
    pub retry: RetryPolicy,
    /// How long a wait (instance running, member healthy, …) may take.
    pub wait_timeout: Duration,
    /// How often waits poll.
    pub poll_interval: Duration,
    /// Set to stop starting new steps (on Ctrl-C); running steps finish.
    pub stop: Arc<AtomicBool>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            parallelism: 10,
            retry: RetryPolicy::default(),
            wait_timeout: Duration::from_secs(900),
            poll_interval: Duration::from_secs(2),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The cloud refused or failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A wait ran out of time.
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What it waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// The cloud reached a state the step cannot continue from.
    #[error("{0}")]
    Unexpected(String),
}

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// Done.
    Done,
    /// Failed with this error.
    Failed(StepError),
    /// Not started because a step it depends on failed (or the run was
    /// stopped).
    Skipped {
        /// The failed step, if any.
        because: Option<StepId>,
    },
}

/// The outcome of an apply: every step's result, in step order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Per step: its description and result.
    pub steps: BTreeMap<StepId, (String, StepResult)>,
}

impl Report {
    /// Steps done.
    pub fn done(&self) -> usize {
        self.count(|r| matches!(r, StepResult::Done))
    }

    /// Steps failed.
    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r, StepResult::Failed(_)))
    }

    /// Steps skipped.
    pub fn skipped(&self) -> usize {
        self.count(|r| matches!(r, StepResult::Skipped { .. }))
    }

    /// Whether every step was done.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped() == 0
    }

    fn count(&self, f: impl Fn(&StepResult) -> bool) -> usize {
        self.steps.values().filter(|(_, r)| f(r)).count()
    }
}

/// Where progress goes (the CLI prints it; tests collect or drop it).
pub trait Progress: Send + Sync {
    /// A step started.
    fn started(&self, _step: StepId, _what: &str) {}
    /// A step finished.
    fn done(&self, _step: StepId, _what: &str, _elapsed: Duration) {}
    /// A step failed.
    fn failed(&self, _step: StepId, _what: &str, _err: &StepError) {}
    /// A step is still waiting.
    fn waiting(&self, _step: StepId, _what: &str, _elapsed: Duration) {}
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {}

/// What a finished step hands to the steps after it.
#[derive(Clone, Debug)]
enum Output {
    None,
    Group(GroupId),
    Instances(Vec<ObservedInstance>),
    Volume(VolumeId),
    Balancer(String),
    Distribution { domain_name: String },
}

struct Ctx {
    cloud: Arc<dyn Cloud>,
    opts: ApplyOptions,
    progress: Arc<dyn Progress>,
    outputs: Mutex<BTreeMap<StepId, Output>>,
}

/// Carries out a plan. Never panics on cloud errors: they are reported per
/// step.
pub async fn execute(
    cloud: Arc<dyn Cloud>,
    plan: &Plan,
    opts: ApplyOptions,
    progress: Arc<dyn Progress>,
) -> Report {
    let graph = &plan.graph;
    let n = graph.len();
    let mut deps_left: Vec<usize> = (0..n).map(|i| graph.dependencies(i).len()).collect();
    let ctx = Arc::new(Ctx {
        cloud,
        opts: opts.clone(),
        progress,
        outputs: Mutex::new(BTreeMap::new()),
    });
    let mut report = Report::default();
    let mut ready: BTreeSet<StepId> = (0..n).filter(|i| deps_left[*i] == 0).collect();
    let mut running: JoinSet<(StepId, Result<Output, StepError>)> = JoinSet::new();
    let parallelism = opts.parallelism.max(1);
    loop {
        while running.len() < parallelism && !opts.stop.load(Ordering::SeqCst) {
            let Some(id) = ready.pop_first() else { break };
            let Some(step) = graph.step(id).cloned() else {
                continue;
            };
            let ctx = ctx.clone();
            ctx.progress.started(id, &step.describe());
            running.spawn(async move {
                let r = run_step(&ctx, id, &step).await;
                (id, r)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (id, result) = match joined {
            Ok(x) => x,
            // A step task panicked: a bug. Report it rather than abort.
            Err(e) => {
                tracing::error!("a step task failed: {e}");
                continue;
            }
        };
        let what = describe(graph, id);
        match result {
            Ok(out) => {
                lock(&ctx.outputs).insert(id, out);
                report.steps.insert(id, (what, StepResult::Done));
                for &d in graph.dependents(id) {
                    deps_left[d] -= 1;
                    if deps_left[d] == 0 {
                        ready.insert(d);
                    }
                }
            }
            Err(e) => {
                ctx.progress.failed(id, &what, &e);
                report.steps.insert(id, (what, StepResult::Failed(e)));
                // Everything downstream is skipped.
                for d in graph.with_dependents(|i, _| i == id) {
                    if report.steps.contains_key(&d) {
                        continue;
                    }
                    let skipped = StepResult::Skipped { because: Some(id) };
                    report.steps.insert(d, (describe(graph, d), skipped));
                    ready.remove(&d);
                }
            }
        }
    }
    for id in 0..n {
        report
            .steps
            .entry(id)
            .or_insert_with(|| (describe(graph, id), StepResult::Skipped { because: None }));
    }
    report
}

fn describe(graph: &StepGraph, id: StepId) -> String {
    graph.step(id).map(Step::describe).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    fn output(&self, step: StepId) -> Result<Output, StepError> {
        lock(&self.outputs)
            .get(&step)
            .cloned()
            .ok_or_else(|| StepError::Unexpected(format!("step {step} has no output")))
    }

    fn group(&self, g: &GroupRef) -> Result<GroupId, StepError> {
        match g {
            GroupRef::Known(id) => Ok(id.clone()),
            GroupRef::Created(s) => match self.output(*s)? {
                Output::Group(id) => Ok(id),
                _ => Err(StepError::Unexpected(format!("step {s} created no group"))),
            },
        }
    }

    fn instances(&self, refs: &[InstanceRef]) -> Result<Vec<InstanceId>, StepError> {
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

    fn volume(&self, v: &VolumeRef) -> Result<VolumeId, StepError> {
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
    fn user_data(&self, parts: &[UserDataPart]) -> Result<String, StepError> {
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
    async fn call(&self, op: &Op, lagging: bool) -> Result<Outcome, CloudError> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.cloud.act(op).await {
                Ok(o) => return Ok(o),
                Err(e) if e.kind == ErrorKind::NotFound && op.is_delete() => {
                    return Ok(Outcome::Done);
                }
                Err(e) if self.opts.retry.should_retry(&e, start.elapsed(), lagging) => {
                    tracing::debug!(operation = op.name(), code = %e.code, attempt, "retrying");
                    tokio::time::sleep(self.opts.retry.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A read with the same retries as [`Ctx::call`].
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, CloudError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if self.opts.retry.should_retry(&e, start.elapsed(), true) => {
                    tokio::time::sleep(self.opts.retry.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls `check` until it says done, reporting progress and giving up
    /// after the wait timeout.
    async fn wait_until<F, Fut>(&self, step: StepId, what: &str, check: F) -> Result<(), StepError>
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

    async fn wait_running(
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

    async fn wait_volume(
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

async fn run_step(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    let start = Instant::now();
    let out = run_step_inner(ctx, id, step).await?;
    ctx.progress.done(id, &step.describe(), start.elapsed());
    Ok(out)
}

async fn run_step_inner(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    match step {
        Step::CreateKeyPair {
            cloud_name,
            public_key,
            tags,
            ..
        } => {
            let op = Op::CreateKeyPair {
                name: cloud_name.clone(),
                public_key: public_key.clone(),
                tags: tags.clone(),
            };
            match ctx.call(&op, false).await {
                Ok(_) => Ok(Output::None),
                // A previous, interrupted apply imported it already.
                Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(Output::None),
                Err(e) => Err(e.into()),
            }
        }
        Step::DeleteKeyPair { cloud_name, .. } => {
            ctx.call(
                &Op::DeleteKeyPair {
                    name: cloud_name.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::CreateGroup {
            name,
            cloud_name,
            description,
            tags,
        } => {
            let op = Op::CreateGroup {
                name: cloud_name.clone(),
                description: description.clone(),
                tags: tags.clone(),
            };
            match ctx.call(&op, false).await {
                Ok(Outcome::Group(g)) => Ok(Output::Group(g)),
                Ok(other) => Err(StepError::Unexpected(format!(
                    "CreateSecurityGroup answered {other:?}"
                ))),
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    // Created by an interrupted apply: find it by its name.
                    let stack = tags.get(tags::STACK).cloned().unwrap_or_default();
                    let found = find_after(ctx, || async {
                        let o = ctx.cloud.observe(&stack.as_str().into()).await?;
                        Ok(o.security_groups
                            .into_iter()
                            .find(|g| g.cloud_name == *cloud_name)
                            .map(|g| g.id))
                    })
                    .await?;
                    found.map(Output::Group).ok_or_else(|| {
                        StepError::Unexpected(format!(
                            "SecurityGroup/{name}: {cloud_name} exists but is not this stack's"
                        ))
                    })
                }
                Err(e) => Err(e.into()),
            }
        }
        Step::AuthorizeIngress { group, rules, .. } => {
            let group = ctx.group(group)?;
            let mut cloud_rules = Vec::new();
            for r in rules {
                let source = match (&r.rule.source, &r.source_group) {
                    (_, Some(g)) => CloudSource::Group(ctx.group(g)?),
                    (converge_core::desired::Source::Cidr(c), None) => CloudSource::Cidr(c.clone()),
                    (converge_core::desired::Source::Group(g), None) => {
                        return Err(StepError::Unexpected(format!(
                            "rule source SecurityGroup/{g} was not resolved"
                        )));
                    }
                };
                cloud_rules.push(CloudRule {
                    protocol: r.rule.protocol,
                    ports: rule_ports(&r.rule),
                    source,
                });
            }
            match ctx
                .call(
                    &Op::AuthorizeIngress {
                        group,
                        rules: cloud_rules,
                    },
                    true,
                )
                .await
            {
                Ok(_) => Ok(Output::None),
                Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(Output::None),
                Err(e) => Err(e.into()),
            }
        }
        Step::RevokeIngress { group, rules, .. } => {
            ctx.call(
                &Op::RevokeIngress {
                    group: group.clone(),
                    rules: rules.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::DeleteGroup { group, .. } => {
            ctx.call(
                &Op::DeleteGroup {
                    group: group.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::SetTags {
            target,
            set,
            remove,
            ..
        } => {
            if !set.is_empty() {
                ctx.call(
                    &Op::CreateTags {
                        target: target.clone(),
                        tags: set.clone(),
                    },
                    true,
                )
                .await?;
            }
            if !remove.is_empty() {
                ctx.call(
                    &Op::DeleteTags {
                        target: target.clone(),
                        keys: remove.clone(),
                    },
                    true,
                )
                .await?;
            }
            Ok(Output::None)
        }
        Step::Launch {
            zone,
            count,
            spec,
            token,
            ..
        } => {
            let user_data = ctx.user_data(&spec.user_data)?;
            let groups = spec
                .groups
                .iter()
                .map(|g| ctx.group(g))
                .collect::<Result<Vec<_>, _>>()?;
            let mut tags = spec.tags.clone();
            tags.insert(
                tags::SPEC_HASH.to_owned(),
                launch_spec_hash(
                    spec.image.as_str(),
                    &spec.instance_type,
                    spec.key_name.as_deref(),
                    &user_data,
                ),
            );
            let op = Op::RunInstances {
                image: spec.image.to_string(),
                instance_type: spec.instance_type.clone(),
                key_name: spec.key_name.clone(),
                groups,
                user_data,
                zone: zone.clone(),
                count: *count,
                tags,
                client_token: token.clone(),
            };
            let ids = match ctx.call(&op, true).await? {
                Outcome::Instances(ids) => ids,
                other => {
                    return Err(StepError::Unexpected(format!(
                        "RunInstances answered {other:?}"
                    )));
                }
            };
            if ids.len() != *count as usize {
                return Err(StepError::Unexpected(format!(
                    "RunInstances started {} instance(s), {count} asked",
                    ids.len()
                )));
            }
            Ok(Output::Instances(ctx.wait_running(id, &ids).await?))
        }
        Step::SetInstanceGroups {
            instance, groups, ..
        } => {
            let groups = groups
                .iter()
                .map(|g| ctx.group(g))
                .collect::<Result<Vec<_>, _>>()?;
            ctx.call(
                &Op::SetInstanceGroups {
                    instance: instance.clone(),
                    groups,
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::WaitHealthy {
            instances,
            balancers,
            ..
        } => {
            let ids = ctx.instances(instances)?;
            for b in balancers {
                ctx.wait_until(
                    id,
                    &format!("instances to be InService on Balancer/{b}"),
                    || async {
                        let members = ctx.read(|| ctx.cloud.balancer_members(b)).await?;
                        Ok(ids.iter().all(|i| {
                            members
                                .iter()
                                .any(|m| m.instance == *i && m.state == MemberState::InService)
                        }))
                    },
                )
                .await?;
            }
            Ok(Output::None)
        }
        Step::Terminate { instances, .. } => {
            // AWS fails a whole TerminateInstances when one ID is unknown,
            // and the executor takes NotFound on a delete as done: so only
            // the IDs the cloud still shows are sent (one batched read).
            let visible: Vec<InstanceId> = ctx
                .read(|| ctx.cloud.instances(instances))
                .await?
                .into_iter()
                .filter(|i| i.state != InstanceState::Terminated)
                .map(|i| i.id)
                .collect();
            if !visible.is_empty() {
                ctx.call(&Op::TerminateInstances { ids: visible }, false)
                    .await?;
            }
            ctx.wait_until(id, "instances to terminate", || async {
                let seen = ctx.read(|| ctx.cloud.instances(instances)).await?;
                Ok(seen.iter().all(|i| i.state == InstanceState::Terminated))
            })
            .await?;
            Ok(Output::None)
        }
        Step::CreateVolume {
            zone,
            size_gib,
            volume_type,
            from_snapshot,
            tags,
            token,
            ..
        } => {
            let op = Op::CreateVolume {
                zone: zone.clone(),
                size_gib: *size_gib,
                volume_type: *volume_type,
                snapshot: from_snapshot.clone(),
                tags: tags.clone(),
                client_token: token.clone(),
            };
            let vol = match ctx.call(&op, false).await? {
                Outcome::Volume(v) => v,
                other => {
                    return Err(StepError::Unexpected(format!(
                        "CreateVolume answered {other:?}"
                    )));
                }
            };
            ctx.wait_volume(id, &vol, VolumeState::Available, false)
                .await?;
            Ok(Output::Volume(vol))
        }
        Step::ModifyVolume {
            volume,
            size_gib,
            volume_type,
            ..
        } => {
            ctx.call(
                &Op::ModifyVolume {
                    volume: volume.clone(),
                    size_gib: *size_gib,
                    volume_type: *volume_type,
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::AttachVolume {
            volume,
            instance,
            device,
            ..
        } => {
            let vol = ctx.volume(volume)?;
            let ids = ctx.instances(std::slice::from_ref(instance))?;
            let [inst] = ids.as_slice() else {
                return Err(StepError::Unexpected(format!(
                    "a volume attaches to exactly one instance, {} given",
                    ids.len()
                )));
            };
            ctx.call(
                &Op::AttachVolume {
                    volume: vol.clone(),
                    instance: inst.clone(),
                    device: device.clone(),
                },
                true,
            )
            .await?;
            ctx.wait_volume(id, &vol, VolumeState::InUse, false).await?;
            Ok(Output::None)
        }
        Step::DetachVolume {
            volume, instance, ..
        } => {
            match ctx
                .call(
                    &Op::DetachVolume {
                        volume: volume.clone(),
                        instance: instance.clone(),
                    },
                    false,
                )
                .await
            {
                Ok(_) => {}
                // Already detached (the instance went, or an earlier run).
                Err(e) if matches!(e.kind, ErrorKind::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.wait_volume(id, volume, VolumeState::Available, true)
                .await?;
            Ok(Output::None)
        }
        Step::Snapshot {
            name,
            volume,
            purpose,
            tags,
        } => {
            let op = Op::CreateSnapshot {
                volume: volume.clone(),
                description: format!("converge {} snapshot of Volume/{name}", purpose.as_str()),
                tags: tags.clone(),
            };
            let snap = match ctx.call(&op, false).await? {
                Outcome::Snapshot(s) => s,
                other => {
                    return Err(StepError::Unexpected(format!(
                        "CreateSnapshot answered {other:?}"
                    )));
                }
            };
            // A scheduled snapshot is not waited for: a pending one
            // counts as taken, and one can take hours. A final snapshot
            // must complete before its volume is deleted.
            if *purpose == SnapshotPurpose::Scheduled {
                return Ok(Output::None);
            }
            ctx.wait_until(id, &format!("snapshot {snap} to complete"), || async {
                match ctx.read(|| ctx.cloud.snapshot(&snap)).await? {
                    Some(s) if s.state == SnapshotState::Error => {
                        Err(StepError::Unexpected(format!("snapshot {snap} failed")))
                    }
                    Some(s) => Ok(s.state == SnapshotState::Completed),
                    None => Ok(false),
                }
            })
            .await?;
            Ok(Output::None)
        }
        Step::DeleteSnapshot { snapshot, .. } => {
            ctx.call(
                &Op::DeleteSnapshot {
                    snapshot: snapshot.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::DeleteVolume { volume, .. } => {
            // An instance that was just terminated may still hold it.
            ctx.wait_volume(id, volume, VolumeState::Available, true)
                .await?;
            ctx.call(
                &Op::DeleteVolume {
                    volume: volume.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::CreateBalancer {
            name,
            zones,
            listeners,
            health_check,
            tags,
        } => {
            let op = Op::CreateBalancer {
                name: name.to_string(),
                zones: zones.clone(),
                listeners: listeners.clone(),
                tags: tags.clone(),
            };
            let dns = match ctx.call(&op, false).await? {
                Outcome::Balancer { dns_name } => dns_name,
                other => {
                    return Err(StepError::Unexpected(format!(
                        "CreateLoadBalancer answered {other:?}"
                    )));
                }
            };
            ctx.call(
                &Op::ConfigureHealthCheck {
                    name: name.to_string(),
                    health_check: health_check.clone(),
                },
                true,
            )
            .await?;
            Ok(Output::Balancer(dns))
        }
        Step::SetListeners { name, add, remove } => {
            if !remove.is_empty() {
                ctx.call(
                    &Op::DeleteListeners {
                        name: name.to_string(),
                        ports: remove.clone(),
                    },
                    false,
                )
                .await?;
            }
            if !add.is_empty() {
                ctx.call(
                    &Op::CreateListeners {
                        name: name.to_string(),
                        listeners: add.clone(),
                    },
                    false,
                )
                .await?;
            }
            Ok(Output::None)
        }
        Step::ConfigureHealthCheck { name, health_check } => {
            ctx.call(
                &Op::ConfigureHealthCheck {
                    name: name.to_string(),
                    health_check: health_check.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::SetBalancerZones {
            name,
            enable,
            disable,
        } => {
            if !enable.is_empty() {
                ctx.call(
                    &Op::EnableZones {
                        name: name.to_string(),
                        zones: enable.clone(),
                    },
                    false,
                )
                .await?;
            }
            if !disable.is_empty() {
                ctx.call(
                    &Op::DisableZones {
                        name: name.to_string(),
                        zones: disable.clone(),
                    },
                    false,
                )
                .await?;
            }
            Ok(Output::None)
        }
        Step::Register {
            balancer,
            instances,
        } => {
            let ids = ctx.instances(instances)?;
            ctx.call(
                &Op::RegisterInstances {
                    name: balancer.to_string(),
                    ids,
                },
                true,
            )
            .await?;
            Ok(Output::None)
        }
        Step::Deregister {
            balancer,
            instances,
        } => {
            match ctx
                .call(
                    &Op::DeregisterInstances {
                        name: balancer.to_string(),
                        ids: instances.clone(),
                    },
                    false,
                )
                .await
            {
                Ok(_) => {}
                // The instance is already gone: nothing to deregister.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            Ok(Output::None)
        }
        Step::DeleteBalancer { name } => {
            ctx.call(
                &Op::DeleteBalancer {
                    name: name.to_string(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::CreateBucket {
            name,
            public_read,
            tags,
        } => {
            let op = Op::CreateBucket {
                name: name.to_string(),
                tags: tags.clone(),
            };
            match ctx.call(&op, false).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    // Ours from an interrupted apply, or someone else's.
                    let stack = ResourceName::from(
                        tags.get(tags::STACK)
                            .map(String::as_str)
                            .unwrap_or_default(),
                    );
                    let ours = ctx.read(|| ctx.cloud.observe(&stack)).await?;
                    if !ours.buckets.iter().any(|b| b.name == name.as_str()) {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if *public_read {
                ctx.call(
                    &Op::SetBucketPublicRead {
                        name: name.to_string(),
                        public_read: true,
                    },
                    true,
                )
                .await?;
            }
            Ok(Output::None)
        }
        Step::SetBucketPublicRead { name, public_read } => {
            ctx.call(
                &Op::SetBucketPublicRead {
                    name: name.to_string(),
                    public_read: *public_read,
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::DeleteBucket { name } => {
            ctx.call(
                &Op::DeleteBucket {
                    name: name.to_string(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::CreateDistribution {
            caller_reference,
            config,
            tags,
            ..
        } => {
            let op = Op::CreateDistribution {
                caller_reference: caller_reference.clone(),
                config: config.clone(),
                tags: tags.clone(),
            };
            match ctx.call(&op, false).await? {
                Outcome::Distribution { domain_name, .. } => {
                    Ok(Output::Distribution { domain_name })
                }
                other => Err(StepError::Unexpected(format!(
                    "CreateDistribution answered {other:?}"
                ))),
            }
        }
        Step::UpdateDistribution {
            id: dist, config, ..
        } => {
            ctx.call(
                &Op::UpdateDistribution {
                    id: dist.clone(),
                    config: config.clone(),
                },
                false,
            )
            .await?;
            Ok(Output::None)
        }
        Step::DisableDistribution { id: dist, .. } => {
            disable_distribution(ctx, id, dist).await?;
            Ok(Output::None)
        }
        Step::DeleteDistribution { id: dist, .. } => {
            ctx.call(&Op::DeleteDistribution { id: dist.clone() }, false)
                .await?;
            Ok(Output::None)
        }
    }
}

/// Disables a distribution (if it is not already) and waits until the
/// change is deployed, as CloudFront requires before a delete.
async fn disable_distribution(
    ctx: &Ctx,
    step: StepId,
    id: &DistributionId,
) -> Result<(), StepError> {
    let Some(d) = ctx.read(|| ctx.cloud.distribution(id)).await? else {
        return Ok(());
    };
    if d.config.enabled {
        let mut config = d.config.clone();
        config.enabled = false;
        ctx.call(
            &Op::UpdateDistribution {
                id: id.clone(),
                config,
            },
            false,
        )
        .await?;
    }
    ctx.wait_until(step, &format!("distribution {id} to deploy"), || async {
        Ok(match ctx.read(|| ctx.cloud.distribution(id)).await? {
            Some(d) => d.status == DistributionStatus::Deployed && !d.config.enabled,
            None => true,
        })
    })
    .await
}

/// Polls a lookup until it finds something or the visibility window ends.
async fn find_after<T, F, Fut>(ctx: &Ctx, f: F) -> Result<Option<T>, StepError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, CloudError>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = ctx.read(&f).await? {
            return Ok(Some(v));
        }
        if start.elapsed() >= ctx.opts.retry.visibility {
            return Ok(None);
        }
        tokio::time::sleep(ctx.opts.poll_interval).await;
    }
}
