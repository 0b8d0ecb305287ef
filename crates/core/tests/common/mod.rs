//! Test support for planner scenarios: a SmallPayroll-like desired stack
//! built in code, observed worlds built by hand (empty, or everything in
//! place exactly as an apply would have left it), a runner that plans,
//! checks the plan with the library's checker ([`invariants`]) and for
//! determinism.

// Each test crate uses some of these helpers; a panic is how a test fails.
#![allow(dead_code, clippy::unwrap_used)]

pub mod invariants;

use converge_core::cron::Cron;
use converge_core::desired::{
    Attachment, Attr, Autoscale, BalancerHealth, BalancerSpec, BucketSpec, CdnSpec, DeletionPolicy,
    Desired, Encryption, FleetSpec, Health, HealthCheck, HttpCheck, ImageSource, IngressRule,
    KeyPairSpec, Listener, ListenerProtocol, MetadataOptions, Network, NetworkVpc, NewSubnet,
    PortRange, Protocol, Reference, ScaleIn, ScaleOut, Schedule, ScheduleRule, Secret,
    SecurityGroupSpec, SnapshotPolicy, Source, Tags, Template, TemplatePart, UpdatePolicy,
    VolumeSpec, VolumeType,
};
use converge_core::elb::{
    BalancerHandle, BalancerType, Scheme, TargetHealthCheck, listener_target_groups,
};
use converge_core::ids::{
    AssociationId, DistributionId, GatewayId, GroupId, ImageId, InstanceId, InstanceProfile,
    KeyPairId, Kind, ResourceKey, ResourceName, RouteTableAssociationId, RouteTableId, SubnetId,
    VolumeId, VpcId, Zone, tags,
};
use converge_core::observed::{
    CloudRule, CloudSource, DistributionConfig, DistributionStatus, InstanceState, Member,
    MemberState, Observed, ObservedAttachment, ObservedBalancer, ObservedBucket,
    ObservedDistribution, ObservedGateway, ObservedGroup, ObservedImage, ObservedInstance,
    ObservedKeyPair, ObservedRouteTable, ObservedSubnet, ObservedTargetGroup, ObservedVolume,
    ObservedVpc, Owner, ProfileAssociation, VolumeState, bucket_domain,
};
use converge_core::plan::{Plan, PlanInput, ROOT_VOLUME_TAG, SENSITIVE_TAG, rule_ports};
use converge_core::render::{self, TextOptions};
use converge_core::spec_hash::{launch_spec_hash, short_digest};
use converge_core::tz::Tz;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A Saturday, noon in Toronto (EST): the app fleet's schedule says 2.
pub const SATURDAY_NOON: &str = "2026-03-07T17:00:00Z";
/// A Wednesday, 10:00 in Toronto (EST): the app fleet's schedule says 3.
pub const WEEKDAY_TEN: &str = "2026-03-04T15:00:00Z";
/// The secret a `${env:DB_PASSWORD}` reference resolves to in tests. It
/// must never appear in any rendered output.
/// The ARN of the account's default EBS key in fixtures.
pub const DEFAULT_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:123456789012:key/0b1e6c8e-0000-4000-8000-000000000e85";

pub const SECRET: &str = "hunter2-S3CRET-db-password";

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn name(s: &str) -> ResourceName {
    ResourceName::new(s).unwrap()
}

pub fn zone(s: &str) -> Zone {
    Zone::new(s).unwrap()
}

pub fn cron(s: &str) -> Cron {
    Cron::parse(s).unwrap()
}

/// Parses a template as the manifest loader would: `${Kind/name.attr}`
/// references and `${env:NAME}` values (taken from `env`).
pub fn template(s: &str, env: &[(&str, &str)]) -> Template {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 {
            parts.push(TemplatePart::Text(rest[..i].to_owned()));
        }
        let end = rest[i..].find('}').unwrap() + i;
        let inner = &rest[i + 2..end];
        if let Some(var) = inner.strip_prefix("env:") {
            let value = env.iter().find(|(k, _)| *k == var).unwrap().1;
            parts.push(TemplatePart::Env {
                name: var.to_owned(),
                value: Secret::new(value.to_owned()),
            });
        } else {
            let (target, attr) = inner.split_once('.').unwrap();
            let (kind, n) = target.split_once('/').unwrap();
            let kind = Kind::parse(kind).unwrap();
            parts.push(TemplatePart::Ref(Reference {
                target: ResourceKey::new(kind, name(n)),
                attr: Attr::parse(kind, attr).unwrap(),
            }));
        }
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_owned()));
    }
    Template { parts }
}

fn tcp(port: u16, source: Source) -> IngressRule {
    IngressRule {
        protocol: Protocol::Tcp,
        ports: Some(PortRange {
            from: port,
            to: port,
        }),
        source,
    }
}

pub fn cidr_rule(port: u16, cidr: &str) -> IngressRule {
    tcp(port, Source::Cidr(cidr.to_owned()))
}

