//! Golden tests of rendered plans: a desired stack and an observed world
//! built in code, planned at a fixed moment, the rendered plan compared
//! with a reviewed snapshot (`tests/snapshots/`). Every plan also passes
//! the invariants checker and is planned twice to check determinism
//! (`common::run`). Where order matters, the step graph is asserted on
//! directly, not only through the text.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::desired::{
    Desired, HttpTokens, ImageSource, MetadataOptions, RootVolume, VolumeType,
};
use converge_core::ids::{ImageId, InstanceProfile, ParameterName, ResourceName};
use converge_core::observed::{Observed, ObservedInstance};
use converge_core::plan::{ChangeAction, PlanInput, Step};
use converge_core::render;
use insta::assert_snapshot;
use std::collections::BTreeSet;

#[test]
fn create_everything_from_empty() {
    let d = smallpayroll();
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    assert!(plan.has_changes());
    assert_snapshot!("create_everything.txt", text(&plan));
    assert_snapshot!("create_everything.md", render::markdown(&plan));
    assert_snapshot!("create_everything.json", render::json(&plan));
    assert_snapshot!("create_everything.dot", render::dot(&plan));
}

#[test]
fn no_changes() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes());
    assert_snapshot!("no_changes.txt", text(&plan));
    assert_snapshot!("no_changes.md", render::markdown(&plan));
    assert_snapshot!("no_changes.dot", render::dot(&plan));
}

// ---- schedules --------------------------------------------------------------

#[test]
fn schedule_scales_app_up_on_a_weekday_morning() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let plan = run(&d, &o, WEEKDAY_TEN);
    assert_snapshot!("schedule_weekday_scale_up.txt", text(&plan));
    assert_snapshot!("schedule_weekday_scale_up.md", render::markdown(&plan));
    assert_snapshot!("schedule_weekday_scale_up.json", render::json(&plan));
    // The new instance is registered once it runs.
    let launch = step(&plan, "launch 1 Fleet/app");
    let register = step(&plan, "register 1 instance group(s) with Balancer/web");
    assert!(precedes(&plan, launch, register));
}

#[test]
fn schedule_scales_app_down_on_saturday() {
    let d = smallpayroll();
    let o = in_place(&d, ts(WEEKDAY_TEN));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("schedule_saturday_scale_down.txt", text(&plan));
    // The newest instance in the fuller zone goes, out of the balancer first.
    let dereg = step(&plan, "deregister i-app-2 from Balancer/web");
    let term = step(&plan, "terminate Fleet/app instance(s) i-app-2");
    assert!(precedes(&plan, dereg, term));
}

#[test]
fn schedule_follows_toronto_across_the_spring_dst_change() {
    // Daylight saving time starts on Sunday 8 March 2026: on Monday 9 March
    // 08:00 in Toronto is 12:00Z (EDT), not 13:00Z (EST).
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let before = run(&d, &o, "2026-03-09T11:59:00Z");
    assert!(!before.has_changes(), "{}", text(&before));
    let at_eight = run(&d, &o, "2026-03-09T12:00:00Z");
    assert_snapshot!("schedule_dst_monday_eight.txt", text(&at_eight));
    // `--at` with an offset, as the issue writes it, is the same moment
    // as 12:30Z.
    let with_offset = run(&d, &o, "2026-03-09T08:30:00-04:00");
    assert_eq!(with_offset.at, ts("2026-03-09T12:30:00Z"));
    assert_eq!(with_offset.graph, at_eight.graph);
    // Sunday in the small hours, just after the change: the Friday 21:00
    // rule still holds.
    let sunday = run(&d, &o, "2026-03-08T07:30:00Z");
    assert!(!sunday.has_changes(), "{}", text(&sunday));
}

// ---- rolling replacements ---------------------------------------------------

#[test]
fn image_change_rolls_with_max_surge_one() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("image_change_max_surge_1.txt", text(&plan));
    assert_snapshot!("image_change_max_surge_1.dot", render::dot(&plan));
    assert_snapshot!("image_change_max_surge_1.md", render::markdown(&plan));
    // Two waves of one: each successor is launched, registered and healthy
    // before its predecessor is deregistered and terminated; the second
    // wave starts once the first is done.
    let launches = steps(&plan, "launch 1 Fleet/app");
    let waits = steps(&plan, "wait for new Fleet/app");
    assert_eq!((launches.len(), waits.len()), (2, 2));
    let first_term = step(&plan, "terminate Fleet/app instance(s) i-app-1");
    let second_term = step(&plan, "terminate Fleet/app instance(s) i-app-2");
    let first_dereg = step(&plan, "deregister i-app-1");
    assert!(precedes(&plan, launches[0], waits[0]));
    assert!(precedes(&plan, waits[0], first_dereg));
    assert!(precedes(&plan, first_dereg, first_term));
    assert!(precedes(&plan, first_term, launches[1]));
    assert!(precedes(&plan, waits[1], second_term));
    assert!(!precedes(&plan, first_term, launches[0]));
}

#[test]
fn image_change_rolls_with_max_unavailable_one_and_no_surge() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let app = fleet_mut(&mut d, "app");
    app.image = "ami-2b3c4d5e".into();
    app.update.max_surge = 0;
    app.update.max_unavailable = 1;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("image_change_max_unavailable_1.txt", text(&plan));
    // Each wave takes one instance out first, then launches its successor.
    let launches = steps(&plan, "launch 1 Fleet/app");
    let first_term = step(&plan, "terminate Fleet/app instance(s) i-app-1");
    let second_term = step(&plan, "terminate Fleet/app instance(s) i-app-2");
    let waits = steps(&plan, "wait for new Fleet/app");
    assert!(precedes(&plan, first_term, launches[0]));
    assert!(precedes(&plan, waits[0], second_term));
    assert!(precedes(&plan, second_term, launches[1]));
}

