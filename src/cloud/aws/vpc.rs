//! EC2 networking: VPCs, subnets, internet gateways and route tables.
//! Observation is a constant number of calls: DescribeVpcs (the stack's
//! tag) and DescribeVpcs (`isDefault=true`, the default VPC),
//! DescribeSubnets, DescribeInternetGateways and DescribeRouteTables, each
//! one call filtered by the stack's tag; an existing VPC's subnets are one
//! DescribeSubnets by ID ([`AwsCloud::subnets_by_id`]).
//!
//! Everything is tagged at creation (TagSpecifications); CreateRouteTable
//! is the only one of these calls that takes a client token
//! (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateRouteTable.html>;
//! CreateVpc, CreateSubnet and CreateInternetGateway take none), so a
//! killed apply is made safe by the tags: the next observation finds what
//! was created.

use super::ec2::{filter, owned, read_tags, stack_filter, tag_spec};
use super::error::sdk_error;
use super::{AwsCloud, Reads};
use crate::cloud::{CloudError, ErrorKind, Outcome, VpcAttribute, answered_id};
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use converge_core::desired::Tags;
use converge_core::ids::{
    GatewayId, Kind, ResourceName, RouteTableAssociationId, RouteTableId, SubnetId, VpcId, Zone,
    tags,
};
use converge_core::net::Ipv4Cidr;
use converge_core::observed::{
    ObservedGateway, ObservedRouteTable, ObservedSubnet, ObservedVpc, Owner,
};

/// The network part of a stack.
pub(super) struct NetworkObserved {
    pub(super) default_vpc: Option<VpcId>,
    pub(super) vpcs: Vec<ObservedVpc>,
    pub(super) subnets: Vec<ObservedSubnet>,
    pub(super) gateways: Vec<ObservedGateway>,
    pub(super) route_tables: Vec<ObservedRouteTable>,
}

/// The tags to create a resource with; none at all when there are none
/// (EC2 refuses a TagSpecification without tags).
fn tagged(kind: ResourceType, tags: &Tags) -> Option<Vec<aws_sdk_ec2::types::TagSpecification>> {
    (!tags.is_empty()).then(|| vec![tag_spec(kind, tags)])
}

/// Filters matching every `converge:` tag of `tags` (owner, names), to
/// find what an earlier attempt of a create created; `None` when `tags`
/// name no owner (then nothing is looked for).
fn owner_filters(tags: &Tags) -> Option<Vec<aws_sdk_ec2::types::Filter>> {
    let f: Vec<_> = tags
        .iter()
        .filter(|(k, _)| k.starts_with("converge:"))
        .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
        .collect();
    (!f.is_empty()).then_some(f)
}

/// No SDK retries, for the creates AWS gives no client token
/// (CreateVpc, CreateSubnet, CreateInternetGateway): an attempt whose
/// answer was lost (a 500, a timeout, a dropped connection) may have
/// created the resource, and the SDK would send it again blindly. The
/// executor's retry calls the whole operation again instead, which first
/// looks for what the lost attempt made, by its tags.
fn no_sdk_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::new()
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
}

fn missing(op: &'static str, what: &str) -> CloudError {
    CloudError::new(
        ErrorKind::Unavailable,
        op,
        "MissingId",
        format!("the response carried no {what}"),
    )
}

fn cidr(op: &'static str, s: Option<&str>) -> Result<Ipv4Cidr, CloudError> {
    s.unwrap_or_default()
        .parse()
        .map_err(|e: converge_core::net::CidrError| {
            CloudError::new(ErrorKind::Unavailable, op, "MalformedCidr", e.to_string())
        })
}

fn subnet(
    s: &aws_sdk_ec2::types::Subnet,
    stack: Option<&ResourceName>,
) -> Result<Option<ObservedSubnet>, CloudError> {
    const OP: &str = "DescribeSubnets";
    let Some(id) = s.subnet_id() else {
        return Ok(None);
    };
    let t = read_tags(s.tags());
    let owner = match stack {
        Some(stack) => match owned(&t, stack, Kind::Network) {
            Some(o) => Some(o),
            None => return Ok(None),
        },
        None => Owner::from_tags(&t).filter(|o| o.kind == Kind::Network),
    };
    Ok(Some(ObservedSubnet {
        id: answered_id(OP, id)?,
        vpc: answered_id(OP, s.vpc_id().unwrap_or_default())?,
        zone: answered_id::<Zone>(OP, s.availability_zone().unwrap_or_default())?,
        cidr: cidr(OP, s.cidr_block())?,
        map_public_ip: s.map_public_ip_on_launch().unwrap_or(false),
        name: t.get(tags::SUBNET).and_then(|n| n.parse().ok()),
        owner,
        tags: t,
    }))
}

