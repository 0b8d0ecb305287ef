//! The local cloud's application and network balancers, driven through
//! `Cloud::act` with a manual clock: every rule it enforces (with AWS's
//! error codes), target states over time (initial → healthy, draining →
//! gone, a terminated instance deregistered by the cloud), the classic
//! balancer's draining, attributes, groups and certificates, and what
//! `observe`, `balancer_members` and `ls` show of them.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, ResourceType};
use converge::cloud::{Cloud, CloudError, Op, Outcome};
use converge::core::desired::{Listener, ListenerProtocol, MetadataOptions, Tags};
use converge::core::elb::{BalancerType, Scheme, TargetHealthCheck};
use converge::core::ids::{BalancerName, GroupId, InstanceId, Kind, ResourceName, Zone};
use converge::core::observed::{MemberState, Owner};
use converge::sys::ManualClock;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

const STACK: &str = "shop";
const A: &str = "us-east-1a";
const B: &str = "us-east-1b";

fn owned(kind: Kind, name: &str) -> Tags {
    Owner {
        stack: ResourceName::from(STACK),
        kind,
        name: ResourceName::new(name).unwrap(),
    }
    .to_tags()
}

/// An in-memory cloud whose health factor is 1 (real time) and whose
/// instances boot and shut down at once.
fn cloud() -> (LocalCloud, ManualClock) {
    let clock = ManualClock::new("2026-03-09T12:00:00Z".parse::<Timestamp>().unwrap());
    let delays = Delays {
        health: 1.0,
        ..Delays::zero()
    };
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays,
        faults: Faults::default(),
    };
    (
        LocalCloud::in_memory(config, Arc::new(clock.clone())),
        clock,
    )
}

fn code(r: Result<Outcome, CloudError>) -> String {
    match r {
        Ok(o) => panic!("expected a refusal, got {o:?}"),
        Err(e) => e.code,
    }
}

fn name(s: &str) -> BalancerName {
    s.parse().unwrap()
}

fn zones(z: &[&str]) -> Vec<Zone> {
    z.iter().map(|z| Zone::new(*z).unwrap()).collect()
}

fn create_lb(n: &str, kind: BalancerType, z: &[&str], groups: Vec<GroupId>) -> Op {
    Op::CreateLoadBalancerV2 {
        name: name(n),
        kind,
        scheme: Scheme::InternetFacing,
        zones: zones(z),
        subnets: vec![],
        groups,
        tags: owned(Kind::Balancer, "web"),
    }
}

fn http_check() -> TargetHealthCheck {
    TargetHealthCheck {
        protocol: ListenerProtocol::Http,
        port: None,
        path: Some("/".into()),
        matcher: Some("200-399".into()),
        interval_secs: 10,
        timeout_secs: 5,
        healthy_threshold: 3,
        unhealthy_threshold: 2,
    }
}

fn create_tg(n: &str, balancer: &str, protocol: ListenerProtocol, hc: TargetHealthCheck) -> Op {
    Op::CreateTargetGroup {
        name: n.parse().unwrap(),
        balancer: name(balancer),
        protocol,
        port: 8080,
        health_check: hc,
        tags: owned(Kind::Balancer, "web"),
    }
}

fn listener(port: u16, protocol: ListenerProtocol, certificate: Option<String>) -> Listener {
    Listener {
        port,
        instance_port: 8080,
        protocol,
        certificate,
    }
}

fn create_listener(balancer: &str, l: Listener, tg: &str) -> Op {
    Op::CreateListenerV2 {
        balancer: name(balancer),
        listener: l,
        target_group: tg.parse().unwrap(),
    }
}

async fn launch(c: &LocalCloud, zone: &str, count: u32, token: &str) -> Vec<InstanceId> {
    let op = Op::RunInstances {
        public_ip: None,
        private_ip: None,
        subnet: None,
        image: "ami-147f977d".into(),
        instance_type: "m1.small".into(),
        key_name: None,
        groups: vec![],
        user_data: String::new(),
        zone: Zone::new(zone).unwrap(),
        count,
        tags: owned(Kind::Fleet, "app"),
        client_token: token.into(),
        instance_profile: None,
        metadata: MetadataOptions::DEFAULT,
        root_volume: None,
    };
    match c.act(&op).await.unwrap() {
        Outcome::Instances(launched) => launched.into_iter().map(|l| l.id).collect(),
        other => panic!("RunInstances answered {other:?}"),
    }
}