#[test]
fn user_data_change_shows_a_line_diff() {
    let script = |listen: &str| {
        format!(
            "#!/bin/sh\nset -eu\nexport ROLE=app\nexport DB_HOST=${{Fleet/db.privateIp}}\nexport LISTEN={listen}\nexport WORKERS=4\nexport LOG=/var/log/app.log\nexec /opt/app/bin/start\n"
        )
    };
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").user_data = template(&script("0.0.0.0:80"), &[]);
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").user_data = template(&script("0.0.0.0:8080"), &[]);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("user_data_line_diff.txt", text(&plan));
    assert_snapshot!("user_data_line_diff.md", render::markdown(&plan));
}

#[test]
fn long_user_data_diffs_fold_in_markdown() {
    let script = |workers: u32| {
        let mut s = String::from("#!/bin/sh\n");
        for i in 0..30 {
            s.push_str(&format!("echo step {i}\n"));
        }
        for i in 0..10 {
            s.push_str(&format!("export WORKER_{i}={}\n", workers + i));
        }
        s
    };
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").user_data = template(&script(1), &[]);
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").user_data = template(&script(2), &[]);
    let plan = run(&d, &o, SATURDAY_NOON);
    let md = render::markdown(&plan);
    assert!(md.contains("<details><summary><code>spec.userData (new instances)</code>"));
    assert_snapshot!("user_data_long_diff.md", md);
}

#[test]
fn env_values_are_sensitive_everywhere() {
    let secret_ud = |v: &str| {
        template(
            "role=app;db=${Fleet/db.privateIp};password=${env:DB_PASSWORD}",
            &[("DB_PASSWORD", v)],
        )
    };
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").user_data = secret_ud(SECRET);
    // From nothing: the user data is (sensitive) in every output.
    let create = run(&d, &empty_region(), SATURDAY_NOON);
    assert_snapshot!("env_secret_create.txt", text(&create));
    // In place: no change, and the secret still goes nowhere.
    let o = in_place(&d, ts(SATURDAY_NOON));
    assert!(
        o.instances
            .iter()
            .any(|i| i.user_data.as_deref().is_some_and(|u| u.contains(SECRET)))
    );
    let same = run(&d, &o, SATURDAY_NOON);
    assert!(!same.has_changes(), "{}", text(&same));
    // The secret changes: the fleet is replaced, shown as (sensitive).
    fleet_mut(&mut d, "app").user_data = secret_ud("a-new-password");
    let rotated = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("env_secret_rotated.txt", text(&rotated));
    for out in [
        text(&rotated),
        render::markdown(&rotated),
        render::json(&rotated),
    ] {
        assert!(!out.contains("a-new-password"));
        assert!(!out.contains(SECRET));
    }
    // The secret is still in the plan for the executor to send.
    let launches = rotated.graph.steps().iter().filter(|s| {
        matches!(s, converge_core::plan::Step::Launch { spec, .. }
            if spec.user_data.iter().any(|p| matches!(p,
                converge_core::plan::UserDataPart::Secret(s) if s.expose() == "a-new-password")))
    });
    assert_eq!(launches.count(), 2);
}

#[test]
fn db_replacement_moves_the_volume_and_replaces_its_dependents() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "db").image = "ami-2b3c4d5e".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("db_replaced.txt", text(&plan));
    assert_snapshot!("db_replaced.json", render::json(&plan));
    let db_launch = step(&plan, "launch 1 Fleet/db");
    let detach = step(&plan, "detach Volume/pgdata from i-db-1");
    let attach = step(&plan, "attach Volume/pgdata");
    let db_term = step(&plan, "terminate Fleet/db instance(s) i-db-1");
    assert!(
        precedes(&plan, db_launch, detach),
        "the old db serves until its successor runs"
    );
    assert!(precedes(&plan, detach, attach));
    assert!(precedes(&plan, db_launch, attach));
    assert!(precedes(&plan, detach, db_term));
    // The app's user data names the db's address, which is only known once
    // the new db runs: app instances are replaced after it.
    for l in steps(&plan, "launch 1 Fleet/app") {
        assert!(precedes(&plan, db_launch, l));
    }
    assert!(text(&plan).contains("(known after apply)"));
}

#[test]
fn db_instance_lost_is_relaunched_and_gets_its_volume_back() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    instance(&mut o, "i-db-1").state = converge_core::observed::InstanceState::Terminated;
    let v = volume(&mut o, "pgdata");
    v.attachment = None;
    v.state = converge_core::observed::VolumeState::Available;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("db_lost.txt", text(&plan));
    let launch = step(&plan, "launch 1 Fleet/db");
    let attach = step(&plan, "attach Volume/pgdata");
    assert!(precedes(&plan, launch, attach));
    match &plan.graph.steps()[attach] {
        converge_core::plan::Step::AttachVolume { instance, .. } => {
            assert_eq!(
                *instance,
                converge_core::plan::InstanceRef::Launched(launch)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn instance_in_a_zone_no_longer_listed_is_replaced() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").zones = vec![zone("us-east-1a"), zone("us-east-1c")];
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("wrong_zone.txt", text(&plan));
}

#[test]
fn stopped_instance_is_terminated_and_replaced() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    instance(&mut o, "i-app-1").state = converge_core::observed::InstanceState::Stopped;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("stopped_instance.txt", text(&plan));
}

#[test]
fn fleet_removed_is_deregistered_and_terminated() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.fleets.remove(&name("app"));
    d.balancers.get_mut(&name("web")).unwrap().fleets.clear();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("fleet_removed.txt", text(&plan));
    for id in ["i-app-1", "i-app-2"] {
        let dereg = step(&plan, &format!("deregister {id}"));
        let term = step(&plan, &format!("terminate Fleet/app instance(s) {id}"));
        assert!(precedes(&plan, dereg, term));
    }
}

