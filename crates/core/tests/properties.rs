//! Properties of the planner over random small stacks and worlds:
//!
//! - from any observed world (what an earlier version of the manifests
//!   left, then disturbed: instances stopped, lost or pending, members and
//!   tags drifted, rules added by hand, volumes detached, leftovers of
//!   removed resources), `plan()` never panics, is deterministic (the same
//!   input twice gives equal plans and byte-identical renderings), keeps
//!   every graph invariant, and never prints a secret;
//! - a world exactly as the manifests declare it plans to no changes (the
//!   planner's fixed point is where apply leaves the world).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::desired::{
    CdnLogging, DeletionPolicy, Desired, Listener, ListenerProtocol, UpdatePolicy,
};
use converge_core::ids::ResourceName;
use converge_core::observed::{
    CloudRule, CloudSource, InstanceState, Member, MemberState, Observed, VolumeState,
};
use converge_core::render;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The instants plans are made for: a weekend, a weekday, around the DST
/// change.
const TIMES: [&str; 4] = [
    SATURDAY_NOON,
    WEEKDAY_TEN,
    "2026-03-09T11:59:00Z",
    "2026-03-09T12:00:00Z",
];

/// The knobs a random version of the SmallPayroll manifests turns.
#[derive(Clone, Debug)]
struct Knobs {
    app_replicas: u32,
    app_schedule: bool,
    app_image: u8,
    app_zones: u8,
    app_update: (u32, u32),
    app_user_data: u8,
    db_image: u8,
    job_in_balancer: bool,
    volume: Option<(u32, u8)>,
    balancer: bool,
    health_interval: u32,
    web_description: u8,
    db_rule_port: u16,
    cdn: Option<(bool, u8, bool)>,
    bucket_policy: u8,
    bucket_public: bool,
    team: u8,
    volume_zone_b: bool,
    new_key: bool,
    job_user_data: u8,
    web_self_rule: bool,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        (
            0u32..5,
            any::<bool>(),
            0u8..2,
            0u8..4,
            (0u32..3, 0u32..3),
            0u8..4,
        ),
        (
            0u8..2,
            any::<bool>(),
            proptest::option::of((prop_oneof![Just(10u32), Just(20), Just(40)], 0u8..3)),
        ),
        (
            any::<bool>(),
            prop_oneof![Just(10u32), Just(30)],
            0u8..2,
            prop_oneof![Just(5432u16), Just(6432)],
        ),
        (
            proptest::option::of((any::<bool>(), 2u8..5, any::<bool>())),
            0u8..2,
            any::<bool>(),
            0u8..2,
        ),
        (any::<bool>(), any::<bool>(), 0u8..3, any::<bool>()),
    )
        .prop_map(|(a, b, c, d, e)| Knobs {
            app_replicas: a.0,
            app_schedule: a.1,
            app_image: a.2,
            app_zones: a.3,
            app_update: a.4,
            app_user_data: a.5,
            db_image: b.0,
            job_in_balancer: b.1,
            volume: b.2,
            balancer: c.0,
            health_interval: c.1,
            web_description: c.2,
            db_rule_port: c.3,
            cdn: d.0,
            bucket_policy: d.1,
            bucket_public: d.2,
            team: d.3,
            volume_zone_b: e.0,
            new_key: e.1,
            job_user_data: e.2,
            web_self_rule: e.3,
        })
}

const IMAGES: [&str; 2] = ["ami-147f977d", "ami-2b3c4d5e"];

