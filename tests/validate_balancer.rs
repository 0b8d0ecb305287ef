//! Manifest validation of balancers of each type: every rule that ties a
//! field to a type (protocols, certificates, security groups, zones,
//! health check forms, draining) is rejected with a message naming file,
//! resource and field, and valid balancers load with AWS's defaults.

use converge::manifest::{self, Diagnostic, Diagnostics};
use converge_core::desired::{BalancerHealth, ListenerProtocol};
use converge_core::elb::{BalancerType, Scheme};
use converge_core::ids::ResourceName;
use tempfile::TempDir;

const STACK: &str = "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n";

const FLEET: &str = "kind: Fleet
name: app
spec:
  image: ami-147f977d
  instanceType: m1.small
  zones: [us-east-1a, us-east-1b]
  replicas: 2
";

const GROUP: &str = "kind: SecurityGroup
name: web
spec:
  description: web
  ingress:
    - { protocol: tcp, port: 80, cidr: 0.0.0.0/0 }
";

const CERT: &str =
    "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

fn write(docs: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("stack.yaml"), STACK).expect("write");
    std::fs::write(dir.path().join("res.yaml"), docs.join("---\n")).expect("write");
    dir
}

fn load(docs: &[&str]) -> Result<manifest::Loaded, Diagnostics> {
    let dir = write(docs);
    manifest::load(dir.path(), &|_: &str| None)
}

fn balancer(name: &str, body: &str) -> String {
    format!("kind: Balancer\nname: {name}\nspec:\n{body}  fleets: [app]\n")
}

#[track_caller]
fn expect(body: &str, field: &str, needle: &str) -> Diagnostic {
    expect_named("web", body, field, needle)
}

#[track_caller]
fn expect_named(name: &str, body: &str, field: &str, needle: &str) -> Diagnostic {
    let b = balancer(name, body);
    let all = match load(&[FLEET, GROUP, &b]) {
        Ok(l) => panic!("expected errors, loaded {:#?}", l.desired.balancers),
        Err(d) => d.0,
    };
    let resource = format!("Balancer/{name}");
    all.iter()
        .find(|d| {
            d.file.file_name().is_some_and(|f| f == "res.yaml")
                && d.resource.as_deref().unwrap_or("") == resource
                && d.field.as_deref().unwrap_or("") == field
                && d.message.contains(needle)
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no problem {resource}: {field}: …{needle}…; got:\n{}",
                Diagnostics(all)
            )
        })
}

const ALB: &str = "  type: application
  zones: [us-east-1a, us-east-1b]
  securityGroups: [web]
";

#[test]
fn an_application_balancer_loads_with_aws_defaults() {
    let b = balancer(
        "web",
        &format!(
            "{ALB}  listeners:\n    - {{ port: 80, protocol: HTTP }}\n    - {{ port: 443, protocol: HTTPS, targetPort: 80, certificate: \"{CERT}\" }}\n"
        ),
    );
    let loaded = load(&[FLEET, GROUP, &b]).unwrap_or_else(|e| panic!("{e}"));
    let web = &loaded.desired.balancers[&ResourceName::from("web")];
    assert_eq!(
        (web.kind, web.scheme),
        (BalancerType::Application, Scheme::InternetFacing)
    );
    assert_eq!(web.drain_secs, 300);
    let BalancerHealth::Targets(h) = &web.health_check else {
        panic!("an application balancer checks its targets");
    };
    assert_eq!(h.protocol, ListenerProtocol::Http);
    assert_eq!(
        (h.path.as_deref(), h.matcher.as_deref()),
        (Some("/"), Some("200-399"))
    );
    assert_eq!(
        (h.interval_secs, h.timeout_secs, h.healthy_threshold),
        (30, 5, 5)
    );
    assert_eq!(web.listeners[1].certificate.as_deref(), Some(CERT));
    assert_eq!(web.listeners[1].instance_port, 80);
}

#[test]
fn a_network_balancer_checks_tcp_by_default() {
    let b = balancer(
        "db",
        "  type: network\n  scheme: internal\n  zones: [us-east-1a, us-east-1b]\n  listeners:\n    - { port: 5432, protocol: TCP }\n  deregistrationDelay: 10s\n",
    );
    let loaded = load(&[FLEET, &b]).unwrap_or_else(|e| panic!("{e}"));
    let db = &loaded.desired.balancers[&ResourceName::from("db")];
    let BalancerHealth::Targets(h) = &db.health_check else {
        panic!("a network balancer checks its targets");
    };
    assert_eq!(
        (h.protocol, h.timeout_secs, h.path.as_deref()),
        (ListenerProtocol::Tcp, 10, None)
    );
    assert_eq!((db.drain_secs, db.scheme), (10, Scheme::Internal));
}

#[test]
fn protocols_belong_to_their_type() {
    expect(
        &format!("{ALB}  listeners:\n    - {{ port: 53, protocol: UDP }}\n"),
        "spec.listeners[0].protocol",
        "listeners take HTTP, HTTPS, found UDP",
    );
    expect(
        "  type: network\n  zones: [us-east-1a]\n  listeners:\n    - { port: 80, protocol: HTTP }\n",
        "spec.listeners[0].protocol",
        "TCP, TLS, UDP, TCP_UDP",
    );
}