#[test]
fn autoscaled_fleet_keeps_its_count_within_bounds() {
    let d = smallpayroll();
    // Three job servers observed, max is 2: one goes.
    let o = in_place_with(&d, ts(SATURDAY_NOON), &[("job", 3)].into());
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("autoscale_clamped.txt", text(&plan));
    // One observed, the loop's autoscaler says 2: one is added.
    let o = in_place(&d, ts(SATURDAY_NOON));
    let plan = run_scaled(&d, &o, SATURDAY_NOON, &[(name("job"), 2)].into());
    assert_snapshot!("autoscale_scale_input.txt", text(&plan));
    // The autoscaler's count is clamped too.
    let plan = run_scaled(&d, &o, SATURDAY_NOON, &[(name("job"), 9)].into());
    assert_eq!(steps(&plan, "launch").len(), 1, "{}", text(&plan));
    // Without a decision, the current count stands.
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes(), "{}", text(&plan));
}

// ---- security groups and key pairs ------------------------------------------

#[test]
fn security_group_rules_added_removed_and_drift() {
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let web = d.security_groups.get_mut(&name("web")).unwrap();
    web.ingress = vec![cidr_rule(80, "0.0.0.0/0"), cidr_rule(443, "0.0.0.0/0")];
    // Someone opened MySQL on the db group by hand.
    group(&mut o, "db")
        .ingress
        .push(converge_core::observed::CloudRule {
            protocol: converge_core::desired::Protocol::Tcp,
            ports: Some((3306, 3306)),
            source: converge_core::observed::CloudSource::Cidr("10.0.0.0/8".into()),
        });
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("security_group_rules.txt", text(&plan));
    assert_snapshot!("security_group_rules.md", render::markdown(&plan));
}

#[test]
fn description_change_replaces_the_group_and_moves_instances() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.security_groups.get_mut(&name("web")).unwrap().description =
        "SmallPayroll web, job and admin servers".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("group_description_change.txt", text(&plan));
    let create = step(&plan, "create SecurityGroup/web");
    let delete = step(&plan, "delete SecurityGroup/web");
    for id in ["i-app-1", "i-app-2", "i-job-1"] {
        let moved = step(&plan, &format!("instance {id}"));
        assert!(precedes(&plan, create, moved));
        assert!(precedes(&plan, moved, delete));
    }
    // The db group's rule naming the old group is revoked before it goes.
    let revoke = step(&plan, "revoke 1 rule(s) on SecurityGroup/db");
    assert!(precedes(&plan, revoke, delete));
}

#[test]
fn key_pair_removed_from_the_manifests_is_deleted() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let mut old = o.key_pairs[0].clone();
    old.id = "key-deploy".into();
    old.cloud_name = "smallpayroll-deploy".into();
    old.owner.name = name("deploy");
    old.tags.insert("converge:name".into(), "deploy".into());
    o.key_pairs.push(old);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("key_pair_removed.txt", text(&plan));
}

#[test]
fn tags_drift_is_set_back() {
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    instance(&mut o, "i-app-1")
        .tags
        .insert("team".into(), "ops".into());
    bucket(&mut o, "smallpayroll-assets")
        .tags
        .insert("owner".into(), "bob".into());
    // An `aws:` tag is AWS's own and is left alone.
    bucket(&mut o, "smallpayroll-assets")
        .tags
        .insert("aws:cloudformation:stack-name".into(), "x".into());
    fleet_mut(&mut d, "db")
        .tags
        .insert("tier".into(), "data".into());
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("tags_drift.txt", text(&plan));
}

// ---- volumes ----------------------------------------------------------------

/// A volume of the stack no manifest declares any more, with its deletion
/// policy recorded in its tag.
fn scratch_volume(
    o: &Observed,
    policy: &str,
    attached_to: Option<&str>,
) -> converge_core::observed::ObservedVolume {
    let mut v = o.volumes[0].clone();
    v.id = "vol-scratch".into();
    v.owner.name = name("scratch");
    v.size_gib = 100;
    v.tags.insert("converge:name".into(), "scratch".into());
    v.tags
        .insert("converge:deletion-policy".into(), policy.into());
    v.attachment = attached_to.map(|i| converge_core::observed::ObservedAttachment {
        instance: i.parse().unwrap(),
        device: "/dev/sdk".into(),
    });
    v.state = if attached_to.is_some() {
        converge_core::observed::VolumeState::InUse
    } else {
        converge_core::observed::VolumeState::Available
    };
    v
}

#[test]
fn volume_removed_with_retain_is_kept() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes.push(scratch_volume(&o, "retain", None));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes(), "a retained volume is not a change");
    assert!(plan.graph.is_empty());
    assert_eq!(plan.summary().blocked, 1);
    assert_snapshot!("volume_removed_retain.txt", text(&plan));
    assert_snapshot!("volume_removed_retain.md", render::markdown(&plan));
}

#[test]
fn volume_removed_with_delete_is_deleted() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes.push(scratch_volume(&o, "delete", None));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_removed_delete.txt", text(&plan));
}

#[test]
fn volume_removed_with_snapshot_takes_a_final_snapshot_first() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes
        .push(scratch_volume(&o, "snapshot", Some("i-job-1")));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_removed_snapshot.txt", text(&plan));
    let detach = step(&plan, "detach Volume/scratch");
    let snap = step(&plan, "take a final snapshot of Volume/scratch");
    let delete = step(&plan, "delete Volume/scratch");
    assert!(precedes(&plan, detach, snap));
    assert!(precedes(&plan, snap, delete));
}

#[test]
fn volume_grows_in_place() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.volumes.get_mut(&name("pgdata")).unwrap().size_gib = 40;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_grow.txt", text(&plan));
}

#[test]
fn volume_shrink_is_shown_and_not_done() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.volumes.get_mut(&name("pgdata")).unwrap().size_gib = 10;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes());
    assert_snapshot!("volume_shrink.txt", text(&plan));
}

/// Only the volume: the other resources of the stack are as declared.
fn volume_only(plan: &converge_core::Plan) -> Vec<&converge_core::plan::Step> {
    plan.graph.iter().map(|(_, s)| s).collect()
}

