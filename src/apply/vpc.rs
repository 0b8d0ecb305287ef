//! The network steps: the VPC with DNS on, the internet gateway, the
//! public route table and its default route, subnets and their public
//! setting and route, and their deletion. Deletions wait for what AWS
//! needs: a subnet, gateway or VPC still holding something answers
//! `DependencyViolation`, which the retries treat as not ready yet (a
//! balancer's or an instance's network interface takes a while to go).

use super::StepError;
use super::ctx::{Ctx, Output, answered};
use crate::cloud::{Op, Outcome, VpcAttribute};
use converge_core::desired::Tags;
use converge_core::ids::{GatewayId, RouteTableAssociationId, RouteTableId, SubnetId, VpcId, Zone};
use converge_core::net::Ipv4Cidr;
use converge_core::plan::{GatewayRef, RouteTableRef, SubnetRef, VpcRef};
use converge_core::spec_hash::short_digest;
use std::net::Ipv4Addr;

/// Creates a VPC, then turns on DNS support and DNS host names: EC2 sets
/// one attribute per ModifyVpcAttribute call
/// (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyVpcAttribute.html>),
/// and host names need support on first.
pub(super) async fn create_vpc(
    ctx: &Ctx,
    cidr: Ipv4Cidr,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateVpc {
        cidr,
        tags: tags.clone(),
    };
    let vpc = match ctx.call(&op, false).await? {
        Outcome::Vpc(v) => v,
        other => return Err(answered("CreateVpc", &other)),
    };
    for attribute in [VpcAttribute::DnsSupport, VpcAttribute::DnsHostnames] {
        let op = Op::ModifyVpcAttribute {
            vpc: vpc.clone(),
            attribute,
        };
        ctx.call(&op, true).await?;
    }
    Ok(Output::Vpc(vpc))
}

/// Creates an internet gateway and attaches it to the VPC.
pub(super) async fn create_gateway(
    ctx: &Ctx,
    vpc: &VpcRef,
    tags: &Tags,
) -> Result<Output, StepError> {
    let vpc = ctx.vpc(vpc)?;
    let op = Op::CreateInternetGateway { tags: tags.clone() };
    let gateway = match ctx.call(&op, false).await? {
        Outcome::Gateway(g) => g,
        other => return Err(answered("CreateInternetGateway", &other)),
    };
    attach(ctx, &gateway, &vpc).await?;
    Ok(Output::Gateway(gateway))
}

/// Attaches a gateway that is not attached.
pub(super) async fn attach(
    ctx: &Ctx,
    gateway: &GatewayId,
    vpc: &VpcId,
) -> Result<Output, StepError> {
    let op = Op::AttachInternetGateway {
        gateway: gateway.clone(),
        vpc: vpc.clone(),
    };
    ctx.perform(&op, true).await
}

/// Creates the public route table, with the step's client token.
pub(super) async fn create_route_table(
    ctx: &Ctx,
    vpc: &VpcRef,
    tags: &Tags,
    token: &str,
) -> Result<Output, StepError> {
    let vpc = ctx.vpc(vpc)?;
    // The plan's token, tied to this VPC: the same step retried reuses it,
    // a network made again (another VPC) does not.
    let op = Op::CreateRouteTable {
        client_token: short_digest(&[token, vpc.as_str()]),
        vpc,
        tags: tags.clone(),
    };
    match ctx.call(&op, true).await? {
        Outcome::RouteTable(r) => Ok(Output::RouteTable(r)),
        other => Err(answered("CreateRouteTable", &other)),
    }
}

/// Routes `0.0.0.0/0` to the internet gateway.
pub(super) async fn add_default_route(
    ctx: &Ctx,
    route_table: &RouteTableRef,
    gateway: &GatewayRef,
) -> Result<Output, StepError> {
    let op = Op::CreateRoute {
        route_table: ctx.route_table(route_table)?,
        destination: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0)
            .ok_or_else(|| StepError::Unexpected("0.0.0.0/0 is a block".into()))?,
        gateway: ctx.gateway(gateway)?,
    };
    ctx.perform(&op, true).await
}

/// Creates a subnet.
pub(super) async fn create_subnet(
    ctx: &Ctx,
    vpc: &VpcRef,
    zone: &Zone,
    cidr: Ipv4Cidr,
    tags: &Tags,
) -> Result<Output, StepError> {
    let op = Op::CreateSubnet {
        vpc: ctx.vpc(vpc)?,
        zone: zone.clone(),
        cidr,
        tags: tags.clone(),
    };
    match ctx.call(&op, true).await? {
        Outcome::Subnet(s) => Ok(Output::Subnet(s)),
        other => Err(answered("CreateSubnet", &other)),
    }
}

/// Sets `MapPublicIpOnLaunch`.
pub(super) async fn set_public_ip(
    ctx: &Ctx,
    subnet: &SubnetRef,
    public: bool,
) -> Result<Output, StepError> {
    let op = Op::ModifySubnetAttribute {
        subnet: ctx.subnet(subnet)?,
        map_public_ip: public,
    };
    ctx.perform(&op, true).await
}

/// Associates a subnet with the public route table.
pub(super) async fn associate(
    ctx: &Ctx,
    subnet: &SubnetRef,
    route_table: &RouteTableRef,
) -> Result<Output, StepError> {
    let op = Op::AssociateRouteTable {
        route_table: ctx.route_table(route_table)?,
        subnet: ctx.subnet(subnet)?,
    };
    ctx.perform(&op, true).await
}

/// Takes a subnet off the public route table.
pub(super) async fn disassociate(
    ctx: &Ctx,
    association: &RouteTableAssociationId,
) -> Result<Output, StepError> {
    let op = Op::DisassociateRouteTable {
        association: association.clone(),
    };
    ctx.perform(&op, false).await
}

/// Deletes a subnet, once nothing is left in it.
pub(super) async fn delete_subnet(ctx: &Ctx, subnet: &SubnetId) -> Result<Output, StepError> {
    let op = Op::DeleteSubnet {
        subnet: subnet.clone(),
    };
    ctx.perform(&op, false).await
}

/// Disassociates a route table from its subnets, then deletes it.
pub(super) async fn delete_route_table(
    ctx: &Ctx,
    route_table: &RouteTableId,
    associations: &[RouteTableAssociationId],
) -> Result<Output, StepError> {
    for a in associations {
        disassociate(ctx, a).await?;
    }
    let op = Op::DeleteRouteTable {
        route_table: route_table.clone(),
    };
    ctx.perform(&op, false).await
}

/// Detaches an internet gateway (once no instance of the VPC has a
/// public address), then deletes it.
pub(super) async fn delete_gateway(
    ctx: &Ctx,
    gateway: &GatewayId,
    vpc: Option<&VpcId>,
) -> Result<Output, StepError> {
    if let Some(vpc) = vpc {
        let op = Op::DetachInternetGateway {
            gateway: gateway.clone(),
            vpc: vpc.clone(),
        };
        ctx.call(&op, false).await?;
    }
    let op = Op::DeleteInternetGateway {
        gateway: gateway.clone(),
    };
    ctx.perform(&op, false).await
}

/// Deletes a VPC, once nothing is left in it.
pub(super) async fn delete_vpc(ctx: &Ctx, vpc: &VpcId) -> Result<Output, StepError> {
    let op = Op::DeleteVpc { vpc: vpc.clone() };
    ctx.perform(&op, false).await
}
