//! Golden plans of ACM certificates: a new certificate validated through
//! a new zone and used by an HTTPS listener and the Cdn; a certificate
//! replaced because its domains changed (the new one issued and put in
//! use before the old one goes); a certificate removed with its
//! validation records. Every plan passes the invariants checker and is
//! planned twice (`common::run`).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::*;
use converge_core::acm::{
    CertificateRef, CertificateSpec, CertificateStatus, ObservedCertificate, ValidationMark,
    ValidationRecord,
};
use converge_core::desired::{DeletionPolicy, Desired, Listener, ListenerProtocol};
use converge_core::ids::Kind;
use converge_core::observed::{Observed, ViewerCertificate};
use converge_core::plan::{ChangeAction, Step};
use converge_core::route53::{DnsZoneSpec, ObservedZone, ZoneRef};
use insta::assert_snapshot;

const OLD_ARN: &str = "arn:aws:acm:us-east-1:123456789012:certificate/0ld";
const ZONE: &str = "smallpayroll.example";

fn domains(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| format!("{h}.{ZONE}")).collect()
}

/// SmallPayroll with the zone `main`, the Certificate `www` for `hosts`,
/// an HTTPS listener on 443 and the Cdn's certificate.
fn desired(hosts: &[&str]) -> Desired {
    let mut d = smallpayroll();
    d.dns_zones.insert(
        name("main"),
        DnsZoneSpec {
            domain: ZONE.into(),
            deletion_policy: DeletionPolicy::Delete,
            tags: Default::default(),
        },
    );
    d.certificates.insert(
        name("www"),
        CertificateSpec {
            domains: domains(hosts),
            zone: ZoneRef::Stack(name("main")),
            region: "us-east-1".into(),
            tags: Default::default(),
        },
    );
    let web = d.balancers.get_mut(&name("web")).unwrap();
    web.listeners.push(Listener {
        port: 443,
        instance_port: 80,
        protocol: ListenerProtocol::Https,
        certificate: Some("Certificate/www".into()),
    });
    let cdn = d.cdns.get_mut(&name("assets")).unwrap();
    cdn.certificate = Some(CertificateRef::Stack(name("www")));
    d
}

fn validation(domain: &str) -> ValidationRecord {
    let parent = domain.strip_prefix("*.").unwrap_or(domain);
    ValidationRecord {
        domain: domain.into(),
        name: format!("_v-{}.{parent}", parent.split('.').next().unwrap()),
        value: format!(
            "_x-{}.acm-validations.aws",
            parent.split('.').next().unwrap()
        ),
    }
}

/// The world where `d` was applied with the Certificate `www` for
/// `hosts` issued as [`OLD_ARN`], its validation records in the zone.
fn applied(d: &Desired, hosts: &[&str]) -> Observed {
    let mut o = in_place(d, ts(SATURDAY_NOON));
    let records: Vec<ValidationRecord> = domains(hosts).iter().map(|x| validation(x)).collect();
    let mark = ValidationMark {
        stack: d.stack.clone(),
        certificate: name("www"),
    };
    let mut sets = Vec::new();
    for r in &records {
        sets.push(r.record_set());
        sets.push(mark.record_set(&r.name));
    }
    o.dns_zones = vec![ObservedZone {
        id: "Z0MAIN".into(),
        domain: ZONE.into(),
        name_servers: vec!["ns-1.awsdns-01.com".into()],
        owner: Some(owner(d, Kind::DnsZone, &name("main"))),
        tags: {
            let mut t = tags_for(d, Kind::DnsZone, &name("main"), &Default::default());
            t.insert("converge:deletion-policy".into(), "delete".into());
            t
        },
        records: sets,
    }];
    o.certificates = vec![ObservedCertificate {
        arn: OLD_ARN.into(),
        region: "us-east-1".into(),
        domains: domains(hosts),
        status: CertificateStatus::Issued,
        validation: records,
        owner: Some(owner(d, Kind::Certificate, &name("www"))),
        tags: tags_for(d, Kind::Certificate, &name("www"), &Default::default()),
        in_use_by: Vec::new(),
    }];
    for l in &mut balancer(&mut o, "web").listeners {
        if l.certificate.is_some() {
            l.certificate = Some(OLD_ARN.into());
        }
    }
    distribution(&mut o, "assets").config.viewer_certificate = Some(ViewerCertificate {
        arn: OLD_ARN.into(),
        minimum_protocol_version: "TLSv1.2_2021".into(),
    });
    o
}

