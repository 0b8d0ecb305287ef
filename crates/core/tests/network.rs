//! Golden plans of the Network kind: a created network and everything
//! placed in it, one that is in place, a region without a default VPC, an
//! existing VPC's subnets, moves between subnets and public addresses,
//! and a network deleted in AWS's order.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::desired::{DeletionPolicy, Network, NetworkVpc};
use converge_core::ids::SubnetId;
use converge_core::observed::{InstanceState, Observed, ObservedSubnet};
use converge_core::plan::{PlanError, PlanInput, Ref, Step};
use converge_core::render;
use insta::assert_snapshot;
use std::collections::BTreeMap;

fn plan_err(d: &converge_core::Desired, o: &Observed) -> PlanError {
    converge_core::plan(&PlanInput::new(d, o, ts(SATURDAY_NOON))).unwrap_err()
}

#[test]
fn a_created_network_comes_first_and_everything_goes_in_it() {
    let d = with_network(smallpayroll());
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    assert_snapshot!("network_create.txt", text(&plan));
    assert_snapshot!("network_create.dot", render::dot(&plan));
    let vpc = step(&plan, "create the VPC of Network/main");
    let gateway = step(&plan, "create the internet gateway");
    let table = step(&plan, "create the public route table");
    let route = step(&plan, "route 0.0.0.0/0");
    assert!(precedes(&plan, vpc, gateway) && precedes(&plan, vpc, table));
    assert!(precedes(&plan, gateway, route) && precedes(&plan, table, route));
    // Groups are created in the new VPC.
    for g in steps(&plan, "create SecurityGroup/") {
        let Step::CreateGroup { vpc: v, .. } = &plan.graph.steps()[g] else {
            panic!("not a group create");
        };
        assert_eq!(*v, Ref::Created(vpc));
    }
    // Each launch is in its zone's private subnet, once it exists.
    for l in steps(&plan, "launch ") {
        let Step::Launch { zone, spec, .. } = &plan.graph.steps()[l] else {
            panic!("not a launch");
        };
        let want = if zone.as_str() == "us-east-1a" {
            "private-a"
        } else {
            "private-b"
        };
        let create = step(&plan, &format!("create subnet {want} "));
        assert_eq!(spec.subnet, Some(Ref::Created(create)), "{zone}");
        assert!(precedes(&plan, create, l));
    }
    // The balancer is made in the public subnets, routed to the internet.
    let balancer = step(&plan, "create Balancer/web");
    let Step::CreateBalancer { zones, subnets, .. } = &plan.graph.steps()[balancer] else {
        panic!("not a balancer create");
    };
    assert!(zones.is_empty());
    assert_eq!(subnets.len(), 2);
    for s in ["public-a", "public-b"] {
        let assoc = step(&plan, &format!("route subnet {s} "));
        assert!(precedes(&plan, assoc, balancer), "{s}");
    }
}

#[test]
fn a_network_in_place_has_no_changes() {
    let d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    let plan = run(&d, &o, SATURDAY_NOON);
    assert!(!plan.has_changes(), "{}", text(&plan));
}

#[test]
fn without_a_network_a_region_needs_a_default_vpc() {
    let d = smallpayroll();
    let err = plan_err(&d, &Observed::default());
    assert_eq!(err, PlanError::NoDefaultVpc);
    assert!(err.to_string().contains("declare a Network"), "{err}");
    // A stack with a Network needs none; one with nothing in a VPC neither.
    run(
        &with_network(smallpayroll()),
        &Observed::default(),
        SATURDAY_NOON,
    );
    let mut buckets_only = smallpayroll();
    buckets_only.security_groups.clear();
    buckets_only.fleets.clear();
    buckets_only.volumes.clear();
    buckets_only.balancers.clear();
    buckets_only.key_pairs.clear();
    run(&buckets_only, &Observed::default(), SATURDAY_NOON);
}

/// SmallPayroll in an existing VPC, its subnets observed (read by ID).
fn existing() -> (converge_core::Desired, Observed) {
    let mut d = with_network(smallpayroll());
    let ids = |n: &str| SubnetId::new(format!("subnet-{n}")).unwrap();
    d.network = Some(Network {
        name: name("main"),
        vpc: NetworkVpc::Existing {
            vpc: "vpc-0abc".parse().unwrap(),
            subnets: ["public-a", "public-b", "private-a", "private-b"]
                .into_iter()
                .map(|n| (name(n), ids(n)))
                .collect::<BTreeMap<_, _>>(),
        },
        deletion_policy: DeletionPolicy::Retain,
        tags: Default::default(),
    });
    let mut o = empty_region();
    for (n, z, c) in [
        ("public-a", "us-east-1a", "10.9.0.0/24"),
        ("public-b", "us-east-1b", "10.9.1.0/24"),
        ("private-a", "us-east-1a", "10.9.10.0/24"),
        ("private-b", "us-east-1b", "10.9.11.0/24"),
    ] {
        o.subnets.push(ObservedSubnet {
            id: ids(n),
            vpc: "vpc-0abc".parse().unwrap(),
            zone: zone(z),
            cidr: c.parse().unwrap(),
            map_public_ip: n.starts_with("public"),
            owner: None,
            name: None,
            tags: Default::default(),
        });
    }
    (d, o)
}

