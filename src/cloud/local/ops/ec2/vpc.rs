//! EC2 networking: VPCs, subnets, internet gateways and route tables, with
//! AWS's rules. A VPC's block is `/16` to `/28`; a subnet's too, inside
//! its VPC's and overlapping no other subnet of it
//! (<https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html>);
//! a gateway attaches to one VPC and must be detached before it is
//! deleted; a route table with associations, a subnet with instances or
//! balancers, and a VPC with anything left in it answer
//! `DependencyViolation` (a not-ready the executor retries).

use crate::cloud::local::ops::tags::check_tags;
use crate::cloud::local::ops::{Ctx, Errs, check_zone};
use crate::cloud::local::world::{Gateway, RouteTable, Subnet, Vpc, World};
use crate::cloud::{CloudError, Outcome, VpcAttribute};
use converge_core::desired::Tags;
use converge_core::ids::{GatewayId, RouteTableAssociationId, RouteTableId, SubnetId, VpcId, Zone};
use converge_core::net::Ipv4Cidr;
use std::collections::BTreeMap;

/// The block sizes AWS allows for VPCs and subnets.
const PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

pub(crate) fn create_vpc(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    cidr: Ipv4Cidr,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    if !PREFIXES.contains(&cidr.prefix()) {
        return Err(e.invalid(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid: a VPC's block is /16 to /28."),
        ));
    }
    check_tags(e, tags)?;
    let id: VpcId = e.id(format!("vpc-{}", w.next_hex(17)))?;
    w.vpcs.insert(id.clone(), new_vpc(&id, cx, cidr, tags));
    Ok(Outcome::Vpc(id))
}

/// A VPC record, DNS support on and DNS host names off, as CreateVpc
/// makes them.
pub(crate) fn new_vpc(id: &VpcId, cx: &Ctx<'_>, cidr: Ipv4Cidr, tags: &Tags) -> Vpc {
    Vpc {
        id: id.clone(),
        region: cx.region.to_owned(),
        cidr,
        dns_support: true,
        dns_hostnames: false,
        tags: tags.clone(),
        created_at: cx.now,
    }
}