/// A valid desired state from the knobs.
fn build(k: &Knobs) -> Desired {
    let mut d = smallpayroll();
    d.tags.insert(
        "team".into(),
        ["payroll", "billing"][k.team as usize].into(),
    );
    {
        let app = fleet_mut(&mut d, "app");
        app.replicas = k.app_replicas;
        if !k.app_schedule {
            app.schedule = None;
        }
        app.image = IMAGES[k.app_image as usize].into();
        app.zones = match k.app_zones {
            0 => vec![zone("us-east-1a")],
            1 => vec![zone("us-east-1a"), zone("us-east-1b")],
            2 => vec![zone("us-east-1b"), zone("us-east-1c")],
            _ => vec![zone("us-east-1c")],
        };
        app.update = UpdatePolicy {
            max_surge: k.app_update.0,
            max_unavailable: k.app_update.1,
        };
        app.user_data = match k.app_user_data {
            0 => template("role=app", &[]),
            1 => template("role=app;db=${Fleet/db.privateIp}", &[]),
            2 => template(
                "role=app;db=${Fleet/db.privateIp};password=${env:DB_PASSWORD}",
                &[("DB_PASSWORD", SECRET)],
            ),
            _ => template(
                "#!/bin/sh\nexport DB=${Fleet/db.privateIp}\nexport LB=${Balancer/web.dnsName}\nexec app\n",
                &[],
            ),
        };
    }
    fleet_mut(&mut d, "db").image = IMAGES[k.db_image as usize].into();
    fleet_mut(&mut d, "job").user_data = match k.job_user_data {
        0 => template("role=job;db=${Fleet/db.privateIp}", &[]),
        1 => template("role=job;apps=${Fleet/app.privateIps}", &[]),
        _ => template("", &[]),
    };
    if k.new_key {
        d.key_pairs.get_mut(&name("main")).unwrap().public_key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyMaterialXXXXXXXXXXXXXXXXXXXXXXXX ops"
                .into();
    }
    if k.web_self_rule {
        d.security_groups
            .get_mut(&name("web"))
            .unwrap()
            .ingress
            .push(group_rule(8080, "web"));
    }
    match k.volume {
        Some((size, policy)) => {
            if k.volume_zone_b {
                fleet_mut(&mut d, "db").zones = vec![zone("us-east-1a"), zone("us-east-1b")];
            }
            let v = d.volumes.get_mut(&name("pgdata")).unwrap();
            if k.volume_zone_b {
                v.zone = zone("us-east-1b");
            }
            v.size_gib = size;
            v.deletion_policy = [
                DeletionPolicy::Retain,
                DeletionPolicy::Delete,
                DeletionPolicy::Snapshot,
            ][policy as usize];
        }
        None => {
            d.volumes.clear();
        }
    }
    if k.balancer {
        let b = d.balancers.get_mut(&name("web")).unwrap();
        if let Some(h) = b.health_check.classic_mut() {
            h.interval_secs = k.health_interval;
        }
        if k.job_in_balancer {
            b.fleets.push(name("job"));
            b.listeners.push(Listener {
                port: 443,
                instance_port: 80,
                protocol: ListenerProtocol::Tcp,
                certificate: None,
            });
        }
    } else {
        d.balancers.clear();
        // The app's user data may not name a balancer that is not declared.
        let app = fleet_mut(&mut d, "app");
        if k.app_user_data == 3 {
            app.user_data = template(
                "#!/bin/sh\nexport DB=${Fleet/db.privateIp}\nexec app\n",
                &[],
            );
        }
    }
    d.security_groups.get_mut(&name("web")).unwrap().description = [
        "SmallPayroll web and job servers",
        "SmallPayroll web, job and admin servers",
    ][k.web_description as usize]
        .into();
    d.security_groups.get_mut(&name("db")).unwrap().ingress[0] = group_rule(k.db_rule_port, "web");
    let bucket = d.buckets.get_mut(&name("smallpayroll-assets")).unwrap();
    bucket.public_read = k.bucket_public;
    bucket.deletion_policy =
        [DeletionPolicy::Retain, DeletionPolicy::Delete][k.bucket_policy as usize];
    match k.cdn {
        Some((enabled, aliases, logging)) => {
            let c = d.cdns.get_mut(&name("assets")).unwrap();
            c.enabled = enabled;
            c.aliases = (0..aliases)
                .map(|i| format!("cdn{i}.smallpayroll.example"))
                .collect();
            c.logging = logging.then(|| CdnLogging {
                bucket: name("smallpayroll-assets"),
                prefix: "cdn/".into(),
            });
        }
        None => {
            d.cdns.clear();
        }
    }
    d
}

/// Disturbances of a world.
#[derive(Clone, Debug)]
struct Disturb {
    states: Vec<(u8, u8)>,
    dropped_members: Vec<u8>,
    foreign_member: bool,
    tag_edits: Vec<u8>,
    detach_volume: bool,
    extra_rule: bool,
    leftovers: u8,
    job_count: Option<u32>,
}