#[test]
fn an_existing_vpc_is_used_as_it_is() {
    let (d, o) = existing();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("network_existing.txt", text(&plan));
    let described = describe(&plan).join("\n");
    assert!(!described.contains("Network/"), "{described}");
    let l = step(&plan, "launch 1 Fleet/db");
    let Step::Launch { spec, .. } = &plan.graph.steps()[l] else {
        panic!("not a launch");
    };
    assert_eq!(
        spec.subnet,
        Some(Ref::Known(SubnetId::new("subnet-private-a").unwrap()))
    );
    // Its subnets must exist, in that VPC.
    let mut gone = o.clone();
    gone.subnets.retain(|s| s.id.as_str() != "subnet-private-b");
    assert!(matches!(
        plan_err(&d, &gone),
        PlanError::SubnetNotFound { .. }
    ));
    let mut elsewhere = o.clone();
    elsewhere.subnets[0].vpc = "vpc-0def".parse().unwrap();
    let err = plan_err(&d, &elsewhere);
    assert!(
        err.to_string().contains("not in spec.vpc vpc-0abc"),
        "{err}"
    );
}

#[test]
fn moving_a_fleet_to_other_subnets_replaces_its_instances() {
    let mut d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").subnets = vec![name("public-a"), name("public-b")];
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("network_fleet_moves_subnets.txt", text(&plan));
}

#[test]
fn an_explicit_public_address_replaces_instances_without_one() {
    let mut d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "app").public_ip = Some(true);
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("network_public_ip.txt", text(&plan));
    let l = steps(&plan, "launch 1 Fleet/app");
    let Step::Launch { spec, .. } = &plan.graph.steps()[l[0]] else {
        panic!("not a launch");
    };
    assert_eq!(spec.public_ip, Some(true));
    // The subnet's own setting (private: none) is the default: no change.
    let mut d = with_network(smallpayroll());
    fleet_mut(&mut d, "app").public_ip = Some(false);
    assert!(!run(&d, &o, SATURDAY_NOON).has_changes());
}

#[test]
fn a_subnet_made_public_is_routed_and_gives_addresses() {
    let d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    let mut d2 = d.clone();
    if let Some(Network {
        vpc: NetworkVpc::Create { subnets, .. },
        ..
    }) = &mut d2.network
    {
        subnets.get_mut(&name("private-b")).unwrap().public = true;
    }
    let plan = run(&d2, &o, SATURDAY_NOON);
    assert_snapshot!("network_subnet_made_public.txt", text(&plan));
    step(&plan, "turn on public addresses in subnet private-b");
    step(&plan, "route subnet private-b");
}

#[test]
fn destroying_deletes_the_network_last_in_order() {
    let d = with_network(smallpayroll());
    let o = in_place(&d, ts(SATURDAY_NOON));
    let empty = converge_core::Desired::empty(d.stack.clone(), d.region.clone());
    let plan = run(&empty, &o, SATURDAY_NOON);
    assert_snapshot!("network_destroy.txt", text(&plan));
    let table = step(&plan, "delete the public route table");
    let gateway = step(&plan, "delete the internet gateway");
    let vpc = step(&plan, "delete the VPC of Network/main");
    assert!(precedes(&plan, table, gateway));
    for s in steps(&plan, "delete subnet ") {
        assert!(precedes(&plan, gateway, s) && precedes(&plan, s, vpc));
    }
    for t in steps(&plan, "terminate ")
        .into_iter()
        .chain(steps(&plan, "delete SecurityGroup/"))
        .chain(steps(&plan, "delete Balancer/"))
    {
        assert!(precedes(&plan, t, table), "{}", describe(&plan)[t]);
    }
    // Retained: shown, never deleted.
    let mut kept = o.clone();
    for v in &mut kept.vpcs {
        v.tags
            .insert("converge:deletion-policy".into(), "retain".into());
    }
    let plan = run(&empty, &kept, SATURDAY_NOON);
    assert!(steps(&plan, "Network/main").is_empty());
    assert!(text(&plan).contains("Network/main"), "{}", text(&plan));
}

#[test]
fn moving_a_stack_into_a_network_replaces_its_groups_and_instances() {
    let d = smallpayroll();
    let o = in_place(&d, ts(SATURDAY_NOON));
    let plan = run(&with_network(d), &o, SATURDAY_NOON);
    assert_snapshot!("network_move_in.txt", text(&plan));
    // A classic balancer cannot move VPCs: said, and left alone.
    assert!(text(&plan).contains("cannot move VPCs"), "{}", text(&plan));
    assert!(
        steps(&plan, "Balancer/web")
            .iter()
            .all(|s| !describe(&plan)[*s].starts_with("delete"))
    );
}