pub fn group_rule(port: u16, group: &str) -> IngressRule {
    tcp(port, Source::Group(name(group)))
}

pub const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH23A8DpTfNAtNaPrDUGmxnEYdRZCJpsiUN2WzaV4KCZ ops@smallpayroll.example";

/// A fleet with the SmallPayroll defaults: one replica of `ami-147f977d`
/// on `m1.small` in us-east-1a, key pair `main`, the `web` group.
pub fn fleet(user_data: &str) -> FleetSpec {
    FleetSpec {
        image: "ami-147f977d".into(),
        instance_type: "m1.small".into(),
        zones: vec![zone("us-east-1a")],
        subnets: Vec::new(),
        public_ip: None,
        private_ips: Vec::new(),
        replicas: 1,
        key_pair: Some(name("main")),
        security_groups: vec![name("web")],
        user_data: template(user_data, &[]),
        tags: Tags::new(),
        schedule: None,
        autoscale: None,
        health: Health {
            grace: Duration::from_secs(300),
            http: None,
        },
        update: UpdatePolicy::default(),
        instance_profile: None,
        metadata: MetadataOptions::DEFAULT,
        root_volume: None,
    }
}

/// The image a fleet's SSM parameter names in [`in_place`].
pub const FIXTURE_IMAGE: &str = "ami-147f977d";

/// What DescribeImages tells of every fixture image: root device
/// `/dev/xvda`, an 8 GiB root snapshot.
pub fn fixture_image() -> ObservedImage {
    ObservedImage {
        root_device_name: "/dev/xvda".into(),
        root_snapshot_gib: Some(8),
    }
}

/// A fixture profile's ARN, in account 123456789012.
pub fn profile_arn(p: &InstanceProfile) -> String {
    if p.is_arn() {
        p.to_string()
    } else {
        format!("arn:aws:iam::123456789012:instance-profile/{p}")
    }
}

/// The SmallPayroll stack of the design document, as the manifests in
/// `manifests/smallpayroll/` declare it.
pub fn smallpayroll() -> Desired {
    let mut d = Desired::empty(name("smallpayroll"), "us-east-1".into());
    d.tags = Tags::from([
        ("app".into(), "smallpayroll".into()),
        ("team".into(), "payroll".into()),
    ]);
    d.key_pairs.insert(
        name("main"),
        KeyPairSpec {
            public_key: PUBLIC_KEY.into(),
            tags: Tags::new(),
        },
    );
    d.security_groups.insert(
        name("web"),
        SecurityGroupSpec {
            description: "SmallPayroll web and job servers".into(),
            ingress: vec![cidr_rule(80, "0.0.0.0/0"), cidr_rule(22, "203.0.113.7/32")],
            tags: Tags::new(),
        },
    );
    d.security_groups.insert(
        name("db"),
        SecurityGroupSpec {
            description: "SmallPayroll database".into(),
            ingress: vec![group_rule(5432, "web"), cidr_rule(22, "203.0.113.7/32")],
            tags: Tags::new(),
        },
    );
    let mut db = fleet("role=db");
    db.security_groups = vec![name("db")];
    db.health.grace = Duration::from_secs(600);
    d.fleets.insert(name("db"), db);
    d.volumes.insert(
        name("pgdata"),
        VolumeSpec {
            size_gib: 20,
            zone: zone("us-east-1a"),
            volume_type: VolumeType::Gp3,
            from_snapshot: None,
            encryption: Encryption::Encrypted { key: None },
            iops: None,
            throughput: None,
            attach: Some(Attachment {
                fleet: name("db"),
                device: "/dev/sdj".into(),
            }),
            snapshots: Some(SnapshotPolicy {
                schedule: cron("0 3 * * *"),
                timezone: Tz::bundled("America/Toronto").unwrap(),
                keep: 7,
            }),
            deletion_policy: DeletionPolicy::Snapshot,
            tags: Tags::new(),
        },
    );
    let mut app = fleet("role=app;db=${Fleet/db.privateIp}");
    app.zones = vec![zone("us-east-1a"), zone("us-east-1b")];
    app.replicas = 2;
    app.schedule = Some(Schedule {
        timezone: Tz::bundled("America/Toronto").unwrap(),
        rules: vec![
            ScheduleRule {
                cron: cron("0 8 * * 1-5"),
                replicas: 3,
            },
            ScheduleRule {
                cron: cron("0 21 * * 1-5"),
                replicas: 2,
            },
        ],
    });
    app.health.http = Some(HttpCheck {
        port: 80,
        path: "/".into(),
        expect: Some("welcome".into()),
    });
    d.fleets.insert(name("app"), app);
    let mut job = fleet("role=job;db=${Fleet/db.privateIp}");
    job.zones = vec![zone("us-east-1a"), zone("us-east-1b")];
    job.autoscale = Some(Autoscale {
        metric_url: "http://127.0.0.1:9100/queue/length".into(),
        every: Duration::from_secs(60),
        scale_out: ScaleOut {
            above: 20.0,
            step: 1,
        },
        scale_in: ScaleIn {
            below: 5.0,
            step: 1,
            min_uptime: Duration::from_secs(45 * 60),
        },
        min: 0,
        max: 2,
        cooldown: Duration::from_secs(300),
    });
    d.fleets.insert(name("job"), job);
    d.balancers.insert(
        name("web"),
        BalancerSpec {
            kind: BalancerType::Classic,
            scheme: Scheme::InternetFacing,
            zones: vec![zone("us-east-1a"), zone("us-east-1b")],
            subnets: Vec::new(),
            security_groups: Vec::new(),
            listeners: vec![Listener {
                port: 80,
                instance_port: 80,
                protocol: ListenerProtocol::Http,
                certificate: None,
            }],
            health_check: BalancerHealth::Classic(HealthCheck {
                target: "HTTP:80/".into(),
                interval_secs: 30,
                timeout_secs: 3,
                healthy_threshold: 2,
                unhealthy_threshold: 2,
            }),
            drain_secs: 300,
            cross_zone: true,
            fleets: vec![name("app")],
            tags: Tags::new(),
        },
    );
    d.buckets.insert(
        name("smallpayroll-assets"),
        BucketSpec {
            public_read: false,
            deletion_policy: DeletionPolicy::Retain,
            tags: Tags::new(),
            content: None,
        },
    );
    d.cdns.insert(
        name("assets"),
        CdnSpec {
            origin_bucket: name("smallpayroll-assets"),
            aliases: (0..4)
                .map(|i| format!("cdn{i}.smallpayroll.example"))
                .collect(),
            enabled: true,
            logging: None,
            comment: "SmallPayroll static assets".into(),
            default_root_object: Some("index.html".into()),
            tags: Tags::new(),
            invalidate: true,
            certificate: None,
            minimum_protocol_version: "TLSv1.2_2021".into(),
        },
    );
    d
}