impl AwsCloud {
    /// The stack's network pieces and the region's default VPC.
    pub(super) async fn observe_network(
        &self,
        stack: &ResourceName,
        reads: Reads<'_>,
    ) -> Result<NetworkObserved, CloudError> {
        let (default_vpc, vpcs, subnets, gateways, route_tables) = tokio::try_join!(
            reads.read("observe the default VPC", || self.default_vpc()),
            reads.read("observe VPCs", || self.observe_vpcs(stack)),
            reads.read("observe subnets", || self.observe_subnets(stack)),
            reads.read("observe internet gateways", || self.observe_gateways(stack)),
            reads.read("observe route tables", || self.observe_route_tables(stack)),
        )?;
        Ok(NetworkObserved {
            default_vpc,
            vpcs,
            subnets,
            gateways,
            route_tables,
        })
    }

    /// DescribeVpcs with `isDefault=true`: one call.
    async fn default_vpc(&self) -> Result<Option<VpcId>, CloudError> {
        let out = self
            .ec2
            .describe_vpcs()
            .filters(filter("isDefault", ["true".to_owned()]))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeVpcs", e))?;
        out.vpcs()
            .iter()
            .find_map(|v| v.vpc_id())
            .map(|id| answered_id("DescribeVpcs", id))
            .transpose()
    }

