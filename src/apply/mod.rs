//! The executor: walks a plan's step graph against a cloud. Steps whose
//! dependencies are done run in parallel (bounded); each step is one
//! idempotent attempt at its action, retried on throttling and "not ready
//! yet", followed by the wait it needs (instances running, volume
//! attached, snapshot completed). A failing step skips only what depends
//! on it; the rest of the graph keeps going, and the report says what was
//! done, what failed and what was skipped.
//!
//! This file holds the graph walk and routes each step to its handler, one
//! per step kind, in the file of the AWS service it acts on (`ec2`, `elb`,
//! `s3`, `cloudfront`; `tags` for the tagging step, which spans them);
//! `ctx` holds what the handlers share, and the generic machinery of waits
//! and retries (a wait fails fast when its target is gone; waits give up
//! at the step's deadline, at once when the run is stopping); `failure`
//! classifies what failed for the reconcile loop's backoff.

mod acm;
mod cloudfront;
mod ctx;
mod ec2;
mod elb;
mod failure;
mod route53;
mod s3;
mod tags;
mod vpc;

pub use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Cloud, CloudError};
use converge_core::plan::{Plan, Step, StepGraph, StepId};
use ctx::{Ctx, Output, StepScope, lock};
pub use failure::{FailureClass, MISSING_INPUTS};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Set to stop (on Ctrl-C, SIGTERM): no new step starts, the waits
    /// and retry backoffs of running steps are abandoned at once (they
    /// fail as [`StepError::Stopped`]); calls in flight finish.
    pub stop: Arc<AtomicBool>,
    /// The bound on one step: past it, its waits and retries give up and
    /// it fails as timed out, so no step holds the run longer (plus the
    /// one call in flight). `None`: each wait has `wait_timeout`, each
    /// call its retry window. The reconcile loop sets it
    /// (docs/failure-handling.md).
    pub step_timeout: Option<Duration>,
    /// The clock that, with the cloud's clock offset, gives the moments
    /// the executor notes (when a DNS cutover step was in sync); the
    /// reconcile loop passes its own.
    pub clock: Arc<dyn crate::sys::Clock>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            parallelism: 10,
            retry: RetryPolicy::default(),
            wait_timeout: Duration::from_secs(900),
            poll_interval: Duration::from_secs(2),
            stop: Arc::new(AtomicBool::new(false)),
            step_timeout: None,
            clock: Arc::new(crate::sys::SystemClock),
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
    /// The world moved since the plan was made: the step's target is gone
    /// or will not reach the state the step needs (an instance terminated
    /// while the step waited for it). The next plan knows better.
    #[error("{0} (the world moved since it was observed: re-planned at the next pass)")]
    Stale(String),
    /// Abandoned because the run is stopping (its waits and retries end
    /// at once; the next run re-plans).
    #[error("abandoned: the run is stopping")]
    Stopped,
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

/// Carries out a plan. Never panics on cloud errors: they are reported per
/// step.
///
/// A step starts once every step it depends on is done, with one
/// exception: a launch whose only references to an earlier launch are
/// that launch's addresses in its user data (`${Fleet/db.privateIp}`)
/// starts as soon as RunInstances has answered them, while the earlier
/// instances boot ([`early_dependents`]). The db server's successor and
/// the app servers that roll onto its address then boot side by side
/// instead of one after the other.
pub async fn execute(
    cloud: Arc<dyn Cloud>,
    plan: &Plan,
    opts: ApplyOptions,
    progress: Arc<dyn Progress>,
) -> Report {
    let graph = &plan.graph;
    let (early_tx, mut early_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        cloud,
        opts: opts.clone(),
        progress,
        outputs: Mutex::new(BTreeMap::new()),
        early: early_tx,
    });
    let mut walk = Walk::new(graph);
    let mut running: JoinSet<(StepId, Result<Output, StepError>)> = JoinSet::new();
    let parallelism = opts.parallelism.max(1);
    loop {
        while running.len() < parallelism && !opts.stop.load(Ordering::SeqCst) {
            let Some(id) = walk.ready.pop_first() else {
                break;
            };
            let Some(step) = graph.step(id).cloned() else {
                continue;
            };
            let ctx = ctx.clone();
            ctx.progress.started(id, &step.describe());
            walk.started.insert(id);
            running.spawn(async move {
                let r = run_step(&ctx, id, &step).await;
                (id, r)
            });
        }
        // An early output is taken before the step's end: a step sends
        // it before it returns, so it is already queued then.
        let joined = tokio::select! {
            biased;
            Some(id) = early_rx.recv() => {
                walk.published_early(id);
                continue;
            }
            joined = running.join_next() => joined,
        };
        let Some(joined) = joined else {
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
        match result {
            Ok(out) => {
                lock(&ctx.outputs).insert(id, out);
                walk.done(id);
            }
            Err(e) => {
                ctx.progress.failed(id, &describe(graph, id), &e);
                walk.failed(id, e);
            }
        }
    }
    walk.finish()
}