// ---- observed worlds -------------------------------------------------------

/// The cloud name converge gives a security group (the description is
/// immutable, so a digest of it is part of the name).
pub fn group_cloud_name(stack: &ResourceName, group: &ResourceName, description: &str) -> String {
    format!("{stack}-{group}-{}", &short_digest(&[description])[..6])
}

/// The tags converge puts on a resource: the stack's, its own, ownership.
pub fn tags_for(d: &Desired, kind: Kind, n: &ResourceName, own: &Tags) -> Tags {
    let mut t = d.tags.clone();
    t.extend(own.clone());
    t.extend(owner(d, kind, n).to_tags());
    t
}

pub fn owner(d: &Desired, kind: Kind, n: &ResourceName) -> Owner {
    Owner {
        stack: d.stack.clone(),
        kind,
        name: n.clone(),
    }
}

/// The replica count a fleet should have at `at`: its schedule's rule in
/// effect, its autoscale bounds applied to `replicas`, or `replicas`.
pub fn replicas_at(f: &FleetSpec, at: Timestamp) -> u32 {
    if let Some(a) = &f.autoscale {
        return f.replicas.clamp(a.min, a.max);
    }
    if let Some(s) = &f.schedule {
        let tz = s.timezone.zone();
        if let Some((_, r)) = s
            .rules
            .iter()
            .filter_map(|r| r.cron.latest_at_or_before(at, tz).map(|t| (t, r)))
            .max_by_key(|(t, _)| *t)
        {
            return r.replicas;
        }
    }
    f.replicas
}

/// The address of a fleet's `seq`th instance: `10.0.N.(10+seq)` for the
/// small stacks of the scenarios; unique for up to 65,536 fleets of 245.
fn address(fleet: u32, seq: u32) -> Ipv4Addr {
    assert!(
        seq <= 245,
        "too many instances in one fleet for test addresses"
    );
    Ipv4Addr::new(10, (fleet >> 8) as u8, fleet as u8, (10 + seq) as u8)
}

/// The world exactly as an apply of `d` would have left it at `at`: every
/// resource present with the right settings, tags and launch-spec hashes.
/// IDs are readable (`i-app-1`, `sg-web`, `vol-pgdata`); addresses are
/// `10.0.N.x` with N the fleet's position by name.
pub fn in_place(d: &Desired, at: Timestamp) -> Observed {
    in_place_with(d, at, &BTreeMap::new())
}

