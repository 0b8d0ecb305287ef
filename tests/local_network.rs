//! The local cloud's network rules, each as AWS has it: VPC and subnet
//! blocks (sizes, inside the VPC, no overlap), a subnet in one zone and an
//! instance's subnet in its zone, groups and instances in one VPC, the
//! five addresses AWS reserves in every subnet, a gateway detached before
//! it is deleted, a route table and a VPC deleted only when empty, and a
//! default VPC in every region unless removed.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, LocalError};
use converge::cloud::{Cloud, CloudError, ErrorKind, Op, Outcome, VpcAttribute};
use converge::core::desired::Tags;
use converge::core::ids::{
    GatewayId, GroupId, InstanceId, Kind, ResourceName, RouteTableId, SubnetId, VpcId, Zone,
};
use converge::core::net::Ipv4Cidr;
use converge::core::observed::Owner;
use converge::sys::ManualClock;
use jiff::Timestamp;
use std::sync::Arc;

fn cloud() -> LocalCloud {
    let t0: Timestamp = "2026-03-09T12:00:00Z".parse().unwrap();
    LocalCloud::in_memory(
        LocalConfig {
            region: "us-east-1".into(),
            delays: Delays::zero(),
            faults: Faults::default(),
        },
        Arc::new(ManualClock::new(t0)),
    )
}

fn block(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn owned(kind: Kind, name: &str) -> Tags {
    Owner {
        stack: ResourceName::from("shop"),
        kind,
        name: ResourceName::new(name).unwrap(),
    }
    .to_tags()
}

fn assert_error(r: Result<Outcome, CloudError>, kind: ErrorKind, code: &str) -> CloudError {
    let e = r.expect_err("the call should fail");
    assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e}");
    e
}

async fn vpc(c: &LocalCloud, cidr: &str) -> VpcId {
    let op = Op::CreateVpc {
        cidr: block(cidr),
        tags: owned(Kind::Network, "main"),
    };
    match c.act(&op).await.unwrap() {
        Outcome::Vpc(v) => v,
        other => panic!("{other:?}"),
    }
}

fn subnet_op(vpc: &VpcId, zone: &str, cidr: &str) -> Op {
    Op::CreateSubnet {
        vpc: vpc.clone(),
        zone: Zone::new(zone).unwrap(),
        cidr: block(cidr),
        tags: owned(Kind::Network, "main"),
    }
}

async fn subnet(c: &LocalCloud, vpc: &VpcId, zone: &str, cidr: &str) -> SubnetId {
    match c.act(&subnet_op(vpc, zone, cidr)).await.unwrap() {
        Outcome::Subnet(s) => s,
        other => panic!("{other:?}"),
    }
}

async fn group(c: &LocalCloud, vpc: &VpcId, name: &str) -> GroupId {
    let op = Op::CreateGroup {
        name: name.parse().unwrap(),
        vpc: vpc.clone(),
        description: "web".into(),
        tags: owned(Kind::SecurityGroup, "web"),
    };
    match c.act(&op).await.unwrap() {
        Outcome::Group(g) => g,
        other => panic!("{other:?}"),
    }
}

fn run_op(
    zone: &str,
    subnet: Option<&SubnetId>,
    groups: &[GroupId],
    count: u32,
    token: &str,
) -> Op {
    Op::RunInstances {
        image: "ami-147f977d".into(),
        instance_type: "m1.small".into(),
        key_name: None,
        groups: groups.to_vec(),
        user_data: String::new(),
        zone: Zone::new(zone).unwrap(),
        subnet: subnet.cloned(),
        public_ip: None,
        private_ip: None,
        count,
        tags: owned(Kind::Fleet, "app"),
        client_token: token.into(),
        instance_profile: None,
        metadata: converge::core::desired::MetadataOptions::DEFAULT,
        root_volume: None,
    }
}