fn disturb() -> impl Strategy<Value = Disturb> {
    (
        proptest::collection::vec((any::<u8>(), 0u8..4), 0..3),
        proptest::collection::vec(any::<u8>(), 0..2),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..2),
        any::<bool>(),
        any::<bool>(),
        0u8..64,
        proptest::option::of(0u32..4),
    )
        .prop_map(
            |(
                states,
                dropped_members,
                foreign_member,
                tag_edits,
                detach_volume,
                extra_rule,
                leftovers,
                job_count,
            )| Disturb {
                states,
                dropped_members,
                foreign_member,
                tag_edits,
                detach_volume,
                extra_rule,
                leftovers,
                job_count,
            },
        )
}

/// A world an apply of `before` left at `at`, then disturbed.
fn world(before: &Desired, at: &str, x: &Disturb) -> Observed {
    let counts: BTreeMap<&str, u32> = x.job_count.map(|n| ("job", n)).into_iter().collect();
    let mut o = in_place_with(before, ts(at), &counts);
    let n = o.instances.len();
    for &(i, state) in &x.states {
        if n == 0 {
            break;
        }
        let id = o.instances[i as usize % n].id.clone();
        let state = [
            InstanceState::Stopped,
            InstanceState::Terminated,
            InstanceState::Pending,
            InstanceState::ShuttingDown,
        ][state as usize];
        let inst = instance(&mut o, id.as_str());
        inst.state = state;
        if state == InstanceState::Pending && i % 2 == 0 {
            // Too early to have an address.
            inst.private_ip = None;
        }
        if matches!(
            state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        ) {
            // The cloud detaches a terminated instance's volumes and takes
            // it out of its balancers.
            for v in &mut o.volumes {
                if v.attachment.as_ref().is_some_and(|a| a.instance == id) {
                    v.attachment = None;
                    v.state = VolumeState::Available;
                }
            }
            for b in &mut o.balancers {
                b.members.retain(|m| m.instance != id);
            }
        }
    }
    for b in &mut o.balancers {
        for &m in &x.dropped_members {
            if !b.members.is_empty() {
                let i = m as usize % b.members.len();
                b.members.remove(i);
            }
        }
        if x.foreign_member {
            b.members.push(Member {
                instance: "i-0f0reign".into(),
                state: MemberState::OutOfService,
            });
        }
    }
    for &t in &x.tag_edits {
        if n > 0 {
            let i = t as usize % n;
            o.instances[i].tags.insert("team".into(), "ops".into());
        }
        if let Some(b) = o.buckets.first_mut() {
            b.tags.insert("owner".into(), "bob".into());
        }
    }
    if x.detach_volume
        && let Some(v) = o.volumes.first_mut()
    {
        v.attachment = None;
        v.state = VolumeState::Available;
    }
    if x.extra_rule
        && let Some(g) = o.security_groups.first_mut()
    {
        g.ingress.push(CloudRule {
            protocol: converge_core::desired::Protocol::Udp,
            ports: Some((53, 53)),
            source: CloudSource::Cidr("10.0.0.0/8".into()),
        });
    }
    // Leftovers of resources the manifests no longer declare.
    if x.leftovers & 1 != 0
        && let Some(k) = o.key_pairs.first().cloned()
    {
        let mut k = k;
        k.id = "key-old".into();
        k.cloud_name = "smallpayroll-old".into();
        k.owner.name = name("old");
        o.key_pairs.push(k);
    }
    if x.leftovers & 2 != 0
        && let Some(v) = o.volumes.first().cloned()
    {
        let mut v = v;
        v.id = "vol-scratch".into();
        v.owner.name = name("scratch");
        v.attachment = None;
        v.state = VolumeState::Available;
        v.tags.insert(
            "converge:deletion-policy".into(),
            ["retain", "delete", "snapshot", "bogus"][(x.leftovers >> 2) as usize % 4].into(),
        );
        o.volumes.push(v);
    }
    if x.leftovers & 4 != 0
        && let Some(g) = o.security_groups.first().cloned()
    {
        let mut g = g;
        g.id = "sg-old".into();
        g.cloud_name = "smallpayroll-old-000000".into();
        g.owner.name = name("old");
        g.ingress.clear();
        o.security_groups.push(g);
    }
    if x.leftovers & 16 != 0
        && let Some(b) = o.balancers.first().cloned()
    {
        // A balancer no manifest declares, still fronting instances.
        let mut b = b;
        b.name = "old-lb".into();
        b.owner.name = name("old-lb");
        o.balancers.push(b);
    }
    if x.leftovers & 32 != 0
        && let Some(i) = o.instances.first().cloned()
    {
        // Two instances of a fleet no manifest declares: one behind every
        // balancer, one holding the leftover volume if there is one.
        for n in 1..=2 {
            let mut i = i.clone();
            i.id = format!("i-legacy-{n}").parse().unwrap();
            i.owner.name = name("legacy");
            i.state = InstanceState::Running;
            o.instances.push(i);
        }
        for b in &mut o.balancers {
            b.members.push(Member {
                instance: "i-legacy-1".into(),
                state: MemberState::InService,
            });
        }
        if let Some(v) = o
            .volumes
            .iter_mut()
            .find(|v| v.id.as_str() == "vol-scratch")
        {
            v.attachment = Some(converge_core::observed::ObservedAttachment {
                instance: "i-legacy-2".into(),
                device: "/dev/sdk".into(),
            });
            v.state = VolumeState::InUse;
        }
    }
    if x.leftovers & 8 != 0
        && let Some(b) = o.buckets.first().cloned()
    {
        let mut b = b;
        b.name = "smallpayroll-old".into();
        b.owner.name = name("smallpayroll-old");
        o.buckets.push(b);
    }
    o
}