/// SmallPayroll in a Network of its own (`main`, 10.0.0.0/16): two public
/// subnets for the balancer, two private ones for the fleets.
pub fn with_network(mut d: Desired) -> Desired {
    let sub = |z: &str, c: &str, public: bool| NewSubnet {
        zone: zone(z),
        cidr: c.parse().unwrap(),
        public,
    };
    d.network = Some(Network {
        name: name("main"),
        vpc: NetworkVpc::Create {
            cidr: "10.0.0.0/16".parse().unwrap(),
            subnets: BTreeMap::from([
                (name("public-a"), sub("us-east-1a", "10.0.0.0/24", true)),
                (name("public-b"), sub("us-east-1b", "10.0.1.0/24", true)),
                (name("private-a"), sub("us-east-1a", "10.0.10.0/24", false)),
                (name("private-b"), sub("us-east-1b", "10.0.11.0/24", false)),
            ]),
        },
        deletion_policy: DeletionPolicy::Delete,
        tags: Tags::new(),
    });
    for (n, f) in d.fleets.iter_mut() {
        f.subnets = if n.as_str() == "db" {
            vec![name("private-a")]
        } else {
            vec![name("private-a"), name("private-b")]
        };
        f.zones.clear();
    }
    for b in d.balancers.values_mut() {
        b.subnets = vec![name("public-a"), name("public-b")];
        b.zones.clear();
    }
    d
}

/// The default VPC every fixture region has.
pub const DEFAULT_VPC: &str = "vpc-default";

/// A region holding nothing of the stack, with a default VPC.
pub fn empty_region() -> Observed {
    Observed {
        default_vpc: Some(VpcId::from(DEFAULT_VPC)),
        ..Observed::default()
    }
}

/// The ID a fixture gives a created network's subnet.
pub fn subnet_id(subnet: &str) -> SubnetId {
    SubnetId::new(format!("subnet-{subnet}")).unwrap()
}

/// The network's VPC, subnets, gateway and route table as `d` declares
/// them (a created network), added to `o`; returns the VPC groups are in.
fn network_in_place(d: &Desired, o: &mut Observed) -> VpcId {
    let Some(net) = &d.network else {
        return VpcId::from(DEFAULT_VPC);
    };
    let (cidr, subnets) = match &net.vpc {
        NetworkVpc::Existing { vpc, .. } => return vpc.clone(),
        NetworkVpc::Create { cidr, subnets } => (cidr, subnets),
    };
    let vpc = VpcId::new(format!("vpc-{}", net.name)).unwrap();
    let mut t = tags_for(d, Kind::Network, &net.name, &net.tags);
    t.insert(
        tags::DELETION_POLICY.into(),
        net.deletion_policy.as_str().into(),
    );
    o.vpcs.push(ObservedVpc {
        id: vpc.clone(),
        owner: owner(d, Kind::Network, &net.name),
        cidr: *cidr,
        tags: t.clone(),
    });
    let gw = GatewayId::new(format!("igw-{}", net.name)).unwrap();
    o.gateways.push(ObservedGateway {
        id: gw.clone(),
        owner: owner(d, Kind::Network, &net.name),
        attached_to: Some(vpc.clone()),
        tags: t.clone(),
    });
    let mut associations = Vec::new();
    for (n, s) in subnets {
        let mut st = t.clone();
        st.insert(tags::SUBNET.into(), n.to_string());
        o.subnets.push(ObservedSubnet {
            id: subnet_id(n.as_str()),
            vpc: vpc.clone(),
            zone: s.zone.clone(),
            cidr: s.cidr,
            map_public_ip: s.public,
            owner: Some(owner(d, Kind::Network, &net.name)),
            name: Some(n.clone()),
            tags: st,
        });
        if s.public {
            associations.push((
                RouteTableAssociationId::new(format!("rtbassoc-{n}")).unwrap(),
                subnet_id(n.as_str()),
            ));
        }
    }
    o.route_tables.push(ObservedRouteTable {
        id: RouteTableId::new(format!("rtb-{}", net.name)).unwrap(),
        owner: owner(d, Kind::Network, &net.name),
        vpc: vpc.clone(),
        default_route: Some(gw),
        associations,
        tags: t,
    });
    vpc
}