/// The executor's bookkeeping of one walk of the graph: what each step
/// still waits for, what may start, what started, and the report.
struct Walk<'g> {
    graph: &'g StepGraph,
    /// For each step, how many of the steps it waits for are not done.
    deps_left: Vec<usize>,
    /// For each step, its dependents that may start on its early output.
    early: Vec<Vec<StepId>>,
    /// `(before, after)` edges already satisfied by an early output.
    satisfied: BTreeSet<(StepId, StepId)>,
    /// Steps that may start.
    ready: BTreeSet<StepId>,
    /// Steps started.
    started: BTreeSet<StepId>,
    report: Report,
}

impl<'g> Walk<'g> {
    fn new(graph: &'g StepGraph) -> Self {
        let n = graph.len();
        let deps_left: Vec<usize> = (0..n).map(|i| graph.dependencies(i).len()).collect();
        Walk {
            graph,
            ready: (0..n).filter(|i| deps_left[*i] == 0).collect(),
            deps_left,
            early: early_dependents(graph),
            satisfied: BTreeSet::new(),
            started: BTreeSet::new(),
            report: Report::default(),
        }
    }

    /// `after` waits for one step fewer.
    fn release(&mut self, before: StepId, after: StepId) {
        if self.satisfied.contains(&(before, after)) {
            return;
        }
        self.deps_left[after] -= 1;
        if self.deps_left[after] == 0 && !self.report.steps.contains_key(&after) {
            self.ready.insert(after);
        }
    }

    /// `id` published its output early: its early dependents wait for it
    /// no more.
    fn published_early(&mut self, id: StepId) {
        if self.report.steps.contains_key(&id) {
            return;
        }
        for d in self.early.get(id).cloned().unwrap_or_default() {
            self.release(id, d);
            self.satisfied.insert((id, d));
        }
    }

    fn done(&mut self, id: StepId) {
        let what = describe(self.graph, id);
        self.report.steps.insert(id, (what, StepResult::Done));
        for &d in self.graph.dependents(id) {
            self.release(id, d);
        }
    }

    /// `id` failed: everything downstream that has not started is
    /// skipped (a step started on `id`'s early output runs to its end,
    /// and the next plan corrects what it was given).
    fn failed(&mut self, id: StepId, e: StepError) {
        let what = describe(self.graph, id);
        self.report.steps.insert(id, (what, StepResult::Failed(e)));
        for d in self.graph.with_dependents(|i, _| i == id) {
            if self.report.steps.contains_key(&d) || self.started.contains(&d) {
                continue;
            }
            let skipped = StepResult::Skipped { because: Some(id) };
            self.report
                .steps
                .insert(d, (describe(self.graph, d), skipped));
            self.ready.remove(&d);
        }
    }

    fn finish(mut self) -> Report {
        for id in 0..self.graph.len() {
            let graph = self.graph;
            self.report
                .steps
                .entry(id)
                .or_insert_with(|| (describe(graph, id), StepResult::Skipped { because: None }));
        }
        self.report
    }
}

