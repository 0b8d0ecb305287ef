//! The invariants checker catches what it claims to: valid plans are
//! corrupted on purpose, one way at a time, and each corruption must be
//! reported. (A checker that never fails proves nothing.)

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::check::{Link, Problem, User, check};
use converge_core::plan::{InstanceRef, PlanInput, Produces, Step, StepGraph, StepId};
use converge_core::{Desired, Observed, Plan};
use std::collections::{BTreeMap, BTreeSet};

fn rolling() -> (Desired, Observed) {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    (d, o)
}

fn problems(d: &Desired, o: &Observed, corrupt: impl FnOnce(&mut Plan)) -> Vec<Problem> {
    let scale = BTreeMap::new();
    let input = PlanInput {
        desired: d,
        observed: o,
        at: ts(SATURDAY_NOON),
        scale: &scale,
        replace: &BTreeSet::new(),
        retire: &BTreeSet::new(),
        ..PlanInput::new(d, o, ts(SATURDAY_NOON))
    };
    let mut plan = converge_core::plan(&input).unwrap();
    assert!(
        check(&plan, &input).is_empty(),
        "the plan is valid before it is corrupted"
    );
    corrupt(&mut plan);
    check(&plan, &input)
}

/// Rebuilds the plan's graph after `f` changed its steps or edges.
fn edit_graph(p: &mut Plan, f: impl FnOnce(&mut Vec<Step>, &mut Vec<(StepId, StepId)>)) {
    let (mut steps, mut edges) = std::mem::take(&mut p.graph).into_parts();
    f(&mut steps, &mut edges);
    p.graph = StepGraph::from_parts(steps, edges);
}

/// Asserts that one of the problems found is the one expected.
fn assert_caught(found: &[Problem], expected: &str, is: impl Fn(&Problem) -> bool) {
    assert!(
        found.iter().any(is),
        "expected {expected}, got {:#?}",
        found.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

/// The ID of the first step `is` selects.
fn first(p: &Plan, is: impl Fn(&Step) -> bool) -> StepId {
    p.graph.iter().find(|(_, s)| is(s)).unwrap().0
}

#[test]
fn a_cycle_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |_, edges| {
            let (a, b) = edges[0];
            edges.push((b, a));
        })
    });
    assert_caught(&found, "a cycle", |p| matches!(p, Problem::Cycle { .. }));
}

#[test]
fn an_edge_out_of_range_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| edit_graph(p, |_, edges| edges.push((0, 999))));
    assert_caught(&found, "an edge out of range", |p| {
        matches!(p, Problem::EdgeOutOfRange { after: 999, .. })
    });
}

#[test]
fn a_predecessor_going_before_its_successor_is_healthy_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            // Cut every edge into the terminations.
            edges.retain(|(_, b)| !matches!(steps[*b], Step::Terminate { .. }));
        })
    });
    assert_caught(&found, "2 predecessors that must wait", |p| {
        matches!(
            p,
            Problem::OverBudget {
                required: 2,
                found: 0,
                ..
            }
        )
    });
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::Terminate { .. }));
        })
    });
    assert_caught(
        &found,
        "i-app-1 terminated before it is deregistered",
        |p| matches!(p, Problem::DeregisterAfterTerminate { instance, .. } if instance.as_str() == "i-app-1"),
    );
}

#[test]
fn a_reference_to_a_later_step_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            // Registering a launch no longer waits for it.
            edges.retain(|(a, b)| {
                !(matches!(steps[*a], Step::Launch { .. })
                    && matches!(steps[*b], Step::Register { .. }))
            });
        })
    });
    assert_caught(&found, "a reference to a step that runs later", |p| {
        matches!(p, Problem::ReferenceNotBefore { .. })
    });
}

#[test]
fn an_instance_terminated_twice_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            let t = steps
                .iter()
                .find(|s| matches!(s, Step::Terminate { .. }))
                .cloned()
                .unwrap();
            steps.push(t);
        })
    });
    assert_caught(&found, "an instance terminated twice", |p| {
        matches!(p, Problem::TerminatedTwice { .. })
    });
}