    async fn observe_vpcs(&self, stack: &ResourceName) -> Result<Vec<ObservedVpc>, CloudError> {
        const OP: &str = "DescribeVpcs";
        let mut pages = self
            .ec2
            .describe_vpcs()
            .filters(stack_filter(stack))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(OP, e))?;
            for v in page.vpcs() {
                let t = read_tags(v.tags());
                let (Some(owner), Some(id)) = (owned(&t, stack, Kind::Network), v.vpc_id()) else {
                    continue;
                };
                out.push(ObservedVpc {
                    id: answered_id(OP, id)?,
                    owner,
                    cidr: cidr(OP, v.cidr_block())?,
                    tags: t,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn observe_subnets(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedSubnet>, CloudError> {
        let mut pages = self
            .ec2
            .describe_subnets()
            .filters(stack_filter(stack))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeSubnets", e))?;
            for s in page.subnets() {
                out.extend(subnet(s, Some(stack))?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// An existing VPC's subnets, by ID: one DescribeSubnets.
    pub(super) async fn subnets_by_id(
        &self,
        ids: &[SubnetId],
    ) -> Result<Vec<ObservedSubnet>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .ec2
            .describe_subnets()
            .filters(filter("subnet-id", ids.iter().map(|i| i.to_string())))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSubnets", e))?;
        let mut v = Vec::new();
        for s in out.subnets() {
            v.extend(subnet(s, None)?);
        }
        Ok(v)
    }

    async fn observe_gateways(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedGateway>, CloudError> {
        const OP: &str = "DescribeInternetGateways";
        let mut pages = self
            .ec2
            .describe_internet_gateways()
            .filters(stack_filter(stack))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(OP, e))?;
            for g in page.internet_gateways() {
                let t = read_tags(g.tags());
                let (Some(owner), Some(id)) =
                    (owned(&t, stack, Kind::Network), g.internet_gateway_id())
                else {
                    continue;
                };
                let attached_to = g
                    .attachments()
                    .iter()
                    .find_map(|a| a.vpc_id())
                    .map(|v| answered_id(OP, v))
                    .transpose()?;
                out.push(ObservedGateway {
                    id: answered_id(OP, id)?,
                    owner,
                    attached_to,
                    tags: t,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn observe_route_tables(
        &self,
        stack: &ResourceName,
    ) -> Result<Vec<ObservedRouteTable>, CloudError> {
        const OP: &str = "DescribeRouteTables";
        let mut pages = self
            .ec2
            .describe_route_tables()
            .filters(stack_filter(stack))
            .max_results(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(OP, e))?;
            for r in page.route_tables() {
                let t = read_tags(r.tags());
                let (Some(owner), Some(id)) = (owned(&t, stack, Kind::Network), r.route_table_id())
                else {
                    continue;
                };
                let default_route = r
                    .routes()
                    .iter()
                    .filter(|x| x.destination_cidr_block() == Some("0.0.0.0/0"))
                    .find_map(|x| x.gateway_id())
                    .filter(|g| g.starts_with("igw-"))
                    .map(|g| answered_id(OP, g))
                    .transpose()?;
                let mut associations = Vec::new();
                for a in r.associations() {
                    if let (Some(aid), Some(sid)) = (a.route_table_association_id(), a.subnet_id())
                    {
                        associations.push((answered_id(OP, aid)?, answered_id(OP, sid)?));
                    }
                }
                out.push(ObservedRouteTable {
                    id: answered_id(OP, id)?,
                    owner,
                    vpc: answered_id(OP, r.vpc_id().unwrap_or_default())?,
                    default_route,
                    associations,
                    tags: t,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(super) async fn create_vpc(
        &self,
        block: Ipv4Cidr,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateVpc";
        if let Some(filters) = owner_filters(tags) {
            let out = self
                .ec2
                .describe_vpcs()
                .set_filters(Some(filters))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeVpcs", e))?;
            let made = out
                .vpcs()
                .iter()
                .find(|v| v.cidr_block() == Some(block.to_string().as_str()));
            if let Some(id) = made.and_then(|v| v.vpc_id()) {
                return Ok(Outcome::Vpc(answered_id(OP, id)?));
            }
        }
        let out = self
            .ec2
            .create_vpc()
            .cidr_block(block.to_string())
            .set_tag_specifications(tagged(ResourceType::Vpc, tags))
            .customize()
            .config_override(no_sdk_retry())
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| missing(OP, "VPC ID"))?;
        Ok(Outcome::Vpc(answered_id(OP, id)?))
    }

    /// One attribute per call, as ModifyVpcAttribute requires
    /// (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyVpcAttribute.html>).
    pub(super) async fn modify_vpc_attribute(
        &self,
        vpc: &VpcId,
        attribute: VpcAttribute,
    ) -> Result<Outcome, CloudError> {
        let on = AttributeBooleanValue::builder().value(true).build();
        let req = self.ec2.modify_vpc_attribute().vpc_id(vpc.as_str());
        let req = match attribute {
            VpcAttribute::DnsSupport => req.enable_dns_support(on),
            VpcAttribute::DnsHostnames => req.enable_dns_hostnames(on),
        };
        req.send()
            .await
            .map_err(|e| sdk_error("ModifyVpcAttribute", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_vpc(&self, vpc: &VpcId) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_vpc()
            .vpc_id(vpc.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteVpc", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_subnet(
        &self,
        vpc: &VpcId,
        zone: &Zone,
        block: Ipv4Cidr,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateSubnet";
        if let Some(mut filters) = owner_filters(tags) {
            filters.push(filter("vpc-id", [vpc.to_string()]));
            let out = self
                .ec2
                .describe_subnets()
                .set_filters(Some(filters))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeSubnets", e))?;
            let made = out
                .subnets()
                .iter()
                .find(|s| s.cidr_block() == Some(block.to_string().as_str()));
            if let Some(id) = made.and_then(|s| s.subnet_id()) {
                return Ok(Outcome::Subnet(answered_id(OP, id)?));
            }
        }
        let out = self
            .ec2
            .create_subnet()
            .vpc_id(vpc.as_str())
            .availability_zone(zone.as_str())
            .cidr_block(block.to_string())
            .set_tag_specifications(tagged(ResourceType::Subnet, tags))
            .customize()
            .config_override(no_sdk_retry())
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| missing(OP, "subnet ID"))?;
        Ok(Outcome::Subnet(answered_id(OP, id)?))
    }

    /// ModifySubnetAttribute `MapPublicIpOnLaunch`.
    pub(super) async fn set_map_public_ip(
        &self,
        subnet: &SubnetId,
        on: bool,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .modify_subnet_attribute()
            .subnet_id(subnet.as_str())
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
            .send()
            .await
            .map_err(|e| sdk_error("ModifySubnetAttribute", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_subnet(&self, subnet: &SubnetId) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_subnet()
            .subnet_id(subnet.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSubnet", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_internet_gateway(&self, tags: &Tags) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateInternetGateway";
        if let Some(filters) = owner_filters(tags) {
            let out = self
                .ec2
                .describe_internet_gateways()
                .set_filters(Some(filters))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeInternetGateways", e))?;
            let made = out.internet_gateways().first();
            if let Some(id) = made.and_then(|g| g.internet_gateway_id()) {
                return Ok(Outcome::Gateway(answered_id(OP, id)?));
            }
        }
        let out = self
            .ec2
            .create_internet_gateway()
            .set_tag_specifications(tagged(ResourceType::InternetGateway, tags))
            .customize()
            .config_override(no_sdk_retry())
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| missing(OP, "internet gateway ID"))?;
        Ok(Outcome::Gateway(answered_id(OP, id)?))
    }

    pub(super) async fn attach_internet_gateway(
        &self,
        gateway: &GatewayId,
        vpc: &VpcId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .attach_internet_gateway()
            .internet_gateway_id(gateway.as_str())
            .vpc_id(vpc.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("AttachInternetGateway", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn detach_internet_gateway(
        &self,
        gateway: &GatewayId,
        vpc: &VpcId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .detach_internet_gateway()
            .internet_gateway_id(gateway.as_str())
            .vpc_id(vpc.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DetachInternetGateway", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_internet_gateway(
        &self,
        gateway: &GatewayId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_internet_gateway()
            .internet_gateway_id(gateway.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteInternetGateway", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn create_route_table(
        &self,
        vpc: &VpcId,
        tags: &Tags,
        client_token: &str,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "CreateRouteTable";
        let out = self
            .ec2
            .create_route_table()
            .vpc_id(vpc.as_str())
            .client_token(client_token)
            .set_tag_specifications(tagged(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let id = out
            .route_table()
            .and_then(|r| r.route_table_id())
            .ok_or_else(|| missing(OP, "route table ID"))?;
        Ok(Outcome::RouteTable(answered_id(OP, id)?))
    }

    pub(super) async fn create_route(
        &self,
        route_table: &RouteTableId,
        destination: Ipv4Cidr,
        gateway: &GatewayId,
    ) -> Result<Outcome, CloudError> {
        let sent = self
            .ec2
            .create_route()
            .route_table_id(route_table.as_str())
            .destination_cidr_block(destination.to_string())
            .gateway_id(gateway.as_str())
            .send()
            .await;
        let e = match sent {
            Ok(_) => return Ok(Outcome::Done),
            Err(e) => sdk_error("CreateRoute", e),
        };
        // CreateRoute takes no client token: when an attempt whose answer
        // was lost made the route, the retry is refused with
        // RouteAlreadyExists. The same route to the same gateway is done.
        if e.code == "RouteAlreadyExists"
            && self.has_route(route_table, destination, gateway).await?
        {
            return Ok(Outcome::Done);
        }
        Err(e)
    }

    /// Whether `route_table` routes `destination` to `gateway`.
    async fn has_route(
        &self,
        route_table: &RouteTableId,
        destination: Ipv4Cidr,
        gateway: &GatewayId,
    ) -> Result<bool, CloudError> {
        let out = self
            .ec2
            .describe_route_tables()
            .route_table_ids(route_table.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeRouteTables", e))?;
        let want = destination.to_string();
        Ok(out.route_tables().iter().flat_map(|r| r.routes()).any(|x| {
            x.destination_cidr_block() == Some(want.as_str())
                && x.gateway_id() == Some(gateway.as_str())
        }))
    }

    pub(super) async fn associate_route_table(
        &self,
        route_table: &RouteTableId,
        subnet: &SubnetId,
    ) -> Result<Outcome, CloudError> {
        const OP: &str = "AssociateRouteTable";
        let out = self
            .ec2
            .associate_route_table()
            .route_table_id(route_table.as_str())
            .subnet_id(subnet.as_str())
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let id = out
            .association_id()
            .ok_or_else(|| missing(OP, "association ID"))?;
        Ok(Outcome::Association(
            answered_id::<RouteTableAssociationId>(OP, id)?,
        ))
    }

    pub(super) async fn disassociate_route_table(
        &self,
        association: &RouteTableAssociationId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .disassociate_route_table()
            .association_id(association.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DisassociateRouteTable", e))?;
        Ok(Outcome::Done)
    }

    pub(super) async fn delete_route_table(
        &self,
        route_table: &RouteTableId,
    ) -> Result<Outcome, CloudError> {
        self.ec2
            .delete_route_table()
            .route_table_id(route_table.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteRouteTable", e))?;
        Ok(Outcome::Done)
    }
}