pub(crate) fn modify_vpc_attribute(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    vpc: &VpcId,
    attribute: VpcAttribute,
) -> Result<Outcome, CloudError> {
    find_vpc(w, cx, e, vpc)?;
    if let Some(v) = w.vpcs.get_mut(vpc) {
        match attribute {
            VpcAttribute::DnsSupport => v.dns_support = true,
            VpcAttribute::DnsHostnames => {
                if !v.dns_support {
                    return Err(e.invalid(
                        "InvalidParameterValue",
                        "DNS host names need DNS support on the VPC.",
                    ));
                }
                v.dns_hostnames = true;
            }
        }
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_vpc(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    vpc: &VpcId,
) -> Result<Outcome, CloudError> {
    find_vpc(w, cx, e, vpc)?;
    let busy = |what: String| {
        Err(e.state(
            "DependencyViolation",
            format!("The vpc '{vpc}' has dependencies and cannot be deleted: {what}."),
        ))
    };
    if let Some(s) = w.subnets.values().find(|s| s.vpc == *vpc) {
        return busy(format!("subnet {}", s.id));
    }
    if let Some(g) = w
        .gateways
        .values()
        .find(|g| g.attached_to.as_ref() == Some(vpc))
    {
        return busy(format!("internet gateway {}", g.id));
    }
    if let Some(r) = w.route_tables.values().find(|r| r.vpc == *vpc) {
        return busy(format!("route table {}", r.id));
    }
    if let Some(g) = w
        .groups
        .values()
        .find(|g| w.group_vpc(g).as_ref() == Some(vpc))
    {
        return busy(format!("security group {}", g.id));
    }
    w.vpcs.remove(vpc);
    Ok(Outcome::Done)
}

/// A subnet's request, as `Op::CreateSubnet` carries it.
pub(crate) struct NewSubnet<'a> {
    pub vpc: &'a VpcId,
    pub zone: &'a Zone,
    pub cidr: Ipv4Cidr,
    pub tags: &'a Tags,
}

pub(crate) fn create_subnet(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    n: &NewSubnet<'_>,
) -> Result<Outcome, CloudError> {
    let v = find_vpc(w, cx, e, n.vpc)?;
    check_zone(cx, e, n.zone)?;
    check_subnet_block(w, e, v.cidr, n.vpc, n.cidr)?;
    check_tags(e, n.tags)?;
    let id: SubnetId = e.id(format!("subnet-{}", w.next_hex(17)))?;
    w.subnets.insert(
        id.clone(),
        Subnet {
            id: id.clone(),
            vpc: n.vpc.clone(),
            zone: n.zone.clone(),
            cidr: n.cidr,
            map_public_ip: false,
            tags: n.tags.clone(),
            created_at: cx.now,
        },
    );
    Ok(Outcome::Subnet(id))
}

/// A subnet's block: `/16` to `/28`, inside its VPC's, overlapping no
/// other subnet of the VPC.
pub(crate) fn check_subnet_block(
    w: &World,
    e: &Errs,
    vpc_cidr: Ipv4Cidr,
    vpc: &VpcId,
    cidr: Ipv4Cidr,
) -> Result<(), CloudError> {
    if !PREFIXES.contains(&cidr.prefix()) || !vpc_cidr.contains(cidr) {
        return Err(e.invalid(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid: a subnet's block is /16 to /28, inside its VPC's {vpc_cidr}."),
        ));
    }
    if let Some(other) = w
        .subnets
        .values()
        .find(|s| s.vpc == *vpc && s.cidr.overlaps(cidr))
    {
        return Err(e.invalid(
            "InvalidSubnet.Conflict",
            format!(
                "The CIDR '{cidr}' conflicts with another subnet ({} {}).",
                other.id, other.cidr
            ),
        ));
    }
    Ok(())
}

pub(crate) fn modify_subnet_attribute(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    subnet: &SubnetId,
    map_public_ip: bool,
) -> Result<Outcome, CloudError> {
    find_subnet(w, cx, e, subnet)?;
    if let Some(s) = w.subnets.get_mut(subnet) {
        s.map_public_ip = map_public_ip;
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_subnet(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    subnet: &SubnetId,
) -> Result<Outcome, CloudError> {
    find_subnet(w, cx, e, subnet)?;
    // Instances shutting down still hold their network interface.
    if let Some(i) = w
        .instances
        .values()
        .find(|i| i.subnet.as_ref() == Some(subnet) && !i.is_gone(cx.now))
    {
        return Err(e.state(
            "DependencyViolation",
            format!(
                "The subnet '{subnet}' has dependencies and cannot be deleted: instance {}.",
                i.id
            ),
        ));
    }
    if let Some(b) = w.balancers_v2.iter().find(|b| b.subnets.contains(subnet)) {
        return Err(e.state(
            "DependencyViolation",
            format!(
                "The subnet '{subnet}' has dependencies and cannot be deleted: load balancer {}.",
                b.name
            ),
        ));
    }
    if let Some(b) = w.balancers.iter().find(|b| b.subnets.contains(subnet)) {
        return Err(e.state(
            "DependencyViolation",
            format!(
                "The subnet '{subnet}' has dependencies and cannot be deleted: load balancer {}.",
                b.name
            ),
        ));
    }
    w.subnets.remove(subnet);
    for r in w.route_tables.values_mut() {
        r.associations.retain(|_, s| s != subnet);
    }
    Ok(Outcome::Done)
}

pub(crate) fn create_internet_gateway(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    tags: &Tags,
) -> Result<Outcome, CloudError> {
    check_tags(e, tags)?;
    let id: GatewayId = e.id(format!("igw-{}", w.next_hex(17)))?;
    w.gateways.insert(
        id.clone(),
        Gateway {
            id: id.clone(),
            region: cx.region.to_owned(),
            attached_to: None,
            tags: tags.clone(),
            created_at: cx.now,
        },
    );
    Ok(Outcome::Gateway(id))
}

pub(crate) fn attach_internet_gateway(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    gateway: &GatewayId,
    vpc: &VpcId,
) -> Result<Outcome, CloudError> {
    let g = find_gateway(w, cx, e, gateway)?;
    find_vpc(w, cx, e, vpc)?;
    if let Some(other) = &g.attached_to {
        return Err(e.invalid(
            "Resource.AlreadyAssociated",
            format!("resource {gateway} is already attached to network {other}"),
        ));
    }
    if let Some(other) = w
        .gateways
        .values()
        .find(|g| g.attached_to.as_ref() == Some(vpc))
    {
        return Err(e.invalid(
            "Resource.AlreadyAssociated",
            format!(
                "network {vpc} already has an internet gateway attached ({})",
                other.id
            ),
        ));
    }
    if let Some(g) = w.gateways.get_mut(gateway) {
        g.attached_to = Some(vpc.clone());
    }
    Ok(Outcome::Done)
}

pub(crate) fn detach_internet_gateway(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    gateway: &GatewayId,
    vpc: &VpcId,
) -> Result<Outcome, CloudError> {
    let g = find_gateway(w, cx, e, gateway)?;
    if g.attached_to.as_ref() != Some(vpc) {
        return Err(e.not_found(
            "Gateway.NotAttached",
            format!("resource {gateway} is not attached to network {vpc}"),
        ));
    }
    // AWS refuses while addresses in the VPC are mapped to public ones.
    if let Some(i) = w.instances.values().find(|i| {
        i.public_ip.is_some() && !i.is_gone(cx.now) && w.instance_vpc(i).as_ref() == Some(vpc)
    }) {
        return Err(e.state(
            "DependencyViolation",
            format!("Network {vpc} has some mapped public address(es) (instance {}). Please unmap those public address(es) before detaching the gateway.", i.id),
        ));
    }
    if let Some(g) = w.gateways.get_mut(gateway) {
        g.attached_to = None;
    }
    Ok(Outcome::Done)
}

pub(crate) fn delete_internet_gateway(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    gateway: &GatewayId,
) -> Result<Outcome, CloudError> {
    let g = find_gateway(w, cx, e, gateway)?;
    if let Some(v) = &g.attached_to {
        return Err(e.state(
            "DependencyViolation",
            format!("The internetGateway '{gateway}' has dependencies and cannot be deleted: it is attached to {v}."),
        ));
    }
    w.gateways.remove(gateway);
    Ok(Outcome::Done)
}

pub(crate) fn create_route_table(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    vpc: &VpcId,
    tags: &Tags,
    client_token: &str,
) -> Result<Outcome, CloudError> {
    let token_key = format!("{}/{client_token}", cx.region);
    if !client_token.is_empty()
        && let Some(id) = w.route_table_tokens.get(&token_key)
    {
        if w.route_tables.get(id).is_some_and(|r| r.vpc != *vpc) {
            return Err(e.invalid(
                "IdempotentParameterMismatch",
                format!("The client token '{client_token}' was used with different parameters."),
            ));
        }
        return Ok(Outcome::RouteTable(id.clone()));
    }
    find_vpc(w, cx, e, vpc)?;
    check_tags(e, tags)?;
    let id: RouteTableId = e.id(format!("rtb-{}", w.next_hex(17)))?;
    w.route_tables.insert(
        id.clone(),
        RouteTable {
            id: id.clone(),
            region: cx.region.to_owned(),
            vpc: vpc.clone(),
            routes: BTreeMap::new(),
            associations: BTreeMap::new(),
            tags: tags.clone(),
            created_at: cx.now,
        },
    );
    if !client_token.is_empty() {
        w.route_table_tokens.insert(token_key, id.clone());
    }
    Ok(Outcome::RouteTable(id))
}

pub(crate) fn create_route(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    route_table: &RouteTableId,
    destination: Ipv4Cidr,
    gateway: &GatewayId,
) -> Result<Outcome, CloudError> {
    let r = find_route_table(w, cx, e, route_table)?;
    let g = find_gateway(w, cx, e, gateway)?;
    if g.attached_to.as_ref() != Some(&r.vpc) {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("route table {route_table} and network gateway {gateway} belong to different networks"),
        ));
    }
    if r.routes.contains_key(&destination) {
        return Err(e.exists(
            "RouteAlreadyExists",
            format!("The route identified by {destination} already exists."),
        ));
    }
    if let Some(r) = w.route_tables.get_mut(route_table) {
        r.routes.insert(destination, gateway.clone());
    }
    Ok(Outcome::Done)
}

pub(crate) fn associate_route_table(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    route_table: &RouteTableId,
    subnet: &SubnetId,
) -> Result<Outcome, CloudError> {
    let r = find_route_table(w, cx, e, route_table)?;
    let s = find_subnet(w, cx, e, subnet)?;
    if s.vpc != r.vpc {
        return Err(e.invalid(
            "InvalidParameterValue",
            format!("Route table {route_table} and subnet {subnet} belong to different networks"),
        ));
    }
    if let Some((a, _)) = r.associations.iter().find(|(_, s)| *s == subnet) {
        return Ok(Outcome::Association(a.clone()));
    }
    if w.route_tables
        .values()
        .any(|o| o.associations.values().any(|s| s == subnet))
    {
        return Err(e.invalid(
            "Resource.AlreadyAssociated",
            format!("the specified association for route table {route_table} conflicts with an existing association of subnet {subnet}"),
        ));
    }
    let id: RouteTableAssociationId = e.id(format!("rtbassoc-{}", w.next_hex(17)))?;
    if let Some(r) = w.route_tables.get_mut(route_table) {
        r.associations.insert(id.clone(), subnet.clone());
    }
    Ok(Outcome::Association(id))
}

pub(crate) fn disassociate_route_table(
    w: &mut World,
    e: &Errs,
    association: &RouteTableAssociationId,
) -> Result<Outcome, CloudError> {
    let found = w
        .route_tables
        .values_mut()
        .find(|r| r.associations.contains_key(association));
    match found {
        Some(r) => {
            r.associations.remove(association);
            Ok(Outcome::Done)
        }
        None => Err(e.not_found(
            "InvalidAssociationID.NotFound",
            format!("The association ID '{association}' does not exist"),
        )),
    }
}

pub(crate) fn delete_route_table(
    w: &mut World,
    cx: &Ctx<'_>,
    e: &Errs,
    route_table: &RouteTableId,
) -> Result<Outcome, CloudError> {
    let r = find_route_table(w, cx, e, route_table)?;
    if !r.associations.is_empty() {
        return Err(e.state(
            "DependencyViolation",
            format!("The routeTable '{route_table}' has dependencies and cannot be deleted."),
        ));
    }
    w.route_tables.remove(route_table);
    Ok(Outcome::Done)
}

pub(crate) fn find_vpc<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &VpcId,
) -> Result<&'w Vpc, CloudError> {
    w.vpcs
        .get(id)
        .filter(|v| v.region == cx.region && cx.sees(v.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            )
        })
}

pub(crate) fn find_subnet<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &SubnetId,
) -> Result<&'w Subnet, CloudError> {
    w.subnets
        .get(id)
        .filter(|s| s.region() == cx.region && cx.sees(s.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            )
        })
}

fn find_gateway<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &GatewayId,
) -> Result<&'w Gateway, CloudError> {
    w.gateways
        .get(id)
        .filter(|g| g.region == cx.region && cx.sees(g.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{id}' does not exist"),
            )
        })
}

fn find_route_table<'w>(
    w: &'w World,
    cx: &Ctx<'_>,
    e: &Errs,
    id: &RouteTableId,
) -> Result<&'w RouteTable, CloudError> {
    w.route_tables
        .get(id)
        .filter(|r| r.region == cx.region && cx.sees(r.created_at))
        .ok_or_else(|| {
            e.not_found(
                "InvalidRouteTableID.NotFound",
                format!("The routeTable ID '{id}' does not exist"),
            )
        })
}