/// [`in_place`], with some fleets' instance counts given.
pub fn in_place_with(d: &Desired, at: Timestamp, counts: &BTreeMap<&str, u32>) -> Observed {
    let mut o = empty_region();
    let vpc = network_in_place(d, &mut o);
    let stack = &d.stack;
    for (n, k) in &d.key_pairs {
        o.key_pairs.push(ObservedKeyPair {
            id: KeyPairId::new(format!("key-{n}")).unwrap(),
            cloud_name: format!("{stack}-{n}").parse().unwrap(),
            owner: owner(d, Kind::KeyPair, n),
            public_key: Some(k.public_key.clone()),
            tags: tags_for(d, Kind::KeyPair, n, &k.tags),
        });
    }
    let gid = |g: &ResourceName| GroupId::new(format!("sg-{g}")).unwrap();
    for (n, g) in &d.security_groups {
        o.security_groups.push(ObservedGroup {
            id: gid(n),
            cloud_name: group_cloud_name(stack, n, &g.description).parse().unwrap(),
            owner: owner(d, Kind::SecurityGroup, n),
            description: g.description.clone(),
            vpc: vpc.clone(),
            ingress: g
                .ingress
                .iter()
                .map(|r| CloudRule {
                    protocol: r.protocol,
                    ports: rule_ports(r),
                    source: match &r.source {
                        Source::Cidr(c) => CloudSource::Cidr(c.clone()),
                        Source::Group(s) => CloudSource::Group(gid(s)),
                    },
                })
                .collect(),
            tags: tags_for(d, Kind::SecurityGroup, n, &g.tags),
        });
    }
    for (n, b) in &d.buckets {
        let mut t = tags_for(d, Kind::Bucket, n, &b.tags);
        t.insert(
            tags::DELETION_POLICY.into(),
            b.deletion_policy.as_str().into(),
        );
        if let Some(c) = &b.content {
            t.insert(
                converge_core::s3::CONTENT_TAG.into(),
                converge_core::s3::content_digest(c.cache_control.as_deref()),
            );
        }
        o.buckets.push(ObservedBucket {
            name: n.to_string().parse().unwrap(),
            owner: owner(d, Kind::Bucket, n),
            public_read: b.public_read,
            tags: t,
            cdn_grants: BTreeMap::new(),
            objects: b.content.as_ref().map(|c| {
                c.files
                    .iter()
                    .map(|f| converge_core::observed::ObservedObject {
                        key: f.key.clone(),
                        etag: f.md5.clone(),
                        size: f.size,
                        metadata: None,
                    })
                    .collect()
            }),
        });
    }
    for (n, c) in &d.cdns {
        let id = DistributionId::new(format!("E{}", n.as_str().to_uppercase())).unwrap();
        let arn = format!("arn:aws:cloudfront::123456789012:distribution/{id}");
        let private = d
            .buckets
            .get(&c.origin_bucket)
            .is_some_and(|b| !b.public_read);
        if private {
            let sid = converge_core::s3::grant_sid(n.as_str());
            if let Some(b) = o
                .buckets
                .iter_mut()
                .find(|b| b.owner.name == c.origin_bucket)
            {
                b.cdn_grants.insert(sid, Some(arn.clone()));
            }
            let oac = converge_core::s3::oac_name(d.stack.as_str(), n.as_str());
            o.origin_access
                .push(converge_core::observed::ObservedOriginAccess {
                    id: format!("OAC{}", n.as_str().to_uppercase()),
                    name: oac,
                    settings: converge_core::s3::oac_settings(d.stack.as_str(), n.as_str()),
                });
        }
        let mut config = cdn_config(c);
        if private {
            config.origin_access_control =
                Some(converge_core::s3::oac_name(d.stack.as_str(), n.as_str()));
        }
        o.distributions.push(ObservedDistribution {
            id,
            owner: owner(d, Kind::Cdn, n),
            domain_name: format!("d-{n}.cloudfront.net"),
            status: DistributionStatus::Deployed,
            config,
            tags: tags_for(d, Kind::Cdn, n, &c.tags),
            arn,
        });
    }
    for (n, v) in &d.volumes {
        let mut t = tags_for(d, Kind::Volume, n, &v.tags);
        t.insert(
            tags::DELETION_POLICY.into(),
            v.deletion_policy.as_str().into(),
        );
        if v.encryption.is_encrypted() {
            let key = v
                .encryption
                .key()
                .map_or("default".into(), |k| k.to_string());
            t.insert(tags::KMS_KEY.into(), key);
        }
        o.volumes.push(ObservedVolume {
            id: VolumeId::new(format!("vol-{n}")).unwrap(),
            owner: owner(d, Kind::Volume, n),
            zone: v.zone.clone(),
            size_gib: v.size_gib,
            volume_type: v.volume_type,
            state: VolumeState::Available,
            encrypted: v.encryption.is_encrypted(),
            kms_key: v
                .encryption
                .is_encrypted()
                .then(|| DEFAULT_KEY_ARN.to_owned()),
            iops: v.target_iops(),
            throughput: v.target_throughput(),
            modification: None,
            attachment: None,
            created_at: ts("2026-01-05T11:00:00Z"),
            tags: t,
        });
    }
    for (n, b) in &d.balancers {
        o.balancers.push(observed_balancer(d, n, b));
    }
    // Fleets in reference order, so user data can be resolved from the
    // instances already placed.
    let order = reference_order(d);
    for n in &order {
        let f = &d.fleets[n];
        let count = counts
            .get(n.as_str())
            .copied()
            .unwrap_or_else(|| replicas_at(f, at));
        let idx = d.fleets.keys().position(|k| k == n).unwrap() as u32 + 1;
        // With a Network: each subnet's zone, and the subnet of a zone.
        let subnet_of: BTreeMap<Zone, (SubnetId, bool)> = f
            .subnets
            .iter()
            .filter_map(|s| {
                let obs = o.subnets.iter().find(|x| x.name.as_ref() == Some(s))?;
                Some((obs.zone.clone(), (obs.id.clone(), obs.map_public_ip)))
            })
            .collect();
        let zones = match d.volume_attached_to(n) {
            Some((_, v)) => vec![v.zone.clone()],
            None if !f.subnets.is_empty() => f
                .subnets
                .iter()
                .filter_map(|s| o.subnets.iter().find(|x| x.name.as_ref() == Some(s)))
                .map(|x| x.zone.clone())
                .collect(),
            None => f.zones.clone(),
        };
        let user_data = resolve(d, &o, &f.user_data);
        let key_name = f.key_pair.as_ref().map(|k| format!("{stack}-{k}"));
        // An image from SSM is the first fixture image, published under
        // its parameter; an image a root volume is set on is known, with
        // an 8 GiB root snapshot on /dev/xvda.
        let image = match &f.image {
            ImageSource::Id(id) => id.clone(),
            ImageSource::Parameter(p) => {
                o.parameters.insert(p.clone(), FIXTURE_IMAGE.to_owned());
                ImageId::from(FIXTURE_IMAGE)
            }
        };
        if f.root_volume.is_some() {
            o.images.insert(image.clone(), fixture_image());
        }
        let root_tag = f.root_volume.map(|r| r.tag_value());
        let hash = launch_spec_hash(
            image.as_str(),
            &f.instance_type,
            key_name.as_deref(),
            &user_data,
            root_tag.as_deref(),
        );
        let mut t = tags_for(d, Kind::Fleet, n, &f.tags);
        t.insert(tags::SPEC_HASH.into(), hash.clone());
        if let Some(r) = root_tag {
            t.insert(ROOT_VOLUME_TAG.into(), r);
        }
        if f.user_data.is_sensitive() {
            t.insert(SENSITIVE_TAG.into(), "true".into());
        }
        let mut seq = 0u32;
        for (z, c) in spread(count, &zones) {
            for _ in 0..c {
                seq += 1;
                o.instances.push(ObservedInstance {
                    vpc: Some(vpc.clone()),
                    id: InstanceId::new(format!("i-{n}-{seq}")).unwrap(),
                    owner: owner(d, Kind::Fleet, n),
                    zone: z.clone(),
                    state: InstanceState::Running,
                    // Declared addresses in order, as the planner gives them.
                    private_ip: Some(
                        f.private_ips
                            .get(seq as usize - 1)
                            .copied()
                            .unwrap_or_else(|| address(idx, seq)),
                    ),
                    subnet: subnet_of.get(&z).map(|(s, _)| s.clone()),
                    public_ip: f
                        .public_ip
                        .unwrap_or_else(|| subnet_of.get(&z).is_none_or(|(_, p)| *p))
                        .then(|| Ipv4Addr::new(198, 51, 100, (idx * 16 + seq) as u8)),
                    launched_at: ts("2026-01-05T12:00:00Z")
                        + jiff::SignedDuration::from_mins(seq as i64),
                    image: image.clone(),
                    instance_type: f.instance_type.clone(),
                    key_name: key_name.as_ref().map(|k| k.parse().unwrap()),
                    groups: f.security_groups.iter().map(gid).collect(),
                    spec_hash: Some(hash.clone()),
                    user_data: Some(user_data.clone()),
                    tags: t.clone(),
                    profile: f.instance_profile.as_ref().map(|p| ProfileAssociation {
                        id: AssociationId::new(format!("iip-assoc-{n}-{seq}")).unwrap(),
                        arn: profile_arn(p),
                    }),
                    metadata: f.metadata,
                });
            }
        }
    }
    // Attachments and balancer members follow the instances.
    for (n, v) in &d.volumes {
        if let Some(a) = &v.attach
            && let Some(i) = o
                .instances
                .iter()
                .find(|i| i.owner.name == a.fleet && i.state.is_live())
        {
            let id = i.id.clone();
            let vol = o.volumes.iter_mut().find(|x| x.owner.name == *n).unwrap();
            vol.state = VolumeState::InUse;
            vol.attachment = Some(ObservedAttachment {
                instance: id,
                device: a.device.clone(),
            });
        }
    }
    let mut by_fleet: BTreeMap<&ResourceName, Vec<&ObservedInstance>> = BTreeMap::new();
    for i in &o.instances {
        by_fleet.entry(&i.owner.name).or_default().push(i);
    }
    let mut members_of: BTreeMap<ResourceName, Vec<Member>> = BTreeMap::new();
    for (n, b) in &d.balancers {
        let mut members: Vec<Member> = Vec::new();
        for i in b
            .fleets
            .iter()
            .flat_map(|f| by_fleet.get(f).into_iter().flatten())
        {
            members.push(Member {
                instance: i.id.clone(),
                state: MemberState::InService,
            });
        }
        members.sort_by(|a, b| a.instance.cmp(&b.instance));
        members_of.insert(n.clone(), members);
    }
    for (n, members) in members_of {
        let b = o.balancers.iter_mut().find(|x| x.owner.name == n).unwrap();
        for t in &mut b.target_groups {
            t.members = members.clone();
        }
        b.members = members;
    }
    o
}

