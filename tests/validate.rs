//! Manifest validation through `converge::manifest::load`: the example
//! stack loads cleanly, and every rule of the manifest reference is
//! rejected with a message naming file, resource and field.

use converge::manifest::{self, Diagnostic, Diagnostics, Loaded};
use converge_core::desired::{
    HttpTokens, ImageSource, MetadataOptions, RootVolume, Source, TemplatePart, VolumeType,
};
use converge_core::ids::{ParameterName, ResourceName};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const STACK: &str = "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH23A8DpTfNAtNaPrDUGmxnEYdRZCJpsiUN2WzaV4KCZ ops@example";
const SECRET: &str = "s3cret-value-never-printed";

fn env(name: &str) -> Option<String> {
    (name == "API_TOKEN").then(|| SECRET.to_owned())
}

fn write(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn load_dir(dir: &Path) -> Result<Loaded, Diagnostics> {
    manifest::load(dir, &env)
}

/// Loads a stack of the given files, which must fail; returns the problems.
fn errors(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    let dir = write(files);
    match load_dir(dir.path()) {
        Ok(l) => panic!("expected errors, loaded {:#?}", l.desired),
        Err(d) => {
            let text = d.to_string();
            assert!(!text.contains(SECRET), "a secret was printed:\n{text}");
            d.0
        }
    }
}

/// Asserts that loading fails with a problem in `file` (a file name),
/// `resource` and `field` (`""` for none) whose message contains `needle`.
/// Returns it.
#[track_caller]
fn expect(
    files: &[(&str, &str)],
    file: &str,
    resource: &str,
    field: &str,
    needle: &str,
) -> Diagnostic {
    let all = errors(files);
    let found = all.iter().find(|d| {
        d.file.file_name().is_some_and(|f| f == file)
            && d.resource.as_deref().unwrap_or("") == resource
            && d.field.as_deref().unwrap_or("") == field
            && d.message.contains(needle)
    });
    match found {
        Some(d) => d.clone(),
        None => panic!(
            "no problem in {file}: {resource}: {field}: …{needle}…; got:\n{}",
            Diagnostics(all)
        ),
    }
}

fn with_stack(doc: &str) -> Vec<(&'static str, String)> {
    vec![
        ("stack.yaml", STACK.to_owned()),
        ("res.yaml", doc.to_owned()),
    ]
}

/// `expect` for one resource file next to a valid Stack.
#[track_caller]
fn expect_res(doc: &str, resource: &str, field: &str, needle: &str) -> Diagnostic {
    let files = with_stack(doc);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    expect(&refs, "res.yaml", resource, field, needle)
}

#[track_caller]
fn loads(files: &[(&str, &str)]) -> Loaded {
    let dir = write(files);
    match load_dir(dir.path()) {
        Ok(l) => l,
        Err(d) => panic!("expected no errors, got:\n{d}"),
    }
}

const FLEET: &str = "kind: Fleet
name: app
spec:
  image: ami-147f977d
  instanceType: m1.small
  zones: [us-east-1a]
";

// ---- the example stack --------------------------------------------------------

#[test]
fn smallpayroll_loads_without_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/smallpayroll");
    let loaded = match load_dir(&dir) {
        Ok(l) => l,
        Err(d) => panic!("manifests/smallpayroll has problems:\n{d}"),
    };
    let d = &loaded.desired;
    assert_eq!(d.stack.as_str(), "smallpayroll");
    assert_eq!(d.region, "us-east-1");
    assert_eq!(loaded.files.len(), 9);
    let network = d.network.as_ref().expect("a Network");
    assert_eq!(network.subnet_names().len(), 4);
    let name = |s: &'static str| ResourceName::from(s);
    assert_eq!(d.fleets.len(), 3);
    assert_eq!(d.fleets[&name("app")].replicas, 2);
    let sched = d.fleets[&name("app")].schedule.as_ref().expect("schedule");
    assert_eq!(sched.rules.len(), 2);
    let job = d.fleets[&name("job")]
        .autoscale
        .as_ref()
        .expect("autoscale");
    assert_eq!((job.min, job.max), (0, 2));
    assert_eq!(job.scale_in.min_uptime, Duration::from_secs(45 * 60));
    let pg = &d.volumes[&name("pgdata")];
    assert_eq!(pg.size_gib, 20);
    assert_eq!(
        pg.attach.as_ref().map(|a| a.device.as_str()),
        Some("/dev/sdj")
    );
    assert_eq!(pg.snapshots.as_ref().map(|s| s.keep), Some(7));
    let web = &d.balancers[&name("web")];
    assert_eq!(web.kind, converge_core::elb::BalancerType::Application);
    assert_eq!(web.drain_secs, 30);
    let converge_core::desired::BalancerHealth::Targets(hc) = &web.health_check else {
        panic!("the example's balancer is an application balancer");
    };
    assert_eq!(
        (
            hc.path.as_deref(),
            hc.interval_secs,
            hc.timeout_secs,
            hc.healthy_threshold,
            hc.unhealthy_threshold
        ),
        (Some("/"), 30, 3, 2, 2)
    );
    let cdn = &d.cdns[&name("assets")];
    assert_eq!(cdn.aliases.len(), 4);
    assert!(cdn.aliases.windows(2).all(|w| w[0] < w[1]));
    assert!(cdn.enabled && cdn.logging.is_none());
    assert!(d.buckets.contains_key(&name("smallpayroll-assets")));
    let db = &d.security_groups[&name("db")];
    assert!(
        db.ingress
            .iter()
            .any(|r| r.source == Source::Group(name("web")))
    );
    assert_eq!(d.fleets[&name("app")].user_data.references().count(), 1);
}

// ---- YAML and document shape --------------------------------------------------

#[test]
fn yaml_syntax_errors_name_the_line() {
    let all = errors(&[
        ("stack.yaml", STACK),
        ("bad.yaml", "kind: Fleet\nname: [a, b\nspec: {}\n"),
    ]);
    let d = all
        .iter()
        .find(|d| d.file.ends_with("bad.yaml"))
        .expect("an error in bad.yaml");
    assert!(d.message.starts_with("invalid YAML"), "{d}");
    assert!(d.line.is_some(), "{d}");
    // The display reads like a compiler diagnostic.
    let text = d.to_string();
    assert!(text.contains("bad.yaml:"), "{text}");
}

#[test]
fn unknown_fields_are_errors() {
    let d = expect_res(
        &format!("{FLEET}  replica: 2\n"),
        "Fleet/app",
        "spec.replica",
        "unknown field `replica`",
    );
    assert!(d.message.contains("replicas"), "lists valid fields: {d}");
    assert_eq!(d.line, Some(7));
    assert_eq!(d.column, Some(3));
    expect_res(
        &format!("{FLEET}  health:\n    http: {{ port: 80, pth: / }}\n"),
        "Fleet/app",
        "spec.health.http.pth",
        "unknown field",
    );
    expect_res(
        &format!("apiVersion: v1\n{FLEET}"),
        "Fleet/app",
        "apiVersion",
        "a document has kind, name and spec",
    );
}