async fn group(c: &LocalCloud, n: &str) -> GroupId {
    let op = Op::CreateGroup {
        name: n.parse().unwrap(),
        vpc: "vpc-default-us-east-1".parse().unwrap(),
        description: "web".into(),
        tags: owned(Kind::SecurityGroup, n),
    };
    match c.act(&op).await.unwrap() {
        Outcome::Group(g) => g,
        other => panic!("CreateSecurityGroup answered {other:?}"),
    }
}

/// An application balancer `web-alb` in two zones with an HTTP listener on
/// port 80 forwarding to target group `web-tg`.
async fn alb(c: &LocalCloud) {
    let g = group(c, "web").await;
    c.act(&create_lb(
        "web-alb",
        BalancerType::Application,
        &[A, B],
        vec![g],
    ))
    .await
    .unwrap();
    c.act(&create_tg(
        "web-tg",
        "web-alb",
        ListenerProtocol::Http,
        http_check(),
    ))
    .await
    .unwrap();
    c.act(&create_listener(
        "web-alb",
        listener(80, ListenerProtocol::Http, None),
        "web-tg",
    ))
    .await
    .unwrap();
}

async fn states(c: &LocalCloud) -> Vec<(InstanceId, MemberState)> {
    c.balancer_members(&name("web-alb"), BalancerType::Application)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.instance, m.state))
        .collect()
}

#[tokio::test]
async fn balancer_names_zones_and_groups_follow_elbv2() {
    let (c, _) = cloud();
    let g = group(&c, "web").await;
    let app = BalancerType::Application;
    for bad in ["internal-web", "-web", "web-", "web_alb", &"x".repeat(33)] {
        assert_eq!(
            code(c.act(&create_lb(bad, app, &[A, B], vec![g.clone()])).await),
            "ValidationError",
            "{bad}"
        );
    }
    // An application balancer needs two zones.
    assert_eq!(
        code(
            c.act(&create_lb("web-alb", app, &[A], vec![g.clone()]))
                .await
        ),
        "ValidationError"
    );
    // A network balancer takes no security groups.
    assert_eq!(
        code(
            c.act(&create_lb(
                "web-nlb",
                BalancerType::Network,
                &[A],
                vec![g.clone()]
            ))
            .await
        ),
        "InvalidConfigurationRequest"
    );
    assert_eq!(
        code(
            c.act(&create_lb(
                "web-alb",
                app,
                &[A, B],
                vec!["sg-0000000000000000f".parse().unwrap()]
            ))
            .await
        ),
        "InvalidSecurityGroup"
    );
    // The same request answers the same balancer; other settings are a
    // duplicate.
    let Outcome::Balancer { dns_name, zone_id } = c
        .act(&create_lb("web-alb", app, &[A, B], vec![g.clone()]))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(zone_id, "Z35SXDOTRQ7X7K");
    assert!(dns_name.starts_with("web-alb-"), "{dns_name}");
    let again = c
        .act(&create_lb("web-alb", app, &[B, A], vec![g.clone()]))
        .await
        .unwrap();
    assert!(matches!(again, Outcome::Balancer { dns_name: d, .. } if d == dns_name));
    assert_eq!(
        code(
            c.act(&create_lb("web-alb", app, &[A, "us-east-1c"], vec![g]))
                .await
        ),
        "DuplicateLoadBalancerName"
    );
    let Outcome::Balancer { zone_id, .. } = c
        .act(&create_lb("web-nlb", BalancerType::Network, &[A], vec![]))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(zone_id, "Z26RNL4JYFTOTI");
    // Observed with the stack: type, scheme, zones of the default VPC.
    let o = c.observe(&ResourceName::from(STACK)).await.unwrap();
    let kinds: Vec<BalancerType> = o.balancers.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, vec![app, BalancerType::Network]);
    assert_eq!(o.balancers[0].zones.len(), 2);
    assert_eq!(o.balancers[0].security_groups.len(), 1);
}