/// Makes the example's balancer an application balancer (with a
/// security group, an HTTP listener on 80 and the default target health
/// check) draining for `drain_secs`.
pub fn application_balancer(d: &mut Desired, drain_secs: u32) {
    let web = d.balancers.get_mut(&name("web")).unwrap();
    web.kind = BalancerType::Application;
    web.security_groups = vec![name("web")];
    web.health_check = BalancerHealth::Targets(TargetHealthCheck {
        protocol: ListenerProtocol::Http,
        port: None,
        path: Some("/".into()),
        matcher: Some("200-399".into()),
        interval_secs: 10,
        timeout_secs: 5,
        healthy_threshold: 3,
        unhealthy_threshold: 2,
    });
    web.drain_secs = drain_secs;
}

pub fn dns_name(balancer: &ResourceName) -> String {
    format!("{balancer}-1234567890.us-east-1.elb.amazonaws.com")
}

pub fn cdn_config(c: &CdnSpec) -> DistributionConfig {
    DistributionConfig {
        origin_domain: bucket_domain(c.origin_bucket.as_str()),
        aliases: c.aliases.clone(),
        enabled: c.enabled,
        logging: c
            .logging
            .as_ref()
            .map(|l| (bucket_domain(l.bucket.as_str()), l.prefix.clone())),
        comment: c.comment.clone(),
        default_root_object: c.default_root_object.clone(),
        origin_access_control: None,
        viewer_certificate: None,
    }
}