const CDN_HOSTS: [&str; 5] = ["www", "cdn0", "cdn1", "cdn2", "cdn3"];

#[test]
fn a_new_certificate_is_validated_before_its_users_take_it() {
    let d = desired(&CDN_HOSTS);
    let plan = run(&d, &empty_region(), SATURDAY_NOON);
    assert_snapshot!("certificate_create.txt", text(&plan));
    let zone = step(&plan, "create DnsZone/main");
    let request = step(&plan, "request Certificate/www");
    let validate = step(&plan, "validate Certificate/www");
    assert!(precedes(&plan, request, validate));
    assert!(precedes(&plan, zone, validate));
    for user in ["create Balancer/web", "create Cdn/assets"] {
        assert!(precedes(&plan, validate, step(&plan, user)), "{user}");
    }
    let Some(Step::CreateBalancer { certificates, .. }) =
        plan.graph.step(step(&plan, "create Balancer/web"))
    else {
        panic!("no balancer: {}", text(&plan));
    };
    assert_eq!(certificates.as_slice(), &[(443, request)]);
}

#[test]
fn an_applied_certificate_plans_nothing() {
    let d = desired(&CDN_HOSTS);
    let plan = run(&d, &applied(&d, &CDN_HOSTS), SATURDAY_NOON);
    assert!(!plan.has_changes(), "{}", text(&plan));
}

#[test]
fn changed_domains_replace_the_certificate_before_the_old_one_goes() {
    let d = desired(&CDN_HOSTS);
    let old = desired(&["www", "cdn0", "cdn1", "cdn2", "old"]);
    let plan = run(
        &d,
        &applied(&old, &["www", "cdn0", "cdn1", "cdn2", "old"]),
        SATURDAY_NOON,
    );
    assert_snapshot!("certificate_replace.txt", text(&plan));
    let c = plan
        .changes
        .iter()
        .find(|c| c.key.kind == Kind::Certificate)
        .unwrap();
    assert!(matches!(&c.action, ChangeAction::Replace { because } if because == &["spec.domains"]));
    let validate = step(&plan, "validate Certificate/www");
    let listeners = step(&plan, "set listeners of Balancer/web");
    let cdn = step(&plan, "update Cdn/assets");
    let delete = step(&plan, "delete Certificate/www");
    for user in [listeners, cdn] {
        assert!(precedes(&plan, validate, user));
        assert!(precedes(&plan, user, delete));
    }
    // Only the record of the domain no certificate has any more goes,
    // after the old certificate.
    let records = step(&plan, "delete 1 validation record of Certificate/www");
    assert!(precedes(&plan, delete, records));
    assert!(describe(&plan)[records].contains("old.smallpayroll.example"));
}

#[test]
fn a_removed_certificate_goes_with_its_validation_records() {
    let with = desired(&CDN_HOSTS);
    let mut d = smallpayroll();
    d.dns_zones = with.dns_zones.clone();
    let plan = run(&d, &applied(&with, &CDN_HOSTS), SATURDAY_NOON);
    assert_snapshot!("certificate_removed.txt", text(&plan));
    let listeners = step(&plan, "set listeners of Balancer/web");
    let cdn = step(&plan, "update Cdn/assets");
    let delete = step(&plan, "delete Certificate/www");
    let records = step(&plan, "validation records of Certificate/www");
    assert!(precedes(&plan, listeners, delete));
    assert!(precedes(&plan, cdn, delete));
    assert!(precedes(&plan, delete, records));
    // The zone, dropped too, goes after the records.
    let mut gone = smallpayroll();
    gone.dns_zones.clear();
    let plan = run(&gone, &applied(&with, &CDN_HOSTS), SATURDAY_NOON);
    let records = step(&plan, "validation records of Certificate/www");
    let zone = step(&plan, "delete DnsZone/main");
    assert!(precedes(&plan, records, zone));
}