#[tokio::test]
async fn target_groups_check_health_checks_and_names() {
    let (c, _) = cloud();
    alb(&c).await;
    let http = ListenerProtocol::Http;
    let bad_checks = [
        TargetHealthCheck {
            interval_secs: 4,
            ..http_check()
        },
        TargetHealthCheck {
            timeout_secs: 10,
            ..http_check()
        },
        TargetHealthCheck {
            healthy_threshold: 11,
            ..http_check()
        },
        TargetHealthCheck {
            matcher: Some("600".into()),
            ..http_check()
        },
        TargetHealthCheck {
            path: Some("health".into()),
            ..http_check()
        },
        TargetHealthCheck {
            protocol: ListenerProtocol::Tcp,
            ..http_check()
        },
    ];
    for hc in bad_checks {
        assert_eq!(
            code(
                c.act(&create_tg("other-tg", "web-alb", http, hc.clone()))
                    .await
            ),
            "ValidationError",
            "{hc}"
        );
    }
    assert_eq!(
        code(
            c.act(&create_tg("other-tg", "nope", http, http_check()))
                .await
        ),
        "LoadBalancerNotFound"
    );
    // Same settings: the existing group; others: a duplicate.
    c.act(&create_tg("web-tg", "web-alb", http, http_check()))
        .await
        .unwrap();
    let slower = TargetHealthCheck {
        interval_secs: 30,
        ..http_check()
    };
    assert_eq!(
        code(
            c.act(&create_tg("web-tg", "web-alb", http, slower.clone()))
                .await
        ),
        "DuplicateTargetGroupName"
    );
    c.act(&Op::ModifyTargetGroup {
        name: "web-tg".parse().unwrap(),
        health_check: slower,
    })
    .await
    .unwrap();
    for (delay, ok) in [(0, true), (3600, true), (3601, false)] {
        let r = c
            .act(&Op::ModifyTargetGroupAttributes {
                name: "web-tg".parse().unwrap(),
                deregistration_delay_secs: delay,
            })
            .await;
        assert_eq!(r.is_ok(), ok, "{delay}");
    }
    // In use by a listener: not deleted.
    let del = Op::DeleteTargetGroup {
        name: "web-tg".parse().unwrap(),
    };
    assert_eq!(code(c.act(&del).await), "ResourceInUse");
    c.act(&Op::DeleteListenerV2 {
        balancer: name("web-alb"),
        port: 80,
    })
    .await
    .unwrap();
    c.act(&del).await.unwrap();
    c.act(&del).await.unwrap();
}