// ---- declared addresses (spec.privateIps) ---------------------------------

/// SmallPayroll in its network, the db server at a declared address.
fn with_db_address(ips: &[&str]) -> converge_core::Desired {
    let mut d = with_network(smallpayroll());
    fleet_mut(&mut d, "db").private_ips = ips.iter().map(|a| a.parse().unwrap()).collect();
    d
}

/// The addresses each launch of `fleet` takes, in plan order.
fn launch_addresses(plan: &converge_core::plan::Plan, fleet: &str) -> Vec<Vec<String>> {
    steps(plan, &format!("Fleet/{fleet} instance"))
        .into_iter()
        .filter_map(|s| match &plan.graph.steps()[s] {
            Step::Launch { private_ips, .. } => {
                Some(private_ips.iter().map(|a| a.to_string()).collect())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_declared_address_is_known_when_planning_so_readers_launch_at_once() {
    let d = with_db_address(&["10.0.10.10"]);
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.10"]]);
    let shown = text(&plan);
    assert!(
        shown.contains("launch 1 in us-east-1a at 10.0.10.10"),
        "{shown}"
    );
    assert!(shown.contains("db=10.0.10.10"), "{shown}");
    assert!(!shown.contains("privateIp} (known after apply)"), "{shown}");
    // The app servers read the address from the manifests, not from the
    // db launch: they do not wait for it.
    let db = step(&plan, "launch 1 Fleet/db");
    for app in steps(&plan, "Fleet/app instance(s)") {
        assert!(!precedes(&plan, db, app), "{}", describe(&plan)[app]);
    }
}

#[test]
fn a_lost_server_comes_back_at_its_address_and_its_readers_stay() {
    let d = with_db_address(&["10.0.10.10"]);
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    instance(&mut o, "i-db-1").state = InstanceState::Terminated;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.10"]]);
    // The app and job fleets read the same address: nothing of theirs.
    assert!(steps(&plan, "Fleet/app").is_empty(), "{}", text(&plan));
    assert!(steps(&plan, "Fleet/job").is_empty(), "{}", text(&plan));
}

#[test]
fn an_address_held_while_shutting_down_is_taken_without_a_step_to_wait_for() {
    let d = with_db_address(&["10.0.10.10"]);
    let mut o = in_place(&d, ts(SATURDAY_NOON));
    instance(&mut o, "i-db-1").state = InstanceState::ShuttingDown;
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.10"]]);
    assert!(steps(&plan, "terminate").is_empty(), "{}", text(&plan));
}

#[test]
fn a_replaced_server_with_one_address_goes_before_its_successor_takes_it() {
    let mut d = with_db_address(&["10.0.10.10"]);
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "db").instance_type = "m1.large".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    assert_snapshot!("network_address_hand_over.txt", text(&plan));
    let term = step(&plan, "terminate Fleet/db");
    let launch = step(&plan, "launch 1 Fleet/db");
    assert!(precedes(&plan, term, launch));
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.10"]]);
    assert!(
        text(&plan).contains("which takes its address"),
        "{}",
        text(&plan)
    );
    assert!(steps(&plan, "Fleet/app").is_empty(), "{}", text(&plan));
}

#[test]
fn a_spare_address_lets_the_successor_run_before_its_predecessor_goes() {
    let mut d = with_db_address(&["10.0.10.10", "10.0.10.11"]);
    let o = in_place(&d, ts(SATURDAY_NOON));
    fleet_mut(&mut d, "db").instance_type = "m1.large".into();
    let plan = run(&d, &o, SATURDAY_NOON);
    let term = step(&plan, "terminate Fleet/db");
    let launch = step(&plan, "launch 1 Fleet/db");
    assert!(precedes(&plan, launch, term));
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.11"]]);
}

#[test]
fn an_instance_at_an_undeclared_address_is_replaced() {
    let plain = with_network(smallpayroll());
    let o = in_place(&plain, ts(SATURDAY_NOON));
    let d = with_db_address(&["10.0.10.10"]);
    let plan = run(&d, &o, SATURDAY_NOON);
    let shown = text(&plan);
    assert!(shown.contains("address not in spec.privateIps"), "{shown}");
    assert!(shown.contains("spec.privateIps"), "{shown}");
    assert_eq!(launch_addresses(&plan, "db"), vec![vec!["10.0.10.10"]]);
}

#[test]
fn an_address_outside_an_existing_vpc_subnet_is_refused_before_any_change() {
    let d = with_db_address(&["10.0.99.10"]);
    let err = plan_err(
        &d,
        &in_place(&with_network(smallpayroll()), ts(SATURDAY_NOON)),
    );
    assert!(
        matches!(err, PlanError::AddressOutsideSubnets { .. }),
        "{err}"
    );
    let d = with_db_address(&["10.0.10.255"]);
    let err = plan_err(&d, &empty_region());
    assert!(matches!(err, PlanError::ReservedAddress { .. }), "{err}");
    assert!(err.to_string().contains("10.0.10.0/24"), "{err}");
}