async fn run(c: &LocalCloud, op: &Op) -> Vec<InstanceId> {
    match c.act(op).await.unwrap() {
        Outcome::Instances(launched) => launched.into_iter().map(|l| l.id).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn vpc_and_subnet_blocks_follow_aws_sizes_containment_and_overlap() {
    let c = cloud();
    for bad in ["10.0.0.0/15", "10.0.0.0/29"] {
        let op = Op::CreateVpc {
            cidr: block(bad),
            tags: Tags::new(),
        };
        assert_error(c.act(&op).await, ErrorKind::Invalid, "InvalidVpc.Range");
    }
    let v = vpc(&c, "10.0.0.0/16").await;
    subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    for (cidr, code) in [
        ("10.1.0.0/24", "InvalidSubnet.Range"),
        ("10.0.2.0/29", "InvalidSubnet.Range"),
        ("10.0.1.128/25", "InvalidSubnet.Conflict"),
        ("10.0.0.0/16", "InvalidSubnet.Conflict"),
    ] {
        assert_error(
            c.act(&subnet_op(&v, "us-east-1b", cidr)).await,
            ErrorKind::Invalid,
            code,
        );
    }
    assert_error(
        c.act(&subnet_op(&v, "us-west-2a", "10.0.9.0/24")).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    // DNS host names need DNS support, which a new VPC has.
    let op = Op::ModifyVpcAttribute {
        vpc: v.clone(),
        attribute: VpcAttribute::DnsHostnames,
    };
    c.act(&op).await.unwrap();
}

#[tokio::test]
async fn an_instance_goes_in_its_zones_subnet_with_groups_of_that_vpc() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let a = subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    let g = group(&c, &v, "shop-web").await;
    // A subnet of another zone is refused.
    let e = assert_error(
        c.act(&run_op(
            "us-east-1b",
            Some(&a),
            std::slice::from_ref(&g),
            1,
            "t1",
        ))
        .await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    assert!(e.message.contains("us-east-1a"), "{e}");
    // A group of another VPC (the default one) is refused.
    let default = VpcId::from("vpc-default-us-east-1");
    let other = group(&c, &default, "shop-web").await;
    assert_error(
        c.act(&run_op(
            "us-east-1a",
            Some(&a),
            std::slice::from_ref(&other),
            1,
            "t2",
        ))
        .await,
        ErrorKind::Invalid,
        "InvalidParameter",
    );
    // The same group name is fine in another VPC; not twice in one.
    let dup = Op::CreateGroup {
        name: "shop-web".parse().unwrap(),
        vpc: v.clone(),
        description: "web".into(),
        tags: Tags::new(),
    };
    assert_error(
        c.act(&dup).await,
        ErrorKind::AlreadyExists,
        "InvalidGroup.Duplicate",
    );
    let ids = run(
        &c,
        &run_op("us-east-1a", Some(&a), std::slice::from_ref(&g), 2, "t3"),
    )
    .await;
    let seen = c.instances(&ids).await.unwrap();
    for i in &seen {
        assert_eq!(i.subnet.as_ref(), Some(&a));
        let ip = i.private_ip.unwrap();
        assert!(block("10.0.1.0/24").contains_addr(ip), "{ip}");
        // The first four addresses are AWS's.
        assert!(ip.octets()[3] >= 4, "{ip}");
        // A private subnet gives no public address.
        assert_eq!(i.public_ip, None);
    }
    // Moving an instance to a group of another VPC is refused.
    let op = Op::SetInstanceGroups {
        instance: ids[0].clone(),
        groups: vec![other],
    };
    assert_error(
        c.act(&op).await,
        ErrorKind::Invalid,
        "InvalidGroup.NotFound",
    );
}

#[tokio::test]
async fn a_subnet_holds_its_size_less_the_five_addresses_aws_reserves() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let tiny = subnet(&c, &v, "us-east-1a", "10.0.1.0/28").await;
    // A /28 has 16 addresses, 11 usable.
    assert_error(
        c.act(&run_op("us-east-1a", Some(&tiny), &[], 12, "big"))
            .await,
        ErrorKind::Invalid,
        "InsufficientFreeAddressesInSubnet",
    );
    let ids = run(&c, &run_op("us-east-1a", Some(&tiny), &[], 11, "fits")).await;
    assert_eq!(ids.len(), 11);
    let seen = c.instances(&ids).await.unwrap();
    assert!(seen.iter().all(|i| i.private_ip.unwrap().octets()[3] != 15));
}

#[tokio::test]
async fn public_subnets_and_explicit_addresses() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let a = subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    let op = Op::ModifySubnetAttribute {
        subnet: a.clone(),
        map_public_ip: true,
    };
    c.act(&op).await.unwrap();
    let ids = run(&c, &run_op("us-east-1a", Some(&a), &[], 1, "p1")).await;
    assert!(c.instances(&ids).await.unwrap()[0].public_ip.is_some());
    let mut op = run_op("us-east-1a", Some(&a), &[], 1, "p2");
    if let Op::RunInstances { public_ip, .. } = &mut op {
        *public_ip = Some(false);
    }
    let ids = run(&c, &op).await;
    assert_eq!(c.instances(&ids).await.unwrap()[0].public_ip, None);
}

async fn gateway(c: &LocalCloud) -> GatewayId {
    let op = Op::CreateInternetGateway {
        tags: owned(Kind::Network, "main"),
    };
    match c.act(&op).await.unwrap() {
        Outcome::Gateway(g) => g,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gateways_attach_once_and_are_detached_before_they_are_deleted() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let a = subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    let g = gateway(&c).await;
    let attach = Op::AttachInternetGateway {
        gateway: g.clone(),
        vpc: v.clone(),
    };
    c.act(&attach).await.unwrap();
    assert_error(
        c.act(&attach).await,
        ErrorKind::Invalid,
        "Resource.AlreadyAssociated",
    );
    let g2 = gateway(&c).await;
    let second = Op::AttachInternetGateway {
        gateway: g2,
        vpc: v.clone(),
    };
    assert_error(
        c.act(&second).await,
        ErrorKind::Invalid,
        "Resource.AlreadyAssociated",
    );
    let delete = Op::DeleteInternetGateway { gateway: g.clone() };
    assert_error(
        c.act(&delete).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    // While an instance has a public address, the gateway stays attached.
    let mut op = run_op("us-east-1a", Some(&a), &[], 1, "pub");
    if let Op::RunInstances { public_ip, .. } = &mut op {
        *public_ip = Some(true);
    }
    let ids = run(&c, &op).await;
    let detach = Op::DetachInternetGateway {
        gateway: g.clone(),
        vpc: v.clone(),
    };
    assert_error(
        c.act(&detach).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    c.act(&Op::TerminateInstances { ids }).await.unwrap();
    c.act(&detach).await.unwrap();
    c.act(&delete).await.unwrap();
}

#[tokio::test]
async fn route_tables_route_to_their_vpcs_gateway_and_go_once_disassociated() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let other = vpc(&c, "10.1.0.0/16").await;
    let a = subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    let elsewhere = subnet(&c, &other, "us-east-1a", "10.1.1.0/24").await;
    let create = Op::CreateRouteTable {
        vpc: v.clone(),
        tags: owned(Kind::Network, "main"),
        client_token: "rt".into(),
    };
    let Outcome::RouteTable(rt) = c.act(&create).await.unwrap() else {
        panic!("no route table");
    };
    // The same token answers the same table.
    assert_eq!(
        c.act(&create).await.unwrap(),
        Outcome::RouteTable(rt.clone())
    );
    let g = gateway(&c).await;
    let route = Op::CreateRoute {
        route_table: rt.clone(),
        destination: block("0.0.0.0/0"),
        gateway: g.clone(),
    };
    // A gateway not attached to the table's VPC is refused.
    assert_error(
        c.act(&route).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    let attach = Op::AttachInternetGateway {
        gateway: g,
        vpc: v.clone(),
    };
    c.act(&attach).await.unwrap();
    c.act(&route).await.unwrap();
    let assoc = |s: &SubnetId, rt: &RouteTableId| Op::AssociateRouteTable {
        route_table: rt.clone(),
        subnet: s.clone(),
    };
    assert_error(
        c.act(&assoc(&elsewhere, &rt)).await,
        ErrorKind::Invalid,
        "InvalidParameterValue",
    );
    let Outcome::Association(id) = c.act(&assoc(&a, &rt)).await.unwrap() else {
        panic!("no association");
    };
    let delete = Op::DeleteRouteTable {
        route_table: rt.clone(),
    };
    assert_error(
        c.act(&delete).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    c.act(&Op::DisassociateRouteTable { association: id })
        .await
        .unwrap();
    c.act(&delete).await.unwrap();
}

#[tokio::test]
async fn a_vpc_and_its_subnets_are_deleted_only_when_empty() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let a = subnet(&c, &v, "us-east-1a", "10.0.1.0/24").await;
    let g = group(&c, &v, "shop-web").await;
    let ids = run(
        &c,
        &run_op("us-east-1a", Some(&a), std::slice::from_ref(&g), 1, "i"),
    )
    .await;
    let del_subnet = Op::DeleteSubnet { subnet: a.clone() };
    let del_vpc = Op::DeleteVpc { vpc: v.clone() };
    assert_error(
        c.act(&del_subnet).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    assert_error(
        c.act(&del_vpc).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    c.act(&Op::TerminateInstances { ids }).await.unwrap();
    c.act(&del_subnet).await.unwrap();
    // The group is still in it.
    assert_error(
        c.act(&del_vpc).await,
        ErrorKind::InvalidState,
        "DependencyViolation",
    );
    c.act(&Op::DeleteGroup { group: g }).await.unwrap();
    c.act(&del_vpc).await.unwrap();
}

#[tokio::test]
async fn every_region_has_a_default_vpc_unless_it_is_removed() {
    let c = cloud();
    let o = c.observe(&ResourceName::from("shop")).await.unwrap();
    let default = o.default_vpc.clone().unwrap();
    // Without a subnet, instances go in the zone's default subnet.
    let g = group(&c, &default, "shop-web").await;
    let ids = run(
        &c,
        &run_op("us-east-1a", None, std::slice::from_ref(&g), 1, "d"),
    )
    .await;
    // Not removed while anything is in it.
    assert!(matches!(
        c.remove_default_vpc(),
        Err(LocalError::Refused(_))
    ));
    c.act(&Op::TerminateInstances { ids }).await.unwrap();
    c.act(&Op::DeleteGroup { group: g }).await.unwrap();
    assert_eq!(c.remove_default_vpc().unwrap(), default);
    let o = c.observe(&ResourceName::from("shop")).await.unwrap();
    assert_eq!(o.default_vpc, None);
    // Then a launch or a group needs a VPC named.
    assert_error(
        c.act(&run_op("us-east-1a", None, &[], 1, "none")).await,
        ErrorKind::Invalid,
        "VPCIdNotSpecified",
    );
    let op = Op::CreateGroup {
        name: "shop-db".parse().unwrap(),
        vpc: default,
        description: "db".into(),
        tags: Tags::new(),
    };
    assert_error(
        c.act(&op).await,
        ErrorKind::NotFound,
        "InvalidVpcID.NotFound",
    );
}

#[tokio::test]
async fn local_add_vpc_follows_the_same_rules() {
    let c = cloud();
    let (v, subnets) = c
        .add_vpc(
            block("10.5.0.0/16"),
            &[
                (Zone::from("us-east-1a"), block("10.5.1.0/24")),
                (Zone::from("us-east-1b"), block("10.5.2.0/24")),
            ],
        )
        .unwrap();
    assert_eq!(subnets.len(), 2);
    let found = c.subnets(&subnets).await.unwrap();
    assert!(found.iter().all(|s| s.vpc == v && s.owner.is_none()));
    // Overlapping subnets are refused, and nothing is made.
    let r = c.add_vpc(
        block("10.6.0.0/16"),
        &[
            (Zone::from("us-east-1a"), block("10.6.1.0/24")),
            (Zone::from("us-east-1b"), block("10.6.1.0/25")),
        ],
    );
    assert!(matches!(r, Err(LocalError::Refused(e)) if e.code == "InvalidSubnet.Conflict"));
}

/// An instance at a declared address, as RunInstances' PrivateIpAddress.
fn at_address(subnet: &SubnetId, groups: &[GroupId], count: u32, ip: &str, token: &str) -> Op {
    let mut op = run_op("us-east-1a", Some(subnet), groups, count, token);
    if let Op::RunInstances { private_ip, .. } = &mut op {
        *private_ip = Some(ip.parse().unwrap());
    }
    op
}

#[tokio::test]
async fn a_declared_address_is_one_instance_s_inside_its_subnet_and_free_once_terminated() {
    let c = cloud();
    let v = vpc(&c, "10.0.0.0/16").await;
    let s = subnet(&c, &v, "us-east-1a", "10.0.10.0/24").await;
    let g = group(&c, &v, "web").await;
    let g = std::slice::from_ref(&g);
    // EC2's rules for PrivateIpAddress: a single instance, inside the
    // subnet's block, not one of the five it reserves.
    let two = c.act(&at_address(&s, g, 2, "10.0.10.10", "t1")).await;
    assert_error(two, ErrorKind::Invalid, "InvalidParameterCombination");
    for ip in ["10.0.11.10", "10.0.10.0", "10.0.10.3", "10.0.10.255"] {
        let r = c.act(&at_address(&s, g, 1, ip, "t2")).await;
        assert_error(r, ErrorKind::Invalid, "InvalidParameterValue");
    }
    let first = run(&c, &at_address(&s, g, 1, "10.0.10.10", "t3")).await;
    let seen = c.instances(&first).await.unwrap();
    assert_eq!(seen[0].private_ip, "10.0.10.10".parse().ok());
    // Held while the instance lives: not ready, for the launch to retry.
    let held = c.act(&at_address(&s, g, 1, "10.0.10.10", "t4")).await;
    assert_error(held, ErrorKind::InvalidState, "InvalidIPAddress.InUse");
    // The same token answers the first launch again, as EC2 does.
    assert_eq!(
        run(&c, &at_address(&s, g, 1, "10.0.10.10", "t3")).await,
        first
    );
    c.act(&Op::TerminateInstances { ids: first }).await.unwrap();
    let again = run(&c, &at_address(&s, g, 1, "10.0.10.10", "t5")).await;
    let seen = c.instances(&again).await.unwrap();
    assert_eq!(seen[0].private_ip, "10.0.10.10".parse().ok());
}
