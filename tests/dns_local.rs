//! Route 53 on the local cloud through the real binary: a whole TTL-aware
//! cutover of an "existing" record (`local add zone`, `local add record`)
//! driven with `local advance`, `plan --at` at each stage, the reconcile
//! loop finishing one, Route 53's rules refused before any call, and a
//! schedule and a snapshot schedule run through with `local advance`.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;

use std::path::Path;
use std::process::{Command, Output};

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    #[track_caller]
    fn ok(&self) -> String {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        // Progress lines go to stderr, plans and reports to stdout.
        format!("{}{}", self.stdout(), self.stderr())
    }
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(dir)
        .args(args)
        .env("CONVERGE_LOCAL_DELAYS", "zero")
        .env_remove("CONVERGE_LOCAL_FAULTS")
        .env_remove("CONVERGE_CLOUD")
        .env_remove("CONVERGE_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Run(out)
}

const STACK: &str = "kind: Stack
name: shop
spec:
  region: us-east-1
---
kind: DnsRecord
name: www
spec:
  zone: example.com
  name: www.example.com
  type: A
  values: [192.0.2.20]
  ADOPT
";

fn stack(dir: &Path, adopt: bool) {
    std::fs::create_dir_all(dir.join("s")).unwrap();
    let text = STACK.replace("ADOPT", if adopt { "adopt: true" } else { "" });
    std::fs::write(dir.join("s/stack.yaml"), text).unwrap();
}

/// The line of `local ls` for the record set `name` of type `rtype`.
fn record(dir: &Path, name: &str, rtype: &str) -> String {
    let ls = run(dir, &["local", "ls"]).ok();
    ls.lines()
        .find(|l| {
            l.starts_with("record")
                && l.split_whitespace().nth(1) == Some(name)
                && l.contains(&format!(" {rtype} TTL"))
        })
        .unwrap_or_else(|| panic!("no {name} {rtype} in:\n{ls}"))
        .to_owned()
}