/// Spreads instances over zones as the planner does: evenly, the
/// remainder to the zones listed first.
pub fn spread(count: u32, zones: &[Zone]) -> Vec<(Zone, u32)> {
    let n = zones.len() as u32;
    zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.clone(), count / n + u32::from((i as u32) < count % n)))
        .collect()
}

/// Fleets after the fleets their user data references.
fn reference_order(d: &Desired) -> Vec<ResourceName> {
    let mut order: Vec<ResourceName> = Vec::new();
    while order.len() < d.fleets.len() {
        let before = order.len();
        for (n, f) in &d.fleets {
            if order.contains(n) {
                continue;
            }
            let ready = f.user_data.references().all(|r| {
                r.target.kind != Kind::Fleet
                    || !d.fleets.contains_key(&r.target.name)
                    || order.contains(&r.target.name)
            });
            if ready {
                order.push(n.clone());
            }
        }
        assert!(order.len() > before, "reference cycle");
    }
    order
}

/// User data as the executor resolves it against the world.
fn resolve(d: &Desired, o: &Observed, t: &Template) -> String {
    let mut s = String::new();
    for p in &t.parts {
        match p {
            TemplatePart::Text(x) => s.push_str(x),
            TemplatePart::Env { value, .. } => s.push_str(value.expose()),
            TemplatePart::Ref(r) => {
                let n = &r.target.name;
                match r.target.kind {
                    Kind::Fleet => {
                        let mut ips: Vec<Ipv4Addr> = o
                            .instances
                            .iter()
                            .filter(|i| i.owner.name == *n && i.state.is_live())
                            .filter_map(|i| i.private_ip)
                            .collect();
                        ips.sort();
                        let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                        if r.attr == Attr::PrivateIp {
                            s.push_str(ips.first().map(String::as_str).unwrap_or(""));
                        } else {
                            s.push_str(&ips.join(","));
                        }
                    }
                    Kind::Balancer => s.push_str(&dns_name(n)),
                    Kind::Cdn => s.push_str(&format!("d-{n}.cloudfront.net")),
                    Kind::Volume => s.push_str(&format!("vol-{n}")),
                    _ => {}
                }
            }
        }
    }
    let _ = d;
    s
}

// ---- finding things in a world ---------------------------------------------

pub fn instance<'a>(o: &'a mut Observed, id: &str) -> &'a mut ObservedInstance {
    o.instances
        .iter_mut()
        .find(|i| i.id.as_str() == id)
        .unwrap()
}

pub fn group<'a>(o: &'a mut Observed, n: &str) -> &'a mut ObservedGroup {
    o.security_groups
        .iter_mut()
        .find(|g| g.owner.name.as_str() == n)
        .unwrap()
}

pub fn volume<'a>(o: &'a mut Observed, n: &str) -> &'a mut ObservedVolume {
    o.volumes
        .iter_mut()
        .find(|v| v.owner.name.as_str() == n)
        .unwrap()
}

pub fn balancer<'a>(o: &'a mut Observed, n: &str) -> &'a mut ObservedBalancer {
    o.balancers.iter_mut().find(|b| b.name == n).unwrap()
}

pub fn bucket<'a>(o: &'a mut Observed, n: &str) -> &'a mut ObservedBucket {
    o.buckets.iter_mut().find(|b| b.name == n).unwrap()
}

