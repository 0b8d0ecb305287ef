//! Manifest validation of the Network kind and of where fleets and
//! balancers go in it: each rule is rejected with a message naming file,
//! resource and field, and a valid network loads.

use converge::manifest::{self, Diagnostic, Diagnostics};
use converge_core::desired::NetworkVpc;
use tempfile::TempDir;

const STACK: &str = "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n";

const NETWORK: &str = "kind: Network
name: main
spec:
  cidr: 10.0.0.0/16
  subnets:
    - { name: public-a, zone: us-east-1a, cidr: 10.0.0.0/24, public: true }
    - { name: private-a, zone: us-east-1a, cidr: 10.0.10.0/24 }
    - { name: private-b, zone: us-east-1b, cidr: 10.0.11.0/28 }
";

fn fleet(placement: &str) -> String {
    format!(
        "kind: Fleet\nname: app\nspec:\n  image: ami-147f977d\n  instanceType: m1.small\n{placement}"
    )
}

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

#[track_caller]
fn expect(docs: &[&str], resource: &str, field: &str, needle: &str) -> Diagnostic {
    let all = match load(docs) {
        Ok(l) => panic!("expected errors, loaded {:#?}", l.desired),
        Err(d) => d.0,
    };
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

#[test]
fn a_network_with_fleets_in_its_subnets_loads() {
    let app = fleet("  subnets: [private-a, private-b]\n  replicas: 4\n");
    let loaded = load(&[NETWORK, &app]).unwrap_or_else(|d| panic!("{d}"));
    let net = loaded.desired.network.expect("a network");
    let NetworkVpc::Create { cidr, subnets } = &net.vpc else {
        panic!("a created VPC");
    };
    assert_eq!(cidr.to_string(), "10.0.0.0/16");
    assert_eq!(subnets.len(), 3);
    assert!(subnets.values().filter(|s| s.public).count() == 1);
    let f = loaded.desired.fleets.values().next().expect("a fleet");
    assert_eq!(f.subnets.len(), 2);
    assert!(f.zones.is_empty());
}

#[test]
fn zones_where_subnets_are_needed_and_the_reverse_say_which_to_use() {
    let d = expect(
        &[NETWORK, &fleet("  zones: [us-east-1a]\n")],
        "Fleet/app",
        "spec.zones",
        "with a Network, a fleet names spec.subnets (subnets of Network/main: public-a, private-a, private-b), not zones",
    );
    assert!(d.line.is_some());
    expect(
        &[&fleet("  subnets: [private-a]\n")],
        "Fleet/app",
        "spec.subnets",
        "subnets need a Network (kind: Network)",
    );
    expect(
        &[NETWORK, &fleet("  subnets: [private-c]\n")],
        "Fleet/app",
        "spec.subnets[0]",
        "Network/main has no subnet private-c (declared: public-a, private-a, private-b)",
    );
    expect(
        &[NETWORK, &fleet("  subnets: [public-a, private-a]\n")],
        "Fleet/app",
        "spec.subnets[1]",
        "at most one subnet per zone",
    );
    expect(
        &[&fleet("  zones: [us-east-1a]\n  publicIp: true\n")],
        "Fleet/app",
        "spec.publicIp",
        "publicIp needs a Network",
    );
    let balancer = "kind: Balancer\nname: web\nspec:\n  zones: [us-east-1a]\n  listeners: [{port: 80, protocol: HTTP}]\n  healthCheck: {target: \"TCP:80\"}\n";
    expect(
        &[NETWORK, balancer],
        "Balancer/web",
        "spec.zones",
        "with a Network, a balancer names spec.subnets",
    );
}

#[test]
fn blocks_follow_aws_sizes_and_stay_inside_the_vpc_without_overlap() {
    let net = |cidr: &str, subnets: &str| {
        format!("kind: Network\nname: main\nspec:\n  cidr: {cidr}\n  subnets:\n{subnets}")
    };
    let one = "    - { name: a, zone: us-east-1a, cidr: 10.0.1.0/24 }\n";
    expect(
        &[&net("10.0.0.0/8", one)],
        "Network/main",
        "spec.cidr",
        "expected a block from /16 to /28",
    );
    expect(
        &[&net("10.0.0.7/16", one)],
        "Network/main",
        "spec.cidr",
        "the block is 10.0.0.0/16",
    );
    expect(
        &[&net(
            "10.0.0.0/16",
            "    - { name: a, zone: us-east-1a, cidr: 10.1.1.0/24 }\n",
        )],
        "Network/main",
        "spec.subnets[0].cidr",
        "is not inside the VPC's block 10.0.0.0/16",
    );
    expect(
        &[&net(
            "10.0.0.0/16",
            "    - { name: a, zone: us-east-1a, cidr: 10.0.0.0/23 }\n    - { name: b, zone: us-east-1b, cidr: 10.0.1.0/24 }\n",
        )],
        "Network/main",
        "spec.subnets[1].cidr",
        "overlaps subnets[0] (10.0.0.0/23)",
    );
    expect(
        &[&net(
            "10.0.0.0/16",
            "    - { name: a, zone: us-east-1a, cidr: 10.0.1.0/29 }\n",
        )],
        "Network/main",
        "spec.subnets[0].cidr",
        "found /29",
    );
    expect(
        &[&net(
            "10.0.0.0/16",
            "    - { name: a, zone: us-west-2a, cidr: 10.0.1.0/24 }\n",
        )],
        "Network/main",
        "spec.subnets[0].zone",
        "us-west-2a",
    );
    // AWS reserves five addresses: a /28 holds 11 instances.
    expect(
        &[
            NETWORK,
            &fleet("  subnets: [private-a, private-b]\n  replicas: 24\n"),
        ],
        "Fleet/app",
        "spec.subnets[1]",
        "12 in subnet private-b, which has 11 usable addresses",
    );
}

#[test]
fn one_network_with_exactly_one_of_cidr_and_vpc() {
    let second = NETWORK.replace("name: main", "name: other");
    expect(
        &[NETWORK, &second],
        "Network/other",
        "kind",
        "a second Network",
    );
    expect(
        &[
            "kind: Network\nname: main\nspec:\n  cidr: 10.0.0.0/16\n  vpc: vpc-0abc\n  subnets: [{ name: a, id: subnet-0abc }]\n",
        ],
        "Network/main",
        "spec",
        "exactly one of cidr (create a VPC) and vpc (use an existing one), found both",
    );
    expect(
        &[
            "kind: Network\nname: main\nspec:\n  vpc: vpc-0abc\n  subnets: [{ name: a, id: subnet-0abc, zone: us-east-1a }]\n",
        ],
        "Network/main",
        "spec.subnets[0].zone",
        "its zone is read from the cloud",
    );
    expect(
        &[
            "kind: Network\nname: main\nspec:\n  vpc: vpc-0abc\n  deletionPolicy: delete\n  subnets: [{ name: a, id: subnet-0abc }]\n",
        ],
        "Network/main",
        "spec.deletionPolicy",
        "never deletes an existing VPC",
    );
    expect(
        &[
            "kind: Network\nname: main\nspec:\n  vpc: vpc-0abc\n  subnets: [{ name: a, id: sn-1 }]\n",
        ],
        "Network/main",
        "spec.subnets[0].id",
        "expected a subnet ID",
    );
    expect(
        &["kind: Network\nname: main\nspec:\n  cidr: 10.0.0.0/16\n  subnets: []\n"],
        "Network/main",
        "spec.subnets",
        "at least one subnet",
    );
}

#[test]
fn a_volume_attaches_in_its_fleets_subnet_zones() {
    let vol = "kind: Volume\nname: data\nspec:\n  sizeGiB: 20\n  zone: us-east-1b\n  attach: { fleet: app, device: /dev/sdj }\n";
    expect(
        &[NETWORK, &fleet("  subnets: [private-a]\n"), vol],
        "Volume/data",
        "spec.attach.fleet",
        "Fleet/app launches in us-east-1a but the volume is in us-east-1b",
    );
}

#[test]
fn declared_addresses_load_in_their_subnets() {
    let app = fleet(
        "  subnets: [private-a, private-b]\n  replicas: 2\n  privateIps: [10.0.10.10, 10.0.11.10]\n",
    );
    let loaded = load(&[NETWORK, &app]).unwrap_or_else(|d| panic!("{d}"));
    let f = loaded.desired.fleets.values().next().expect("a fleet");
    let ips: Vec<String> = f.private_ips.iter().map(|a| a.to_string()).collect();
    assert_eq!(ips, ["10.0.10.10", "10.0.11.10"]);
}

#[test]
fn declared_addresses_are_checked_against_subnets_counts_and_each_other() {
    let at = |ips: &str, extra: &str| {
        fleet(&format!(
            "  subnets: [private-a, private-b]\n  replicas: 2\n  privateIps: [{ips}]\n{extra}"
        ))
    };
    let cases = [
        (
            at("10.0.10.10, nope", ""),
            "spec.privateIps[1]",
            "expected an IPv4 address",
        ),
        (
            at("10.0.10.10, 10.0.10.10", ""),
            "spec.privateIps[1]",
            "listed twice",
        ),
        (
            at("10.0.10.10, 10.0.12.10", ""),
            "spec.privateIps[1]",
            "in none of the fleet's subnets (private-a 10.0.10.0/24, private-b 10.0.11.0/28)",
        ),
        (
            at("10.0.10.10, 10.0.11.15", ""),
            "spec.privateIps[1]",
            "one of the five addresses AWS reserves in subnet private-b",
        ),
        (
            at("10.0.10.3, 10.0.11.10", ""),
            "spec.privateIps[0]",
            "AWS reserves",
        ),
        (
            at("10.0.10.10", ""),
            "spec.privateIps",
            "can run up to 2 instances (replicas or schedule) but privateIps lists 1",
        ),
        (
            at("10.0.10.10, 10.0.10.11", ""),
            "spec.privateIps",
            "can put 1 instance(s) in subnet private-b (us-east-1b), but privateIps has 0",
        ),
    ];
    for (doc, field, needle) in &cases {
        expect(&[NETWORK, doc], "Fleet/app", field, needle);
    }
    let scaled = fleet(
        "  subnets: [private-a]\n  privateIps: [10.0.10.10]\n  autoscale:\n    metric: { url: http://127.0.0.1:9/q }\n    scaleOut: { above: 1, step: 1 }\n    scaleIn: { below: 0, step: 1 }\n    min: 0\n    max: 1\n",
    );
    expect(
        &[NETWORK, &scaled],
        "Fleet/app",
        "spec.privateIps",
        "do not go together",
    );
    let no_net = fleet("  zones: [us-east-1a]\n  privateIps: [10.0.10.10]\n");
    expect(
        &[&no_net],
        "Fleet/app",
        "spec.privateIps",
        "needs a Network",
    );
    let other = "kind: Fleet\nname: job\nspec:\n  image: ami-147f977d\n  instanceType: m1.small\n  subnets: [private-a]\n  privateIps: [10.0.10.10]\n";
    let app = fleet("  subnets: [private-a]\n  privateIps: [10.0.10.10]\n");
    expect(
        &[NETWORK, &app, other],
        "Fleet/job",
        "spec.privateIps[0]",
        "in the privateIps of Fleet/app too",
    );
}