#[tokio::test]
async fn listeners_follow_protocols_ports_and_certificates() {
    let (c, _) = cloud();
    alb(&c).await;
    use ListenerProtocol::*;
    // One listener per port; the same one again is fine.
    c.act(&create_listener(
        "web-alb",
        listener(80, Http, None),
        "web-tg",
    ))
    .await
    .unwrap();
    c.act(&create_tg("web-tg2", "web-alb", Http, http_check()))
        .await
        .unwrap();
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(80, Http, None),
                "web-tg2"
            ))
            .await
        ),
        "DuplicateListener"
    );
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(81, Tcp, None),
                "web-tg"
            ))
            .await
        ),
        "UnsupportedProtocol"
    );
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(443, Https, None),
                "web-tg"
            ))
            .await
        ),
        "ValidationError"
    );
    let unknown = "arn:aws:acm:us-east-1:123456789012:certificate/0000".to_owned();
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(443, Https, Some(unknown)),
                "web-tg"
            ))
            .await
        ),
        "CertificateNotFound"
    );
    let arn = c.add_certificate(&["shop.example.com".into()]).unwrap();
    assert!(
        arn.starts_with("arn:aws:acm:us-east-1:123456789012:certificate/"),
        "{arn}"
    );
    assert!(c.add_certificate(&["not a domain".into()]).is_err());
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(8080, Http, Some(arn.clone())),
                "web-tg"
            ))
            .await
        ),
        "ValidationError"
    );
    c.act(&create_listener(
        "web-alb",
        listener(443, Https, Some(arn.clone())),
        "web-tg",
    ))
    .await
    .unwrap();
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(82, Http, None),
                "nope"
            ))
            .await
        ),
        "TargetGroupNotFound"
    );
    // ModifyListener needs a listener on the port.
    let modify = |port| Op::ModifyListenerV2 {
        balancer: name("web-alb"),
        listener: listener(port, Http, None),
        target_group: "web-tg2".parse().unwrap(),
    };
    assert_eq!(code(c.act(&modify(90)).await), "ListenerNotFound");
    c.act(&modify(80)).await.unwrap();
    // A network balancer's TLS listener forwards to a TCP group; a UDP
    // listener does not.
    c.act(&create_lb("web-nlb", BalancerType::Network, &[A], vec![]))
        .await
        .unwrap();
    let tcp_check = TargetHealthCheck {
        protocol: Tcp,
        path: None,
        matcher: None,
        ..http_check()
    };
    c.act(&create_tg("nlb-tg", "web-nlb", Tcp, tcp_check))
        .await
        .unwrap();
    c.act(&create_listener(
        "web-nlb",
        listener(443, Tls, Some(arn)),
        "nlb-tg",
    ))
    .await
    .unwrap();
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-nlb",
                listener(53, Udp, None),
                "nlb-tg"
            ))
            .await
        ),
        "IncompatibleProtocols"
    );
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-nlb",
                listener(80, Http, None),
                "nlb-tg"
            ))
            .await
        ),
        "UnsupportedProtocol"
    );
    // A group serves one balancer.
    assert_eq!(
        code(
            c.act(&create_listener(
                "web-alb",
                listener(83, Http, None),
                "nlb-tg"
            ))
            .await
        ),
        "IncompatibleProtocols"
    );
    let o = c.observe(&ResourceName::from(STACK)).await.unwrap();
    let web = &o.balancers[0];
    assert_eq!(web.listeners.len(), 2);
    assert_eq!(web.target_groups.len(), 2);
    assert_eq!(web.listeners[0].instance_port, 8080);
}

#[tokio::test]
async fn targets_go_initial_healthy_draining_gone() {
    let (c, clock) = cloud();
    alb(&c).await;
    let ids = launch(&c, A, 2, "t").await;
    let far = launch(&c, "us-east-1c", 1, "far").await;
    let tg = "web-tg".parse().unwrap();
    // Not an instance: InvalidTarget.
    let ghost: InstanceId = "i-0123456789abcdef0".parse().unwrap();
    let reg = |ids: Vec<InstanceId>| Op::RegisterTargets {
        target_group: "web-tg".parse().unwrap(),
        ids,
    };
    assert_eq!(code(c.act(&reg(vec![ghost])).await), "InvalidTarget");
    c.act(&reg(ids.clone())).await.unwrap();
    c.act(&reg(far.clone())).await.unwrap();
    let initial = states(&c).await;
    assert!(
        initial
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .all(|(_, s)| *s == MemberState::Initial),
        "{initial:?}"
    );
    // A zone the balancer does not serve: unused, out of service.
    assert!(initial.contains(&(far[0].clone(), MemberState::OutOfService)));
    // healthyThreshold × interval = 30 s.
    clock.advance(Duration::from_secs(29));
    assert!(states(&c).await.iter().all(|(_, s)| !s.healthy()));
    clock.advance(Duration::from_secs(1));
    let healthy: Vec<_> = states(&c)
        .await
        .into_iter()
        .filter(|(_, s)| s.healthy())
        .collect();
    assert_eq!(healthy.len(), 2);
    // Deregistered: draining for the delay (300 s), then gone.
    c.act(&Op::DeregisterTargets {
        target_group: tg,
        ids: vec![ids[0].clone()],
    })
    .await
    .unwrap();
    assert!(
        states(&c)
            .await
            .contains(&(ids[0].clone(), MemberState::Draining))
    );
    let rows = c.list().unwrap();
    let row = rows
        .iter()
        .find(|r| r.kind == ResourceType::Balancer)
        .unwrap();
    assert_eq!(
        row.state,
        format!(
            "application internet-facing, 1/2 healthy, draining {}",
            ids[0]
        )
    );
    clock.advance(Duration::from_secs(299));
    assert!(
        states(&c)
            .await
            .contains(&(ids[0].clone(), MemberState::Draining))
    );
    clock.advance(Duration::from_secs(1));
    assert!(!states(&c).await.iter().any(|(id, _)| *id == ids[0]));
    // A terminated instance is deregistered by the cloud and drains.
    c.act(&Op::TerminateInstances {
        ids: vec![ids[1].clone()],
    })
    .await
    .unwrap();
    assert!(
        states(&c)
            .await
            .contains(&(ids[1].clone(), MemberState::Draining))
    );
    clock.advance(Duration::from_secs(300));
    assert!(!states(&c).await.iter().any(|(id, _)| *id == ids[1]));
    // A terminated instance cannot be registered.
    assert_eq!(
        code(c.act(&reg(vec![ids[1].clone()])).await),
        "InvalidTarget"
    );
}