pub fn distribution<'a>(o: &'a mut Observed, n: &str) -> &'a mut ObservedDistribution {
    o.distributions
        .iter_mut()
        .find(|x| x.owner.name.as_str() == n)
        .unwrap()
}

pub fn fleet_mut<'a>(d: &'a mut Desired, n: &str) -> &'a mut FleetSpec {
    d.fleets.get_mut(&name(n)).unwrap()
}

// ---- running a scenario ----------------------------------------------------

/// Plans, checks every invariant, checks that planning and rendering are
/// deterministic, and returns the plan.
pub fn run(d: &Desired, o: &Observed, at: &str) -> Plan {
    run_scaled(d, o, at, &BTreeMap::new())
}

/// [`run`] with replica counts decided outside the planner.
pub fn run_scaled(
    d: &Desired,
    o: &Observed,
    at: &str,
    scale: &BTreeMap<ResourceName, u32>,
) -> Plan {
    run_decided(d, o, at, scale, &BTreeSet::new(), &BTreeSet::new())
}

/// [`run`] with every decision of the reconcile loop: counts, instances
/// to replace as unhealthy, instances to retire on scale-in.
pub fn run_decided(
    d: &Desired,
    o: &Observed,
    at: &str,
    scale: &BTreeMap<ResourceName, u32>,
    replace: &BTreeSet<InstanceId>,
    retire: &BTreeSet<InstanceId>,
) -> Plan {
    let input = PlanInput {
        desired: d,
        observed: o,
        at: ts(at),
        scale,
        replace,
        retire,
        ..PlanInput::new(d, o, ts(at))
    };
    let plan = converge_core::plan(&input).unwrap();
    invariants::assert_ok(&plan, &input);
    let again = converge_core::plan(&input).unwrap();
    assert_eq!(plan, again, "planning is not deterministic");
    assert_eq!(text(&plan), text(&again), "rendering is not deterministic");
    for out in [text(&plan), render::markdown(&plan), render::json(&plan)] {
        assert!(
            !out.contains(SECRET),
            "a secret leaked into the output:\n{out}"
        );
    }
    plan
}

/// The plain text rendering (no colour).
pub fn text(p: &Plan) -> String {
    render::text(p, &TextOptions::default())
}

/// The steps' descriptions in index order, for assertions on the graph.
pub fn describe(p: &Plan) -> Vec<String> {
    p.graph.steps().iter().map(|s| s.describe()).collect()
}

/// Whether step `a` must finish before step `b` (a path of edges).
pub fn precedes(p: &Plan, a: usize, b: usize) -> bool {
    p.graph.ancestors().expect("the step graph has no cycle")[b].contains(&a)
}

/// The index of the only step whose description contains `needle`.
pub fn step(p: &Plan, needle: &str) -> usize {
    let found: Vec<usize> = describe(p)
        .iter()
        .enumerate()
        .filter(|(_, d)| d.contains(needle))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one step matching {needle:?}, found {found:?} in {:#?}",
        describe(p)
    );
    found[0]
}

/// Indices of every step whose description contains `needle`.
pub fn steps(p: &Plan, needle: &str) -> Vec<usize> {
    describe(p)
        .iter()
        .enumerate()
        .filter(|(_, d)| d.contains(needle))
        .map(|(i, _)| i)
        .collect()
}

/// A balancer as the cloud holds it after an apply of `b`.
pub fn observed_balancer(d: &Desired, n: &ResourceName, b: &BalancerSpec) -> ObservedBalancer {
    let handle = BalancerHandle::of(n, b.kind, b.scheme);
    let (classic, targets) = match &b.health_check {
        BalancerHealth::Classic(h) => (Some(h.clone()), None),
        BalancerHealth::Targets(t) => (None, Some(t.clone())),
    };
    let target_groups = targets
        .map(|t| {
            listener_target_groups(b.kind, &handle.cloud_name, &b.listeners)
                .into_iter()
                .map(|(name, protocol, port)| ObservedTargetGroup {
                    name,
                    protocol,
                    port,
                    health_check: t.clone(),
                    deregistration_delay_secs: b.drain_secs,
                    members: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let v2 = b.kind.has_target_groups();
    ObservedBalancer {
        name: handle.cloud_name.clone(),
        owner: owner(d, Kind::Balancer, n),
        kind: b.kind,
        scheme: b.scheme,
        dns_name: dns_name(n),
        zone_id: "Z35SXDOTRQ7X7K".into(),
        security_groups: b
            .security_groups
            .iter()
            .map(|g| GroupId::new(format!("sg-{g}")).unwrap())
            .collect(),
        target_groups,
        drain_secs: (!v2).then_some(b.drain_secs),
        cross_zone: (!v2).then_some(b.cross_zone),
        zones: b.zones.clone(),
        subnets: b.subnets.iter().map(|s| subnet_id(s.as_str())).collect(),
        listeners: b.listeners.clone(),
        health_check: classic,
        members: Vec::new(),
        tags: tags_for(d, Kind::Balancer, n, &b.tags),
    }
}