/// For each step, the dependents that may start on its early output: a
/// launch whose every reference to an earlier launch is to that launch's
/// addresses in its user data (what [`ec2::launch`] publishes once
/// RunInstances answers). Anything else a step needs of a launch (its
/// instances running: an attachment, a registration, a wave of a roll)
/// waits for the launch to be done.
fn early_dependents(graph: &StepGraph) -> Vec<Vec<StepId>> {
    use converge_core::plan::UserDataPart;
    (0..graph.len())
        .map(|b| {
            if !matches!(graph.step(b), Some(Step::Launch { .. })) {
                return Vec::new();
            }
            graph
                .dependents(b)
                .iter()
                .copied()
                .filter(|&a| {
                    let Some(Step::Launch { spec, .. }) = graph.step(a) else {
                        return false;
                    };
                    let as_address = spec
                        .user_data
                        .iter()
                        .map(|p| match p {
                            UserDataPart::FleetIps { launches, .. } => {
                                launches.iter().filter(|l| **l == b).count()
                            }
                            _ => 0,
                        })
                        .sum::<usize>();
                    let all = graph
                        .step(a)
                        .map(|s| s.step_refs().iter().filter(|(r, _)| *r == b).count())
                        .unwrap_or(0);
                    as_address > 0 && as_address == all
                })
                .collect()
        })
        .collect()
}

fn describe(graph: &StepGraph, id: StepId) -> String {
    graph.step(id).map(Step::describe).unwrap_or_default()
}

async fn run_step(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    let start = Instant::now();
    let scope = StepScope::new(ctx.opts.step_timeout);
    // A certificate requested earlier in the plan: its ARN goes in.
    let filled = acm::with_certificates(ctx, step)?;
    let out = scope.run(run_step_inner(ctx, id, &filled)).await?;
    ctx.progress.done(id, &step.describe(), start.elapsed());
    Ok(out)
}