#[test]
fn volume_created_encrypted_gp3_with_iops() {
    use converge_core::desired::Encryption;
    use converge_core::ebs::KmsKey;
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes.clear();
    let v = d.volumes.get_mut(&name("pgdata")).unwrap();
    v.size_gib = 100;
    v.iops = Some(6000);
    v.throughput = Some(500);
    v.encryption = Encryption::Encrypted {
        key: Some(KmsKey::parse("alias/pgdata").unwrap()),
    };
    let plan = run(&d, &o, SATURDAY_NOON);
    let create = volume_only(&plan)
        .into_iter()
        .find(|s| matches!(s, converge_core::plan::Step::CreateVolume { .. }))
        .unwrap();
    let converge_core::plan::Step::CreateVolume {
        iops,
        throughput,
        encryption,
        tags,
        ..
    } = create
    else {
        unreachable!()
    };
    assert_eq!((*iops, *throughput), (Some(6000), Some(500)));
    assert!(encryption.is_encrypted());
    assert_eq!(
        tags.get("converge:kms-key").map(String::as_str),
        Some("alias/pgdata")
    );
    assert_snapshot!("volume_create_encrypted_iops.txt", text(&plan));
}

#[test]
fn volume_grown_and_iops_raised_in_one_modification() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let v = d.volumes.get_mut(&name("pgdata")).unwrap();
    v.size_gib = 40;
    v.iops = Some(8000);
    v.throughput = Some(250);
    let plan = run(&d, &o, SATURDAY_NOON);
    let steps = volume_only(&plan);
    assert_eq!(steps.len(), 1, "one ModifyVolume: {steps:?}");
    assert!(matches!(
        steps[0],
        converge_core::plan::Step::ModifyVolume {
            size_gib: 40,
            iops: Some(8000),
            throughput: Some(250),
            ..
        }
    ));
    assert_snapshot!("volume_modify_in_place.txt", text(&plan));
    assert_snapshot!("volume_modify_in_place.md", render::markdown(&plan));
}

#[test]
fn volume_encryption_change_is_blocked_never_replaced() {
    use converge_core::desired::Encryption;
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.volumes.get_mut(&name("pgdata")).unwrap().encryption = Encryption::Unencrypted;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(
        !plan.has_changes(),
        "no step at all: {:?}",
        volume_only(&plan)
    );
    assert!(plan.has_blocked_changes());
    assert_eq!(plan.summary().not_done, 1);
    assert_snapshot!("volume_encryption_blocked.txt", text(&plan));
    assert_snapshot!("volume_encryption_blocked.json", render::json(&plan));
    assert_snapshot!("volume_encryption_blocked.md", render::markdown(&plan));
}

#[test]
fn volume_key_change_is_blocked() {
    use converge_core::desired::Encryption;
    use converge_core::ebs::KmsKey;
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let v = d.volumes.get_mut(&name("pgdata")).unwrap();
    v.encryption = Encryption::Encrypted {
        key: Some(KmsKey::parse("alias/pgdata").unwrap()),
    };
    // Blocked beside a change that is made: the growth goes ahead.
    v.size_gib = 30;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(plan.has_changes() && plan.has_blocked_changes());
    assert_snapshot!("volume_key_blocked.txt", text(&plan));
}

#[test]
fn volume_modification_waits_six_hours_after_the_last() {
    use converge_core::observed::{ModificationState, VolumeModification};
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    volume(&mut o, "pgdata").modification = Some(VolumeModification {
        state: ModificationState::Optimizing,
        started_at: ts("2026-03-07T13:00:00Z"),
    });
    d.volumes.get_mut(&name("pgdata")).unwrap().size_gib = 40;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes(), "held back, no call");
    assert!(plan.has_blocked_changes());
    assert_snapshot!("volume_modification_cooldown.txt", text(&plan));
    // Six hours after, it is still optimizing: it waits for that.
    let plan = run(&d, &o, "2026-03-07T19:30:00Z");
    assert!(!plan.has_changes());
    assert_snapshot!("volume_modification_in_progress.txt", text(&plan));
    // Completed and six hours old: modified.
    volume(&mut o, "pgdata")
        .modification
        .as_mut()
        .unwrap()
        .state = ModificationState::Completed;
    let plan = run(&d, &o, "2026-03-07T19:30:00Z");
    assert!(plan.has_changes() && !plan.has_blocked_changes());
}

#[test]
fn restore_of_an_encrypted_snapshot_unencrypted_is_blocked() {
    use converge_core::desired::Encryption;
    use converge_core::observed::{ObservedSnapshot, SnapshotState};
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes.clear();
    o.snapshots.push(ObservedSnapshot {
        id: "snap-0123456789abcdef0".into(),
        volume: name("pgdata"),
        volume_id: "vol-pgdata".into(),
        state: SnapshotState::Completed,
        encrypted: true,
        started_at: ts("2026-03-07T08:00:00Z"),
        tags: Default::default(),
    });
    let v = d.volumes.get_mut(&name("pgdata")).unwrap();
    v.encryption = Encryption::Unencrypted;
    v.from_snapshot = Some("snap-0123456789abcdef0".into());
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(
        !volume_only(&plan)
            .iter()
            .any(|s| matches!(s, converge_core::plan::Step::CreateVolume { .. })),
        "not created"
    );
    assert!(plan.has_blocked_changes());
    assert_snapshot!("volume_restore_encrypted_snapshot_blocked.txt", text(&plan));
}

// ---- balancers --------------------------------------------------------------

#[test]
fn balancer_listener_and_health_check_change() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let web = d.balancers.get_mut(&name("web")).unwrap();
    web.listeners.push(converge_core::desired::Listener {
        port: 8080,
        instance_port: 8080,
        protocol: converge_core::desired::ListenerProtocol::Tcp,
        certificate: None,
    });
    let hc = web.health_check.classic_mut().unwrap();
    hc.interval_secs = 10;
    hc.target = "HTTP:80/health".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("balancer_change.txt", text(&plan));
    assert_snapshot!("balancer_change.md", render::markdown(&plan));
}