#[test]
fn wrong_types_say_expected_and_found() {
    let d = expect_res(
        &format!("{FLEET}  replicas: two\n"),
        "Fleet/app",
        "spec.replicas",
        "expected an integer, found \"two\"",
    );
    let text = d.to_string();
    assert!(
        text.ends_with(
            "res.yaml:7:13: Fleet/app: spec.replicas: expected an integer, found \"two\""
        ),
        "{text}"
    );
    expect_res(
        &format!("{FLEET}  securityGroups: web\n"),
        "Fleet/app",
        "spec.securityGroups",
        "expected a list, found \"web\"",
    );
    expect_res(
        "kind: Bucket\nname: assets-1\nspec:\n  publicRead: yes\n",
        "Bucket/assets-1",
        "spec.publicRead",
        "expected a boolean, found \"yes\"",
    );
}

#[test]
fn missing_fields_are_named() {
    expect_res(
        "kind: Fleet\nname: app\nspec:\n  instanceType: m1.small\n  zones: [us-east-1a]\n",
        "Fleet/app",
        "spec",
        "missing required field `image`",
    );
    let all = errors(&[
        ("stack.yaml", STACK),
        ("res.yaml", "kind: Fleet\nname: app\n"),
    ]);
    assert!(
        all.iter()
            .any(|d| d.message == "missing required field `spec`"
                && d.resource.as_deref() == Some("Fleet/app")),
        "{}",
        Diagnostics(all)
    );
    // A Bucket's spec may be left out: every field has a default.
    loads(&[
        ("stack.yaml", STACK),
        ("b.yaml", "kind: Bucket\nname: assets-1\n"),
    ]);
}

#[test]
fn unknown_kinds_list_the_valid_ones() {
    let d = expect_res(
        "kind: Deployment\nname: x\nspec: {}\n",
        "Deployment/x",
        "kind",
        "unknown kind \"Deployment\"",
    );
    assert!(
        d.message
            .contains("Stack, KeyPair, SecurityGroup, Fleet, Volume, Balancer, Bucket, Cdn")
    );
}

#[test]
fn unknown_kind_suggests_the_spelling() {
    let all = errors(&[
        ("stack.yaml", STACK),
        ("res.yaml", "kind: fleet\nname: x\nspec: {}\n"),
    ]);
    assert!(
        all.iter().any(
            |d| d.field.as_deref() == Some("kind") && d.message.contains("did you mean Fleet?")
        ),
        "{}",
        Diagnostics(all)
    );
}

// ---- names ----------------------------------------------------------------------

#[test]
fn duplicate_names_are_errors_per_kind() {
    let d = expect_res(
        &format!("{FLEET}---\n{FLEET}"),
        "Fleet/app",
        "name",
        "duplicate name: Fleet/app is already declared at",
    );
    assert_eq!(d.line, Some(9));
    // The same name in two kinds is fine.
    loads(&[
        ("stack.yaml", STACK),
        (
            "a.yaml",
            &format!("{FLEET}---\nkind: SecurityGroup\nname: app\nspec: {{}}\n"),
        ),
    ]);
}