#[test]
fn summary_disagreeing_with_the_steps_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        for c in &mut p.changes {
            c.action = converge_core::plan::ChangeAction::NoChange;
        }
    });
    assert_caught(&found, "a summary that disagrees", |p| {
        matches!(p, Problem::SummaryMismatch { has_changes: true })
    });
}

#[test]
fn a_group_deleted_while_in_use_is_caught() {
    let mut d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    d.security_groups.get_mut(&name("web")).unwrap().description = "new".into();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::DeleteGroup { .. }));
        })
    });
    assert_caught(&found, "a group deleted while an instance is in it", |p| {
        matches!(
            p,
            Problem::DeletedWhileInUse {
                user: User::Instance(_),
                ..
            }
        )
    });
}

#[test]
fn a_volume_deleted_without_its_final_snapshot_is_caught() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let found = problems(&empty, &o, |p| {
        edit_graph(p, |steps, edges| {
            edges.retain(|(_, b)| !matches!(steps[*b], Step::DeleteVolume { .. }));
        })
    });
    assert_caught(&found, "a missing final snapshot", |p| {
        matches!(p, Problem::NoFinalSnapshot { .. })
    });
}

#[test]
fn a_dependency_on_a_missing_step_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| edit_graph(p, |_, edges| edges.push((999, 0))));
    assert_caught(&found, "step 0 depending on step 999", |p| {
        matches!(
            p,
            Problem::MissingStep { step, refers_to: 999, link: Link::Dependency } if step.id == 0
        )
    });
}

#[test]
fn a_reference_to_a_missing_or_wrong_step_is_caught() {
    let (d, o) = rolling();
    let point_register_at = |target: fn(&Plan) -> StepId| {
        move |p: &mut Plan| {
            let to = target(p);
            let register = first(p, |s| matches!(s, Step::Register { .. }));
            edit_graph(p, |steps, _| {
                if let Step::Register { instances, .. } = &mut steps[register] {
                    instances[0] = InstanceRef::Launched(to);
                }
            })
        }
    };
    let found = problems(&d, &o, point_register_at(|_| 999));
    assert_caught(&found, "a reference to step 999", |p| {
        matches!(
            p,
            Problem::MissingStep {
                refers_to: 999,
                link: Link::Reference(Produces::Instances),
                ..
            }
        )
    });
    let found = problems(
        &d,
        &o,
        point_register_at(|p| first(p, |s| matches!(s, Step::Terminate { .. }))),
    );
    assert_caught(&found, "a register naming a terminate for instances", |p| {
        matches!(
            p,
            Problem::WrongReference {
                wants: Produces::Instances,
                ..
            }
        )
    });
}

#[test]
fn a_repeated_idempotency_token_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            let mut launches = steps.iter_mut().filter_map(|s| match s {
                Step::Launch { token, .. } => Some(token),
                _ => None,
            });
            let a = launches.next().unwrap().clone();
            *launches.next().unwrap() = a;
        })
    });
    assert_caught(
        &found,
        "two launches with one token",
        |p| matches!(p, Problem::DuplicateToken { steps, .. } if steps.len() == 2),
    );
    // From nothing, every volume and distribution is created: one more
    // create of each with the same token or caller reference.
    let d = smallpayroll();
    let found = problems(&d, &empty_region(), |p| {
        edit_graph(p, |steps, _| {
            let again: Vec<Step> = steps
                .iter()
                .filter(|s| {
                    matches!(
                        s,
                        Step::CreateVolume { .. } | Step::CreateDistribution { .. }
                    )
                })
                .cloned()
                .collect();
            assert_eq!(again.len(), 2);
            steps.extend(again);
        })
    });
    for kind in ["create Volume/pgdata", "create Cdn/assets"] {
        assert_caught(
            &found,
            kind,
            |p| matches!(p, Problem::DuplicateToken { steps, .. } if steps[0].description == kind),
        );
    }
}