/// The moment `apply` reports a cutover step due after it is done:
/// `DnsRecord/www: switch at T (…)` (the plan's own note is planned before
/// the change was in sync, so it may be a second early).
fn due(text: &str, verb: &str) -> String {
    let at = text
        .split(&format!("DnsRecord/www: {verb} at "))
        .nth(1)
        .unwrap_or_else(|| panic!("no \"{verb} at\" report in:\n{text}"));
    at.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_whole_cutover_with_local_advance_and_plan_at_each_stage() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    stack(dir, false);
    run(dir, &["local", "add", "zone", "example.com"]).ok();
    run(
        dir,
        &[
            "local",
            "add",
            "record",
            "example.com",
            "www.example.com",
            "A",
            "192.0.2.10",
            "--ttl",
            "86400",
        ],
    )
    .ok();
    // Without the mark the record is left alone.
    let plan = run(dir, &["plan", "s", "--detailed-exitcode"]);
    assert_eq!(plan.code(), 2, "{}", plan.stdout());
    assert!(
        plan.stdout()
            .contains("exists without converge's ownership mark"),
        "{}",
        plan.stdout()
    );
    run(dir, &["apply", "s", "--yes"]).ok();
    assert!(record(dir, "www.example.com", "A").contains("TTL 86400 s 192.0.2.10"));

    // adopt: lower now, switch a day later.
    stack(dir, true);
    let applied = run(dir, &["apply", "s", "--yes"]).ok();
    assert!(
        applied.contains("lower the TTL of DnsRecord/www"),
        "{applied}"
    );
    assert!(applied.contains("DnsRecord/www: switch at "), "{applied}");
    let switch_at = due(&applied, "switch");
    assert!(record(dir, "www.example.com", "A").contains("TTL 60 s 192.0.2.10"));
    let mark = record(dir, "_converge-a.www.example.com", "TXT");
    assert!(mark.contains("lowered="), "{mark}");
    // The moment noted is the one the change was in sync.
    assert!(!mark.contains("moment=planned"), "{mark}");

    // plan --at: before the old TTL has passed, it waits; at it, it switches.
    let early = run(dir, &["plan", "s"]).ok();
    assert!(early.contains("switch at"), "{early}");
    let at = run(dir, &["plan", "s", "--at", &switch_at]).ok();
    assert!(at.contains("switch to the new value"), "{at}");

    run(dir, &["local", "advance", "24h"]).ok();
    let ls = run(dir, &["local", "ls"]).ok();
    assert!(ls.starts_with("clock: 24h ahead of the host"), "{ls}");
    let switched = run(dir, &["apply", "s", "--yes"]).ok();
    assert!(
        switched.contains("switch DnsRecord/www to its new value"),
        "{switched}"
    );
    let settle_at = due(&switched, "settle");
    assert!(record(dir, "www.example.com", "A").contains("TTL 60 s 192.0.2.20"));
    let at = run(dir, &["plan", "s", "--at", &settle_at]).ok();
    assert!(at.contains("settle: raise the TTL"), "{at}");

    // The loop finishes the cutover once settle has passed.
    run(dir, &["local", "advance", "1h"]).ok();
    let pass = run(dir, &["reconcile", "s", "--once"]).ok();
    assert!(pass.contains("1 done"), "{pass}");
    assert!(record(dir, "www.example.com", "A").contains("TTL 300 s 192.0.2.20"));
    let mark = record(dir, "_converge-a.www.example.com", "TXT");
    assert!(
        !mark.contains("switched=") && !mark.contains("lowered="),
        "{mark}"
    );
    assert_eq!(run(dir, &["plan", "s", "--detailed-exitcode"]).code(), 0);

    // Moved to another name: the old set and its mark go with the new
    // one's creation.
    std::fs::write(
        dir.join("s/stack.yaml"),
        STACK
            .replace("www.example.com", "api.example.com")
            .replace("ADOPT", ""),
    )
    .unwrap();
    run(dir, &["apply", "s", "--yes"]).ok();
    let ls = run(dir, &["local", "ls"]).ok();
    assert!(!ls.contains("www.example.com"), "{ls}");
    assert!(ls.contains("api.example.com"), "{ls}");
    // Removed from the manifests, with nothing left naming the zone: the
    // zone's converge:records tag still leads observation to the record.
    let only_stack = STACK.split("---").next().unwrap();
    std::fs::write(dir.join("s/stack.yaml"), only_stack).unwrap();
    let gone = run(dir, &["apply", "s", "--yes"]).ok();
    assert!(gone.contains("delete DnsRecord/www"), "{gone}");
    let ls = run(dir, &["local", "ls"]).ok();
    assert!(!ls.contains("api.example.com"), "{ls}");
    assert!(ls.contains("example.com"), "{ls}");
    assert_eq!(run(dir, &["plan", "s", "--detailed-exitcode"]).code(), 0);
}

#[test]
fn apply_wait_runs_a_whole_cutover_through_on_the_local_clock() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    run(dir, &["local", "add", "zone", "example.com"]).ok();
    let add = [
        "local",
        "add",
        "record",
        "example.com",
        "www.example.com",
        "A",
        "192.0.2.10",
        "--ttl",
        "86400",
    ];
    run(dir, &add).ok();
    stack(dir, true);
    // A zone of the stack's own, whose name servers a record reads.
    let own = "---
kind: DnsZone
name: own
spec:
  domain: shop.example