#[test]
fn balancer_members_drift() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let web = balancer(&mut o, "web");
    web.members.retain(|m| m.instance.as_str() != "i-app-2");
    web.members.push(converge_core::observed::Member {
        instance: "i-0f0reign".into(),
        state: converge_core::observed::MemberState::InService,
    });
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("balancer_members_drift.txt", text(&plan));
}

// ---- buckets and distributions ----------------------------------------------

#[test]
fn bucket_public_read_change() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .public_read = true;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("bucket_public_read.txt", text(&plan));
}

#[test]
fn bucket_removed_with_retain_is_kept() {
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let mut old = o.buckets[0].clone();
    old.name = "smallpayroll-old-assets".into();
    old.owner.name = name("smallpayroll-old-assets");
    old.cdn_grants.clear();
    old.tags
        .insert("converge:name".into(), "smallpayroll-old-assets".into());
    o.buckets.push(old);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes());
    assert_snapshot!("bucket_removed_retain.txt", text(&plan));
}

#[test]
fn cdn_config_change() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let cdn = d.cdns.get_mut(&name("assets")).unwrap();
    cdn.aliases = (1..5)
        .map(|i| format!("cdn{i}.smallpayroll.example"))
        .collect();
    cdn.comment = "SmallPayroll assets".into();
    cdn.logging = Some(converge_core::desired::CdnLogging {
        bucket: name("smallpayroll-assets"),
        prefix: "cdn/".into(),
    });
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("cdn_change.txt", text(&plan));
}

#[test]
fn cdn_removed_is_disabled_then_deleted() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.cdns.clear();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("cdn_removed.txt", text(&plan));
    let disable = step(&plan, "disable Cdn/assets");
    let delete = step(&plan, "delete Cdn/assets");
    assert!(precedes(&plan, disable, delete));
}

#[test]
fn bucket_and_cdn_removed_with_delete() {
    let mut d = smallpayroll();
    d.buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .deletion_policy = converge_core::desired::DeletionPolicy::Delete;
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.cdns.clear();
    d.buckets.clear();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("bucket_and_cdn_removed.txt", text(&plan));
    let cdn = step(&plan, "delete Cdn/assets");
    let bucket = step(&plan, "delete Bucket/smallpayroll-assets");
    assert!(precedes(&plan, cdn, bucket));
}

// ---- the whole stack goes ---------------------------------------------------

#[test]
fn destroy_keeps_what_policies_retain() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let empty = converge_core::Desired::empty(d.stack.clone(), d.region.clone());
    let plan = run(&empty, &o, SATURDAY_NOON);
    assert_snapshot!("destroy.txt", text(&plan));
    assert_snapshot!("destroy.md", render::markdown(&plan));
}

#[test]
fn old_user_data_with_secrets_stays_hidden_once_no_longer_sensitive() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").user_data = template(
        "role=app;password=${env:DB_PASSWORD}",
        &[("DB_PASSWORD", SECRET)],
    );
    let o = in_place(&d, ts(SATURDAY_NOON));
    // The password moves out of user data: the new value is plain, the
    // old one must still not be shown.
    fleet_mut(&mut d, "app").user_data = template("role=app;password-file=/etc/app/db", &[]);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("user_data_was_sensitive.txt", text(&plan));
}

#[test]
fn removed_volume_with_two_copies_is_one_entry() {
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    // An old copy of pgdata in another zone (its zone changed once) and
    // the current one; then pgdata leaves the manifests with its db.
    let mut old = o.volumes[0].clone();
    old.id = "vol-pgdata-old".into();
    old.zone = zone("us-east-1b");
    old.attachment = None;
    old.state = converge_core::observed::VolumeState::Available;
    old.tags
        .insert("converge:deletion-policy".into(), "retain".into());
    o.volumes.push(old);
    d.volumes.clear();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_removed_two_copies.txt", text(&plan));
}

#[test]
fn json_shape_of_a_sensitive_launch() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "db").user_data = template(
        "role=db;password=${env:DB_PASSWORD}",
        &[("DB_PASSWORD", SECRET)],
    );
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
    let launch = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"]["step"] == "launch" && s["op"]["fleet"] == "db")
        .unwrap();
    assert_snapshot!(
        "json_sensitive_launch",
        serde_json::to_string_pretty(&launch["op"]["spec"]["user_data"]).unwrap()
    );
}