/// A ModifyVolume of the stack's volume, as the planner would not make
/// it here.
fn modify_pgdata(o: &Observed, size_gib: u32, iops: Option<u32>) -> Step {
    Step::ModifyVolume {
        name: name("pgdata"),
        volume: o.volumes[0].id.clone(),
        size_gib,
        volume_type: converge_core::desired::VolumeType::Gp3,
        iops,
        throughput: Some(125),
    }
}

#[test]
fn a_volume_shrunk_or_modified_too_soon_or_out_of_range_is_caught() {
    use converge_core::observed::{ModificationState, VolumeModification};
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| steps.push(modify_pgdata(&o, 10, Some(3000))))
    });
    assert_caught(&found, "a shrink", |p| {
        matches!(
            p,
            Problem::VolumeShrunk {
                from_gib: 20,
                to_gib: 10,
                ..
            }
        )
    });
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            steps.push(modify_pgdata(&o, 20, Some(12_000)))
        })
    });
    assert_caught(&found, "more IOPS than 20 GiB allow", |p| {
        matches!(p, Problem::EbsRuleBroken { .. })
    });
    // Modified an hour ago: the next waits five more hours.
    o.volumes[0].modification = Some(VolumeModification {
        state: ModificationState::Completed,
        started_at: ts("2026-03-07T16:00:00Z"),
    });
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| steps.push(modify_pgdata(&o, 30, Some(3000))))
    });
    assert_caught(&found, "a modification within six hours", |p| {
        matches!(p, Problem::ModifiedTooSoon { .. })
    });
}

#[test]
fn an_unencrypted_restore_of_an_encrypted_snapshot_is_caught() {
    use converge_core::desired::Encryption;
    use converge_core::observed::{ObservedSnapshot, SnapshotState};
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    o.volumes.clear();
    let snap: converge_core::ids::SnapshotId = "snap-0123456789abcdef0".into();
    o.snapshots.push(ObservedSnapshot {
        id: snap.clone(),
        volume: name("pgdata"),
        volume_id: "vol-pgdata".into(),
        state: SnapshotState::Completed,
        encrypted: true,
        started_at: ts("2026-03-07T08:00:00Z"),
        tags: Default::default(),
    });
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            for s in steps.iter_mut() {
                if let Step::CreateVolume {
                    from_snapshot,
                    encryption,
                    ..
                } = s
                {
                    *from_snapshot = Some(snap.clone());
                    *encryption = Encryption::Unencrypted;
                }
            }
        })
    });
    assert_caught(&found, "an unencrypted restore", |p| {
        matches!(p, Problem::UnencryptedRestore { .. })
    });
}

#[test]
fn a_delete_its_policy_retains_is_caught() {
    // With the manifests gone, the bucket's policy (retain) keeps it, and
    // so does the volume's once its tag says retain.
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let empty = Desired::empty(d.stack.clone(), d.region.clone());
    let volume = o.volumes[0].id.clone();
    o.volumes[0].tags.insert(
        converge_core::ids::tags::DELETION_POLICY.into(),
        "retain".into(),
    );
    let found = problems(&empty, &o, |p| {
        edit_graph(p, |steps, _| {
            steps.push(Step::DeleteBucket {
                name: name("smallpayroll-assets"),
            });
            steps.push(Step::DeleteVolume {
                name: name("pgdata"),
                volume,
            });
        })
    });
    for kind in ["delete Bucket/smallpayroll-assets", "delete Volume/pgdata"] {
        assert_caught(
            &found,
            kind,
            |p| matches!(p, Problem::RetainedDeleted { step, .. } if step.description == kind),
        );
    }
}

#[test]
fn a_plan_with_a_problem_is_refused_whole_and_says_why() {
    let (d, o) = rolling();
    let input = PlanInput::new(&d, &o, ts(SATURDAY_NOON));
    let plan = converge_core::plan(&input).unwrap();
    let valid = converge_core::checked(plan.clone(), &input).unwrap();
    assert_eq!(valid, plan, "a valid plan passes unchanged");
    let mut broken = plan;
    edit_graph(&mut broken, |_, edges| edges.push((0, 999)));
    let refused = converge_core::checked(broken, &input).unwrap_err();
    assert!(!refused.0.is_empty());
    let message = refused.to_string();
    assert!(message.contains("was not carried out"), "{message}");
    assert!(message.contains("999"), "the problem is named: {message}");
}

