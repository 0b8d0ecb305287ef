//! Planning the stack's network: the VPC groups, instances and balancers
//! live in, and the subnets fleets and balancers name.
//!
//! With a Network that creates its VPC, the VPC (DNS support and host
//! names on), an internet gateway, one route table whose `0.0.0.0/0`
//! route goes to the gateway, and the subnets are created; public subnets
//! give instances public addresses by default and are associated with the
//! route table, private ones use the VPC's main route table. A Network
//! naming an existing VPC creates nothing: its subnets are read by ID.
//! Without a Network, the region's default VPC is used, and a region
//! without one is a [`PlanError::NoDefaultVpc`] before any change.
//!
//! A network that goes is deleted (if its policy says `delete`) after
//! everything of the stack has left it: route table, gateway, subnets,
//! then the VPC.

use crate::desired::{DeletionPolicy, Network, NetworkVpc, NewSubnet, Tags};
use crate::ids::{Kind, ResourceKey, ResourceName, SubnetId, VpcId, Zone, tags};
use crate::net::Ipv4Cidr;
use crate::observed::{ObservedGateway, ObservedRouteTable, ObservedSubnet, ObservedVpc};
use crate::plan::{
    ChangeAction, FieldDiff, Note, PlanError, Planner, Ref, RouteTableRef, Step, StepId, SubnetRef,
    TagTarget, Value, VpcRef, update_if,
};
use crate::spec_hash::short_digest;
use std::collections::BTreeSet;

/// A subnet of the network, as fleets and balancers use it.
#[derive(Clone, Debug)]
pub(crate) struct PlannedSubnet {
    /// The subnet.
    pub id: SubnetRef,
    /// Its zone.
    pub zone: Zone,
    /// Its block.
    pub cidr: Ipv4Cidr,
    /// The steps that make it ready for instances: its creation, its
    /// public-address setting and its route.
    pub ready: Vec<StepId>,
}

/// What the plan does to a created network's pieces, for its change
/// entry.
#[derive(Default)]
struct Touched {
    changed: bool,
    notes: Vec<Note>,
}

impl<'a> Planner<'a> {
    /// Plans the network first: every other EC2 kind is placed in it.
    pub(crate) fn network(&mut self) -> Result<(), PlanError> {
        let d = self.desired();
        match &d.network {
            None => {
                let needs_vpc = !d.security_groups.is_empty()
                    || !d.fleets.is_empty()
                    || !d.balancers.is_empty();
                match &self.observed().default_vpc {
                    Some(v) => self.vpc = Some(Ref::Known(v.clone())),
                    None if needs_vpc => return Err(PlanError::NoDefaultVpc),
                    None => {}
                }
            }
            Some(net) => match &net.vpc {
                NetworkVpc::Existing { vpc, subnets } => {
                    self.vpc = Some(Ref::Known(vpc.clone()));
                    for (sname, id) in subnets {
                        let (zone, cidr) = self.existing_subnet_zone(net, sname, vpc, id)?;
                        self.subnets.insert(
                            sname.clone(),
                            PlannedSubnet {
                                id: Ref::Known(id.clone()),
                                zone,
                                cidr,
                                ready: Vec::new(),
                            },
                        );
                    }
                    let key = ResourceKey::new(Kind::Network, net.name.clone());
                    self.change(key, ChangeAction::NoChange);
                }
                NetworkVpc::Create { .. } => self.created_network(net),
            },
        }
        self.check_volume_zones()
    }

    /// The zone of a subnet of an existing VPC, read from the cloud.
    fn existing_subnet_zone(
        &self,
        net: &Network,
        subnet: &ResourceName,
        vpc: &VpcId,
        id: &SubnetId,
    ) -> Result<(Zone, Ipv4Cidr), PlanError> {
        let found = self.observed().subnets.iter().find(|s| s.id == *id);
        match found {
            None => Err(PlanError::SubnetNotFound {
                network: net.name.clone(),
                subnet: subnet.clone(),
                id: id.clone(),
            }),
            Some(s) if s.vpc != *vpc => Err(PlanError::SubnetNotInVpc {
                network: net.name.clone(),
                subnet: subnet.clone(),
                id: id.clone(),
                vpc: vpc.clone(),
                actual: s.vpc.clone(),
            }),
            Some(s) => Ok((s.zone.clone(), s.cidr)),
        }
    }

