//! What the chaos tests (`tests/chaos.rs`) and the chaos bench
//! (`benches/chaos.rs`) share: the example stack as the loop sees it, a
//! stand-in for health probes and metrics, a cloud that runs a hook before
//! or after chosen calls, and the heal-time scenario of issue 12.

#![allow(dead_code)] // each user takes what it needs

use async_trait::async_trait;
use converge::cloud::local::LocalCloud;
use converge::cloud::{ApiCall, Cloud, CloudError, Op, Outcome};
use converge::core::Desired;
use converge::core::ids::{
    BalancerName, DistributionId, ImageId, InstanceId, ParameterName, ResourceName, SnapshotId,
    SubnetId, VolumeId,
};
use converge::core::observed::{
    InstanceState, Member, Observed, ObservedDistribution, ObservedImage, ObservedInstance,
    ObservedSnapshot, ObservedSubnet, ObservedVolume,
};
use converge::manifest;
use converge::reconcile::{HttpError, HttpGet, HttpResponse};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The example stack, its job fleet's metric answered by [`Answers`].
pub fn smallpayroll() -> Desired {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut d = manifest::load(&dir, &|_| None).unwrap().desired;
    for f in d.fleets.values_mut() {
        if let Some(a) = &mut f.autoscale {
            a.metric_url = "http://metrics.invalid/queue/length".into();
        }
    }
    d
}

/// Answers every probe `200 welcome` and every metric `0`.
#[derive(Default)]
pub struct Answers;

#[async_trait]
impl HttpGet for Answers {
    async fn get(&self, url: &str, _timeout: Duration) -> Result<HttpResponse, HttpError> {
        let body = if url.contains("/queue/length") {
            "0"
        } else {
            "<h1>welcome to SmallPayroll</h1>"
        };
        Ok(HttpResponse {
            status: 200,
            body: body.into(),
        })
    }
}

/// When a hook runs, relative to the call it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Before the call reaches the cloud.
    Before,
    /// After the cloud answered it.
    After,
}

type Hook = Box<dyn Fn(&LocalCloud, &Op) + Send + Sync>;

/// The hooks to run: the operation, when, and what.
type Hooks = Arc<Mutex<Vec<(&'static str, When, Hook)>>>;

/// The local cloud, with hooks run once each before or after the first
/// call of a named operation (`AttachVolume`): how the tests make the
/// world move between observation and action, or during a wait.
#[derive(Clone)]
pub struct Hooked {
    /// The cloud itself.
    pub inner: LocalCloud,
    hooks: Hooks,
}

impl Hooked {
    /// The cloud without hooks.
    pub fn new(inner: LocalCloud) -> Self {
        Self {
            inner,
            hooks: Arc::default(),
        }
    }

    /// Runs `f` once, `when` the next `operation` is called.
    pub fn once(
        &self,
        operation: &'static str,
        when: When,
        f: impl Fn(&LocalCloud, &Op) + Send + Sync + 'static,
    ) {
        self.hooks
            .lock()
            .unwrap()
            .push((operation, when, Box::new(f)));
    }

    fn fire(&self, op: &Op, when: When) {
        let hook = {
            let mut hooks = self.hooks.lock().unwrap();
            let i = hooks
                .iter()
                .position(|(name, w, _)| *name == op.name() && *w == when);
            i.map(|i| hooks.remove(i))
        };
        if let Some((_, _, f)) = hook {
            f(&self.inner, op);
        }
    }
}

#[async_trait]
impl Cloud for Hooked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn observe(&self, stack: &ResourceName) -> Result<Observed, CloudError> {
        self.inner.observe(stack).await
    }
    async fn act(&self, op: &Op) -> Result<Outcome, CloudError> {
        self.fire(op, When::Before);
        let r = self.inner.act(op).await;
        self.fire(op, When::After);
        r
    }
    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<ObservedInstance>, CloudError> {
        self.inner.instances(ids).await
    }
    async fn subnets(&self, ids: &[SubnetId]) -> Result<Vec<ObservedSubnet>, CloudError> {
        self.inner.subnets(ids).await
    }
    async fn volumes(&self, ids: &[VolumeId]) -> Result<Vec<ObservedVolume>, CloudError> {
        self.inner.volumes(ids).await
    }
    async fn snapshot(&self, id: &SnapshotId) -> Result<Option<ObservedSnapshot>, CloudError> {
        self.inner.snapshot(id).await
    }
    async fn balancer_members(&self, name: &BalancerName) -> Result<Vec<Member>, CloudError> {
        self.inner.balancer_members(name).await
    }
    async fn distribution(
        &self,
        id: &DistributionId,
    ) -> Result<Option<ObservedDistribution>, CloudError> {
        self.inner.distribution(id).await
    }
    async fn parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError> {
        self.inner.parameters(names).await
    }
    async fn images(
        &self,
        ids: &[ImageId],
    ) -> Result<BTreeMap<ImageId, ObservedImage>, CloudError> {
        self.inner.images(ids).await
    }
    fn api_calls(&self) -> Vec<ApiCall> {
        self.inner.api_calls()
    }
}

/// The instances an operation aims at (its targets).
pub fn targets(op: &Op) -> Vec<InstanceId> {
    match op {
        Op::AttachVolume { instance, .. } => vec![instance.clone()],
        Op::RegisterInstances { ids, .. } => ids.clone(),
        _ => Vec::new(),
    }
}

/// Loses (terminates at once) the instances an operation aims at.
pub fn lose_targets(cloud: &LocalCloud, op: &Op) {
    for id in targets(op) {
        let _ = cloud.lose_instance(&id);
    }
}

/// A fleet's instances in `state`, sorted.
pub fn in_state(o: &Observed, fleet: &str, state: InstanceState) -> Vec<InstanceId> {
    let mut v: Vec<InstanceId> = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == fleet && i.state == state)
        .map(|i| i.id.clone())
        .collect();
    v.sort();
    v
}