/// Every step kind, action, instance change, note and value type that the
/// scenarios produce is described in `docs/plan-json.md`.
#[test]
fn plan_json_doc_covers_what_plans_hold() {
    let doc = include_str!("../../../docs/plan-json.md");
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let mut worlds: Vec<(converge_core::Desired, Observed)> = vec![
        (d.clone(), empty_region()),
        (
            converge_core::Desired::empty(d.stack.clone(), d.region.clone()),
            o.clone(),
        ),
    ];
    let mut changed = d.clone();
    fleet_mut(&mut changed, "db").image = "ami-2b3c4d5e".into();
    fleet_mut(&mut changed, "app").zones = vec![zone("us-east-1c")];
    changed
        .security_groups
        .get_mut(&name("web"))
        .unwrap()
        .description = "new".into();
    changed.volumes.get_mut(&name("pgdata")).unwrap().size_gib = 40;
    changed
        .balancers
        .get_mut(&name("web"))
        .unwrap()
        .health_check
        .classic_mut()
        .unwrap()
        .interval_secs = 10;
    changed.balancers.get_mut(&name("web")).unwrap().zones.pop();
    changed
        .balancers
        .get_mut(&name("web"))
        .unwrap()
        .listeners
        .clear();
    changed
        .buckets
        .get_mut(&name("smallpayroll-assets"))
        .unwrap()
        .public_read = true;
    changed.cdns.get_mut(&name("assets")).unwrap().comment = "x".into();
    changed.tags.insert("team".into(), "billing".into());
    worlds.push((changed, o.clone()));
    let mut drifted = o.clone();
    instance(&mut drifted, "i-app-1").state = converge_core::observed::InstanceState::Stopped;
    group(&mut drifted, "web").ingress.clear();
    let mut shrunk = d.clone();
    shrunk.volumes.get_mut(&name("pgdata")).unwrap().size_gib = 10;
    worlds.push((shrunk, drifted));
    let mut found = std::collections::BTreeSet::new();
    for (d, o) in &worlds {
        let plan = run(d, o, WEEKDAY_TEN);
        let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
        for s in json["steps"].as_array().unwrap() {
            found.insert(s["op"]["step"].as_str().unwrap().to_owned());
        }
        for c in json["changes"].as_array().unwrap() {
            found.insert(c["action"]["type"].as_str().unwrap().to_owned());
            for x in c["instances"]
                .as_array()
                .unwrap()
                .iter()
                .chain(c["notes"].as_array().unwrap())
            {
                found.insert(x["type"].as_str().unwrap().to_owned());
            }
            for f in c["fields"].as_array().unwrap() {
                for side in ["before", "after"] {
                    if let Some(t) = f[side]["type"].as_str() {
                        found.insert(t.to_owned());
                    }
                }
            }
        }
    }
    assert!(
        found.len() > 40,
        "the scenarios should cover most shapes: {found:?}"
    );
    let missing: Vec<&String> = found
        .iter()
        .filter(|t| !doc.contains(&format!("`{t}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/plan-json.md does not describe {missing:?}"
    );
}

#[test]
fn volume_detached_from_a_fleet_that_goes() {
    // The volume stays but is no longer attached, and its fleet is removed
    // (the app no longer needs the db's address either).
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.volumes.get_mut(&name("pgdata")).unwrap().attach = None;
    d.fleets.remove(&name("db"));
    d.security_groups.get_mut(&name("db")).unwrap();
    fleet_mut(&mut d, "app").user_data = template("role=app", &[]);
    fleet_mut(&mut d, "job").user_data = template("role=job", &[]);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_detached_fleet_removed.txt", text(&plan));
}

#[test]
fn instances_join_a_new_group_once_its_rules_are_in() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.security_groups.get_mut(&name("web")).unwrap().description = "new".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    let authorize = step(&plan, "authorize 2 rule(s) on SecurityGroup/web");
    for moved in steps(&plan, "set security groups") {
        assert!(precedes(&plan, authorize, moved));
    }
    // And from nothing: launches wait for their group's rules.
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    let authorize = step(&plan, "authorize 2 rule(s) on SecurityGroup/web");
    for launch in steps(&plan, "Fleet/app instance(s)") {
        assert!(precedes(&plan, authorize, launch));
    }
}

#[test]
fn volume_moved_to_another_zone_is_replaced_with_its_fleet() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "db").zones = vec![zone("us-east-1a"), zone("us-east-1b")];
    d.volumes.get_mut(&name("pgdata")).unwrap().zone = zone("us-east-1b");
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_zone_change.txt", text(&plan));
    // The new volume is attached to the db's successor in the new zone;
    // the old one is detached, snapshotted and deleted after its instance
    // goes.
    let launch = step(&plan, "launch 1 Fleet/db instance(s) in us-east-1b");
    let create = step(&plan, "create Volume/pgdata");
    let attach = step(&plan, "attach Volume/pgdata");
    assert!(precedes(&plan, launch, attach) && precedes(&plan, create, attach));
    let term = step(&plan, "terminate Fleet/db instance(s) i-db-1");
    let snap = step(&plan, "take a final snapshot of Volume/pgdata");
    assert!(
        precedes(&plan, term, snap) || precedes(&plan, step(&plan, "detach Volume/pgdata"), snap)
    );
}

#[test]
fn stray_duplicate_of_a_declared_volume_is_deleted_by_its_policy() {
    let mut d = smallpayroll();
    d.volumes.get_mut(&name("pgdata")).unwrap().deletion_policy =
        converge_core::desired::DeletionPolicy::Delete;
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let mut stray = o.volumes[0].clone();
    stray.id = "vol-pgdata-stray".into();
    stray.attachment = None;
    stray.state = converge_core::observed::VolumeState::Available;
    stray.created_at = ts("2026-02-01T00:00:00Z");
    o.volumes.push(stray);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("volume_stray_duplicate.txt", text(&plan));
}

#[test]
fn colour_only_when_asked_and_values_cannot_forge_lines() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    // A description that tries to forge a plan line and recolour the
    // terminal.
    d.security_groups.get_mut(&name("web")).unwrap().description =
        "web\n  - Fleet/db\u{1b}[0m ```".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    let plain = text(&plan);
    let colour = render::text(
        &plan,
        &render::TextOptions {
            color: true,
            ..Default::default()
        },
    );
    let md = render::markdown(&plan);
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert!(!md.contains('\u{1b}'), "{md}");
    assert!(colour.contains("\u{1b}[32m+\u{1b}[0m"), "{colour}");
    // Stripped of its escapes, the coloured text is the plain text.
    let stripped = {
        let mut s = String::new();
        let mut chars = colour.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                s.push(c);
            }
        }
        s
    };
    assert_eq!(stripped, plain);
    // The forged line stays inside its value.
    assert!(
        !plain
            .lines()
            .any(|l| l.trim_start().starts_with("- Fleet/db")),
        "{plain}"
    );
    assert_snapshot!("escaped_values.txt", plain);
    assert_snapshot!("escaped_values.md", md);
}

// ---- launch options: instance profile, metadata, root volume, SSM images ----

const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

fn al2023() -> ParameterName {
    ParameterName::new(AL2023).unwrap()
}

fn instances_of<'a>(
    o: &'a mut Observed,
    fleet: &'a str,
) -> impl Iterator<Item = &'a mut ObservedInstance> + 'a {
    o.instances
        .iter_mut()
        .filter(move |i| i.owner.name.as_str() == fleet)
}