#[test]
fn an_in_place_change_of_an_instance_that_goes_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            steps.push(Step::SetMetadataOptions {
                fleet: "app".into(),
                instance: "i-app-1".into(),
                metadata: converge_core::desired::MetadataOptions::DEFAULT,
            });
        })
    });
    assert_caught(
        &found,
        "ChangesTerminated",
        |p| matches!(p, Problem::ChangesTerminated { instance, .. } if instance.as_str() == "i-app-1"),
    );
}

/// SmallPayroll in its own network, in place, and the manifests emptied:
/// a destroy that deletes the network.
fn network_destroy() -> (Desired, Observed) {
    let d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    (Desired::empty(d.stack.clone(), d.region.clone()), o)
}

#[test]
fn a_network_deleted_before_the_stack_left_it_is_caught() {
    let (d, o) = network_destroy();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            // The VPC no longer waits for anything.
            let vpc = steps
                .iter()
                .position(|s| matches!(s, Step::DeleteVpc { .. }))
                .unwrap();
            edges.retain(|(_, b)| *b != vpc);
        })
    });
    assert_caught(
        &found,
        "a VPC deleted too early",
        |p| matches!(p, Problem::NetworkDeletedBeforeLeft { step, .. } if step.description.contains("delete the VPC")),
    );
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, edges| {
            let table = steps
                .iter()
                .position(|s| matches!(s, Step::DeleteRouteTable { .. }))
                .unwrap();
            edges.retain(|(_, b)| *b != table);
        })
    });
    assert_caught(
        &found,
        "a route table deleted before instances go",
        |p| matches!(p, Problem::NetworkDeletedBeforeLeft { first, .. } if first.description.starts_with("terminate")),
    );
}

#[test]
fn a_launch_in_the_wrong_subnet_is_caught() {
    let mut d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").image = "ami-2b3c4d5e".into();
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            for s in steps.iter_mut() {
                if let Step::Launch { zone, spec, .. } = s
                    && zone.as_str() == "us-east-1a"
                {
                    spec.subnet = Some(converge_core::plan::Ref::Known(subnet_id("private-b")));
                }
            }
        })
    });
    assert_caught(&found, "a launch in another zone's subnet", |p| {
        matches!(p, Problem::LaunchInWrongSubnet { .. })
    });
    let found = problems(&d, &o, |p| {
        edit_graph(p, |steps, _| {
            for s in steps.iter_mut() {
                if let Step::Launch { spec, .. } = s {
                    spec.subnet = None;
                }
            }
        })
    });
    assert_caught(&found, "a launch without a subnet", |p| {
        matches!(p, Problem::LaunchWithoutSubnet { .. })
    });
}

#[test]
fn a_termination_before_its_member_drained_is_caught() {
    let (d, o) = rolling();
    let found = problems(&d, &o, |p| {
        let drain = first(p, |s| matches!(s, Step::WaitDrained { .. }));
        edit_graph(p, |_, edges| edges.retain(|&(from, _)| from != drain));
    });
    assert_caught(&found, "a termination before its drain", |p| {
        matches!(p, Problem::TerminatedBeforeDrained { .. })
    });
}