/// Routes a step to its handler, in the file of the service it acts on
/// (the network's and the volumes' steps through their own routers).
async fn run_step_inner(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    match step {
        Step::CreateKeyPair {
            cloud_name,
            public_key,
            tags,
            ..
        } => ec2::create_key_pair(ctx, cloud_name, public_key, tags).await,
        Step::DeleteKeyPair { cloud_name, .. } => ec2::delete_key_pair(ctx, cloud_name).await,
        Step::CreateVpc { .. }
        | Step::CreateGateway { .. }
        | Step::AttachGateway { .. }
        | Step::CreateRouteTable { .. }
        | Step::AddDefaultRoute { .. }
        | Step::CreateSubnet { .. }
        | Step::SetSubnetPublicIp { .. }
        | Step::AssociateSubnet { .. }
        | Step::DisassociateSubnet { .. }
        | Step::DeleteSubnet { .. }
        | Step::DeleteRouteTable { .. }
        | Step::DeleteGateway { .. }
        | Step::DeleteVpc { .. } => run_vpc_step(ctx, step).await,
        Step::CreateGroup {
            name,
            cloud_name,
            vpc: v,
            description,
            tags,
        } => ec2::create_group(ctx, name, cloud_name, v, description, tags).await,
        Step::AuthorizeIngress { group, rules, .. } => {
            ec2::authorize_ingress(ctx, group, rules).await
        }
        Step::RevokeIngress { group, rules, .. } => ec2::revoke_ingress(ctx, group, rules).await,
        Step::DeleteGroup { group, .. } => ec2::delete_group(ctx, group).await,
        Step::SetTags {
            target,
            set,
            remove,
            ..
        } => tags::set_tags(ctx, target, set, remove).await,
        Step::Launch { .. } => ec2::launch(ctx, id, step).await,
        Step::SetInstanceGroups {
            instance, groups, ..
        } => ec2::set_instance_groups(ctx, instance, groups).await,
        Step::SetMetadataOptions { .. }
        | Step::AssociateInstanceProfile { .. }
        | Step::ReplaceInstanceProfile { .. }
        | Step::DisassociateInstanceProfile { .. } => ec2::change_in_place(ctx, step).await,
        Step::WaitHealthy { .. } => elb::run_balancer_step(ctx, id, step).await,
        Step::Terminate { instances, .. } => ec2::terminate(ctx, id, instances).await,
        Step::CreateVolume { .. }
        | Step::ModifyVolume { .. }
        | Step::AttachVolume { .. }
        | Step::DetachVolume { .. }
        | Step::Snapshot { .. }
        | Step::DeleteSnapshot { .. }
        | Step::DeleteVolume { .. } => run_ebs_step(ctx, id, step).await,
        Step::CreateBalancer { .. }
        | Step::SetBalancerSubnets { .. }
        | Step::SetListeners { .. }
        | Step::ConfigureHealthCheck { .. }
        | Step::SetBalancerAttributes { .. }
        | Step::SetBalancerGroups { .. }
        | Step::SetBalancerZones { .. }
        | Step::Register { .. }
        | Step::Deregister { .. }
        | Step::WaitDrained { .. }
        | Step::DeleteBalancer { .. }
        | Step::DeleteTargetGroups { .. } => elb::run_balancer_step(ctx, id, step).await,
        Step::CreateBucket {
            name,
            public_read,
            tags,
        } => s3::create_bucket(ctx, name, *public_read, tags).await,
        Step::SetBucketPublicRead { name, public_read } => {
            s3::set_public_read(ctx, name, *public_read).await
        }
        Step::DeleteBucket { name } => s3::delete_bucket(ctx, name).await,
        Step::CreateDistribution {
            caller_reference,
            config,
            tags,
            ..
        } => cloudfront::create_distribution(ctx, caller_reference, config, tags).await,
        Step::UpdateDistribution {
            id: dist, config, ..
        } => cloudfront::update_distribution(ctx, dist, config).await,
        Step::RequestCertificate { .. }
        | Step::ValidateCertificate { .. }
        | Step::DeleteCertificate { .. }
        | Step::DeleteValidationRecords { .. } => acm::run_acm_step(ctx, id, step).await,
        Step::DisableDistribution { id: dist, .. } => {
            cloudfront::disable_distribution(ctx, id, dist).await
        }
        Step::DeleteDistribution { id: dist, .. } => {
            cloudfront::delete_distribution(ctx, dist).await
        }
        Step::CreateOriginAccess {
            stack,
            name,
            settings,
            ..
        } => cloudfront::create_origin_access(ctx, stack, name, settings).await,
        Step::UpdateOriginAccess {
            id: oac,
            name,
            settings,
            ..
        } => cloudfront::update_origin_access(ctx, oac, name, settings).await,
        Step::DeleteOriginAccess { id: oac, .. } => {
            cloudfront::delete_origin_access(ctx, oac).await
        }
        Step::GrantCdnRead {
            bucket,
            sid,
            distribution,
            ..
        } => s3::grant_cdn_read(ctx, bucket, sid, distribution).await,
        Step::RevokeCdnRead { bucket, sid, .. } => s3::revoke_cdn_read(ctx, bucket, sid).await,
        Step::PutObjects {
            bucket,
            objects,
            cache_control,
            mark,
        } => s3::put_objects(ctx, bucket, objects, cache_control.as_deref(), mark).await,
        Step::DeleteObjects { bucket, keys } => s3::delete_objects(ctx, bucket, keys).await,
        Step::Invalidate {
            id: dist,
            caller_reference,
            paths,
            ..
        } => cloudfront::invalidate(ctx, id, dist, caller_reference, paths).await,
        Step::CreateZone {
            domain,
            caller_reference,
            tags,
            ..
        } => route53::create_zone(ctx, domain, caller_reference, tags).await,
        Step::DeleteZone { id: zone, .. } => route53::delete_zone(ctx, zone).await,
        Step::ChangeRecords { zone, changes, .. } => {
            route53::change_records(ctx, id, zone, changes).await
        }
    }
}