#[test]
fn tls_listeners_need_a_certificate_and_others_refuse_one() {
    expect(
        &format!("{ALB}  listeners:\n    - {{ port: 443, protocol: HTTPS }}\n"),
        "spec.listeners[0].certificate",
        "an HTTPS listener needs a certificate",
    );
    expect(
        &format!(
            "{ALB}  listeners:\n    - {{ port: 80, protocol: HTTP, certificate: \"{CERT}\" }}\n"
        ),
        "spec.listeners[0].certificate",
        "takes no certificate",
    );
    expect(
        &format!("{ALB}  listeners:\n    - {{ port: 443, protocol: HTTPS, certificate: nope }}\n"),
        "spec.listeners[0].certificate",
        "expected an ACM certificate ARN",
    );
    expect(
        "  zones: [us-east-1a]\n  listeners:\n    - { port: 443, protocol: SSL }\n  healthCheck: { target: \"TCP:443\" }\n",
        "spec.listeners[0].certificate",
        "an SSL listener needs a certificate",
    );
}

#[test]
fn an_application_balancer_needs_two_zones_and_a_group() {
    expect(
        "  type: application\n  zones: [us-east-1a]\n  securityGroups: [web]\n  listeners:\n    - { port: 80, protocol: HTTP }\n",
        "spec.zones",
        "needs two zones at least, found 1",
    );
    expect(
        "  type: application\n  zones: [us-east-1a, us-east-1b]\n  listeners:\n    - { port: 80, protocol: HTTP }\n",
        "spec.securityGroups",
        "needs at least one security group",
    );
    expect(
        "  type: network\n  zones: [us-east-1a]\n  securityGroups: [web]\n  listeners:\n    - { port: 80, protocol: TCP }\n",
        "spec.securityGroups",
        "takes no security groups",
    );
}

#[test]
fn fields_of_another_type_are_refused() {
    expect(
        &format!("{ALB}  listeners:\n    - {{ port: 80, protocol: HTTP, instancePort: 8080 }}\n"),
        "spec.listeners[0].instancePort",
        "names targetPort, not instancePort",
    );
    expect(
        &format!(
            "{ALB}  connectionDraining: 10s\n  listeners:\n    - {{ port: 80, protocol: HTTP }}\n"
        ),
        "spec.connectionDraining",
        "is for classic balancers",
    );
    expect(
        "  zones: [us-east-1a]\n  deregistrationDelay: 10s\n  listeners:\n    - { port: 80, protocol: HTTP }\n  healthCheck: { target: \"HTTP:80/\" }\n",
        "spec.deregistrationDelay",
        "is for application and network balancers",
    );
    expect(
        &format!(
            "{ALB}  listeners:\n    - {{ port: 80, protocol: HTTP }}\n  healthCheck: {{ target: \"HTTP:80/\" }}\n"
        ),
        "spec.healthCheck.target",
        "target is a classic balancer's",
    );
    expect(
        "  zones: [us-east-1a]\n  listeners:\n    - { port: 80, protocol: HTTP }\n  healthCheck: { target: \"HTTP:80/\", path: /x }\n",
        "spec.healthCheck.path",
        "is for application and network balancers",
    );
    expect(
        "  zones: [us-east-1a]\n  listeners:\n    - { port: 80, protocol: HTTP }\n",
        "spec.healthCheck",
        "a classic balancer needs a healthCheck",
    );
}

#[test]
fn health_checks_and_draining_keep_aws_ranges() {
    let listener = "  listeners:\n    - { port: 80, protocol: HTTP }\n";
    expect(
        &format!("{ALB}{listener}  healthCheck: {{ matcher: \"200-600\" }}\n"),
        "spec.healthCheck.matcher",
        "expected HTTP codes from 200 to 499",
    );
    expect(
        &format!("{ALB}{listener}  healthCheck: {{ path: health }}\n"),
        "spec.healthCheck.path",
        "starting with /",
    );
    expect(
        &format!("{ALB}{listener}  healthCheck: {{ interval: 5s, timeout: 5s }}\n"),
        "spec.healthCheck.timeout",
        "below the interval",
    );
    expect(
        &format!("{ALB}{listener}  healthCheck: {{ protocol: TCP }}\n"),
        "spec.healthCheck.protocol",
        "checks health over HTTP, HTTPS, found TCP",
    );
    expect(
        &format!("{ALB}{listener}  deregistrationDelay: 2h\n"),
        "spec.deregistrationDelay",
        "from 0s to 3600s",
    );
    expect(
        "  type: network\n  zones: [us-east-1a]\n  listeners:\n    - { port: 80, protocol: TCP }\n  healthCheck: { path: /x }\n",
        "spec.healthCheck.path",
        "a TCP health check requests no path",
    );
}

#[test]
fn elbv2_names_leave_room_for_the_suffix() {
    let long = "a".repeat(28);
    expect_named(
        &long,
        &format!("{ALB}  listeners:\n    - {{ port: 80, protocol: HTTP }}\n"),
        "name",
        "at most 27 characters",
    );
}