#[test]
fn metadata_and_instance_profile_change_in_place() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "db").instance_profile = Some(InstanceProfile::from("db-old"));
    fleet_mut(&mut d, "job").instance_profile = Some(InstanceProfile::from("job-role"));
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    // The app's instances were launched with IMDSv1 allowed, one hop.
    for i in instances_of(&mut o, "app") {
        i.metadata = MetadataOptions {
            tokens: HttpTokens::Optional,
            hop_limit: 1,
        };
    }
    fleet_mut(&mut d, "app").instance_profile = Some(InstanceProfile::from("app-role"));
    fleet_mut(&mut d, "db").instance_profile = Some(InstanceProfile::from(
        "arn:aws:iam::123456789012:instance-profile/db/db-role",
    ));
    fleet_mut(&mut d, "job").instance_profile = None;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("launch_options_in_place.txt", text(&plan));
    assert_snapshot!("launch_options_in_place.md", render::markdown(&plan));
    // Nothing is launched or terminated: every change is in place.
    let kinds: Vec<&str> = plan.graph.steps().iter().map(|s| s.kind()).collect();
    assert!(
        !kinds.contains(&"launch") && !kinds.contains(&"terminate"),
        "{kinds:?}"
    );
    for kind in [
        "set-metadata-options",
        "associate-instance-profile",
        "replace-instance-profile",
        "disassociate-instance-profile",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(steps(&plan, "set metadata options of Fleet/app").len(), 2);
    for c in &plan.changes {
        assert!(!matches!(c.action, ChangeAction::Replace { .. }), "{c:?}");
    }
    // Applied, nothing is left to do.
    let fixed = in_place(&d, ts(SATURDAY_NOON));
    let again = run(&d, &fixed, SATURDAY_NOON);
    assert!(!again.has_changes(), "{}", text(&again));
}

#[test]
fn root_volume_change_rolls_the_fleet() {
    let mut d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.images
        .insert(ImageId::from(FIXTURE_IMAGE), fixture_image());
    fleet_mut(&mut d, "app").root_volume = Some(RootVolume {
        size_gib: 20,
        volume_type: VolumeType::Gp3,
        encrypted: true,
    });
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("root_volume_change.txt", text(&plan));
    let launch = steps(&plan, "launch 1 Fleet/app")[0];
    let Step::Launch { spec, .. } = &plan.graph.steps()[launch] else {
        panic!("not a launch")
    };
    let root = spec.root_volume.as_ref().expect("a root volume");
    assert_eq!(root.device, "/dev/xvda");
    assert_eq!(root.volume.size_gib, 20);
    // Once rolled, a larger volume rolls again and shows what it was.
    let rolled = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").root_volume = Some(RootVolume {
        size_gib: 40,
        volume_type: VolumeType::Io2,
        encrypted: false,
    });
    let again = run(&d, &rolled, SATURDAY_NOON);
    assert!(
        text(&again).contains(
            "spec.rootVolume: 20 GiB gp3, encrypted → 40 GiB io2, not encrypted (new instances)"
        ),
        "{}",
        text(&again)
    );
}

#[test]
fn ssm_image_is_resolved_when_planning() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").image = ImageSource::Parameter(al2023());
    let mut o = empty_region();
    o.parameters.insert(al2023(), "ami-147f977d".into());
    let plan = run(&d, &o, SATURDAY_NOON);
    let t = text(&plan);
    assert!(
        t.contains(&format!("+ spec.image: ami-147f977d (from ssm:{AL2023})")),
        "{t}"
    );
    for s in steps(&plan, "launch 1 Fleet/app") {
        let Step::Launch { spec, .. } = &plan.graph.steps()[s] else {
            panic!("not a launch")
        };
        assert_eq!(spec.image, ImageId::from("ami-147f977d"));
    }
    assert_snapshot!("ssm_image_create.json", render::json(&plan));
}

#[test]
fn a_new_ami_published_under_the_parameter_rolls_the_fleet() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").image = ImageSource::Parameter(al2023());
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let same = run(&d, &o, SATURDAY_NOON);
    assert!(!same.has_changes(), "{}", text(&same));
    o.parameters.insert(al2023(), "ami-2b3c4d5e".into());
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("ssm_image_published.txt", text(&plan));
    assert_eq!(steps(&plan, "launch 1 Fleet/app").len(), 2);
}

#[test]
fn images_the_cloud_cannot_give_are_refused_before_any_change() {
    let mut d = smallpayroll();
    fleet_mut(&mut d, "app").image = ImageSource::Parameter(al2023());
    let o = empty_region();
    let err = |d: &Desired, o: &Observed| {
        converge_core::plan(&PlanInput::new(d, o, ts(SATURDAY_NOON)))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&d, &o),
        format!(
            "Fleet/app: spec.image: SSM parameter {AL2023} does not exist (GetParameters lists it as invalid)"
        )
    );
    let mut o = empty_region();
    o.parameters.insert(al2023(), "not-an-ami".into());
    assert!(err(&d, &o).contains("holds \"not-an-ami\", expected an image ID"));
    let mut d = smallpayroll();
    fleet_mut(&mut d, "db").root_volume = Some(RootVolume {
        size_gib: 4,
        volume_type: VolumeType::Gp3,
        encrypted: true,
    });
    let mut o = empty_region();
    assert!(
        err(&d, &o).contains("image ami-147f977d does not exist"),
        "{}",
        err(&d, &o)
    );
    o.images
        .insert(ImageId::from(FIXTURE_IMAGE), fixture_image());
    assert_eq!(
        err(&d, &o),
        "Fleet/db: spec.rootVolume.sizeGiB: 4 GiB is smaller than the 8 GiB root snapshot of image ami-147f977d; expected at least 8"
    );
}

// ---- replacement on request --------------------------------------------------