#[tokio::test]
async fn targets_in_another_vpc_are_refused() {
    let (c, _) = cloud();
    alb(&c).await;
    let (_, subnets) = c
        .add_vpc(
            "10.9.0.0/16".parse().unwrap(),
            &[(Zone::new(A).unwrap(), "10.9.1.0/24".parse().unwrap())],
        )
        .unwrap();
    let mut op = match launch_op_in(&subnets[0]) {
        op @ Op::RunInstances { .. } => op,
        _ => unreachable!(),
    };
    if let Op::RunInstances { client_token, .. } = &mut op {
        *client_token = "vpc".into();
    }
    let Outcome::Instances(ids) = c.act(&op).await.unwrap() else {
        panic!()
    };
    let r = c
        .act(&Op::RegisterTargets {
            target_group: "web-tg".parse().unwrap(),
            ids: ids.into_iter().map(|l| l.id).collect(),
        })
        .await;
    assert_eq!(code(r), "InvalidTarget");
}

fn launch_op_in(subnet: &converge::core::ids::SubnetId) -> Op {
    Op::RunInstances {
        public_ip: None,
        private_ip: None,
        subnet: Some(subnet.clone()),
        image: "ami-147f977d".into(),
        instance_type: "m1.small".into(),
        key_name: None,
        groups: vec![],
        user_data: String::new(),
        zone: Zone::new(A).unwrap(),
        count: 1,
        tags: owned(Kind::Fleet, "app"),
        client_token: String::new(),
        instance_profile: None,
        metadata: MetadataOptions::DEFAULT,
        root_volume: None,
    }
}