/// The record `www` of stack `shop`, adopted from the existing zone
/// example.com where it has 192.0.2.10 at a day's TTL, declared with
/// 192.0.2.20: the plan lowers the TTL first.
fn dns_cutover() -> (Desired, Observed) {
    use converge_core::desired::{DeletionPolicy, Template};
    use converge_core::route53::{
        Cutover, DnsRecordSpec, ObservedZone, RecordSet, RecordTarget, RecordType, ZoneRef,
    };
    let mut d = Desired::empty(name("shop"), "us-east-1".into());
    d.dns_records.insert(
        name("www"),
        DnsRecordSpec {
            zone: ZoneRef::Existing("example.com".into()),
            name: "www.example.com".into(),
            rtype: RecordType::A,
            target: RecordTarget::Values(vec![Template::literal("192.0.2.20")]),
            ttl: 300,
            cutover: Cutover::default(),
            adopt: true,
            deletion_policy: DeletionPolicy::Delete,
        },
    );
    let o = Observed {
        dns_zones: vec![ObservedZone {
            id: "Z0EXISTING".into(),
            domain: "example.com".into(),
            name_servers: vec!["ns-1.awsdns-01.com".into()],
            owner: None,
            tags: Default::default(),
            records: vec![RecordSet {
                name: "www.example.com".into(),
                rtype: RecordType::A,
                ttl: Some(86400),
                values: vec!["192.0.2.10".into()],
                alias: None,
            }],
        }],
        ..empty_region()
    };
    (d, o)
}

/// The record changes of the plan's one change-records step.
fn record_changes(
    p: &mut Plan,
    f: impl FnOnce(&mut Vec<converge_core::plan::PlannedRecordChange>),
) {
    edit_graph(p, |steps, _| {
        let changes = steps
            .iter_mut()
            .find_map(|s| match s {
                Step::ChangeRecords { changes, .. } => Some(changes),
                _ => None,
            })
            .unwrap();
        f(changes);
    });
}

#[test]
fn a_record_switched_before_its_cutover_allows_is_caught() {
    use converge_core::plan::UserDataPart;
    let (d, o) = dns_cutover();
    let found = problems(&d, &o, |p| {
        record_changes(p, |changes| {
            changes[0].values = vec![vec![UserDataPart::Text("192.0.2.20".into())]];
        })
    });
    assert_caught(&found, "a switch without lowering first", |p| {
        matches!(p, Problem::CutoverSkipped { .. })
    });
}

#[test]
fn a_record_written_without_its_mark_is_caught() {
    let (d, o) = dns_cutover();
    let found = problems(&d, &o, |p| record_changes(p, |changes| changes.truncate(1)));
    assert_caught(&found, "a record without its mark", |p| {
        matches!(p, Problem::RecordWithoutMark { .. })
    });
}

#[test]
fn a_record_changed_without_ownership_or_adopt_is_caught() {
    let (d, o) = dns_cutover();
    let plan = converge_core::plan(&PlanInput::new(&d, &o, ts(SATURDAY_NOON))).unwrap();
    // The same plan, checked against manifests that do not adopt.
    let mut refusing = d.clone();
    refusing.dns_records.get_mut(&name("www")).unwrap().adopt = false;
    let found = check(&plan, &PlanInput::new(&refusing, &o, ts(SATURDAY_NOON)));
    assert_caught(&found, "an unowned record changed", |p| {
        matches!(p, Problem::UnownedRecordChanged { .. })
    });
}