#[test]
fn bad_names_are_errors() {
    expect_res(
        "kind: SecurityGroup\nname: Web_1\nspec: {}\n",
        "SecurityGroup/Web_1",
        "name",
        "expected lowercase letters, digits and hyphens, starting with a letter",
    );
    let long = "a".repeat(64);
    expect_res(
        &format!("kind: KeyPair\nname: {long}\nspec:\n  publicKey: {KEY}\n"),
        &format!("KeyPair/{long}"),
        "name",
        "at most 63 characters",
    );
    let b33 = "b".repeat(33);
    expect_res(
        &format!(
            "kind: Balancer\nname: {b33}\nspec:\n  zones: [us-east-1a]\n  listeners: [{{port: 80, protocol: HTTP}}]\n  healthCheck: {{target: \"TCP:80\"}}\n"
        ),
        &format!("Balancer/{b33}"),
        "name",
        "at most 32 characters",
    );
    for (bucket, needle) in [
        ("ab", "3-63"),
        ("my..bucket", "two adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("Assets", "S3 bucket name"),
        ("assets-", "S3 bucket name"),
    ] {
        expect_res(
            &format!("kind: Bucket\nname: {bucket}\n"),
            &format!("Bucket/{bucket}"),
            "name",
            needle,
        );
    }
    // Bucket names may hold dots and start with a digit.
    loads(&[
        ("stack.yaml", STACK),
        ("b.yaml", "kind: Bucket\nname: 1st.assets.example\n"),
    ]);
}

// ---- tags -----------------------------------------------------------------------

fn tags(n: usize, prefix: &str) -> String {
    (0..n).map(|i| format!("    {prefix}{i}: v\n")).collect()
}

#[test]
fn too_many_tags_count_the_stacks_and_conveges() {
    // 40 own + 5 from the Stack + 3 of converge's = 48: fine.
    let stack = format!(
        "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n  tags:\n{}",
        tags(5, "s")
    );
    let sg = |n| {
        format!(
            "kind: SecurityGroup\nname: web\nspec:\n  tags:\n{}",
            tags(n, "t")
        )
    };
    loads(&[("stack.yaml", &stack), ("res.yaml", &sg(42))]);
    let all = errors(&[("stack.yaml", &stack), ("res.yaml", &sg(43))]);
    let d = all
        .iter()
        .find(|d| d.field.as_deref() == Some("spec.tags"))
        .expect("a tags error");
    assert_eq!(d.resource.as_deref(), Some("SecurityGroup/web"));
    assert!(
        d.message
            .contains("43 here, 5 more from the Stack and 3 that converge adds make 51"),
        "{d}"
    );
    // Stack tags alone must leave room.
    let big = format!(
        "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n  tags:\n{}",
        tags(47, "s")
    );
    expect(
        &[("stack.yaml", &big)],
        "stack.yaml",
        "Stack/demo",
        "spec.tags",
        "at most 46 stack tags",
    );
}

#[test]
fn reserved_tag_keys_are_errors() {
    expect_res(
        "kind: Bucket\nname: assets-1\nspec:\n  tags:\n    converge:stack: other\n",
        "Bucket/assets-1",
        "spec.tags[\"converge:stack\"]",
        "reserved",
    );
}

// ---- security groups ------------------------------------------------------------

fn sg(rule: &str) -> String {
    format!("kind: SecurityGroup\nname: web\nspec:\n  ingress:\n    - {rule}\n")
}

#[test]
fn bad_cidrs_are_errors() {
    expect_res(
        &sg("{ port: 22, cidr: 10.0.0.300/32 }"),
        "SecurityGroup/web",
        "spec.ingress[0].cidr",
        "expected an IPv4 CIDR block",
    );
    expect_res(
        &sg("{ port: 22, cidr: 203.0.113.7 }"),
        "SecurityGroup/web",
        "spec.ingress[0].cidr",
        "\"203.0.113.7/32\"",
    );
    expect_res(
        &sg("{ port: 22, cidr: 10.0.0.0/33 }"),
        "SecurityGroup/web",
        "spec.ingress[0].cidr",
        "0 to 32",
    );
    let d = expect_res(
        &sg("{ port: 22, cidr: 10.1.2.3/16 }"),
        "SecurityGroup/web",
        "spec.ingress[0].cidr",
        "host bits",
    );
    assert!(d.message.contains("\"10.1.0.0/16\""), "{d}");
}

#[test]
fn bad_ports_and_ranges_are_errors() {
    expect_res(
        &sg("{ port: 0, cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].port",
        "from 1 to 65535, found 0",
    );
    expect_res(
        &sg("{ port: 70000, cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].port",
        "found 70000",
    );
    expect_res(
        &sg("{ ports: \"8101-8100\", cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].ports",
        "must not exceed",
    );
    expect_res(
        &sg("{ ports: \"80\", cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].ports",
        "expected a port range",
    );
    expect_res(
        &sg("{ port: 80, ports: \"80-81\", cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0]",
        "exactly one of port and ports, found both",
    );
    expect_res(
        &sg("{ protocol: udp, cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0]",
        "found neither",
    );
    expect_res(
        &sg("{ protocol: icmp, port: 8, cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].port",
        "icmp rules cover every port",
    );
    expect_res(
        &sg("{ protocol: all, ports: \"1-2\", cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].ports",
        "all rules cover every port",
    );
    expect_res(
        &sg("{ protocol: sctp, port: 1, cidr: 0.0.0.0/0 }"),
        "SecurityGroup/web",
        "spec.ingress[0].protocol",
        "expected one of tcp, udp, icmp, all, found \"sctp\"",
    );
}

#[test]
fn a_rule_needs_exactly_one_source() {
    expect_res(
        &sg("{ port: 22, cidr: 0.0.0.0/0, group: web }"),
        "SecurityGroup/web",
        "spec.ingress[0]",
        "exactly one of cidr and group, found both",
    );
    expect_res(
        &sg("{ port: 22 }"),
        "SecurityGroup/web",
        "spec.ingress[0]",
        "exactly one of cidr and group, found neither",
    );
    // A group may admit itself.
    loads(&[
        ("stack.yaml", STACK),
        ("res.yaml", &sg("{ port: 22, group: web }")),
    ]);
}

#[test]
fn duplicate_rules_and_bad_descriptions_are_errors() {
    expect_res(
        "kind: SecurityGroup\nname: web\nspec:\n  ingress:\n    - { port: 22, cidr: 0.0.0.0/0 }\n    - { port: 22, cidr: 0.0.0.0/0 }\n",
        "SecurityGroup/web",
        "spec.ingress[1]",
        "the same rule as ingress[0]",
    );
    expect_res(
        "kind: SecurityGroup\nname: web\nspec:\n  description: \"caf\u{e9}\"\n",
        "SecurityGroup/web",
        "spec.description",
        "found 'é'",
    );
}

// ---- fleets ---------------------------------------------------------------------

#[test]
fn bad_images_types_zones_and_regions_are_errors() {
    expect_res(
        &FLEET.replace("ami-147f977d", "ubuntu"),
        "Fleet/app",
        "spec.image",
        "ami-147f977d",
    );
    expect_res(
        &FLEET.replace("m1.small", "small"),
        "Fleet/app",
        "spec.instanceType",
        "m1.small",
    );
    expect_res(
        &FLEET.replace("[us-east-1a]", "[eu-west-1a]"),
        "Fleet/app",
        "spec.zones[0]",
        "a zone of region us-east-1",
    );
    expect_res(
        &FLEET.replace("[us-east-1a]", "[]"),
        "Fleet/app",
        "spec.zones",
        "at least one zone",
    );
    expect_res(
        &FLEET.replace("[us-east-1a]", "[us-east-1a, us-east-1a]"),
        "Fleet/app",
        "spec.zones[1]",
        "listed twice",
    );
    let bad_region = STACK.replace("us-east-1", "useast");
    expect(
        &[("stack.yaml", &bad_region)],
        "stack.yaml",
        "Stack/demo",
        "spec.region",
        "expected an AWS region",
    );
}

#[test]
fn bad_cron_and_time_zones_are_errors() {
    let fleet = |tz: &str, cron: &str| {
        format!(
            "{FLEET}  schedule:\n    timezone: {tz}\n    rules:\n      - {{ cron: \"{cron}\", replicas: 1 }}\n"
        )
    };
    expect_res(
        &fleet("UTC", "0 25 * * *"),
        "Fleet/app",
        "spec.schedule.rules[0].cron",
        "bad cron expression \"0 25 * * *\": hour field",
    );
    expect_res(
        &fleet("UTC", "0 8 * *"),
        "Fleet/app",
        "spec.schedule.rules[0].cron",
        "expected 5 fields",
    );
    expect_res(
        &fleet("Mars/Olympus", "0 8 * * *"),
        "Fleet/app",
        "spec.schedule.timezone",
        "IANA time zone",
    );
    expect_res(
        "kind: Volume\nname: v\nspec:\n  sizeGiB: 1\n  zone: us-east-1a\n  snapshots: { schedule: \"nightly\", keep: 7 }\n",
        "Volume/v",
        "spec.snapshots.schedule",
        "bad cron expression",
    );
    expect_res(
        &format!("{FLEET}  schedule:\n    rules: []\n"),
        "Fleet/app",
        "spec.schedule.rules",
        "at least one rule",
    );
}

#[test]
fn bad_durations_are_errors() {
    expect_res(
        &format!("{FLEET}  health:\n    grace: five minutes\n"),
        "Fleet/app",
        "spec.health.grace",
        "expected a duration like \"30s\", \"500ms\"",
    );
    expect_res(
        &format!("{FLEET}  health:\n    grace: 300\n"),
        "Fleet/app",
        "spec.health.grace",
        "found 300",
    );
    expect_res(
        &format!("{FLEET}  health:\n    grace: 1m1h\n"),
        "Fleet/app",
        "spec.health.grace",
        "units must be written from largest to smallest",
    );
    expect_res(
        &format!("{FLEET}  health:\n    grace: -5m\n"),
        "Fleet/app",
        "spec.health.grace",
        "must not be negative, found \"-5m\"",
    );
    expect_res(
        &format!("{FLEET}  health:\n    grace: 367 days\n"),
        "Fleet/app",
        "spec.health.grace",
        "calendar units",
    );
    expect_res(
        &format!("{FLEET}  health:\n    grace: 8785h\n"),
        "Fleet/app",
        "spec.health.grace",
        "must be at most 366 days",
    );
}

#[test]
fn update_budget_cannot_be_zero() {
    expect_res(
        &format!("{FLEET}  update:\n    maxSurge: 0\n    maxUnavailable: 0\n"),
        "Fleet/app",
        "spec.update",
        "cannot both be 0",
    );
}

fn autoscale(min: i64, max: i64) -> String {
    format!(
        "{FLEET}  autoscale:\n    metric: {{ url: \"http://127.0.0.1:9100/queue/length\" }}\n    scaleOut: {{ above: 20 }}\n    scaleIn: {{ below: 5, minUptime: 45m }}\n    min: {min}\n    max: {max}\n"
    )
}

#[test]
fn autoscale_min_above_max_is_an_error() {
    loads(&[("stack.yaml", STACK), ("res.yaml", &autoscale(0, 2))]);
    expect_res(
        &autoscale(3, 2),
        "Fleet/app",
        "spec.autoscale.min",
        "min must not exceed max, found min 3 and max 2",
    );
    expect_res(
        &autoscale(0, 2).replace("below: 5", "below: 30"),
        "Fleet/app",
        "spec.autoscale.scaleIn.below",
        "must be under scaleOut.above",
    );
    expect_res(
        &autoscale(0, 2).replace("http://127.0.0.1:9100/queue/length", "queue"),
        "Fleet/app",
        "spec.autoscale.metric.url",
        "http://",
    );
    expect_res(
        &autoscale(0, 2).replace("    min: 0", "    min: 0\n    every: 0s"),
        "Fleet/app",
        "spec.autoscale.every",
        "above zero",
    );
    expect_res(
        &format!("{}  replicas: 1\n", autoscale(0, 2)),
        "Fleet/app",
        "spec.replicas",
        "no effect with autoscale",
    );
}

// ---- references -----------------------------------------------------------------

#[test]
fn dangling_references_are_errors() {
    let files = [
        ("stack.yaml", STACK),
        (
            "res.yaml",
            "kind: Fleet
name: app
spec:
  image: ami-147f977d
  instanceType: m1.small
  zones: [us-east-1a]
  keyPair: nokey
  securityGroups: [nogroup]
  userData: \"db=${Fleet/nodb.privateIp}\"
---
kind: SecurityGroup
name: web
spec:
  ingress: [{ port: 5432, group: ghost }]
---
kind: Volume
name: v
spec: { sizeGiB: 1, zone: us-east-1a, attach: { fleet: nofleet, device: /dev/sdf } }
---
kind: Balancer
name: lb
spec:
  zones: [us-east-1a]
  listeners: [{ port: 80, protocol: HTTP }]
  healthCheck: { target: \"HTTP:80/\" }
  fleets: [nofleet]
---
kind: Cdn
name: assets
spec:
  origin: { bucket: nobucket }
  logging: { bucket: nologs, prefix: cdn/ }
",
        ),
    ];
    expect(
        &files,
        "res.yaml",
        "Fleet/app",
        "spec.keyPair",
        "KeyPair/nokey does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "Fleet/app",
        "spec.securityGroups[0]",
        "SecurityGroup/nogroup does not exist (declared: web)",
    );
    expect(
        &files,
        "res.yaml",
        "Fleet/app",
        "spec.userData",
        "Fleet/nodb does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "SecurityGroup/web",
        "spec.ingress[0].group",
        "SecurityGroup/ghost does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "Volume/v",
        "spec.attach.fleet",
        "Fleet/nofleet does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "Balancer/lb",
        "spec.fleets[0]",
        "Fleet/nofleet does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "Cdn/assets",
        "spec.origin.bucket",
        "Bucket/nobucket does not exist",
    );
    expect(
        &files,
        "res.yaml",
        "Cdn/assets",
        "spec.logging.bucket",
        "Bucket/nologs does not exist",
    );
}

#[test]
fn unknown_reference_attributes_list_the_valid_ones() {
    expect_res(
        &format!("{FLEET}  userData: \"${{Fleet/app.ip}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "expected one of privateIp, privateIps",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{Balancer/web.ip}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "expected one of dnsName",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{Cdn/a.dns}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "expected one of domainName",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{Volume/v.arn}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "expected one of id",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{Bucket/b.name}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "no attributes",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{oops}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "bad reference",
    );
    expect_res(
        &format!("{FLEET}  userData: \"${{Fleet/app\"\n"),
        "Fleet/app",
        "spec.userData",
        "unterminated",
    );
}

#[test]
fn private_ip_needs_a_one_replica_fleet() {
    let db = |extra: &str| {
        format!(
            "{}{extra}---\n{FLEET}  userData: \"db=${{Fleet/db.privateIp}}\"\n",
            FLEET.replace("name: app", "name: db")
        )
    };
    expect_res(
        &db("  replicas: 2\n"),
        "Fleet/app",
        "spec.userData",
        "Fleet/db can run up to 2; use ${Fleet/db.privateIps}",
    );
    expect_res(
        &db("  schedule:\n    rules: [{ cron: \"0 8 * * *\", replicas: 3 }]\n"),
        "Fleet/app",
        "spec.userData",
        "can run up to 3",
    );
    loads(&[("stack.yaml", STACK), ("res.yaml", &db(""))]);
}

#[test]
fn reference_cycles_are_errors() {
    expect_res(
        &format!("{FLEET}  userData: \"me=${{Fleet/app.privateIps}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "refers to its own address",
    );
    let a = FLEET.replace("name: app", "name: a");
    let b = FLEET.replace("name: app", "name: b");
    let c = FLEET.replace("name: app", "name: c");
    let doc = format!(
        "{a}  userData: \"${{Fleet/b.privateIp}}\"\n---\n{b}  userData: \"${{Fleet/c.privateIp}}\"\n---\n{c}  userData: \"${{Fleet/a.privateIp}}\"\n"
    );
    let d = expect_res(
        &doc,
        "Fleet/a",
        "spec.userData",
        "reference cycle: Fleet/a → Fleet/b → Fleet/c → Fleet/a",
    );
    assert_eq!(d.line, Some(7));
}

#[test]
fn env_references_are_read_and_never_printed() {
    let doc = format!("{FLEET}  userData: \"token=${{env:API_TOKEN}};lit=$${{x}}\"\n");
    let loaded = loads(&[("stack.yaml", STACK), ("res.yaml", &doc)]);
    let ud = &loaded.desired.fleets[&ResourceName::from("app")].user_data;
    assert!(ud.is_sensitive());
    assert!(
        matches!(&ud.parts[1], TemplatePart::Env { name, value } if name == "API_TOKEN" && value.expose() == SECRET)
    );
    assert_eq!(ud.parts[2], TemplatePart::Text(";lit=${x}".into()));
    let debug = format!("{:?}", loaded.desired);
    assert!(!debug.contains(SECRET), "Debug printed the secret");
    // Unset: the error names the variable.
    expect_res(
        &format!("{FLEET}  userData: \"${{env:NOPE_UNSET}} ${{env:API_TOKEN}}\"\n"),
        "Fleet/app",
        "spec.userData",
        "environment variable NOPE_UNSET",
    );
}

// ---- key pairs ------------------------------------------------------------------

#[test]
fn key_pairs_need_one_readable_public_key() {
    let kp = |spec: &str| format!("kind: KeyPair\nname: main\nspec:\n{spec}");
    expect_res(
        &kp("  publicKeyFile: keys/missing.pub\n"),
        "KeyPair/main",
        "spec.publicKeyFile",
        "cannot read key file",
    );
    expect_res(
        &kp(&format!("  publicKey: {KEY}\n  publicKeyFile: k.pub\n")),
        "KeyPair/main",
        "spec",
        "found both",
    );
    expect_res(&kp("  tags: {}\n"), "KeyPair/main", "spec", "found neither");
    expect_res(
        &kp("  publicKey: not a key\n"),
        "KeyPair/main",
        "spec.publicKey",
        "expected an OpenSSH public key",
    );
    // The file is read relative to the manifest file.
    let files = [
        ("stack.yaml", STACK.to_owned()),
        ("sub/keys.yaml", kp("  publicKeyFile: ../keys/main.pub\n")),
        ("keys/main.pub", format!("{KEY}\n")),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = write(&refs);
    // `sub/` is not read as part of the stack; move the manifest up.
    std::fs::rename(
        dir.path().join("sub/keys.yaml"),
        dir.path().join("keys.yaml"),
    )
    .expect("mv");
    std::fs::write(
        dir.path().join("keys.yaml"),
        kp("  publicKeyFile: keys/main.pub\n"),
    )
    .expect("write");
    let l = load_dir(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        l.desired.key_pairs[&ResourceName::from("main")].public_key,
        KEY
    );
    // A private key is refused without being echoed.
    std::fs::write(
        dir.path().join("keys/main.pub"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    )
    .expect("write");
    let d = load_dir(dir.path()).expect_err("private key");
    assert!(d.to_string().contains("this is a private key"), "{d}");
    assert!(!d.to_string().contains("b3BlbnNzaC1rZXktdjEAAAAA"), "{d}");
}

// ---- volumes --------------------------------------------------------------------

fn volume(extra: &str) -> String {
    format!("kind: Volume\nname: pgdata\nspec:\n  sizeGiB: 20\n  zone: us-east-1a\n{extra}")
}

#[test]
fn volumes_attach_to_one_instance_in_their_zone() {
    let attach = "  attach: { fleet: app, device: /dev/sdj }\n";
    let two = format!("{}---\n{FLEET}  replicas: 2\n", volume(attach));
    expect_res(
        &two,
        "Volume/pgdata",
        "spec.attach.fleet",
        "Fleet/app can run up to 2",
    );
    let auto = format!("{}---\n{}", volume(attach), autoscale(0, 2));
    expect_res(
        &auto,
        "Volume/pgdata",
        "spec.attach.fleet",
        "can run up to 2",
    );
    let elsewhere = format!(
        "{}---\n{}",
        volume(attach),
        FLEET.replace("[us-east-1a]", "[us-east-1b]")
    );
    expect_res(
        &elsewhere,
        "Volume/pgdata",
        "spec.attach.fleet",
        "launches in us-east-1b but the volume is in us-east-1a",
    );
    let second = format!(
        "{}---\n{}---\n{FLEET}",
        volume(attach),
        volume(attach)
            .replace("name: pgdata", "name: pgwal")
            .replace("/dev/sdj", "/dev/sdk")
    );
    expect_res(
        &second,
        "Volume/pgwal",
        "spec.attach.fleet",
        "already has Volume/pgdata attached",
    );
    expect_res(
        &format!(
            "{}---\n{FLEET}",
            volume("  attach: { fleet: app, device: /dev/sda1 }\n")
        ),
        "Volume/pgdata",
        "spec.attach.device",
        "/dev/sdf to /dev/sdp",
    );
}

#[test]
fn volume_iops_are_checked_by_type() {
    // gp3: 3,000–16,000, at most 500 per GiB.
    expect_res(
        &volume("  iops: 2000\n"),
        "Volume/pgdata",
        "spec.iops",
        "expected iops from 3000 to 16000 for a gp3 volume, found 2000",
    );
    expect_res(
        &volume("  iops: 12000\n"),
        "Volume/pgdata",
        "spec.iops",
        "at most 500 iops per GiB: 20 GiB allow at most 10000, found 12000",
    );
    // io1: 100–64,000, at most 50 per GiB; io2: 100–256,000, 1,000 per GiB.
    expect_res(
        &volume("  type: io1\n  iops: 1001\n"),
        "Volume/pgdata",
        "spec.iops",
        "at most 50 iops per GiB",
    );
    expect_res(
        &volume("  type: io2\n  iops: 300000\n"),
        "Volume/pgdata",
        "spec.iops",
        "from 100 to 256000 for an io2 volume",
    );
    expect_res(
        &volume("  type: io2\n  iops: 20001\n"),
        "Volume/pgdata",
        "spec.iops",
        "at most 1000 iops per GiB",
    );
}

#[test]
fn io1_and_io2_need_iops_and_the_others_take_none() {
    expect_res(
        &volume("  type: io1\n"),
        "Volume/pgdata",
        "spec.iops",
        "an io1 volume needs its iops",
    );
    expect_res(
        &volume("  type: gp2\n  iops: 3000\n"),
        "Volume/pgdata",
        "spec.iops",
        "a gp2 volume takes no iops",
    );
    expect_res(
        &volume("  iops: -5\n"),
        "Volume/pgdata",
        "spec.iops",
        "expected a positive whole number, found -5",
    );
}

#[test]
fn volume_throughput_is_gp3_only_and_bounded_by_its_iops() {
    expect_res(
        &volume("  type: io2\n  iops: 1000\n  throughput: 200\n"),
        "Volume/pgdata",
        "spec.throughput",
        "an io2 volume takes no throughput: only gp3 volumes do",
    );
    expect_res(
        &volume("  throughput: 1200\n"),
        "Volume/pgdata",
        "spec.throughput",
        "expected a throughput from 125 to 1000 MiB/s, found 1200",
    );
    expect_res(
        &volume("  throughput: 1000\n"),
        "Volume/pgdata",
        "spec.throughput",
        "3000 iops allow at most 750 MiB/s, found 1000",
    );
}

#[test]
fn kms_keys_take_aws_forms_and_need_encryption() {
    expect_res(
        &volume("  kmsKey: pgdata-key\n"),
        "Volume/pgdata",
        "spec.kmsKey",
        "expected a KMS key ID",
    );
    expect_res(
        &volume("  encrypted: false\n  kmsKey: alias/pgdata\n"),
        "Volume/pgdata",
        "spec.kmsKey",
        "a KMS key needs encrypted: true",
    );
}

#[test]
fn volumes_are_encrypted_with_the_gp3_baseline_by_default() {
    use converge::core::desired::Encryption;
    let l = loads(&[("stack.yaml", STACK), ("res.yaml", &volume(""))]);
    let v = &l.desired.volumes[&converge::core::ids::ResourceName::from("pgdata")];
    assert_eq!(v.encryption, Encryption::Encrypted { key: None });
    assert_eq!(
        (v.target_iops(), v.target_throughput()),
        (Some(3000), Some(125))
    );
    for key in [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/pgdata",
        "arn:aws:kms:us-east-1:111122223333:alias/pgdata",
    ] {
        let doc = volume(&format!(
            "  kmsKey: {key}\n  iops: 6000\n  throughput: 500\n"
        ));
        let l = loads(&[("stack.yaml", STACK), ("res.yaml", &doc)]);
        let v = &l.desired.volumes[&converge::core::ids::ResourceName::from("pgdata")];
        assert_eq!(v.encryption.key().map(|k| k.as_str()), Some(key));
        assert_eq!((v.iops, v.throughput), (Some(6000), Some(500)));
    }
    let l = loads(&[
        ("stack.yaml", STACK),
        ("res.yaml", &volume("  encrypted: false\n")),
    ]);
    assert_eq!(
        l.desired.volumes[&converge::core::ids::ResourceName::from("pgdata")].encryption,
        Encryption::Unencrypted
    );
}

#[test]
fn volume_sizes_types_and_policies_are_checked() {
    expect_res(
        &volume("").replace("20", "0"),
        "Volume/pgdata",
        "spec.sizeGiB",
        "from 1 to 16384 GiB for a gp3 volume, found 0",
    );
    expect_res(
        &volume("").replace("20", "20000"),
        "Volume/pgdata",
        "spec.sizeGiB",
        "found 20000",
    );
    expect_res(
        &volume("  type: st1\n"),
        "Volume/pgdata",
        "spec.sizeGiB",
        "from 125",
    );
    expect_res(
        &volume("  type: gp4\n"),
        "Volume/pgdata",
        "spec.type",
        "expected one of gp2, gp3, io1, io2, st1, sc1, standard, found \"gp4\"",
    );
    expect_res(
        &volume("  deletionPolicy: keep\n"),
        "Volume/pgdata",
        "spec.deletionPolicy",
        "expected one of retain, delete, snapshot",
    );
    expect_res(
        &volume("  fromSnapshot: snapshot-1\n"),
        "Volume/pgdata",
        "spec.fromSnapshot",
        "snap-",
    );
    expect_res(
        &volume("  zone: us-west-2a\n").replace("  zone: us-east-1a\n", ""),
        "Volume/pgdata",
        "spec.zone",
        "a zone of region us-east-1",
    );
    expect_res(
        &volume("  snapshots: { schedule: \"0 3 * * *\", keep: 0 }\n"),
        "Volume/pgdata",
        "spec.snapshots.keep",
        "from 1 to 1000",
    );
    expect_res(
        "kind: Bucket\nname: assets-1\nspec:\n  deletionPolicy: snapshot\n",
        "Bucket/assets-1",
        "spec.deletionPolicy",
        "`snapshot` applies to volumes only",
    );
}

// ---- balancers ------------------------------------------------------------------

fn balancer(listener: &str, hc: &str) -> String {
    format!(
        "kind: Balancer\nname: web\nspec:\n  zones: [us-east-1a]\n  listeners:\n    - {listener}\n  healthCheck: {hc}\n"
    )
}

const LISTENER: &str = "{ port: 80, instancePort: 80, protocol: HTTP }";

#[test]
fn health_checks_are_checked() {
    let hc = |s: &str| balancer(LISTENER, s);
    loads(&[
        ("stack.yaml", STACK),
        (
            "res.yaml",
            &hc(
                "{ target: \"HTTP:80/\", interval: 30s, timeout: 3s, healthyThreshold: 2, unhealthyThreshold: 2 }",
            ),
        ),
    ]);
    expect_res(
        &hc("{ target: \"HTTP:80/\", interval: 5s, timeout: 5s }"),
        "Balancer/web",
        "spec.healthCheck.timeout",
        "below the interval, found timeout 5s and interval 5s",
    );
    expect_res(
        &hc("{ target: \"HTTP:80/\", healthyThreshold: 1 }"),
        "Balancer/web",
        "spec.healthCheck.healthyThreshold",
        "from 2 to 10, found 1",
    );
    expect_res(
        &hc("{ target: \"HTTP:80/\", unhealthyThreshold: 11 }"),
        "Balancer/web",
        "spec.healthCheck.unhealthyThreshold",
        "found 11",
    );
    expect_res(
        &hc("{ target: \"HTTP:80\" }"),
        "Balancer/web",
        "spec.healthCheck.target",
        "need a path",
    );
    expect_res(
        &hc("{ target: \"UDP:53\" }"),
        "Balancer/web",
        "spec.healthCheck.target",
        "expected a target like",
    );
    expect_res(
        &hc("{ target: \"TCP:5432\", interval: 10m }"),
        "Balancer/web",
        "spec.healthCheck.interval",
        "from 5s to 300s",
    );
    expect_res(
        &hc("{ target: \"TCP:5432\", interval: 30 }"),
        "Balancer/web",
        "spec.healthCheck.interval",
        "expected a duration",
    );
}

#[test]
fn listeners_are_checked() {
    let hc = "{ target: \"TCP:80\" }";
    expect_res(
        &balancer("{ port: 80, protocol: HTTPX }", hc),
        "Balancer/web",
        "spec.listeners[0].protocol",
        "expected one of HTTP, HTTPS, TCP, SSL",
    );
    expect_res(
        &balancer("{ port: 81, protocol: TCP }", hc),
        "Balancer/web",
        "spec.listeners[0].port",
        "25, 80, 443, 465, 587 or 1024-65535",
    );
    expect_res(
        &balancer("{ port: 80, instancePort: 0, protocol: TCP }", hc),
        "Balancer/web",
        "spec.listeners[0].instancePort",
        "from 1 to 65535",
    );
    expect_res(
        &balancer(
            "{ port: 80, protocol: TCP }\n    - { port: 80, protocol: HTTP }",
            hc,
        ),
        "Balancer/web",
        "spec.listeners[1].port",
        "already used by listeners[0]",
    );
}

#[test]
fn balancer_fleets_launch_in_its_zones() {
    let doc = format!(
        "{}  fleets: [app]\n---\n{}",
        balancer(LISTENER, "{ target: \"HTTP:80/\" }"),
        FLEET.replace("[us-east-1a]", "[us-east-1a, us-east-1b]")
    );
    expect_res(
        &doc,
        "Balancer/web",
        "spec.fleets[0]",
        "Fleet/app launches in us-east-1b, which this balancer does not serve",
    );
}

// ---- cdn ------------------------------------------------------------------------

#[test]
fn cdns_are_checked() {
    let cdn = |extra: &str| {
        format!(
            "kind: Bucket\nname: assets-1\n---\nkind: Cdn\nname: assets\nspec:\n  origin: {{ bucket: assets-1 }}\n{extra}"
        )
    };
    let l = loads(&[
        ("stack.yaml", STACK),
        (
            "res.yaml",
            &cdn(
                "  aliases: [b.example.com, A.example.com]\n  certificate: arn:aws:acm:us-east-1:123456789012:certificate/abc\n  logging: { bucket: assets-1, prefix: cdn/ }\n",
            ),
        ),
    ]);
    let c = &l.desired.cdns[&ResourceName::from("assets")];
    assert_eq!(c.aliases, vec!["a.example.com", "b.example.com"]);
    assert_eq!(c.logging.as_ref().map(|l| l.prefix.as_str()), Some("cdn/"));
    assert!(c.enabled);
    expect_res(
        &cdn("  logging: true\n"),
        "Cdn/assets",
        "spec.logging",
        "expected `false` or a mapping",
    );
    expect_res(
        &cdn("  logging: { bucket: assets-1, prefx: x }\n"),
        "Cdn/assets",
        "spec.logging.prefx",
        "unknown field",
    );
    expect_res(
        &cdn("  aliases: [\"not a host\"]\n"),
        "Cdn/assets",
        "spec.aliases[0]",
        "expected a domain name",
    );
    expect_res(
        &cdn("  aliases: [a.example.com, A.example.com]\n"),
        "Cdn/assets",
        "spec.aliases[1]",
        "listed twice",
    );
    expect_res(
        &cdn("  defaultRootObject: /index.html\n"),
        "Cdn/assets",
        "spec.defaultRootObject",
        "without a leading slash",
    );
    // Aliases need a certificate (CloudFront: InvalidViewerCertificate),
    // of us-east-1.
    expect_res(
        &cdn("  aliases: [a.example.com]\n"),
        "Cdn/assets",
        "spec.certificate",
        "a Cdn with aliases needs a certificate",
    );
    expect_res(
        &cdn("  certificate: arn:aws:acm:eu-west-1:123456789012:certificate/abc\n"),
        "Cdn/assets",
        "spec.certificate",
        "must be in us-east-1, found one in eu-west-1",
    );
    expect_res(
        &cdn("  minimumProtocolVersion: TLSv9\n"),
        "Cdn/assets",
        "spec.minimumProtocolVersion",
        "expected one of TLSv1,",
    );
}

// ---- the stack and the directory ------------------------------------------------

#[test]
fn a_missing_stack_is_an_error() {
    let dir = write(&[("res.yaml", FLEET)]);
    let d = load_dir(dir.path()).expect_err("no stack");
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.0[0].file, dir.path());
    assert!(d.0[0].message.contains("no Stack document"), "{d}");
}

#[test]
fn two_stacks_are_an_error() {
    let other = STACK.replace("demo", "other");
    expect(
        &[("a.yaml", STACK), ("b.yaml", &other)],
        "b.yaml",
        "Stack/other",
        "kind",
        "a second Stack",
    );
}

#[test]
fn an_empty_or_missing_directory_is_an_error() {
    let dir = write(&[
        ("README.md", "not a manifest"),
        (".hidden.yaml", "kind: Nope"),
    ]);
    let d = load_dir(dir.path()).expect_err("empty");
    assert!(d.0[0].message.contains("no manifest files"), "{d}");
    let d = load_dir(&dir.path().join("nope")).expect_err("missing");
    assert_eq!(d.0[0].message, "stack directory not found");
    let file = dir.path().join("README.md");
    let d = load_dir(&file).expect_err("a file");
    assert!(d.0[0].message.contains("expected a directory"), "{d}");
}

#[test]
fn every_error_is_reported_across_documents_and_files() {
    let d = errors(&[
        ("a.yaml", STACK),
        (
            "b.yaml",
            "kind: Fleet\nname: Bad\nspec: { image: x, instanceType: y, zones: [z] }\n---\nkind: Bucket\nname: ok-bucket\nspec: { publicRead: 3 }\n",
        ),
        (
            "c.yml",
            "kind: SecurityGroup\nname: web\nspec:\n  ingress: [{ port: 0, cidr: 1.2.3.4/8 }]\n",
        ),
        ("d.yaml", "kind: Nope\nname: x\n"),
    ]);
    let text = Diagnostics(d.clone()).to_string();
    // Fleet/Bad: name, image, instanceType, zone; Bucket: type;
    // SecurityGroup: port, cidr; d.yaml: kind.
    assert_eq!(d.len(), 8, "{text}");
    assert!(text.ends_with("8 errors found"), "{text}");
    // In file and line order.
    let files: Vec<String> = d
        .iter()
        .map(|d| {
            d.file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
}

#[test]
fn a_broken_file_does_not_cascade_into_dangling_references() {
    let d = errors(&[
        ("a.yaml", STACK),
        ("b.yaml", &format!("{FLEET}  securityGroups: [web]\n")),
        ("c.yaml", "kind: SecurityGroup\nname: web\nspec: [\n"),
    ]);
    assert_eq!(d.len(), 1, "{}", Diagnostics(d.clone()));
    assert!(d[0].file.ends_with("c.yaml"));
}

// ---- hostile input --------------------------------------------------------------

#[track_caller]
fn refused_fast(text: &str, needle: &str) {
    refused_within(text, needle, Duration::from_millis(500));
}

#[track_caller]
fn refused_within(text: &str, needle: &str, limit: Duration) {
    let dir = write(&[("stack.yaml", STACK), ("evil.yaml", text)]);
    let start = Instant::now();
    let d = load_dir(dir.path()).expect_err("refused");
    let took = start.elapsed();
    assert!(took < limit, "took {took:?}");
    assert!(
        d.iter()
            .any(|d| d.file.ends_with("evil.yaml") && d.message.contains(needle)),
        "{d}"
    );
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let letters = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in letters.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    refused_fast(&bomb, "refused");
}

#[test]
fn deep_nesting_is_refused_quickly() {
    refused_fast(&"[".repeat(10_000), "refused");
    refused_fast(&"{a: ".repeat(10_000), "refused");
    let block: String = (0..10_000)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    refused_fast(&block[..block.len().min(900_000)], "refused");
}

#[test]
fn huge_documents_are_refused_quickly() {
    let big = format!(
        "kind: Bucket\nname: b\nspec:\n  tags:\n    a: \"{}\"\n",
        "x".repeat(2 * 1024 * 1024)
    );
    refused_fast(&big, "limited to 1 MiB");
    // Within the file size limit but too many nodes: the parser stops at
    // 50,000. It streams, so this costs the time to parse that many: about
    // 50 ms in an optimised build, several times more in a debug build.
    let many = format!("[{}]", "1,".repeat(400_000));
    let limit = if cfg!(debug_assertions) { 3000 } else { 500 };
    refused_within(
        &many,
        "refused: more than 50000 YAML nodes",
        Duration::from_millis(limit),
    );
}

#[test]
fn the_stack_as_a_whole_is_capped() {
    let chunk = format!("# {}\n", "x".repeat(1000 * 1024));
    let mut files: Vec<(String, String)> = (0..11)
        .map(|i| (format!("f{i:02}.yaml"), chunk.clone()))
        .collect();
    files.push(("a.yaml".into(), STACK.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dir = write(&refs);
    let d = load_dir(dir.path()).expect_err("too big");
    assert!(d.iter().any(|d| d.message.contains("exceed 10 MiB")), "{d}");
}

#[test]
fn invalid_utf8_is_an_error_with_a_line() {
    let dir = write(&[("stack.yaml", STACK)]);
    std::fs::write(
        dir.path().join("bin.yaml"),
        b"kind: Bucket\nname: \xff\xfe\n",
    )
    .expect("write");
    let d = load_dir(dir.path()).expect_err("binary");
    let e = d
        .iter()
        .find(|d| d.file.ends_with("bin.yaml"))
        .expect("error");
    assert_eq!((e.line, e.column), (Some(2), Some(7)));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Any text: an answer (never a panic), quickly.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let dir = write(&[("stack.yaml", STACK), ("x.yaml", &text)]);
            let _ = load_dir(dir.path());
        }

        /// YAML-ish text built from manifest vocabulary reaches deeper.
        #[test]
        fn manifest_like_text_never_panics(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("kind: Fleet\n"), Just("kind: Volume\n"), Just("kind: Cdn\n"),
                    Just("name: a\n"), Just("spec:\n"), Just("  zones: [us-east-1a]\n"),
                    Just("  replicas: -1\n"), Just("  userData: \"${Fleet/a.privateIp}\"\n"),
                    Just("  sizeGiB: 99999999999999999999\n"), Just("  attach: {fleet: a, device: /dev/sdf}\n"),
                    Just("  zone: us-east-1a\n"), Just("  image: ami-147f977d\n"),
                    Just("  instanceType: m1.small\n"), Just("---\n"), Just("  logging: {bucket: a}\n"),
                    Just("  origin: {bucket: a}\n"), Just("&x "), Just("*x\n"), Just("  - [\n"), Just("  ? a\n"),
                    Just("  health: {grace: 99999h}\n"), Just("  tags: {converge:x: y}\n"),
                ],
                0..30,
            )
        ) {
            let text: String = parts.concat();
            let dir = write(&[("stack.yaml", STACK), ("x.yaml", &text)]);
            let _ = load_dir(dir.path());
        }
    }
}

#[test]
fn anchors_and_merge_keys_share_settings() {
    // Anchors belong to their document, as YAML says.
    let doc = "kind: Fleet
name: worker
spec:
  <<: &base { image: ami-147f977d, instanceType: m1.small }
  zones: &zones [us-east-1a]
  replicas: 3
  tags: { zone: us-east-1a }
---
kind: Fleet
name: other
spec:
  <<: *base
  zones: [us-east-1a]
";
    let all = errors(&[("stack.yaml", STACK), ("res.yaml", doc)]);
    assert!(
        all[0].message.contains("earlier in the same document"),
        "{}",
        all[0]
    );
    let doc = doc.split("---").next().unwrap_or_default();
    let l = loads(&[("stack.yaml", STACK), ("res.yaml", doc)]);
    let w = &l.desired.fleets[&ResourceName::from("worker")];
    assert_eq!((w.replicas, w.instance_type.as_str()), (3, "m1.small"));
}

#[test]
fn only_yaml_files_are_read_in_name_order() {
    let dir = write(&[
        ("b.yml", "kind: Bucket\nname: bucket-b\n"),
        ("a.yaml", STACK),
        ("notes.txt", "kind: Nope"),
        ("sub/c.yaml", "kind: Nope"),
    ]);
    let l = load_dir(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<String> = l
        .files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(names, ["a.yaml", "b.yml"]);
}

#[test]
fn a_document_that_is_not_a_mapping_is_an_error() {
    let all = errors(&[("stack.yaml", STACK), ("res.yaml", "- kind: Fleet\n")]);
    assert_eq!(all.len(), 1, "{}", Diagnostics(all.clone()));
    assert!(
        all[0]
            .message
            .contains("expected a document with kind, name and spec, found a list")
    );
    assert_eq!(all[0].line, Some(1));
}

// ---- fleets: instance profile, metadata, root volume, SSM images ----------------

#[test]
fn launch_options_default_to_imdsv2_and_the_images_root_volume() {
    let l = loads(&[("stack.yaml", STACK), ("app.yaml", FLEET)]);
    let app = &l.desired.fleets[&ResourceName::from("app")];
    assert_eq!(app.metadata, MetadataOptions::DEFAULT);
    assert_eq!(app.metadata.tokens, HttpTokens::Required);
    assert_eq!(app.metadata.hop_limit, 2);
    assert_eq!(app.instance_profile, None);
    assert_eq!(app.root_volume, None);

    let fleet = format!(
        "{FLEET}  image: ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\n  instanceProfile: arn:aws:iam::123456789012:instance-profile/web/app-role\n  metadata: {{ tokens: optional, hopLimit: 1 }}\n  rootVolume: {{ sizeGiB: 30 }}\n"
    )
    .replacen("  image: ami-147f977d\n", "", 1);
    let l = loads(&[("stack.yaml", STACK), ("app.yaml", &fleet)]);
    let app = &l.desired.fleets[&ResourceName::from("app")];
    assert_eq!(
        app.image,
        ImageSource::Parameter(ParameterName::from(
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        ))
    );
    assert_eq!(
        app.instance_profile.as_ref().map(|p| p.name()),
        Some("app-role")
    );
    assert_eq!(app.metadata.tokens, HttpTokens::Optional);
    assert_eq!(app.metadata.hop_limit, 1);
    // gp3 and encrypted unless the manifest says otherwise.
    assert_eq!(
        app.root_volume,
        Some(RootVolume {
            size_gib: 30,
            volume_type: VolumeType::Gp3,
            encrypted: true,
        })
    );
}

#[test]
fn bad_launch_options_name_the_field() {
    let with = |extra: &str| format!("{FLEET}{extra}");
    for (extra, field, needle) in [
        (
            "  instanceProfile: \"app role\"\n",
            "spec.instanceProfile",
            "found ' ' in \"app role\"",
        ),
        (
            &format!("  instanceProfile: {}\n", "a".repeat(129)),
            "spec.instanceProfile",
            "found 129 characters",
        ),
        (
            "  instanceProfile: arn:aws:iam::1234:instance-profile/app\n",
            "spec.instanceProfile",
            "expected 12 digits",
        ),
        (
            "  instanceProfile: arn:aws:iam::123456789012:role/app\n",
            "spec.instanceProfile",
            "expected instance-profile/NAME",
        ),
        (
            "  instanceProfile: arn:aws:ec2::123456789012:instance-profile/app\n",
            "spec.instanceProfile",
            "IAM is global",
        ),
        (
            "  metadata: { hopLimit: 0 }\n",
            "spec.metadata.hopLimit",
            "expected a hop limit from 1 to 64, found 0",
        ),
        (
            "  metadata: { hopLimit: 65 }\n",
            "spec.metadata.hopLimit",
            "found 65",
        ),
        (
            "  rootVolume: { sizeGiB: 0 }\n",
            "spec.rootVolume.sizeGiB",
            "expected a size from 1 to 16384 GiB for a gp3 volume, found 0",
        ),
        (
            "  rootVolume: { sizeGiB: 20, type: st1 }\n",
            "spec.rootVolume.sizeGiB",
            "from 125 to 16384 GiB for a st1 volume",
        ),
        (
            "  rootVolume: { sizeGiB: 2000, type: standard }\n",
            "spec.rootVolume.sizeGiB",
            "from 1 to 1024 GiB",
        ),
    ] {
        expect_res(&with(extra), "Fleet/app", field, needle);
    }
    expect_res(
        &FLEET.replace("zones:", "metadata: { tokens: sometimes }\n  zones:"),
        "Fleet/app",
        "spec.metadata.tokens",
        "sometimes",
    );
    for (image, needle) in [
        ("ssm:has space", "found ' '"),
        ("ssm:no/leading/slash", "starts with `/`"),
        ("ssm:/a//b", "an empty level"),
        ("\"ssm:\"", "found 0 characters"),
        (
            "ssm:/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16",
            "at most 15 levels deep, found 16",
        ),
        ("ubuntu", "or ssm:NAME"),
    ] {
        expect_res(
            &FLEET.replace("ami-147f977d", image),
            "Fleet/app",
            "spec.image",
            needle,
        );
    }
}

#[test]
fn a_root_volume_counts_its_tag_against_the_limit() {
    let stack = format!(
        "kind: Stack\nname: demo\nspec:\n  region: us-east-1\n  tags:\n{}",
        tags(5, "s")
    );
    let fleet = |root: &str| format!("{FLEET}{root}  tags:\n{}", tags(41, "t"));
    // 41 own + 5 from the Stack + 4 of converge's = 50: fine.
    loads(&[("stack.yaml", &stack), ("app.yaml", &fleet(""))]);
    let all = errors(&[
        ("stack.yaml", &stack),
        ("app.yaml", &fleet("  rootVolume: { sizeGiB: 20 }\n")),
    ]);
    assert!(
        all.iter().any(|d| d.field.as_deref() == Some("spec.tags")
            && d.message.contains("5 that converge adds make 51")),
        "{}",
        Diagnostics(all)
    );
}