---
kind: DnsRecord
name: delegation
spec:
  zone: own
  name: ns.shop.example
  type: TXT
  values: [\"${DnsZone/own.nameServers}\"]
";
    std::fs::write(dir.join("s/zone.yaml"), own).unwrap();
    let started = std::time::Instant::now();
    let out = run(dir, &["apply", "s", "--yes", "--wait"]).ok();
    // A day of cutover, not slept through.
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    // The old TTL, less the moments the apply itself took.
    let advanced: u64 = out
        .split("Advancing the local cloud's clock ")
        .nth(1)
        .and_then(|t| t.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no advance in:\n{out}"));
    assert!((86_390..=86_400).contains(&advanced), "{out}");
    assert!(
        out.contains("switch DnsRecord/www to its new value"),
        "{out}"
    );
    assert!(out.contains("raise the TTL of DnsRecord/www"), "{out}");
    assert!(record(dir, "www.example.com", "A").contains("TTL 300 s 192.0.2.20"));
    let ls = run(dir, &["local", "ls"]).ok();
    // The old TTL (a day), then the settle time (an hour).
    // (A second less each when the apply crossed a second boundary.)
    assert!(
        ls.starts_with("clock: 25h ahead") || ls.starts_with("clock: 24h59m"),
        "{ls}"
    );
    let ns = record(dir, "ns.shop.example", "TXT");
    assert!(ns.contains("ns-"), "the zone's name servers: {ns}");
    assert_eq!(run(dir, &["plan", "s", "--detailed-exitcode"]).code(), 0);
}

#[test]
fn route53_rules_are_checked_before_any_call() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    std::fs::create_dir_all(dir.join("s")).unwrap();
    std::fs::write(
        dir.join("s/stack.yaml"),
        "kind: Stack\nname: shop\nspec:\n  region: us-east-1\n---\nkind: DnsZone\nname: main\nspec:\n  domain: example.com\n---\nkind: DnsRecord\nname: apex\nspec:\n  zone: main\n  name: example.com\n  type: CNAME\n  values: [other.example.net]\n---\nkind: DnsRecord\nname: bad\nspec:\n  zone: main\n  name: www.other.com\n  type: A\n  values: [10.0.0.300]\n",
    )
    .unwrap();
    let r = run(dir, &["plan", "s"]);
    assert_eq!(r.code(), 1);
    let err = r.stderr();
    assert!(err.contains("cannot be at the zone apex"), "{err}");
    assert!(err.contains("not inside the zone example.com"), "{err}");
    // The local cloud refuses as Route 53 does.
    run(dir, &["local", "add", "zone", "example.com"]).ok();
    run(
        dir,
        &[
            "local",
            "add",
            "record",
            "example.com",
            "www.example.com",
            "A",
            "192.0.2.1",
        ],
    )
    .ok();
    let r = run(
        dir,
        &[
            "local",
            "add",
            "record",
            "example.com",
            "www.example.com",
            "CNAME",
            "x.example.net",
        ],
    );
    assert_eq!(r.code(), 1);
    assert!(r.stderr().contains("InvalidChangeBatch"), "{}", r.stderr());
}

#[test]
fn a_schedule_and_a_snapshot_schedule_run_through_with_local_advance() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    example::copy_into(dir, None);
    let apply = run(dir, &["apply", "stack", "--yes"]).ok();
    assert!(apply.contains("DnsZone/public.nameServers"), "{apply}");
    // A snapshot is due once a day (03:00 Toronto): a pass takes what is
    // due, a second pass nothing more, and a day later one more.
    run(dir, &["reconcile", "stack", "--once"]).ok();
    let count = |dir: &Path| {
        run(dir, &["local", "ls"])
            .ok()
            .lines()
            .filter(|l| l.starts_with("snapshot"))
            .count()
    };
    let first = count(dir);
    run(dir, &["reconcile", "stack", "--once"]).ok();
    assert_eq!(count(dir), first);
    run(dir, &["local", "advance", "25h"]).ok();
    run(dir, &["reconcile", "stack", "--once"]).ok();
    assert_eq!(count(dir), first + 1);
    // The app fleet's schedule (3 on weekdays 08:00–21:00 Toronto, else
    // 2): applied every 12 hours over three days, whenever the test runs,
    // both rules are met (a weekend is at most 59 hours without the 13-hour
    // weekday window).
    let mut counts = std::collections::BTreeSet::new();
    for _ in 0..7 {
        run(dir, &["apply", "stack", "--yes"]).ok();
        let n = run(dir, &["local", "ls"])
            .ok()
            .lines()
            .filter(|l| {
                l.starts_with("instance") && l.contains("Fleet/app") && l.contains("running")
            })
            .count();
        counts.insert(n);
        run(dir, &["local", "advance", "12h"]).ok();
    }
    assert_eq!(counts, std::collections::BTreeSet::from([2, 3]));
}