#[test]
fn a_zone_deleted_before_its_records_is_caught() {
    use converge_core::ids::Kind;
    use converge_core::ids::tags;
    use converge_core::observed::Owner;
    use converge_core::route53::{Mark, ObservedZone, RecordSet, RecordType};
    let d = Desired::empty(name("shop"), "us-east-1".into());
    let www = RecordSet {
        name: "www.shop.example".into(),
        rtype: RecordType::A,
        ttl: Some(300),
        values: vec!["192.0.2.10".into()],
        alias: None,
    };
    let mark = Mark {
        stack: name("shop"),
        record: name("www"),
        retain: false,
        stage: None,
        pending: false,
    };
    let zone_tags = |policy: &str| {
        [
            (tags::STACK, "shop"),
            (tags::KIND, "DnsZone"),
            (tags::NAME, "main"),
            (tags::DELETION_POLICY, policy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let world = |policy: &str| Observed {
        dns_zones: vec![ObservedZone {
            id: "Z0MAIN".into(),
            domain: "shop.example".into(),
            name_servers: vec!["ns-1.awsdns-01.com".into()],
            owner: Some(Owner {
                stack: name("shop"),
                kind: Kind::DnsZone,
                name: name("main"),
            }),
            tags: zone_tags(policy),
            records: vec![
                www.clone(),
                mark.record_set("www.shop.example", RecordType::A),
            ],
        }],
        ..empty_region()
    };
    let o = world("delete");
    let found = problems(&d, &o, |p| {
        let zone = first(p, |s| matches!(s, Step::DeleteZone { .. }));
        edit_graph(p, |_, edges| edges.retain(|&(_, to)| to != zone));
    });
    assert_caught(&found, "a zone deleted before its records", |p| {
        matches!(p, Problem::ZoneDeletedBeforeRecords { .. })
    });
    // A zone its policy retains is not deleted: one made to is caught.
    let plan = converge_core::plan(&PlanInput::new(&d, &o, ts(SATURDAY_NOON))).unwrap();
    let retained = world("retain");
    let found = check(&plan, &PlanInput::new(&d, &retained, ts(SATURDAY_NOON)));
    assert_caught(&found, "a retained zone deleted", |p| {
        matches!(p, Problem::RetainedDeleted { .. })
    });
}

#[test]
fn a_certificate_deleted_while_a_listener_uses_it_is_caught() {
    use converge_core::acm::{CertificateStatus, ObservedCertificate};
    use converge_core::desired::{Listener, ListenerProtocol};
    use converge_core::ids::Kind;
    let d = smallpayroll();
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    let arn = "arn:aws:acm:us-east-1:123456789012:certificate/0ld";
    balancer(&mut o, "web").listeners.push(Listener {
        port: 443,
        instance_port: 80,
        protocol: ListenerProtocol::Https,
        certificate: Some(arn.into()),
    });
    o.certificates.push(ObservedCertificate {
        arn: arn.into(),
        region: "us-east-1".into(),
        domains: vec!["www.smallpayroll.example".into()],
        status: CertificateStatus::Issued,
        validation: Vec::new(),
        owner: Some(owner(&d, Kind::Certificate, &name("www"))),
        tags: tags_for(&d, Kind::Certificate, &name("www"), &Default::default()),
        in_use_by: Vec::new(),
    });
    // The plan as made keeps the rule.
    assert!(problems(&d, &o, |_| {}).is_empty());
    let found = problems(&d, &o, |p| {
        let delete = first(p, |s| matches!(s, Step::DeleteCertificate { .. }));
        edit_graph(p, |_, edges| edges.retain(|&(_, to)| to != delete));
    });
    assert_caught(&found, "a certificate deleted while in use", |p| {
        matches!(p, Problem::CertificateDeletedInUse { .. })
    });
}

#[test]
fn a_declared_address_taken_while_held_or_not_declared_is_caught() {
    // The db server replaced with its one declared address: its
    // predecessor goes first and hands the address over.
    let mut d = with_network(smallpayroll());
    fleet_mut(&mut d, "db").private_ips = vec!["10.0.10.10".parse().unwrap()];
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "db").instance_type = "m1.large".into();
    let is_db_launch = |s: &Step| matches!(s, Step::Launch { fleet, .. } if fleet.as_str() == "db");
    let found = problems(&d, &o, |p| {
        let launch = first(p, is_db_launch);
        edit_graph(p, |_, edges| edges.retain(|(_, b)| *b != launch));
    });
    assert_caught(
        &found,
        "10.0.10.10 taken while i-db-1 holds it",
        |p| matches!(p, Problem::AddressTakenWhileHeld { holder, .. } if holder.as_str() == "i-db-1"),
    );
    let found = problems(&d, &o, |p| {
        let launch = first(p, is_db_launch);
        edit_graph(p, |steps, _| {
            if let Step::Launch { private_ips, .. } = &mut steps[launch] {
                *private_ips = vec!["10.0.10.99".parse().unwrap(), "10.0.10.10".parse().unwrap()];
            }
        });
    });
    assert_caught(&found, "an undeclared address", |p| {
        matches!(p, Problem::UndeclaredAddress { .. })
    });
    assert_caught(&found, "two addresses for one instance", |p| {
        matches!(
            p,
            Problem::LaunchAddressCount {
                count: 1,
                addresses: 2,
                ..
            }
        )
    });
}
