//! The AWS backend's load balancers against a moto server over HTTP,
//! through `Cloud::act` and `Cloud::observe`: application and network
//! balancers (elbv2: target groups, listeners with certificates, targets)
//! and the classic balancer's scheme, security groups, certificates and
//! attributes. Each test has an account of its own on the server.
//!
//! The end-to-end tests at the bottom apply the example stack
//! (`manifests/smallpayroll`, whose `web` balancer is an application one)
//! with `web` turned into each type, as `converge apply` does: a second
//! plan has nothing to do, and a type change replaces the balancer, the
//! successor made before the predecessor is deleted.
//!
//! Certificates come from moto's ACM (RequestCertificate): moto's
//! CreateListener checks that an ACM certificate exists in the account
//! (it does not check that it is issued, as AWS does).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;
use crate::support::moto;

use converge::apply::{ApplyOptions, Quiet, Report, RetryPolicy, StepResult, execute};
use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::cloud::{Cloud, ErrorKind, Op, Outcome};
use converge::commands::observe_and_plan;
use converge::core::desired::{BalancerHealth, BalancerSpec, Desired, HealthCheck};
use converge::core::desired::{Listener, ListenerProtocol, Tags};
use converge::core::elb::{BalancerType, Scheme, TargetHealthCheck, target_group_name};
use converge::core::ids::{
    BalancerName, GroupName, InstanceId, Kind, ResourceName, TargetGroupName, VpcId, Zone, tags,
};
use converge::core::observed::{MemberState, Observed, ObservedBalancer};
use converge::core::plan::{Plan, Step};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    cloud: Arc<AwsCloud>,
    endpoint: String,
    account: String,
    stack: ResourceName,
}

async fn env(endpoint: String, test: &str) -> Env {
    let account = format!("{:012}", fastrand::u64(100_000_000_000..999_999_999_999));
    let cloud = AwsCloud::connect(
        AwsOptions {
            endpoint_url: Some(endpoint.clone()),
            moto_account: Some(account.clone()),
            initial_backoff: Some(Duration::from_millis(5)),
            ..AwsOptions::default()
        },
        "us-east-1",
    )
    .await
    .unwrap();
    Env {
        cloud: Arc::new(cloud),
        endpoint,
        account,
        stack: ResourceName::new(format!("{test}-{}", fastrand::u32(..))).unwrap(),
    }
}

impl Env {
    /// The ownership tags of a balancer of the stack.
    fn owner(&self, name: &str) -> Tags {
        Tags::from([
            (tags::STACK.to_owned(), self.stack.to_string()),
            (tags::KIND.to_owned(), Kind::Balancer.as_str().to_owned()),
            (tags::NAME.to_owned(), name.to_owned()),
        ])
    }

    async fn act(&self, op: Op) -> Outcome {
        match self.cloud.act(&op).await {
            Ok(o) => o,
            Err(e) => panic!("{} failed: {e}", op.name()),
        }
    }

    async fn refused(&self, op: Op) -> converge::cloud::CloudError {
        match self.cloud.act(&op).await {
            Ok(o) => panic!("{} was accepted: {o:?}", op.name()),
            Err(e) => e,
        }
    }

    async fn observe(&self) -> Observed {
        self.cloud.observe(&self.stack).await.unwrap()
    }

    /// A certificate from moto's ACM; answers its ARN.
    fn certificate(&self, domain: &str) -> String {
        let body = moto::call(
            &self.endpoint,
            &self.account,
            "acm",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", "CertificateManager.RequestCertificate"),
            ],
            &format!(r#"{{"DomainName":"{domain}"}}"#),
        );
        let arn = between(&body, r#""CertificateArn": ""#, r#"""#);
        assert!(arn.starts_with("arn:aws:acm:us-east-1:"), "{body}");
        arn.to_owned()
    }

    /// Instances in a zone, launched outside converge (through moto's EC2
    /// API).
    fn launch(&self, zone: &str, count: usize) -> Vec<InstanceId> {
        let n = count.to_string();
        let body = self.ec2(&[
            ("Action", "RunInstances"),
            ("ImageId", "ami-147f977d"),
            ("InstanceType", "t3.micro"),
            ("MinCount", &n),
            ("MaxCount", &n),
            ("Placement.AvailabilityZone", zone),
        ]);
        let ids: Vec<InstanceId> = body
            .split("<instanceId>")
            .skip(1)
            .map(|s| InstanceId::new(s.split('<').next().unwrap()).unwrap())
            .collect();
        assert_eq!(ids.len(), count, "{body}");
        ids
    }

    fn terminate(&self, id: &InstanceId) {
        self.ec2(&[
            ("Action", "TerminateInstances"),
            ("InstanceId.1", id.as_str()),
        ]);
    }

    fn default_vpc(&self) -> VpcId {
        let body = self.ec2(&[
            ("Action", "DescribeVpcs"),
            ("Filter.1.Name", "isDefault"),
            ("Filter.1.Value.1", "true"),
        ]);
        VpcId::new(between(&body, "<vpcId>", "</vpcId>")).unwrap()
    }

    fn ec2(&self, params: &[(&str, &str)]) -> String {
        let mut all = params.to_vec();
        all.push(("Version", "2016-11-15"));
        moto::call(
            &self.endpoint,
            &self.account,
            "ec2",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &moto::form(&all),
        )
    }

    /// Calls of a service's operation since the last reset.
    fn calls(&self, service: &str, operation: &str) -> u64 {
        self.cloud
            .stats()
            .iter()
            .filter(|c| c.service == service && c.operation == operation)
            .map(|c| c.calls)
            .sum()
    }

    fn total_calls(&self) -> u64 {
        self.cloud.stats().iter().map(|c| c.calls).sum()
    }
}

/// The text between the first `start` and the `end` after it.
fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s
        .find(start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("{start} in {s}"));
    let len = s[from..].find(end).unwrap();
    &s[from..from + len]
}