fn check_outputs(plan: &converge_core::Plan) {
    for out in [text(plan), render::markdown(plan), render::json(plan)] {
        assert!(!out.contains(SECRET), "a secret leaked:\n{out}");
    }
    let colored = render::text(
        plan,
        &render::TextOptions {
            color: true,
            ..Default::default()
        },
    );
    assert!(!colored.is_empty());
    let parsed: serde_json::Value = serde_json::from_str(&render::json(plan)).unwrap();
    assert_eq!(parsed["format_version"], 2);
    assert_eq!(parsed["steps"].as_array().unwrap().len(), plan.graph.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_world_plans_soundly(
        before in knobs(),
        after in knobs(),
        x in disturb(),
        t_before in 0usize..TIMES.len(),
        t in 0usize..TIMES.len(),
        job_scale in proptest::option::of(0u32..5),
    ) {
        let old = build(&before);
        let d = build(&after);
        let o = world(&old, TIMES[t_before], &x);
        let scale: BTreeMap<ResourceName, u32> =
            job_scale.map(|n| (name("job"), n)).into_iter().collect();
        // `run_scaled` checks the invariants, determinism and secrets.
        let plan = run_scaled(&d, &o, TIMES[t], &scale);
        check_outputs(&plan);
    }

    #[test]
    fn a_world_as_declared_has_no_changes(k in knobs(), t in 0usize..TIMES.len()) {
        let d = build(&k);
        let o = in_place(&d, ts(TIMES[t]));
        let plan = run(&d, &o, TIMES[t]);
        prop_assert!(!plan.has_changes(), "{}", text(&plan));
    }

    #[test]
    fn destroying_any_world_plans_soundly(k in knobs(), x in disturb(), t in 0usize..TIMES.len()) {
        let d = build(&k);
        let o = world(&d, TIMES[t], &x);
        let empty = Desired::empty(d.stack.clone(), d.region.clone());
        let plan = run(&empty, &o, TIMES[t]);
        check_outputs(&plan);
        // Nothing of the stack is left live.
        let terminated: usize = plan.graph.steps().iter().map(|s| match s {
            converge_core::plan::Step::Terminate { instances, .. } => instances.len(),
            _ => 0,
        }).sum();
        let live = o.instances.iter().filter(|i| i.state.is_live() || i.state == InstanceState::Stopped).count();
        prop_assert_eq!(terminated, live);
    }
}