/// `--replace Fleet/app` on a stack that matches its manifests: every app
/// instance rolls, one wave at a time, and nothing else changes.
#[test]
fn a_requested_replacement_rolls_the_fleet() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let fleets = BTreeSet::from([ResourceName::from("app")]);
    let input = PlanInput {
        replace_fleets: &fleets,
        ..PlanInput::new(&d, &o, ts(SATURDAY_NOON))
    };
    let plan = converge_core::checked(converge_core::plan(&input).unwrap(), &input).unwrap();
    let t = text(&plan);
    assert!(t.contains("-/+ Fleet/app (replace requested)"), "{t}");
    let live_app = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == "app" && i.state.is_live())
        .count();
    assert_eq!(
        t.matches("(replace requested)\n").count(),
        live_app + 1,
        "{t}"
    );
    let changed: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != ChangeAction::NoChange)
        .map(|c| c.key.to_string())
        .collect();
    assert_eq!(changed, ["Fleet/app"], "{t}");
    assert_snapshot!("replace_requested.txt", t);
}

/// `--target Fleet/db` on a new stack: the db fleet and what it waits
/// for (key pair, groups), nothing else; the plan says it is partial, and
/// the checker accepts the narrowed plan.
#[test]
fn a_partial_plan_holds_the_target_and_its_dependencies() {
    let d = smallpayroll();
    let o = empty_region();
    let input = PlanInput::new(&d, &o, ts(SATURDAY_NOON));
    let targets = BTreeSet::from([converge_core::ids::ResourceKey::new(
        converge_core::ids::Kind::Fleet,
        "db",
    )]);
    let plan = converge_core::plan::targeted(converge_core::plan(&input).unwrap(), &targets);
    let plan = converge_core::checked(plan, &input).unwrap();
    let keys: Vec<String> = plan.changes.iter().map(|c| c.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "KeyPair/main",
            "SecurityGroup/db",
            "SecurityGroup/web",
            "Fleet/db"
        ]
    );
    let json = render::json(&plan);
    assert!(
        json.contains("\"targets\": [\n    {\n      \"kind\": \"Fleet\",\n      \"name\": \"db\""),
        "{json}"
    );
    assert_snapshot!("partial_fleet_db.txt", text(&plan));
}

#[test]
fn application_balancer_is_created_with_target_groups() {
    let mut d = smallpayroll();
    let web = d.balancers.remove(&name("web")).unwrap();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.balancers.insert(name("web"), web);
    application_balancer(&mut d, 30);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("alb_create.txt", text(&plan));
    let create = step(&plan, "create Balancer/web");
    let Some(Step::CreateBalancer { balancer, .. }) = plan.graph.step(create) else {
        panic!("no create step");
    };
    assert_eq!(balancer.cloud_name, "web-alb");
    assert_eq!(balancer.target_groups.len(), 1, "{balancer:?}");
}

#[test]
fn target_groups_left_behind_are_deleted_unless_a_balancer_wants_them() {
    use converge_core::observed::StrayTargetGroup;
    let mut d = smallpayroll();
    let web = d.balancers.remove(&name("web")).unwrap();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    d.balancers.insert(name("web"), web);
    application_balancer(&mut d, 30);
    // The group the balancer's listener forwards to, and one of a listener
    // the manifests dropped: both left by a balancer deleted halfway.
    let wanted = converge_core::elb::listener_target_groups(
        converge_core::elb::BalancerType::Application,
        &"web-alb".parse().unwrap(),
        &d.balancers[&name("web")].listeners,
    );
    assert_eq!(wanted.len(), 1);
    for g in [wanted[0].0.clone(), "web-alb-8443-0000".parse().unwrap()] {
        o.stray_target_groups.push(StrayTargetGroup {
            name: g,
            balancer: name("web"),
        });
    }
    let plan = run(&d, &o, SATURDAY_NOON);
    let deletes = steps(&plan, "delete target groups");
    assert_eq!(deletes.len(), 1, "{:?}", describe(&plan));
    assert_eq!(
        plan.graph.step(deletes[0]).map(|s| s.describe()),
        Some("delete target groups web-alb-8443-0000 left by Balancer/web".to_owned())
    );
    // Without the balancer in the manifests, both go, shown as its deletion.
    d.balancers.remove(&name("web"));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(
        describe(&plan)
            .iter()
            .any(|s| s.starts_with("delete target groups ")
                && s.contains(wanted[0].0.as_str())
                && s.contains("web-alb-8443-0000")),
        "{:?}",
        describe(&plan)
    );
    assert!(text(&plan).contains("- Balancer/web"), "{}", text(&plan));
}

#[test]
fn rolling_behind_an_application_balancer_waits_for_health_and_drains() {
    let mut d = smallpayroll();
    application_balancer(&mut d, 30);
    let o = in_place(&d, ts(SATURDAY_NOON));
    let none = run(&d, &o, SATURDAY_NOON);
    assert!(
        none.graph.is_empty(),
        "an applied application balancer plans nothing:\n{}",
        text(&none)
    );
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("alb_rolling.txt", text(&plan));
    // Each predecessor drains after its successor is healthy, and is
    // terminated only once drained.
    let ancestors = plan.graph.ancestors().unwrap();
    for id in ["i-app-1", "i-app-2"] {
        let drain = step(&plan, &format!("drain {id} from Balancer/web, up to 30s"));
        let term = step(&plan, &format!("terminate Fleet/app instance(s) {id}"));
        assert!(ancestors[term].contains(&drain), "{id}");
    }
}

#[test]
fn balancer_type_change_replaces_it_after_its_successor_is_healthy() {
    let d0 = smallpayroll();
    let o = in_place(&d0, ts(SATURDAY_NOON));
    let mut d = d0.clone();
    application_balancer(&mut d, 30);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("balancer_type_change.txt", text(&plan));
    let create = step(&plan, "create Balancer/web");
    let delete = step(&plan, "delete Balancer/web");
    let wait = step(&plan, "wait for new Fleet/app instances to be healthy");
    let ancestors = &plan.graph.ancestors().unwrap()[delete];
    assert!(ancestors.contains(&create) && ancestors.contains(&wait));
    let Some(Step::DeleteBalancer { balancer }) = plan.graph.step(delete) else {
        panic!("no delete step");
    };
    assert_eq!(balancer.cloud_name, "web", "the classic predecessor goes");
}