/// Routes a network step (VPC, gateway, route table, subnet).
async fn run_vpc_step(ctx: &Ctx, step: &Step) -> Result<Output, StepError> {
    match step {
        Step::CreateVpc { cidr, tags, .. } => vpc::create_vpc(ctx, *cidr, tags).await,
        Step::CreateGateway { vpc: v, tags, .. } => vpc::create_gateway(ctx, v, tags).await,
        Step::AttachGateway {
            gateway, vpc: v, ..
        } => vpc::attach(ctx, gateway, v).await,
        Step::CreateRouteTable {
            vpc: v,
            tags,
            token,
            ..
        } => vpc::create_route_table(ctx, v, tags, token).await,
        Step::AddDefaultRoute {
            route_table,
            gateway,
            ..
        } => vpc::add_default_route(ctx, route_table, gateway).await,
        Step::CreateSubnet {
            vpc: v,
            zone,
            cidr,
            tags,
            ..
        } => vpc::create_subnet(ctx, v, zone, *cidr, tags).await,
        Step::SetSubnetPublicIp { id: s, public, .. } => vpc::set_public_ip(ctx, s, *public).await,
        Step::AssociateSubnet {
            id: s, route_table, ..
        } => vpc::associate(ctx, s, route_table).await,
        Step::DisassociateSubnet { association, .. } => vpc::disassociate(ctx, association).await,
        Step::DeleteSubnet { id: s, .. } => vpc::delete_subnet(ctx, s).await,
        Step::DeleteRouteTable {
            route_table,
            associations,
            ..
        } => vpc::delete_route_table(ctx, route_table, associations).await,
        Step::DeleteGateway {
            gateway, vpc: v, ..
        } => vpc::delete_gateway(ctx, gateway, v.as_ref()).await,
        Step::DeleteVpc { vpc: v, .. } => vpc::delete_vpc(ctx, v).await,
        other => Err(misrouted(other, "network")),
    }
}

/// Routes a volume or snapshot step.
async fn run_ebs_step(ctx: &Ctx, id: StepId, step: &Step) -> Result<Output, StepError> {
    match step {
        Step::CreateVolume {
            zone,
            size_gib,
            volume_type,
            from_snapshot,
            encryption,
            iops,
            throughput,
            tags,
            token,
            ..
        } => {
            let v = ec2::NewVolume {
                zone,
                size_gib: *size_gib,
                volume_type: *volume_type,
                from_snapshot: from_snapshot.as_ref(),
                encryption,
                iops: *iops,
                throughput: *throughput,
                tags,
                token,
            };
            ec2::create_volume(ctx, id, &v).await
        }
        Step::ModifyVolume {
            volume,
            size_gib,
            volume_type,
            iops,
            throughput,
            ..
        } => ec2::modify_volume(ctx, id, volume, *size_gib, *volume_type, *iops, *throughput).await,
        Step::AttachVolume {
            volume,
            instance,
            device,
            ..
        } => ec2::attach_volume(ctx, id, volume, instance, device).await,
        Step::DetachVolume {
            volume, instance, ..
        } => ec2::detach_volume(ctx, id, volume, instance).await,
        Step::Snapshot {
            name,
            volume,
            purpose,
            tags,
        } => ec2::snapshot(ctx, id, name, volume, *purpose, tags).await,
        Step::DeleteSnapshot { snapshot, .. } => ec2::delete_snapshot(ctx, snapshot).await,
        Step::DeleteVolume { volume, .. } => ec2::delete_volume(ctx, id, volume).await,
        other => Err(misrouted(other, "EBS")),
    }
}

/// A step given to another service's router: a bug, reported as a
/// failed step rather than a panic.
fn misrouted(step: &Step, router: &str) -> StepError {
    StepError::Unexpected(format!(
        "converge routed \"{}\" to the {router} router (a bug)",
        step.describe()
    ))
}