fn zones(names: &[&'static str]) -> Vec<Zone> {
    names.iter().map(|z| Zone::from(*z)).collect()
}

fn http_check() -> TargetHealthCheck {
    TargetHealthCheck {
        protocol: ListenerProtocol::Http,
        port: None,
        path: Some("/health".into()),
        matcher: Some("200-399".into()),
        interval_secs: 10,
        timeout_secs: 5,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    }
}

fn tcp_check() -> TargetHealthCheck {
    TargetHealthCheck {
        protocol: ListenerProtocol::Tcp,
        port: None,
        path: None,
        matcher: None,
        interval_secs: 10,
        timeout_secs: 5,
        healthy_threshold: 3,
        unhealthy_threshold: 3,
    }
}

fn listener(
    protocol: ListenerProtocol,
    port: u16,
    instance_port: u16,
    certificate: Option<&str>,
) -> Listener {
    Listener {
        port,
        instance_port,
        protocol,
        certificate: certificate.map(str::to_owned),
    }
}

fn balancer<'a>(o: &'a Observed, name: &str) -> &'a ObservedBalancer {
    o.balancers
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("{name} in {:?}", o.balancers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_balancer_forwards_http_and_https_to_its_target_group() {
    let e = env(moto_or_skip!(), "alb").await;
    let name = BalancerName::from("web-alb");
    let out = e
        .act(Op::CreateLoadBalancerV2 {
            name: name.clone(),
            kind: BalancerType::Application,
            scheme: Scheme::InternetFacing,
            zones: zones(&["us-east-1a", "us-east-1b"]),
            subnets: vec![],
            groups: vec![],
            tags: e.owner("web"),
        })
        .await;
    let Outcome::Balancer { dns_name, zone_id } = out else {
        panic!("{out:?}")
    };
    assert!(dns_name.contains("web-alb"), "{dns_name}");
    assert!(!zone_id.is_empty());

    let group = target_group_name(&name, ListenerProtocol::Http, 8080);
    e.act(Op::CreateTargetGroup {
        name: group.clone(),
        balancer: name.clone(),
        protocol: ListenerProtocol::Http,
        port: 8080,
        health_check: http_check(),
        tags: e.owner("web"),
    })
    .await;
    e.act(Op::ModifyTargetGroupAttributes {
        name: group.clone(),
        deregistration_delay_secs: 30,
    })
    .await;
    let cert = e.certificate("web.example.com");
    let http = listener(ListenerProtocol::Http, 80, 8080, None);
    let https = listener(ListenerProtocol::Https, 443, 8080, Some(&cert));
    for l in [&http, &https] {
        e.act(Op::CreateListenerV2 {
            balancer: name.clone(),
            listener: l.clone(),
            target_group: group.clone(),
        })
        .await;
    }
    let ids = [e.launch("us-east-1a", 1), e.launch("us-east-1b", 1)].concat();
    e.act(Op::RegisterTargets {
        target_group: group.clone(),
        ids: ids.clone(),
    })
    .await;

    e.cloud.reset_stats();
    let o = e.observe().await;
    let b = balancer(&o, "web-alb");
    assert_eq!(b.kind, BalancerType::Application);
    assert_eq!(b.scheme, Scheme::InternetFacing);
    assert_eq!(b.owner.name, ResourceName::from("web"));
    assert_eq!(
        (b.dns_name.as_str(), b.zone_id.as_str()),
        (dns_name.as_str(), zone_id.as_str())
    );
    assert_eq!(b.zones, zones(&["us-east-1a", "us-east-1b"]));
    assert_eq!(b.subnets.len(), 2, "the zones' default subnets");
    assert_eq!(b.listeners, vec![http.clone(), https.clone()]);
    assert_eq!(
        (b.drain_secs, b.cross_zone, &b.health_check),
        (None, None, &None)
    );
    assert_eq!(b.target_groups.len(), 1);
    let g = &b.target_groups[0];
    assert_eq!(
        (g.name.clone(), g.protocol, g.port),
        (group.clone(), ListenerProtocol::Http, 8080)
    );
    assert_eq!(g.health_check, http_check());
    assert_eq!(g.deregistration_delay_secs, 30);
    let mut sorted = ids.clone();
    sorted.sort();
    let members = |ms: &[converge::core::observed::Member]| {
        ms.iter()
            .map(|m| (m.instance.clone(), m.state))
            .collect::<Vec<_>>()
    };
    let healthy: Vec<_> = sorted
        .iter()
        .map(|i| (i.clone(), MemberState::InService))
        .collect();
    assert_eq!(members(&g.members), healthy);
    assert_eq!(members(&b.members), healthy);
    // Constant per plan: the account's balancers, groups and tags, then
    // per balancer of the stack its listeners, per group its targets and
    // attributes.
    for (service, op, n) in [
        ("ELBv2", "DescribeLoadBalancers", 1),
        ("ELBv2", "DescribeTargetGroups", 1),
        ("ELBv2", "DescribeTags", 1),
        ("ELBv2", "DescribeListeners", 1),
        ("ELBv2", "DescribeTargetHealth", 1),
        ("ELBv2", "DescribeTargetGroupAttributes", 1),
        // No classic balancer in the account: one list, no tags.
        ("ELB", "DescribeLoadBalancers", 1),
        ("ELB", "DescribeTags", 0),
    ] {
        assert_eq!(e.calls(service, op), n, "{op}: {:?}", e.cloud.stats());
    }
    let elbv2: u64 = e
        .cloud
        .stats()
        .iter()
        .filter(|c| c.service == "ELBv2")
        .map(|c| c.calls)
        .sum();
    assert_eq!(elbv2, 6, "{:?}", e.cloud.stats());
    eprintln!(
        "no-change observation with one application balancer: {} calls: {:?}",
        e.total_calls(),
        e.cloud.stats()
    );
    e.cloud.reset_stats();
    let again = e.observe().await;
    assert_eq!(again.balancers, o.balancers);
    assert_eq!(
        e.calls("ELBv2", "DescribeTargetHealth"),
        1,
        "the same cost again"
    );

    let m = e
        .cloud
        .balancer_members(&name, BalancerType::Application)
        .await
        .unwrap();
    assert_eq!(members(&m), healthy);

    // In place: the certificate, the health check, the targets.
    let other = e.certificate("www.example.com");
    let https2 = listener(ListenerProtocol::Https, 443, 8080, Some(&other));
    e.act(Op::ModifyListenerV2 {
        balancer: name.clone(),
        listener: https2.clone(),
        target_group: group.clone(),
    })
    .await;
    let mut check = http_check();
    check.path = Some("/ready".into());
    check.healthy_threshold = 5;
    e.act(Op::ModifyTargetGroup {
        name: group.clone(),
        health_check: check.clone(),
    })
    .await;
    e.act(Op::DeregisterTargets {
        target_group: group.clone(),
        ids: vec![ids[0].clone()],
    })
    .await;
    let o = e.observe().await;
    let b = balancer(&o, "web-alb");
    assert_eq!(b.listeners, vec![http.clone(), https2]);
    assert_eq!(b.target_groups[0].health_check, check);
    // moto drops a deregistered target at once (AWS: `draining` for the
    // deregistration delay, which converge reports as Draining).
    assert_eq!(
        members(&b.members),
        vec![(ids[1].clone(), MemberState::InService)]
    );

    // An instance that is gone fails a deregistration on its own; the
    // others are deregistered all the same.
    e.act(Op::RegisterTargets {
        target_group: group.clone(),
        ids: vec![ids[0].clone()],
    })
    .await;
    e.terminate(&ids[1]);
    e.act(Op::DeregisterTargets {
        target_group: group.clone(),
        ids: ids.clone(),
    })
    .await;
    assert!(balancer(&e.observe().await, "web-alb").members.is_empty());

    // Deletions: a listener, then the group (refused while a listener
    // forwards to it), then the balancer; again, each is not found.
    e.act(Op::DeleteListenerV2 {
        balancer: name.clone(),
        port: 80,
    })
    .await;
    let gone = e
        .refused(Op::DeleteListenerV2 {
            balancer: name.clone(),
            port: 80,
        })
        .await;
    assert_eq!(
        (gone.kind, gone.code.as_str()),
        (ErrorKind::NotFound, "ListenerNotFound")
    );
    let busy = e
        .refused(Op::DeleteTargetGroup {
            name: group.clone(),
        })
        .await;
    assert_eq!(
        (busy.kind, busy.code.as_str()),
        (ErrorKind::InvalidState, "ResourceInUse")
    );
    e.act(Op::DeleteLoadBalancerV2 { name: name.clone() }).await;
    e.act(Op::DeleteTargetGroup {
        name: group.clone(),
    })
    .await;
    let gone = e
        .refused(Op::DeleteTargetGroup {
            name: group.clone(),
        })
        .await;
    assert_eq!(gone.kind, ErrorKind::NotFound, "{gone}");
    let gone = e
        .refused(Op::DeleteLoadBalancerV2 { name: name.clone() })
        .await;
    assert_eq!(gone.kind, ErrorKind::NotFound, "{gone}");
    assert!(e.observe().await.balancers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_balancer_ends_tls_and_passes_udp() {
    let e = env(moto_or_skip!(), "nlb").await;
    let name = BalancerName::from("dns-inlb");
    let out = e
        .act(Op::CreateLoadBalancerV2 {
            name: name.clone(),
            kind: BalancerType::Network,
            scheme: Scheme::Internal,
            zones: zones(&["us-east-1a"]),
            subnets: vec![],
            groups: vec![],
            tags: e.owner("dns"),
        })
        .await;
    assert!(matches!(out, Outcome::Balancer { .. }), "{out:?}");
    let cert = e.certificate("dns.example.com");
    let tls = listener(ListenerProtocol::Tls, 853, 53, Some(&cert));
    let udp = listener(ListenerProtocol::Udp, 53, 53, None);
    for l in [&tls, &udp] {
        let protocol = BalancerType::Network.target_protocol(l.protocol);
        let group = target_group_name(&name, protocol, l.instance_port);
        e.act(Op::CreateTargetGroup {
            name: group.clone(),
            balancer: name.clone(),
            protocol,
            port: l.instance_port,
            health_check: tcp_check(),
            tags: e.owner("dns"),
        })
        .await;
        e.act(Op::CreateListenerV2 {
            balancer: name.clone(),
            listener: l.clone(),
            target_group: group,
        })
        .await;
    }
    let ids = e.launch("us-east-1a", 2);
    let tcp_group = target_group_name(&name, ListenerProtocol::Tcp, 53);
    e.act(Op::RegisterTargets {
        target_group: tcp_group.clone(),
        ids: ids.clone(),
    })
    .await;
    // One instance in the UDP group only: each instance is a member once.
    let udp_group = target_group_name(&name, ListenerProtocol::Udp, 53);
    e.act(Op::RegisterTargets {
        target_group: udp_group.clone(),
        ids: vec![ids[0].clone()],
    })
    .await;

    let o = e.observe().await;
    let b = balancer(&o, "dns-inlb");
    assert_eq!(
        (b.kind, b.scheme),
        (BalancerType::Network, Scheme::Internal)
    );
    let mut want = vec![udp.clone(), tls.clone()];
    want.sort();
    assert_eq!(b.listeners, want);
    let groups: Vec<(TargetGroupName, ListenerProtocol, usize)> = b
        .target_groups
        .iter()
        .map(|g| (g.name.clone(), g.protocol, g.members.len()))
        .collect();
    let mut expected = vec![
        (tcp_group.clone(), ListenerProtocol::Tcp, 2),
        (udp_group.clone(), ListenerProtocol::Udp, 1),
    ];
    expected.sort();
    assert_eq!(groups, expected);
    assert!(
        b.target_groups
            .iter()
            .all(|g| g.health_check == tcp_check())
    );
    assert!(
        b.target_groups
            .iter()
            .all(|g| g.deregistration_delay_secs == 300),
        "AWS's default delay"
    );
    assert_eq!(b.members.len(), 2, "{:?}", b.members);
    let m = e
        .cloud
        .balancer_members(&name, BalancerType::Network)
        .await
        .unwrap();
    assert_eq!(m, b.members);

    // Subnets as a whole list: another zone's default subnet.
    e.act(Op::SetSubnetsV2 {
        name: name.clone(),
        zones: zones(&["us-east-1a", "us-east-1b"]),
        subnets: vec![],
    })
    .await;
    let b = balancer(&e.observe().await, "dns-inlb").clone();
    assert_eq!(b.zones, zones(&["us-east-1a", "us-east-1b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_balancers_groups_change_in_place() {
    let e = env(moto_or_skip!(), "albsg").await;
    let vpc = e.default_vpc();
    let mut group_ids = Vec::new();
    for g in ["web-a", "web-b"] {
        let out = e
            .act(Op::CreateGroup {
                name: GroupName::new(format!("{}-{g}", e.stack)).unwrap(),
                vpc: vpc.clone(),
                description: "web".into(),
                tags: Tags::from([("team".to_owned(), "web".to_owned())]),
            })
            .await;
        let Outcome::Group(id) = out else {
            panic!("{out:?}")
        };
        group_ids.push(id);
    }
    let name = BalancerName::from("web-alb");
    e.act(Op::CreateLoadBalancerV2 {
        name: name.clone(),
        kind: BalancerType::Application,
        scheme: Scheme::InternetFacing,
        zones: zones(&["us-east-1a", "us-east-1b"]),
        subnets: vec![],
        groups: vec![group_ids[0].clone()],
        tags: e.owner("web"),
    })
    .await;
    let b = balancer(&e.observe().await, "web-alb").clone();
    assert_eq!(b.security_groups, vec![group_ids[0].clone()]);
    e.act(Op::SetSecurityGroupsV2 {
        name: name.clone(),
        groups: group_ids.clone(),
    })
    .await;
    let b = balancer(&e.observe().await, "web-alb").clone();
    let mut want = group_ids.clone();
    want.sort();
    assert_eq!(b.security_groups, want);
    // Tags go through elbv2's AddTags.
    e.act(Op::CreateTags {
        target: converge::core::plan::TagTarget::Balancer(name.clone()),
        tags: Tags::from([("team".to_owned(), "web".to_owned())]),
    })
    .await;
    let b = balancer(&e.observe().await, "web-alb").clone();
    assert_eq!(b.tags.get("team").map(String::as_str), Some("web"));
}

/// A run stopped between DeleteLoadBalancer and DeleteTargetGroup leaves
/// the groups: observation finds them by their tags (even with no
/// balancer left in the account), and a plan without the balancer deletes
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_groups_a_deleted_balancer_left_are_found_and_deleted() {
    let e = env(moto_or_skip!(), "strays").await;
    let name = BalancerName::from("web-alb");
    e.act(Op::CreateLoadBalancerV2 {
        name: name.clone(),
        kind: BalancerType::Application,
        scheme: Scheme::InternetFacing,
        zones: zones(&["us-east-1a", "us-east-1b"]),
        subnets: vec![],
        groups: vec![],
        tags: e.owner("web"),
    })
    .await;
    let used = target_group_name(&name, ListenerProtocol::Http, 8080);
    let unused = target_group_name(&name, ListenerProtocol::Http, 9090);
    for (g, port) in [(&used, 8080), (&unused, 9090)] {
        e.act(Op::CreateTargetGroup {
            name: g.clone(),
            balancer: name.clone(),
            protocol: ListenerProtocol::Http,
            port,
            health_check: http_check(),
            tags: e.owner("web"),
        })
        .await;
    }
    e.act(Op::CreateListenerV2 {
        balancer: name.clone(),
        listener: listener(ListenerProtocol::Http, 80, 8080, None),
        target_group: used.clone(),
    })
    .await;
    e.act(Op::DeleteLoadBalancerV2 { name: name.clone() }).await;

    let o = e.observe().await;
    assert!(o.balancers.is_empty(), "{:?}", o.balancers);
    let mut want = vec![used.clone(), unused.clone()];
    want.sort();
    let strays: Vec<TargetGroupName> = o
        .stray_target_groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    assert_eq!(strays, want);
    assert!(
        o.stray_target_groups
            .iter()
            .all(|g| g.balancer.as_str() == "web")
    );

    let empty = Desired::empty(e.stack.clone(), "us-east-1".into());
    let (_, plan) = plan_for(&e, &empty).await;
    assert!(
        steps(&plan).contains("delete target groups "),
        "{}",
        steps(&plan)
    );
    apply(&e, &plan).await;
    let o = e.observe().await;
    assert!(
        o.stray_target_groups.is_empty(),
        "{:?}",
        o.stray_target_groups
    );
    let (_, again) = plan_for(&e, &empty).await;
    assert!(!again.has_changes(), "{}", steps(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_rules_moto_does_not_enforce_are_checked_before_calling() {
    let e = env(moto_or_skip!(), "albrules").await;
    let name = BalancerName::from("web-alb");
    let create = |zones: Vec<Zone>| Op::CreateLoadBalancerV2 {
        name: name.clone(),
        kind: BalancerType::Application,
        scheme: Scheme::InternetFacing,
        zones,
        subnets: vec![],
        groups: vec![],
        tags: e.owner("web"),
    };
    e.cloud.reset_stats();
    let one_zone = e.refused(create(zones(&["us-east-1a"]))).await;
    assert_eq!(one_zone.kind, ErrorKind::Invalid);
    assert!(one_zone.message.contains("at least 2"), "{one_zone}");
    assert_eq!(e.total_calls(), 0, "refused before any call");

    e.act(create(zones(&["us-east-1a", "us-east-1b"]))).await;
    // A re-run answers the balancer it made.
    let again = e.act(create(zones(&["us-east-1a", "us-east-1b"]))).await;
    assert!(matches!(again, Outcome::Balancer { .. }));
    let group = target_group_name(&name, ListenerProtocol::Http, 80);
    let mut bad = http_check();
    bad.timeout_secs = bad.interval_secs;
    let e2 = e
        .refused(Op::CreateTargetGroup {
            name: group.clone(),
            balancer: name.clone(),
            protocol: ListenerProtocol::Http,
            port: 80,
            health_check: bad,
            tags: e.owner("web"),
        })
        .await;
    assert!(e2.message.contains("below the interval"), "{e2}");
    let e3 = e
        .refused(Op::CreateTargetGroup {
            name: group.clone(),
            balancer: name.clone(),
            protocol: ListenerProtocol::Tcp,
            port: 80,
            health_check: http_check(),
            tags: e.owner("web"),
        })
        .await;
    assert!(e3.message.contains("speak HTTP"), "{e3}");
    let create_group = Op::CreateTargetGroup {
        name: group.clone(),
        balancer: name.clone(),
        protocol: ListenerProtocol::Http,
        port: 80,
        health_check: http_check(),
        tags: e.owner("web"),
    };
    e.act(create_group.clone()).await;
    // moto refuses the same name again; AWS answers the group; converge
    // answers the stack's own group without asking.
    e.act(create_group).await;

    e.cloud.reset_stats();
    let no_cert = e
        .refused(Op::CreateListenerV2 {
            balancer: name.clone(),
            listener: listener(ListenerProtocol::Https, 443, 80, None),
            target_group: group.clone(),
        })
        .await;
    assert_eq!(
        (no_cert.kind, no_cert.code.as_str()),
        (ErrorKind::Invalid, "CertificateNotFound")
    );
    let tcp = e
        .refused(Op::CreateListenerV2 {
            balancer: name.clone(),
            listener: listener(ListenerProtocol::Tcp, 443, 80, None),
            target_group: group.clone(),
        })
        .await;
    assert_eq!(tcp.code, "UnsupportedProtocol", "{tcp}");
    assert_eq!(e.calls("ELBv2", "CreateListener"), 0);

    // A certificate moto's ACM does not hold: AWS's error, not retried.
    let unknown = e
        .refused(Op::CreateListenerV2 {
            balancer: name.clone(),
            listener: listener(
                ListenerProtocol::Https,
                443,
                80,
                Some("arn:aws:acm:us-east-1:123456789012:certificate/none"),
            ),
            target_group: group.clone(),
        })
        .await;
    assert_eq!(
        (unknown.kind, unknown.code.as_str()),
        (ErrorKind::Invalid, "CertificateNotFound"),
        "{unknown}"
    );

    // Another stack's balancer of the name is never adopted.
    let other = Env {
        cloud: Arc::new(
            AwsCloud::connect(
                AwsOptions {
                    endpoint_url: Some(e.endpoint.clone()),
                    moto_account: Some(e.account.clone()),
                    ..AwsOptions::default()
                },
                "us-east-1",
            )
            .await
            .unwrap(),
        ),
        endpoint: e.endpoint.clone(),
        account: e.account.clone(),
        stack: ResourceName::from("someone-else"),
    };
    let theirs = other
        .refused(Op::CreateLoadBalancerV2 {
            name: name.clone(),
            kind: BalancerType::Application,
            scheme: Scheme::InternetFacing,
            zones: zones(&["us-east-1a", "us-east-1b"]),
            subnets: vec![],
            groups: vec![],
            tags: other.owner("web"),
        })
        .await;
    assert_eq!(theirs.code, "DuplicateLoadBalancerName", "{theirs}");
    assert!(
        other.observe().await.balancers.is_empty(),
        "not theirs either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_balancer_takes_a_certificate_groups_and_attributes() {
    let e = env(moto_or_skip!(), "clb").await;
    let vpc = e.default_vpc();
    let out = e
        .act(Op::CreateGroup {
            name: GroupName::new(format!("{}-web", e.stack)).unwrap(),
            vpc,
            description: "web".into(),
            tags: Tags::from([("team".to_owned(), "web".to_owned())]),
        })
        .await;
    let Outcome::Group(sg) = out else {
        panic!("{out:?}")
    };
    let name = BalancerName::from("web");
    let cert = e.certificate("web.example.com");
    let https = listener(ListenerProtocol::Https, 443, 8443, Some(&cert));
    let http = listener(ListenerProtocol::Http, 80, 8080, None);
    let out = e
        .act(Op::CreateBalancer {
            name: name.clone(),
            scheme: Scheme::InternetFacing,
            zones: zones(&["us-east-1a"]),
            subnets: vec![],
            groups: vec![],
            listeners: vec![http.clone(), https.clone()],
            tags: e.owner("web"),
        })
        .await;
    let Outcome::Balancer { dns_name, zone_id } = out else {
        panic!("{out:?}")
    };
    assert!(!zone_id.is_empty(), "{dns_name}");

    e.cloud.reset_stats();
    let o = e.observe().await;
    let b = balancer(&o, "web");
    assert_eq!(b.kind, BalancerType::Classic);
    assert_eq!(b.scheme, Scheme::InternetFacing);
    assert_eq!(b.zone_id, zone_id);
    assert_eq!(b.listeners, vec![http.clone(), https.clone()]);
    // The API's defaults: draining off, cross-zone off.
    assert_eq!((b.drain_secs, b.cross_zone), (Some(0), Some(false)));
    assert_eq!(e.calls("ELB", "DescribeLoadBalancerAttributes"), 1);
    assert!(b.target_groups.is_empty());

    e.act(Op::ModifyBalancerAttributes {
        name: name.clone(),
        drain_secs: 120,
        cross_zone: true,
    })
    .await;
    e.act(Op::ApplyBalancerGroups {
        name: name.clone(),
        groups: vec![sg.clone()],
    })
    .await;
    let o = e.observe().await;
    let b = balancer(&o, "web");
    assert_eq!((b.drain_secs, b.cross_zone), (Some(120), Some(true)));
    assert_eq!(b.security_groups, vec![sg]);
    e.act(Op::ModifyBalancerAttributes {
        name: name.clone(),
        drain_secs: 0,
        cross_zone: false,
    })
    .await;
    let b = balancer(&e.observe().await, "web").clone();
    assert_eq!((b.drain_secs, b.cross_zone), (Some(0), Some(false)));

    let no_cert = e
        .refused(Op::CreateListeners {
            name: name.clone(),
            listeners: vec![listener(ListenerProtocol::Ssl, 8443, 8443, None)],
        })
        .await;
    assert_eq!(no_cert.code, "CertificateNotFound", "{no_cert}");
    let too_long = e
        .refused(Op::ModifyBalancerAttributes {
            name: name.clone(),
            drain_secs: 3601,
            cross_zone: true,
        })
        .await;
    assert_eq!(too_long.kind, ErrorKind::Invalid, "{too_long}");

    // Classic members, through the same call as elbv2's.
    let ids = e.launch("us-east-1a", 1);
    e.act(Op::RegisterInstances {
        name: name.clone(),
        ids: ids.clone(),
    })
    .await;
    let m = e
        .cloud
        .balancer_members(&name, BalancerType::Classic)
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].instance, ids[0]);
}

// ---- end to end: plan and apply the example stack -------------------------

/// Monday 10:00 in Toronto: the app fleet's weekday schedule gives 3.
fn at() -> jiff::Timestamp {
    "2026-03-09T14:00:00Z".parse().unwrap()
}

/// The example stack, renamed for this test's account (bucket names are
/// global on the server).
fn example(e: &Env) -> Desired {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let mut d = converge::manifest::load(&dir, &|_| None).unwrap().desired;
    d.stack = e.stack.clone();
    example::rename_assets_bucket(&mut d, &format!("sp-assets-{}", e.stack));
    d
}

fn web(d: &mut Desired) -> &mut BalancerSpec {
    d.balancers.get_mut(&ResourceName::from("web")).unwrap()
}

/// `web` as a network balancer: TCP 80 to the app servers, a TCP check,
/// no security groups (this project's rule for network balancers).
fn as_network(d: &mut Desired) {
    let w = web(d);
    w.kind = BalancerType::Network;
    w.security_groups.clear();
    w.listeners = vec![listener(ListenerProtocol::Tcp, 80, 80, None)];
    w.health_check = BalancerHealth::Targets(tcp_check());
}

/// `web` as a classic balancer with HTTP and HTTPS, the balancer's group,
/// a 60 s drain and cross-zone balancing.
fn as_classic(d: &mut Desired, cert: &str) {
    let w = web(d);
    w.kind = BalancerType::Classic;
    w.listeners = vec![
        listener(ListenerProtocol::Http, 80, 80, None),
        listener(ListenerProtocol::Https, 443, 80, Some(cert)),
    ];
    w.health_check = BalancerHealth::Classic(HealthCheck {
        target: "HTTP:80/".into(),
        interval_secs: 30,
        timeout_secs: 3,
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    });
    w.drain_secs = 60;
    w.cross_zone = true;
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallelism: 10,
        retry: RetryPolicy::fast(),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        ..ApplyOptions::default()
    }
}

async fn plan_for(e: &Env, d: &Desired) -> (Observed, Plan) {
    observe_and_plan(&*e.cloud, d, at(), &BTreeMap::new())
        .await
        .unwrap()
}

async fn apply(e: &Env, plan: &Plan) -> Report {
    let r = execute(e.cloud.clone(), plan, options(), Arc::new(Quiet)).await;
    let failed: Vec<String> = r
        .steps
        .values()
        .filter(|(_, res)| !matches!(res, StepResult::Done))
        .map(|(what, res)| format!("{what}: {res:?}"))
        .collect();
    assert!(r.is_success(), "apply failed:\n{}", failed.join("\n"));
    r
}

fn steps(plan: &Plan) -> String {
    plan.graph
        .steps()
        .iter()
        .map(|s| s.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Plans and applies, and checks that a second plan has nothing to do.
async fn converge(e: &Env, d: &Desired) -> Observed {
    let (_, plan) = plan_for(e, d).await;
    apply(e, &plan).await;
    let (observed, again) = plan_for(e, d).await;
    assert!(
        !again.has_changes(),
        "a plan right after apply still has steps:\n{}",
        steps(&again)
    );
    observed
}

/// The app fleet's live instances, sorted.
fn app(o: &Observed) -> Vec<InstanceId> {
    let mut v: Vec<InstanceId> = o
        .instances
        .iter()
        .filter(|i| i.owner.name.as_str() == "app" && i.state.is_live())
        .map(|i| i.id.clone())
        .collect();
    v.sort();
    v
}

fn member_ids(b: &ObservedBalancer) -> Vec<InstanceId> {
    let mut v: Vec<InstanceId> = b.members.iter().map(|m| m.instance.clone()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_applies_with_each_type_and_a_type_change_replaces_create_before_delete() {
    let e = env(moto_or_skip!(), "types").await;
    let mut d = example(&e);
    // The example's application balancer.
    let o = converge(&e, &d).await;
    assert_eq!(o.balancers.len(), 1, "{:?}", o.balancers);
    let alb = &o.balancers[0];
    assert_eq!(
        (alb.name.as_str(), alb.kind),
        ("web-alb", BalancerType::Application)
    );
    assert_eq!(alb.security_groups.len(), 1);
    assert_eq!(alb.target_groups.len(), 1);
    assert_eq!(alb.target_groups[0].deregistration_delay_secs, 30);
    assert_eq!(member_ids(alb), app(&o), "the app servers are its targets");

    // Network: a new balancer beside the old one, the app servers moved
    // over, then the old one (and its group) deleted.
    as_network(&mut d);
    let (_, plan) = plan_for(&e, &d).await;
    let id_of = |want: &str| {
        plan.graph
            .iter()
            .find(|(_, s)| match (s, want) {
                (Step::CreateBalancer { balancer, .. }, "create") => {
                    balancer.cloud_name == "web-nlb"
                }
                (Step::DeleteBalancer { balancer }, "delete") => balancer.cloud_name == "web-alb",
                _ => false,
            })
            .map(|(id, _)| id)
            .unwrap_or_else(|| panic!("{want} in:\n{}", steps(&plan)))
    };
    let (create, delete) = (id_of("create"), id_of("delete"));
    let ancestors = plan.graph.ancestors().unwrap();
    assert!(
        ancestors[delete].contains(&create),
        "the successor is made before the predecessor goes:\n{}",
        steps(&plan)
    );
    apply(&e, &plan).await;
    let (o, again) = plan_for(&e, &d).await;
    assert!(!again.has_changes(), "{}", steps(&again));
    assert_eq!(o.balancers.len(), 1, "{:?}", o.balancers);
    let nlb = &o.balancers[0];
    assert_eq!(
        (nlb.name.as_str(), nlb.kind),
        ("web-nlb", BalancerType::Network)
    );
    assert_eq!(
        nlb.listeners,
        vec![listener(ListenerProtocol::Tcp, 80, 80, None)]
    );
    assert_eq!(nlb.target_groups.len(), 1);
    assert_eq!(nlb.target_groups[0].health_check, tcp_check());
    assert_eq!(member_ids(nlb), app(&o));

    // Classic, with a certificate, the balancer's group, draining and
    // cross-zone balancing; then the drain changes in place.
    let cert = e.certificate("payroll.example.com");
    as_classic(&mut d, &cert);
    let o = converge(&e, &d).await;
    assert_eq!(o.balancers.len(), 1, "{:?}", o.balancers);
    let clb = &o.balancers[0];
    assert_eq!(
        (clb.name.as_str(), clb.kind),
        ("web", BalancerType::Classic)
    );
    assert_eq!(clb.listeners.len(), 2);
    assert_eq!(clb.listeners[1].certificate.as_deref(), Some(cert.as_str()));
    assert_eq!((clb.drain_secs, clb.cross_zone), (Some(60), Some(true)));
    assert_eq!(clb.security_groups.len(), 1);
    assert!(!clb.zone_id.is_empty());
    assert_eq!(member_ids(clb), app(&o));
    web(&mut d).drain_secs = 0;
    web(&mut d).cross_zone = false;
    let (_, plan) = plan_for(&e, &d).await;
    assert!(
        plan.graph
            .steps()
            .iter()
            .all(|s| !matches!(s, Step::CreateBalancer { .. } | Step::DeleteBalancer { .. })),
        "in place:\n{}",
        steps(&plan)
    );
    apply(&e, &plan).await;
    let o = converge(&e, &d).await;
    assert_eq!(
        (o.balancers[0].drain_secs, o.balancers[0].cross_zone),
        (Some(0), Some(false))
    );
}