    /// A fleet with a volume runs in the volume's zone: one of its
    /// subnets must be there (validation checks it for created subnets;
    /// an existing VPC's subnets are known only now).
    fn check_volume_zones(&self) -> Result<(), PlanError> {
        for (fname, f) in &self.desired().fleets {
            if f.subnets.is_empty() {
                continue;
            }
            if let Some((vname, v)) = self.desired().volume_attached_to(fname) {
                let zones: Vec<&Zone> = f
                    .subnets
                    .iter()
                    .filter_map(|s| self.subnets.get(s).map(|p| &p.zone))
                    .collect();
                if !zones.contains(&&v.zone) {
                    return Err(PlanError::VolumeZoneNotInSubnets {
                        fleet: fname.clone(),
                        volume: vname.clone(),
                        zone: v.zone.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// A network converge creates: the VPC, gateway, route table and
    /// subnets that are missing, and the settings that drifted.
    fn created_network(&mut self, net: &'a Network) {
        let NetworkVpc::Create { cidr, subnets } = &net.vpc else {
            return;
        };
        let key = ResourceKey::new(Kind::Network, net.name.clone());
        let mut tags = self.tags_for(Kind::Network, &net.name, &net.tags);
        tags.insert(
            tags::DELETION_POLICY.to_owned(),
            net.deletion_policy.as_str().to_owned(),
        );
        let o = self.observed();
        let mine = |owner: &crate::observed::Owner| owner.name == net.name;
        let vpc_obs = o.vpcs.iter().find(|v| mine(&v.owner));
        let mut t = Touched::default();
        let vpc: VpcRef = match vpc_obs {
            Some(v) => {
                if v.cidr != *cidr {
                    t.notes.push(Note::Unsupported {
                        reason: format!(
                            "spec.cidr changed from {} to {cidr}: a VPC's block cannot change (declare a new Network to move)",
                            v.cidr
                        ),
                    });
                }
                let drift = self.tag_drift(&key, TagTarget::Vpc(v.id.clone()), &tags, &v.tags, &[]);
                t.changed |= drift.is_some();
                Ref::Known(v.id.clone())
            }
            None => Ref::Created(self.add(
                Step::CreateVpc {
                    name: net.name.clone(),
                    cidr: *cidr,
                    tags: tags.clone(),
                },
                [],
            )),
        };
        self.vpc = Some(vpc.clone());
        let gw = o.gateways.iter().find(|g| mine(&g.owner));
        let rt = o.route_tables.iter().find(|r| mine(&r.owner));
        let route_table = self.public_route(net, &vpc, gw, rt, &tags, &mut t);
        for (sname, want) in subnets {
            let obs = o
                .subnets
                .iter()
                .find(|s| s.owner.as_ref().is_some_and(mine) && s.name.as_ref() == Some(sname));
            self.subnet(net, sname, want, &vpc, obs, rt, &route_table, &tags, &mut t);
        }
        self.network_change(net, key, vpc_obs, subnets, t);
    }

    /// The internet gateway and the route table with its default route.
    fn public_route(
        &mut self,
        net: &Network,
        vpc: &VpcRef,
        gw: Option<&ObservedGateway>,
        rt: Option<&ObservedRouteTable>,
        tags: &Tags,
        t: &mut Touched,
    ) -> RouteTableRef {
        let name = &net.name;
        let gateway = match gw {
            Some(g) => {
                if let (None, Some(v)) = (&g.attached_to, vpc.known()) {
                    self.add(
                        Step::AttachGateway {
                            name: name.clone(),
                            gateway: g.id.clone(),
                            vpc: v.clone(),
                        },
                        [],
                    );
                    t.changed = true;
                }
                Ref::Known(g.id.clone())
            }
            None => {
                t.changed = true;
                Ref::Created(self.add(
                    Step::CreateGateway {
                        name: name.clone(),
                        vpc: vpc.clone(),
                        tags: tags.clone(),
                    },
                    vpc.created(),
                ))
            }
        };
        let route_table = match rt {
            Some(r) => Ref::Known(r.id.clone()),
            None => {
                t.changed = true;
                // The executor adds the VPC's ID (known only once it is
                // made), so a network made again gets another token.
                let token =
                    short_digest(&[self.desired().stack.as_str(), name.as_str(), "route-table"]);
                Ref::Created(self.add(
                    Step::CreateRouteTable {
                        name: name.clone(),
                        vpc: vpc.clone(),
                        tags: tags.clone(),
                        token,
                    },
                    vpc.created(),
                ))
            }
        };
        let routed = rt.is_some_and(|r| r.default_route.is_some());
        if !routed {
            t.changed = true;
            let deps: Vec<StepId> = route_table
                .created()
                .into_iter()
                .chain(gateway.created())
                .collect();
            self.add(
                Step::AddDefaultRoute {
                    name: name.clone(),
                    route_table: route_table.clone(),
                    gateway,
                },
                deps,
            );
        }
        route_table
    }

    /// One declared subnet: created if missing, its public-address
    /// setting and its route set as declared.
    #[allow(clippy::too_many_arguments)] // the network's pieces, each used once
    fn subnet(
        &mut self,
        net: &Network,
        sname: &ResourceName,
        want: &NewSubnet,
        vpc: &VpcRef,
        obs: Option<&ObservedSubnet>,
        rt: Option<&ObservedRouteTable>,
        route_table: &RouteTableRef,
        tags: &Tags,
        t: &mut Touched,
    ) {
        let name = &net.name;
        let mut ready = Vec::new();
        let id: SubnetRef = match obs {
            Some(s) => {
                if s.cidr != want.cidr || s.zone != want.zone {
                    t.notes.push(Note::Unsupported {
                        reason: format!(
                            "subnet {sname} is {} in {}, declared {} in {}: a subnet's block and zone cannot change (give it a new name)",
                            s.cidr, s.zone, want.cidr, want.zone
                        ),
                    });
                }
                let mut own = tags.clone();
                own.insert(tags::SUBNET.to_owned(), sname.to_string());
                let key = ResourceKey::new(Kind::Network, name.clone());
                t.changed |= self
                    .tag_drift(&key, TagTarget::Subnet(s.id.clone()), &own, &s.tags, &[])
                    .is_some();
                Ref::Known(s.id.clone())
            }
            None => {
                let mut own = tags.clone();
                own.insert(tags::SUBNET.to_owned(), sname.to_string());
                t.changed = true;
                let step = self.add(
                    Step::CreateSubnet {
                        name: name.clone(),
                        subnet: sname.clone(),
                        vpc: vpc.clone(),
                        zone: want.zone.clone(),
                        cidr: want.cidr,
                        tags: own,
                    },
                    vpc.created(),
                );
                ready.push(step);
                Ref::Created(step)
            }
        };
        // A new subnet's setting is set either way: what a new subnet
        // defaults to is the account's and zone's business (moto, for one,
        // turns it on in a zone without a default subnet).
        if obs.is_none_or(|s| s.map_public_ip != want.public) {
            t.changed = true;
            let s = self.add(
                Step::SetSubnetPublicIp {
                    name: name.clone(),
                    subnet: sname.clone(),
                    id: id.clone(),
                    public: want.public,
                },
                id.created(),
            );
            ready.push(s);
        }
        let association =
            obs.and_then(|s| rt.and_then(|r| r.associations.iter().find(|(_, sub)| *sub == s.id)));
        match (association, want.public) {
            (None, true) => {
                t.changed = true;
                let deps: Vec<StepId> = id
                    .created()
                    .into_iter()
                    .chain(route_table.created())
                    .collect();
                let s = self.add(
                    Step::AssociateSubnet {
                        name: name.clone(),
                        subnet: sname.clone(),
                        id: id.clone(),
                        route_table: route_table.clone(),
                    },
                    deps,
                );
                ready.push(s);
            }
            (Some((assoc, _)), false) => {
                t.changed = true;
                self.add(
                    Step::DisassociateSubnet {
                        name: name.clone(),
                        subnet: sname.clone(),
                        association: assoc.clone(),
                    },
                    [],
                );
            }
            _ => {}
        }
        self.subnets.insert(
            sname.clone(),
            PlannedSubnet {
                id,
                zone: want.zone.clone(),
                cidr: want.cidr,
                ready,
            },
        );
    }

    /// The created network's change entry.
    fn network_change(
        &mut self,
        net: &Network,
        key: ResourceKey,
        vpc_obs: Option<&ObservedVpc>,
        subnets: &std::collections::BTreeMap<ResourceName, NewSubnet>,
        t: Touched,
    ) {
        let NetworkVpc::Create { cidr, .. } = &net.vpc else {
            return;
        };
        let show = |n: &ResourceName, s: &NewSubnet| {
            let access = if s.public { "public" } else { "private" };
            format!("{n} {} {} {access}", s.zone, s.cidr)
        };
        let after: Vec<String> = subnets.iter().map(|(n, s)| show(n, s)).collect();
        let before: Vec<String> = {
            let mut v: Vec<String> = self
                .observed()
                .subnets
                .iter()
                .filter(|s| s.owner.as_ref().is_some_and(|o| o.name == net.name))
                .filter_map(|s| {
                    let n = s.name.clone()?;
                    let public = self.is_associated(&s.id);
                    Some(show(
                        &n,
                        &NewSubnet {
                            zone: s.zone.clone(),
                            cidr: s.cidr,
                            public: public && s.map_public_ip,
                        },
                    ))
                })
                .collect();
            v.sort();
            v
        };
        let action = match vpc_obs {
            None => ChangeAction::Create,
            Some(_) => update_if(t.changed || before != after),
        };
        let c = self.change(key, action);
        if vpc_obs.is_none() {
            c.fields.push(FieldDiff {
                field: "spec.cidr".into(),
                before: None,
                after: Some(Value::Text(cidr.to_string())),
                forces_replacement: false,
            });
        }
        if vpc_obs.is_none() || before != after {
            c.fields.push(FieldDiff {
                field: "spec.subnets".into(),
                before: vpc_obs.map(|_| Value::List(before)),
                after: Some(Value::List(after)),
                forces_replacement: false,
            });
        }
        c.notes = t.notes;
    }

    /// Whether a subnet is associated with one of the stack's route
    /// tables.
    fn is_associated(&self, id: &SubnetId) -> bool {
        self.observed()
            .route_tables
            .iter()
            .any(|r| r.associations.iter().any(|(_, s)| s == id))
    }

    /// Deletes what of the stack's networks the manifests no longer
    /// declare (subnets of a kept network, or a whole network whose
    /// policy says `delete`), after every step that takes something of
    /// the stack out of it.
    pub(crate) fn finish_network_deletes(&mut self) {
        let users = self.steps_where(|s| {
            matches!(
                s,
                Step::Terminate { .. }
                    | Step::DeleteGroup { .. }
                    | Step::DeleteBalancer { .. }
                    | Step::DeleteTargetGroups { .. }
                    | Step::SetBalancerSubnets { .. }
            )
        });
        let declared = self.desired().network.as_ref().and_then(|n| match &n.vpc {
            NetworkVpc::Create { subnets, .. } => Some((n.name.clone(), subnets)),
            NetworkVpc::Existing { .. } => None,
        });
        let o = self.observed();
        // Subnets of the declared network that are no longer declared.
        if let Some((name, subnets)) = &declared {
            for s in o.subnets.iter().filter(|s| {
                s.owner.as_ref().is_some_and(|ow| ow.name == *name)
                    && !s.name.as_ref().is_some_and(|n| subnets.contains_key(n))
            }) {
                let sname = s.name.clone().unwrap_or_else(|| name.clone());
                self.add(
                    Step::DeleteSubnet {
                        name: name.clone(),
                        subnet: sname,
                        id: s.id.clone(),
                    },
                    users.iter().copied(),
                );
            }
        }
        // Networks that go.
        let kept = declared.as_ref().map(|(n, _)| n.clone());
        let gone: BTreeSet<ResourceName> = o
            .vpcs
            .iter()
            .map(|v| v.owner.name.clone())
            .filter(|n| Some(n) != kept.as_ref())
            .collect();
        for name in gone {
            self.delete_network(&name, &users);
        }
    }

    /// Deletes a network that goes, in the order AWS needs: route table
    /// (disassociated first), gateway (detached first), subnets, VPC.
    fn delete_network(&mut self, name: &ResourceName, users: &[StepId]) {
        let o = self.observed();
        let Some(vpc) = o.vpcs.iter().find(|v| v.owner.name == *name) else {
            return;
        };
        let key = ResourceKey::new(Kind::Network, name.clone());
        let policy = DeletionPolicy::from_tags(&vpc.tags);
        if policy != DeletionPolicy::Delete {
            self.change(key, ChangeAction::DeleteBlocked { policy });
            return;
        }
        let mine = |ow: &crate::observed::Owner| ow.name == *name;
        let mut before_subnets: Vec<StepId> = users.to_vec();
        for r in o.route_tables.iter().filter(|r| mine(&r.owner)) {
            let s = self.add(
                Step::DeleteRouteTable {
                    name: name.clone(),
                    route_table: r.id.clone(),
                    associations: r.associations.iter().map(|(a, _)| a.clone()).collect(),
                },
                users.iter().copied(),
            );
            before_subnets.push(s);
        }
        for g in o.gateways.iter().filter(|g| mine(&g.owner)) {
            let s = self.add(
                Step::DeleteGateway {
                    name: name.clone(),
                    gateway: g.id.clone(),
                    vpc: g.attached_to.clone(),
                },
                before_subnets.clone(),
            );
            before_subnets.push(s);
        }
        let mut before_vpc = before_subnets.clone();
        for s in o
            .subnets
            .iter()
            .filter(|s| s.owner.as_ref().is_some_and(mine))
        {
            let step = self.add(
                Step::DeleteSubnet {
                    name: name.clone(),
                    subnet: s.name.clone().unwrap_or_else(|| name.clone()),
                    id: s.id.clone(),
                },
                before_subnets.clone(),
            );
            before_vpc.push(step);
        }
        self.add(
            Step::DeleteVpc {
                name: name.clone(),
                vpc: vpc.id.clone(),
            },
            before_vpc,
        );
        self.change(key, ChangeAction::Delete);
    }
}