#[tokio::test]
async fn classic_balancers_drain_and_take_attributes() {
    let (c, clock) = cloud();
    let web = name("web");
    let arn = c.add_certificate(&["shop.example.com".into()]).unwrap();
    let create = |listeners: Vec<Listener>| Op::CreateBalancer {
        name: name("web"),
        scheme: Scheme::InternetFacing,
        zones: zones(&[A]),
        subnets: vec![],
        groups: vec![],
        listeners,
        tags: owned(Kind::Balancer, "web"),
    };
    let https = |cert: Option<String>| listener(443, ListenerProtocol::Https, cert);
    assert_eq!(
        code(c.act(&create(vec![https(None)])).await),
        "ValidationError"
    );
    assert_eq!(
        code(
            c.act(&create(vec![https(Some(
                "arn:aws:acm:us-east-1:123456789012:certificate/x".into()
            ))]))
            .await
        ),
        "CertificateNotFound"
    );
    c.act(&create(vec![https(Some(arn))])).await.unwrap();
    // Groups only in a VPC's subnets.
    let g = group(&c, "web").await;
    assert_eq!(
        code(
            c.act(&Op::ApplyBalancerGroups {
                name: web.clone(),
                groups: vec![g],
            })
            .await
        ),
        "InvalidConfigurationRequest"
    );
    let attrs = |drain_secs| Op::ModifyBalancerAttributes {
        name: name("web"),
        drain_secs,
        cross_zone: true,
    };
    assert_eq!(code(c.act(&attrs(3601)).await), "ValidationError");
    c.act(&attrs(60)).await.unwrap();
    let ids = launch(&c, A, 2, "t").await;
    c.act(&Op::RegisterInstances {
        name: web.clone(),
        ids: ids.clone(),
    })
    .await
    .unwrap();
    c.act(&Op::DeregisterInstances {
        name: web.clone(),
        ids: vec![ids[0].clone()],
    })
    .await
    .unwrap();
    // It leaves DescribeInstanceHealth at once on AWS, but drains for 60 s:
    // the local cloud shows it draining (`tracks_classic_draining`).
    let members = c
        .balancer_members(&web, BalancerType::Classic)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    assert!(c.tracks_classic_draining());
    assert!(
        members
            .iter()
            .any(|m| m.instance == ids[0] && m.state == MemberState::Draining),
        "{members:?}"
    );
    let row = |c: &LocalCloud| {
        c.list()
            .unwrap()
            .into_iter()
            .find(|r| r.kind == ResourceType::Balancer)
            .unwrap()
            .state
    };
    assert!(
        row(&c).ends_with(&format!("draining {}", ids[0])),
        "{}",
        row(&c)
    );
    clock.advance(Duration::from_secs(60));
    assert!(!row(&c).contains("draining"), "{}", row(&c));
    let o = c.observe(&ResourceName::from(STACK)).await.unwrap();
    assert_eq!(o.balancers[0].drain_secs, Some(60));
    assert_eq!(o.balancers[0].cross_zone, Some(true));
    assert_eq!(o.balancers[0].kind, BalancerType::Classic);
}

/// A run stopped between DeleteLoadBalancer and DeleteTargetGroup (or
/// between CreateTargetGroup and CreateListener) leaves target groups no
/// balancer has: observation finds them by their tags, a plan without the
/// balancer deletes them, and one the manifests still want is left for
/// the balancer's creation to take back.
#[tokio::test]
async fn target_groups_a_balancer_left_behind_are_found_and_deleted() {
    use converge::apply::{ApplyOptions, Quiet, RetryPolicy, execute};
    use converge::core::desired::Desired;
    use converge::core::plan::Step;
    let (c, clock) = cloud();
    alb(&c).await;
    c.act(&create_tg(
        "web-unused",
        "web-alb",
        ListenerProtocol::Http,
        http_check(),
    ))
    .await
    .unwrap();
    c.act(&Op::DeleteLoadBalancerV2 {
        name: name("web-alb"),
    })
    .await
    .unwrap();
    let stack = ResourceName::from(STACK);
    let o = c.observe(&stack).await.unwrap();
    assert!(o.balancers.is_empty(), "{:?}", o.balancers);
    let strays: Vec<(&str, &str)> = o
        .stray_target_groups
        .iter()
        .map(|g| (g.name.as_str(), g.balancer.as_str()))
        .collect();
    assert_eq!(strays, [("web-tg", "web"), ("web-unused", "web")]);

    let empty = Desired::empty(stack.clone(), "us-east-1".into());
    let now = converge::sys::Clock::now(&clock);
    let plan =
        converge::core::plan::plan(&converge::core::plan::PlanInput::new(&empty, &o, now)).unwrap();
    let deletes: Vec<String> = plan
        .graph
        .steps()
        .iter()
        .filter(|s| matches!(s, Step::DeleteTargetGroups { .. }))
        .map(|s| s.describe())
        .collect();
    assert_eq!(
        deletes,
        ["delete target groups web-tg, web-unused left by Balancer/web"]
    );
    let opts = ApplyOptions {
        retry: RetryPolicy::fast(),
        poll_interval: Duration::from_millis(1),
        ..ApplyOptions::default()
    };
    let c = Arc::new(c);
    let report = execute(c.clone(), &plan, opts, Arc::new(Quiet)).await;
    assert!(report.is_success(), "{report:?}");
    let o = c.observe(&stack).await.unwrap();
    assert!(
        o.stray_target_groups.is_empty(),
        "{:?}",
        o.stray_target_groups
    );
}
