//! The real `converge` binary, run in a temporary directory against the
//! embedded local cloud (delays set to zero): what a user types, what they
//! see, and the exit codes the README promises.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Monday 10:00 in Toronto: the app fleet's weekday rule gives 3.
const WEEKDAY: &str = "2026-03-09T10:00:00-04:00";
/// Sunday noon in Toronto: the weekend gives 2.
const WEEKEND: &str = "2026-03-08T12:00:00-04:00";

/// A scratch working directory holding a copy of the SmallPayroll stack.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        example::copy_into(dir.path(), None);
        Self { dir }
    }

    fn stack(&self) -> PathBuf {
        self.dir.path().join("stack")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.stack().join(name)
    }

    /// Runs converge here with zero local-cloud delays and no colour.
    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .env("CONVERGE_LOCAL_DELAYS", "zero")
            .env_remove("CONVERGE_LOCAL_FAULTS")
            .env_remove("CONVERGE_CLOUD")
            .env_remove("CONVERGE_STATE_DIR")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().unwrap())
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.file(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// `converge local ls`, as lines.
    fn ls(&self) -> Vec<String> {
        let r = self.run(&["local", "ls"]);
        r.ok();
        r.stdout().lines().map(str::to_owned).collect()
    }

    /// IDs of the live instances of `fleet` in `converge local ls`.
    fn instances(&self, fleet: &str) -> Vec<String> {
        self.ls()
            .iter()
            .filter(|l| l.starts_with("instance"))
            .filter(|l| {
                l.contains(&format!("Fleet/{fleet} ")) || l.contains(&format!("Fleet/{fleet}\t"))
            })
            .filter(|l| l.contains("running") || l.contains("pending"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .collect()
    }
}

struct Run(Output);

impl Run {
    fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    fn ok(&self) -> &Self {
        self.expect(0)
    }
}

#[test]
fn validate_accepts_the_example_stack() {
    let w = Workdir::new();
    let r = w.run(&["validate", "stack"]);
    r.ok();
    assert!(
        r.stdout().contains("stack smallpayroll is valid"),
        "{}",
        r.stdout()
    );
    assert!(
        !w.dir.path().join(".converge").exists(),
        "validate touched the cloud"
    );
}

#[test]
fn validate_names_file_resource_and_field_and_exits_1() {
    let w = Workdir::new();
    w.edit(
        "30-app.yaml",
        "instanceType: m1.small",
        "instanceTyp: m1.small",
    );
    w.edit("10-network.yaml", "port: 5432", "port: 70000");
    let r = w.run(&["validate", "stack"]);
    r.expect(1);
    let err = r.stderr();
    assert!(err.contains("30-app.yaml"), "{err}");
    assert!(err.contains("Fleet/app"), "{err}");
    assert!(err.contains("instanceTyp"), "{err}");
    // Every error is reported, not only the first.
    assert!(err.contains("10-network.yaml"), "{err}");
    assert!(err.contains("70000"), "{err}");
    // Planning refuses the same way, and touches nothing.
    w.run(&["plan", "stack"]).expect(1);
    assert!(!w.dir.path().join(".converge/local-cloud.json").exists());
}

#[test]
fn plan_is_deterministic_and_detailed_exitcode_says_changes() {
    let w = Workdir::new();
    let a = w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"]);
    a.expect(2);
    let b = w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"]);
    assert_eq!(
        a.stdout(),
        b.stdout(),
        "the same inputs gave different output"
    );
    let out = a.stdout();
    assert!(out.contains("Fleet/app"), "{out}");
    assert!(out.contains("(known after apply)"), "{out}");
    assert!(!out.contains("\u{1b}["), "colour on a pipe: {out}");
    for format in ["json", "markdown"] {
        let x = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", format]);
        x.ok();
        let y = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", format]);
        assert_eq!(x.stdout(), y.stdout());
    }
    let json = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert!(v["format_version"].is_number(), "{v}");
}

/// Issue 12, item 8: without `--at`, text and Markdown plans of an
/// unchanged stack are the same bytes (the moment is not on their first
/// line); with `--at` they name it; JSON always carries it.
#[test]
fn plans_without_at_are_byte_identical_and_name_no_moment() {
    let w = Workdir::new();
    for format in ["text", "markdown"] {
        let x = w.run(&["plan", "stack", "--format", format]);
        x.ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let y = w.run(&["plan", "stack", "--format", format]);
        assert_eq!(x.stdout(), y.stdout(), "{format} plans differ");
        let first = x.stdout().lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(!first.contains(" at 20"), "{format}: {first}");
        assert!(!first.contains("planned for"), "{format}: {first}");
        let at = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", format]);
        assert!(
            at.stdout().contains("2026-03-09"),
            "{format}: {}",
            at.stdout()
        );
    }
    let json = w.run(&["plan", "stack", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert!(v["at"].is_string(), "{v}");
}

#[test]
fn a_blocked_volume_change_is_not_no_changes() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    // A shrink is never made, but the stack no longer matches: exit 2,
    // and the plan says why, without claiming it matches.
    w.edit("20-db.yaml", "sizeGiB: 20", "sizeGiB: 10");
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"]);
    plan.expect(2);
    let out = plan.stdout();
    assert!(out.contains("blocked: spec.sizeGiB"), "{out}");
    assert!(out.contains("No changes can be made"), "{out}");
    assert!(!out.contains("matches the manifests"), "{out}");
    let json = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(v["has_changes"], false, "{v}");
    assert_eq!(v["has_blocked_changes"], true, "{v}");
    // Apply has nothing to do and changes nothing.
    let before = w.ls();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    assert_eq!(before, w.ls());
}

#[test]
fn plan_at_reads_the_schedule_at_that_moment() {
    let w = Workdir::new();
    let weekday = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", "json"]);
    let weekend = w.run(&["plan", "stack", "--at", WEEKEND, "--format", "json"]);
    let count = |r: &Run| {
        let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["op"])
            .filter(|op| op["step"] == "launch" && op["fleet"] == "app")
            .map(|op| op["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count(&weekday), 3, "{}", weekday.stdout());
    assert_eq!(count(&weekend), 2, "{}", weekend.stdout());
}

#[test]
fn a_bad_at_is_a_clear_error() {
    let w = Workdir::new();
    let r = w.run(&["plan", "stack", "--at", "2026-03-09 08:30"]);
    r.expect(1);
    assert!(r.stderr().contains("--at"), "{}", r.stderr());
    assert!(r.stderr().contains("RFC 3339"), "{}", r.stderr());
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let w = Workdir::new();
    let r = w.run(&["apply", "stack", "--at", WEEKDAY]);
    r.expect(1);
    assert!(r.stderr().contains("--yes"), "{}", r.stderr());
    assert!(w.instances("app").is_empty());
}

#[test]
fn apply_converges_then_plan_shows_no_changes_and_apply_again_does_nothing() {
    let w = Workdir::new();
    let r = w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]);
    r.ok();
    let out = r.stdout();
    assert!(out.contains("Outputs:"), "{out}");
    assert!(out.contains("Balancer/web.dnsName"), "{out}");
    assert!(out.contains("Cdn/assets.domainName"), "{out}");
    assert!(out.contains("Fleet/db.privateIp"), "{out}");
    assert_eq!(w.instances("app").len(), 3);
    assert_eq!(w.instances("db").len(), 1);
    assert!(w.instances("job").is_empty(), "autoscale min is 0");

    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    let before = w.ls();
    let again = w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]);
    again.ok();
    assert_eq!(before, w.ls(), "a second apply changed the cloud");
    // With nothing to do, the outputs still show (from the plan's own
    // observation).
    assert!(
        again.stdout().contains("Fleet/db.privateIp"),
        "{}",
        again.stdout()
    );

    // The weekend gives 2 app servers.
    w.run(&["apply", "stack", "--yes", "--at", WEEKEND]).ok();
    assert_eq!(w.instances("app").len(), 2);
}

#[test]
fn a_lost_instance_shows_as_a_change_and_apply_heals_it() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let db = w.instances("db");
    assert_eq!(db.len(), 1);
    let r = w.run(&["local", "terminate", &db[0]]);
    r.ok();
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"]);
    plan.expect(2);
    assert!(plan.stdout().contains("Fleet/db"), "{}", plan.stdout());
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let healed = w.instances("db");
    assert_eq!(healed.len(), 1);
    assert_ne!(healed, db);
    // The volume follows the database server.
    let ls = w.ls();
    let volume = ls.iter().find(|l| l.contains("Volume/pgdata")).unwrap();
    assert!(volume.contains("in-use"), "{volume}");
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
}

#[test]
fn a_saved_plan_is_applied_and_refused_once_the_world_changed() {
    let w = Workdir::new();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--out", "plan.json"])
        .ok();
    // Applying a saved plan asks nothing more: it was reviewed.
    w.run(&["apply", "--plan", "plan.json"]).ok();
    assert_eq!(w.instances("app").len(), 3);

    w.run(&["plan", "stack", "--at", WEEKDAY, "--out", "stale.json"])
        .ok();
    let app = w.instances("app");
    w.run(&["local", "terminate", &app[0]]).ok();
    let r = w.run(&["apply", "--plan", "stale.json"]);
    r.expect(1);
    assert!(r.stderr().contains("changed"), "{}", r.stderr());
    assert_eq!(w.instances("app").len(), 2, "a refused plan acted");
}

#[test]
fn destroy_keeps_what_deletion_policies_retain() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["destroy", "stack"]).expect(1);
    let r = w.run(&["destroy", "stack", "--yes"]);
    r.ok();
    let ls = w.ls();
    assert!(
        w.instances("app").is_empty() && w.instances("db").is_empty(),
        "{ls:?}"
    );
    // The bucket is retained; the volume (deletionPolicy: snapshot) leaves
    // a final snapshot behind.
    assert!(
        ls.iter().any(|l| l.contains("smallpayroll-assets")),
        "{ls:?}"
    );
    assert!(ls.iter().any(|l| l.starts_with("snapshot")), "{ls:?}");
    assert!(
        !ls.iter()
            .any(|l| l.contains("Cdn/assets") && !l.contains("deleted")),
        "{ls:?}"
    );
}

#[test]
fn an_apply_killed_mid_way_and_run_again_creates_no_duplicates() {
    let w = Workdir::new();
    // The local cloud dies (the process exits) after a few mutating calls.
    let killed = w.run_env(
        &["apply", "stack", "--yes", "--at", WEEKDAY],
        &[("CONVERGE_LOCAL_FAULTS", "crash_after=6")],
    );
    assert_ne!(killed.code(), 0, "{}", killed.stdout());
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    assert_eq!(w.instances("app").len(), 3);
    assert_eq!(w.instances("db").len(), 1);
    let ls = w.ls();
    let volumes = ls.iter().filter(|l| l.contains("Volume/pgdata")).count();
    assert_eq!(volumes, 1, "{ls:?}");
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
}

#[test]
fn throttling_and_lagging_describes_are_survived() {
    let w = Workdir::new();
    let faults = [("CONVERGE_LOCAL_FAULTS", "throttle=0.3,lag=200ms,seed=11")];
    w.run_env(&["apply", "stack", "--yes", "--at", WEEKDAY], &faults)
        .ok();
    w.run_env(
        &["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"],
        &faults,
    )
    .ok();
    assert_eq!(w.instances("app").len(), 3);
}

#[test]
fn local_ls_shows_one_line_per_resource() {
    let w = Workdir::new();
    let empty = w.run(&["local", "ls"]);
    empty.ok();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let ls = w.ls();
    assert!(ls[0].contains("ID") && ls[0].contains("STATE"), "{ls:?}");
    for needle in [
        "Fleet/app",
        "Fleet/db",
        "Volume/pgdata",
        "SecurityGroup/web",
        "SecurityGroup/db",
        "KeyPair/main",
        "Balancer/web",
        "smallpayroll-assets",
        "Cdn/assets",
    ] {
        assert!(
            ls.iter().any(|l| l.contains(needle)),
            "{needle} missing: {ls:?}"
        );
    }
    let r = w.run(&["local", "terminate", "i-0000000000000dead"]);
    r.expect(1);
}

#[test]
fn schema_prints_every_kind() {
    let w = Workdir::new();
    let r = w.run(&["schema"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let files = v.as_object().unwrap();
    for kind in [
        "Stack",
        "Network",
        "KeyPair",
        "SecurityGroup",
        "Fleet",
        "Volume",
        "Balancer",
        "Bucket",
        "Cdn",
    ] {
        assert!(
            files.contains_key(&format!("{kind}.schema.json")),
            "{kind}: {v}"
        );
    }
    assert!(files.contains_key("converge.schema.json"), "{v}");
}

#[test]
fn local_commands_refuse_the_aws_cloud() {
    let w = Workdir::new();
    let r = w.run(&["local", "ls", "--cloud", "aws"]);
    r.expect(1);
    assert!(r.stderr().contains("local cloud"), "{}", r.stderr());
}

/// One writer per stack: while a reconciler runs, a second reconciler and
/// an apply are refused with a message naming the holder; SIGTERM stops
/// the reconciler gracefully (exit 0) and frees the stack.
#[test]
fn a_running_reconciler_holds_the_stack_until_sigterm() {
    let w = Workdir::new();
    // The job fleet's metric URL is not served here: the loop reports it
    // and carries on.
    let loop_ = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(w.dir.path())
        .args(["reconcile", "stack", "--interval", "1h"])
        .env("CONVERGE_LOCAL_DELAYS", "zero")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for its first pass to have converged the stack.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.instances("db").len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop did not converge"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = w.run(&["reconcile", "stack", "--once"]);
    second.expect(1);
    assert!(
        second.stderr().contains("is being changed by"),
        "{}",
        second.stderr()
    );
    let apply = w.run(&["apply", "stack", "--yes"]);
    apply.expect(1);
    assert!(
        apply.stderr().contains("is being changed by"),
        "{}",
        apply.stderr()
    );

    // The shell's builtin kill: no procps needed.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", loop_.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = loop_.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Stopped after 1 pass"), "{stderr}");
    // The stack is free again, and already converged.
    w.run(&["reconcile", "stack", "--once"]).ok();
}

/// Issue 12: SIGTERM while a step waits (instances that take an hour to
/// boot) stops the loop within 10 s, the wait abandoned, exit 0, and the
/// stack's lease released.
#[test]
fn sigterm_during_a_long_wait_stops_the_loop_within_ten_seconds_and_frees_the_lease() {
    let w = Workdir::new();
    let loop_ = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(w.dir.path())
        .args(["reconcile", "stack", "--interval", "1s"])
        .env("CONVERGE_LOCAL_DELAYS", "zero,boot=1h")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a launch to be in flight: its instances pending.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.instances("db").is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing was launched");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let lease = w.dir.path().join(".converge/lease-smallpayroll.json");
    assert!(lease.exists(), "the loop holds the lease");
    let sent = std::time::Instant::now();
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", loop_.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = loop_.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        took < std::time::Duration::from_secs(10),
        "{took:?}: {stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("abandoning waits"), "{stderr}");
    assert!(!lease.exists(), "the lease was not released: {stderr}");
}

/// A reconciler that has converged the stack and holds its lease.
fn a_running_reconciler(w: &Workdir) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(w.dir.path())
        .args(["reconcile", "stack", "--interval", "1h"])
        .env("CONVERGE_LOCAL_DELAYS", "zero")
        .env_remove("CONVERGE_LOCAL_FAULTS")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lease = w.dir.path().join(".converge/lease-smallpayroll.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while w.instances("db").is_empty() || !lease.exists() {
        assert!(std::time::Instant::now() < deadline, "nothing was launched");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child
}

/// Issue 12: a reconciler killed with SIGKILL cannot release its lease;
/// the next writer on the same host sees that its process is gone (reaped,
/// or a zombie its parent has not reaped yet) and takes the lease over at
/// once instead of waiting out its 60 s.
#[test]
fn the_lease_of_a_sigkilled_reconciler_is_taken_over_at_once() {
    let w = Workdir::new();
    let lease = w.dir.path().join(".converge/lease-smallpayroll.json");
    // Killed and not reaped: a zombie holds the lease's PID.
    let mut zombie = a_running_reconciler(&w);
    zombie.kill().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(lease.exists(), "a SIGKILL releases nothing");
    let started = std::time::Instant::now();
    let r = w.run(&["reconcile", "stack", "--once"]);
    r.ok();
    assert!(
        r.stderr().contains("took the stack's lease over"),
        "{}",
        r.stderr()
    );
    zombie.wait().unwrap();
    // Killed and reaped; an apply comes next.
    let mut killed = a_running_reconciler(&w);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let r = w.run(&["apply", "stack", "--yes"]);
    r.ok();
    assert!(
        r.stderr().contains("took the stack's lease over"),
        "{}",
        r.stderr()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the dead holder's lease was waited out: {:?}",
        started.elapsed()
    );
    assert!(!lease.exists(), "the apply released the lease");
}

#[test]
fn reconcile_once_heals_a_lost_instance() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes"]).ok();
    let app = w.instances("app");
    w.run(&["local", "terminate", &app[0]]).ok();
    let r = w.run(&["reconcile", "stack", "--once"]);
    r.ok();
    assert!(r.stdout().contains("metric unreadable"), "{}", r.stdout());
    let healed = w.instances("app");
    assert_eq!(healed.len(), app.len());
    assert!(!healed.contains(&app[0]));
}

#[test]
fn reconcile_refuses_bad_flags_and_an_aws_stack_without_a_lease_bucket() {
    let w = Workdir::new();
    for bad in ["soon", "0", "200ms"] {
        let r = w.run(&["reconcile", "stack", "--interval", bad]);
        r.expect(1);
        assert!(r.stderr().contains("--interval"), "{}", r.stderr());
    }
    let r = w.run_env(
        &[
            "--cloud",
            "aws",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "reconcile",
            "stack",
            "--once",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    r.expect(1);
    assert!(r.stderr().contains("--lease-bucket"), "{}", r.stderr());
}

/// Replaces cloud IDs (`i-…`, `vol-…`, `snap-…`, `sg-…`, `key-…`) and IPv4
/// addresses with placeholders, so snapshots do not depend on them.
fn redact(text: &str) -> String {
    const PREFIXES: [&str; 5] = ["i-", "vol-", "snap-", "sg-", "key-"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        let at_boundary = out
            .chars()
            .last()
            .is_none_or(|p| !(p.is_ascii_alphanumeric() || p == '-'));
        if at_boundary {
            for p in PREFIXES {
                if let Some(tail) = rest.strip_prefix(p) {
                    let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
                    if hex >= 8 {
                        out.push_str(p);
                        out.push_str("[id]");
                        rest = &tail[hex..];
                        continue 'scan;
                    }
                }
            }
            let ip_len = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .count();
            let candidate = &rest[..ip_len];
            if candidate.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push_str("[ip]");
                rest = &rest[ip_len..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn redact_hides_ids_and_addresses_only() {
    assert_eq!(
        redact("terminate i-30e403e2e327e4c00 db=10.0.8.129 ami-147f977d m1.small 0.0.0.0/0"),
        "terminate i-[id] db=[ip] ami-147f977d m1.small [ip]/0"
    );
}

/// The plans a user reads, as snapshots: a fresh stack, and the stack
/// after its database server was lost (IDs and addresses redacted).
#[test]
fn plan_output_snapshots() {
    let w = Workdir::new();
    let fresh = w.run(&["plan", "stack", "--at", WEEKDAY]);
    fresh.ok();
    insta::assert_snapshot!("plan_fresh_smallpayroll", fresh.stdout());

    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let db = w.instances("db");
    w.run(&["local", "terminate", &db[0]]).ok();
    let healing = w.run(&["plan", "stack", "--at", WEEKDAY]);
    healing.ok();
    insta::assert_snapshot!("plan_db_lost", redact(&healing.stdout()));
    let markdown = w.run(&["plan", "stack", "--at", WEEKDAY, "--format", "markdown"]);
    markdown.ok();
    insta::assert_snapshot!("plan_db_lost_markdown", redact(&markdown.stdout()));
}

#[test]
fn a_new_ami_published_under_an_ssm_parameter_shows_as_a_rollout() {
    let w = Workdir::new();
    let name = "/converge/test/app-ami";
    let r = w.run(&["local", "add", "parameter", name, "ami-147f977d"]);
    r.ok();
    assert_eq!(r.stdout(), "1\n");
    w.edit(
        "30-app.yaml",
        "image: ami-147f977d",
        &format!("image: ssm:{name}"),
    );
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY]);
    plan.ok();
    assert!(
        plan.stdout()
            .contains(&format!("+ spec.image: ami-147f977d (from ssm:{name})")),
        "{}",
        plan.stdout()
    );
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();

    // Publishing a new AMI under the name rolls the fleet.
    let r = w.run(&["local", "add", "parameter", name, "ami-2b3c4d5e"]);
    r.ok();
    assert_eq!(r.stdout(), "2\n");
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"]);
    plan.expect(2);
    let out = plan.stdout();
    assert!(
        out.contains("-/+ Fleet/app (because spec.image changed)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "~ spec.image: ami-147f977d → ami-2b3c4d5e (from ssm:{name}) (new instances)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("note: image ssm:{name} now ami-2b3c4d5e")),
        "{out}"
    );
    assert_eq!(out.matches("- terminate ").count(), 3, "{out}");
    let ls = w.ls();
    assert!(
        ls.iter()
            .any(|l| l.starts_with("parameter") && l.contains("version 2: ami-2b3c4d5e")),
        "{ls:?}"
    );

    // A parameter that is gone is an error naming the fleet, before any
    // change.
    let r = w.run(&["local", "remove", "parameter", name]);
    r.ok();
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY]);
    plan.expect(1);
    assert!(
        plan.stderr().contains(&format!(
            "Fleet/app: spec.image: SSM parameter {name} does not exist"
        )),
        "{}",
        plan.stderr()
    );
    let r = w.run(&["local", "remove", "parameter", name]);
    r.expect(1);
    assert!(r.stderr().contains("ParameterNotFound"), "{}", r.stderr());
}

#[test]
fn local_add_instance_profile_prints_its_arn_and_the_fleet_uses_it_in_place() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let before = w.instances("app");
    let r = w.run(&["local", "add", "instance-profile", "app-role"]);
    r.ok();
    assert_eq!(
        r.stdout(),
        "arn:aws:iam::123456789012:instance-profile/app-role\n"
    );
    w.edit(
        "30-app.yaml",
        "image: ami-147f977d",
        "image: ami-147f977d\n  instanceProfile: app-role\n  metadata: { tokens: required, hopLimit: 1 }",
    );
    let plan = w.run(&["plan", "stack", "--at", WEEKDAY]);
    plan.ok();
    let out = plan.stdout();
    assert!(
        out.contains("~ spec.instanceProfile: (none) → app-role (in place)"),
        "{out}"
    );
    assert!(
        out.contains("~ spec.metadata.hopLimit: 2 → 1 (in place)"),
        "{out}"
    );
    assert!(!out.contains("terminate"), "{out}");
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    assert_eq!(w.instances("app"), before, "changed in place");
    let ls = w.ls();
    let app: Vec<&String> = ls.iter().filter(|l| l.contains("Fleet/app")).collect();
    assert!(
        app.iter().all(|l| l.contains("profile app-role")
            && l.contains("metadata tokens required hop limit 1")),
        "{app:?}"
    );
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    // In use: IAM refuses to delete it.
    let r = w.run(&["local", "remove", "instance-profile", "app-role"]);
    r.expect(1);
    assert!(r.stderr().contains("DeleteConflict"), "{}", r.stderr());
}

#[test]
fn version_completions_and_man_pages() {
    let w = Workdir::new();
    let r = w.run(&["version", "--json"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(w.run(&["--version"]).stdout().contains("(commit "));
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = w.run(&["completions", shell]);
        r.ok();
        assert!(r.stdout().contains("reconcile"), "{shell}");
    }
    let r = w.run(&["man", "--out", "man"]);
    r.ok();
    let page = std::fs::read_to_string(w.dir.path().join("man/converge-local-ls.1")).unwrap();
    assert!(page.contains("converge local ls"), "{page}");
    assert!(w.dir.path().join("man/converge-plan.1").exists());
}

#[test]
fn color_is_decided_by_the_flag_no_color_and_clicolor_force() {
    let w = Workdir::new();
    let esc = |r: &Run| r.stdout().contains('\u{1b}');
    // Piped, NO_COLOR set by `run`: no colour unless asked for.
    assert!(!esc(w.run(&["plan", "stack"]).ok()));
    assert!(esc(w.run(&["--color", "always", "plan", "stack"]).ok()));
    let forced = w.run_env(
        &["plan", "stack"],
        &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")],
    );
    assert!(esc(forced.ok()));
    let never = w.run_env(
        &["--color", "never", "plan", "stack"],
        &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")],
    );
    assert!(!esc(never.ok()));
}

#[test]
fn output_prints_the_live_stacks_outputs() {
    let w = Workdir::new();
    let r = w.run(&["output", "stack", "--json"]);
    r.ok();
    let before: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert!(before.get("Balancer/web.dnsName").is_none(), "{before}");
    w.run(&["apply", "stack", "--yes"]).ok();
    let r = w.run(&["output", "stack"]);
    r.ok();
    assert!(
        r.stdout()
            .lines()
            .any(|l| l.starts_with("Balancer/web.dnsName ") && l.contains(" = web-")),
        "{}",
        r.stdout()
    );
    let r = w.run(&["output", "stack", "Fleet/db.privateIp"]);
    r.ok();
    let ip: std::net::Ipv4Addr = r.stdout().trim().parse().unwrap();
    let r = w.run(&["output", "stack", "Fleet/db.privateIp", "--json"]);
    assert_eq!(r.stdout().trim(), format!("\"{ip}\""));
    let r = w.run(&["output", "stack", "Balancer/nope.dnsName"]);
    r.expect(1);
    assert!(
        r.stderr().contains("no output \"Balancer/nope.dnsName\" in stack smallpayroll; it has: Balancer/web.dnsName,"),
        "{}",
        r.stderr()
    );
}

/// Gives the SmallPayroll stack another Network (`network` is its
/// document, with the example's subnet names): the fleets in the private
/// subnets, the balancer in the public ones.
fn into_network(w: &Workdir, network: &str) {
    std::fs::write(w.file("05-network.yaml"), network).unwrap();
    // The db's address, in the new private-a (10.20.10.0/24 or an
    // existing VPC's): the subnet picks.
    w.edit("20-db.yaml", "privateIps: [10.0.10.10]", "");
    for _ in 0..2 {
        w.edit(
            "30-app.yaml",
            "subnets: [public-a, public-b]",
            "subnets: [private-a, private-b]",
        );
    }
}

/// Takes the SmallPayroll stack out of its Network, into the region's
/// default VPC: zones instead of subnets.
fn into_default_vpc(w: &Workdir) {
    std::fs::remove_file(w.file("05-network.yaml")).unwrap();
    w.edit("20-db.yaml", "subnets: [private-a]", "zones: [us-east-1a]");
    // A declared address needs a Network.
    w.edit("20-db.yaml", "privateIps: [10.0.10.10]", "");
    for _ in 0..2 {
        w.edit(
            "30-app.yaml",
            "subnets: [public-a, public-b]",
            "zones: [us-east-1a, us-east-1b]",
        );
    }
    w.edit(
        "40-web.yaml",
        "subnets: [public-a, public-b]",
        "zones: [us-east-1a, us-east-1b]",
    );
}

#[test]
fn the_example_stack_needs_no_default_vpc_and_moves_to_it_when_asked() {
    let w = Workdir::new();
    w.run(&["local", "remove", "default-vpc"]).ok();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let ls = w.ls();
    let db: Vec<&String> = ls.iter().filter(|l| l.contains("Fleet/db")).collect();
    assert!(
        db.len() == 1 && db[0].contains(" 10.0.10.10 ") && !db[0].contains(" public "),
        "the db runs in private-a, without a public address: {db:?}"
    );
    assert!(
        ls.iter()
            .filter(|l| l.starts_with("instance") && l.contains("Fleet/app"))
            .all(|l| l.contains(" public ")),
        "app servers run in public subnets: {ls:#?}"
    );
}

#[test]
fn a_region_without_a_default_vpc_is_refused_before_any_change() {
    let w = Workdir::new();
    into_default_vpc(&w);
    let r = w.run(&["local", "remove", "default-vpc"]);
    r.ok();
    assert_eq!(r.stdout().trim(), "vpc-default-us-east-1");
    for args in [vec!["plan", "stack"], vec!["apply", "stack", "--yes"]] {
        let r = w.run(&args);
        r.expect(1);
        assert!(
            r.stderr().contains("no default VPC") && r.stderr().contains("declare a Network"),
            "{}",
            r.stderr()
        );
    }
    assert_eq!(w.ls().len(), 1, "nothing was made: {:?}", w.ls());
}

#[test]
fn a_created_network_is_applied_converges_and_is_deleted_in_order() {
    let w = Workdir::new();
    into_network(
        &w,
        "kind: Network
name: main
spec:
  cidr: 10.20.0.0/16
  deletionPolicy: delete
  subnets:
    - { name: public-a, zone: us-east-1a, cidr: 10.20.0.0/24, public: true }
    - { name: public-b, zone: us-east-1b, cidr: 10.20.1.0/24, public: true }
    - { name: private-a, zone: us-east-1a, cidr: 10.20.10.0/24 }
    - { name: private-b, zone: us-east-1b, cidr: 10.20.11.0/24 }
",
    );
    // Without a default VPC: the Network is all the stack needs.
    w.run(&["local", "remove", "default-vpc"]).ok();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    let ls = w.ls();
    let count = |kind: &str| ls.iter().filter(|l| l.starts_with(kind)).count();
    assert_eq!(count("vpc "), 1, "{ls:#?}");
    assert_eq!(count("subnet "), 4, "{ls:#?}");
    assert_eq!(count("internet-gateway "), 1, "{ls:#?}");
    assert_eq!(count("route-table "), 1, "{ls:#?}");
    let apps: Vec<&String> = ls
        .iter()
        .filter(|l| l.starts_with("instance") && l.contains("Fleet/app"))
        .collect();
    assert_eq!(apps.len(), 3, "{ls:#?}");
    assert!(
        apps.iter()
            .all(|l| l.contains(" 10.20.1") && l.contains(" in subnet-")),
        "{apps:#?}"
    );
    w.run(&["destroy", "stack", "--yes"]).ok();
    let ls = w.ls();
    assert!(
        !ls.iter().any(|l| l.starts_with("vpc")
            || l.starts_with("subnet")
            || l.starts_with("internet-gateway")
            || l.starts_with("route-table")),
        "{ls:#?}"
    );
}

#[test]
fn an_existing_vpc_made_with_local_add_is_used_and_kept() {
    let w = Workdir::new();
    let r = w.run(&[
        "local",
        "add",
        "vpc",
        "10.30.0.0/16",
        "--subnet",
        "us-east-1a=10.30.1.0/24",
        "--subnet",
        "us-east-1b=10.30.2.0/24",
    ]);
    r.ok();
    let ids: Vec<String> = r.stdout().lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[0].starts_with("vpc-") && ids[1].starts_with("subnet-"));
    into_network(
        &w,
        &format!(
            "kind: Network
name: main
spec:
  vpc: {}
  subnets:
    - {{ name: public-a, id: {a} }}
    - {{ name: public-b, id: {b} }}
    - {{ name: private-a, id: {a} }}
    - {{ name: private-b, id: {b} }}
",
            ids[0],
            a = ids[1],
            b = ids[2]
        ),
    );
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    w.run(&["destroy", "stack", "--yes"]).ok();
    let ls = w.ls();
    assert!(
        ls.iter()
            .any(|l| l.starts_with("vpc") && l.contains(&ids[0]))
    );
    assert_eq!(ls.iter().filter(|l| l.starts_with("subnet")).count(), 2);
    // A subnet that overlaps is refused, with AWS's code.
    let r = w.run(&[
        "local",
        "add",
        "vpc",
        "10.40.0.0/16",
        "--subnet",
        "us-east-1a=10.41.0.0/24",
    ]);
    r.expect(1);
    assert!(r.stderr().contains("InvalidSubnet.Range"), "{}", r.stderr());
}

#[test]
fn every_commands_help_ends_with_examples() {
    let w = Workdir::new();
    for cmd in [
        vec![],
        vec!["validate"],
        vec!["plan"],
        vec!["apply"],
        vec!["destroy"],
        vec!["reconcile"],
        vec!["output"],
        vec!["schema"],
        vec!["version"],
        vec!["completions"],
        vec!["man"],
        vec!["local"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let r = w.run(&args);
        r.ok();
        let help = r.stdout();
        let examples = help
            .rfind("\nExamples:\n")
            .unwrap_or_else(|| panic!("{cmd:?}: {help}"));
        let first = help[examples..].lines().nth(2).unwrap_or_default();
        assert!(
            first.trim_start().starts_with("converge "),
            "{cmd:?}: {help}"
        );
    }
}

#[test]
fn replace_rolls_a_fleet_on_request_and_a_saved_plan_keeps_the_request() {
    let w = Workdir::new();
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    let before = w.instances("app");
    let r = w.run(&[
        "plan",
        "stack",
        "--at",
        WEEKDAY,
        "--replace",
        "Fleet/app",
        "--detailed-exitcode",
    ]);
    r.expect(2);
    assert!(
        r.stdout().contains("-/+ Fleet/app (replace requested)"),
        "{}",
        r.stdout()
    );
    w.run(&[
        "plan",
        "stack",
        "--at",
        WEEKDAY,
        "--replace",
        "Fleet/app",
        "--out",
        "plan.json",
    ])
    .ok();
    w.run(&["apply", "--plan", "plan.json", "--yes"]).ok();
    let after = w.instances("app");
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|i| !before.contains(i)),
        "{before:?} → {after:?}"
    );
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    for (arg, error) in [
        ("Volume/pgdata", "only fleets are replaced on request"),
        (
            "Fleet/nope",
            "the manifests declare no Fleet/nope (fleets: app, db, job)",
        ),
        ("app", "expected Fleet/NAME"),
    ] {
        let r = w.run(&["plan", "stack", "--replace", arg]);
        r.expect(1);
        assert!(r.stderr().contains(error), "{arg}: {}", r.stderr());
    }
}

#[test]
fn target_plans_and_applies_a_resource_and_what_it_depends_on() {
    let w = Workdir::new();
    let r = w.run(&["plan", "stack", "--at", WEEKDAY, "--target", "Fleet/db"]);
    r.ok();
    let out = r.stdout();
    assert!(
        out.contains("Warning: Partial plan (--target Fleet/db)"),
        "{out}"
    );
    for shown in [
        "+ Fleet/db",
        "+ SecurityGroup/db",
        "+ KeyPair/main",
        "+ Network/main",
    ] {
        assert!(out.contains(shown), "{shown}: {out}");
    }
    for left in ["Fleet/app", "Volume/pgdata", "Balancer/web", "Cdn/assets"] {
        assert!(!out.contains(left), "{left}: {out}");
    }
    w.run(&[
        "apply", "stack", "--yes", "--at", WEEKDAY, "--target", "Fleet/db",
    ])
    .ok();
    assert_eq!(w.instances("db").len(), 1);
    assert!(w.instances("app").is_empty());
    // A saved partial plan stays partial when applied.
    w.run(&[
        "plan",
        "stack",
        "--at",
        WEEKDAY,
        "--target",
        "Volume/pgdata",
        "--out",
        "p.json",
    ])
    .ok();
    w.run(&["apply", "--plan", "p.json", "--yes"]).ok();
    assert!(
        w.ls()
            .iter()
            .any(|l| l.starts_with("volume") && l.contains("in-use"))
    );
    assert!(w.instances("app").is_empty());
    // The rest comes with a whole plan.
    w.run(&["apply", "stack", "--yes", "--at", WEEKDAY]).ok();
    w.run(&["plan", "stack", "--at", WEEKDAY, "--detailed-exitcode"])
        .ok();
    for (arg, error) in [
        (
            "Fleet/nope",
            "--target Fleet/nope: the stack has no such resource",
        ),
        ("db", "expected Kind/NAME"),
        ("Widget/x", "expected Kind/NAME"),
    ] {
        let r = w.run(&["plan", "stack", "--target", arg]);
        r.expect(1);
        assert!(r.stderr().contains(error), "{arg}: {}", r.stderr());
    }
}

#[test]
fn each_command_shows_and_takes_only_the_options_it_uses() {
    let w = Workdir::new();
    let help = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.push("--help");
        let r = w.run(&args);
        r.ok();
        r.stdout()
    };
    let validate = help(&["validate"]);
    for hidden in [
        "--cloud",
        "--region",
        "--state-dir",
        "--lease-bucket",
        "--stats",
    ] {
        assert!(!validate.contains(hidden), "{hidden}: {validate}");
    }
    assert!(validate.contains("--color"), "{validate}");
    let plan = help(&["plan"]);
    assert!(
        plan.contains("--region") && plan.contains("--state-dir"),
        "{plan}"
    );
    assert!(!plan.contains("--lease-bucket"), "{plan}");
    assert!(help(&["apply"]).contains("--lease-bucket"));
    let ls = help(&["local", "ls"]);
    assert!(
        ls.contains("--state-dir") && !ls.contains("--region"),
        "{ls}"
    );
    // Given where it is not used: an error naming it, before or after the
    // command; from the environment it is simply not read.
    for args in [
        vec!["validate", "stack", "--region", "eu-west-1"],
        vec!["--region", "eu-west-1", "validate", "stack"],
    ] {
        let r = w.run(&args);
        r.expect(1);
        assert!(
            r.stderr()
                .contains("--region is not used by `converge validate`"),
            "{}",
            r.stderr()
        );
    }
    let r = w.run(&["plan", "stack", "--lease-wait", "5m"]);
    r.expect(1);
    assert!(
        r.stderr()
            .contains("--lease-wait is not used by `converge plan`"),
        "{}",
        r.stderr()
    );
    w.run_env(&["validate", "stack"], &[("CONVERGE_LEASE_BUCKET", "b")])
        .ok();
    // Before or after the command, where it is used.
    w.run(&["--cloud", "local", "plan", "stack"]).ok();
    w.run(&["plan", "stack", "--cloud", "local"]).ok();
}

#[test]
fn reconcile_reads_ssl_cert_file_and_refuses_an_unusable_one() {
    let w = Workdir::new();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");
    let ca = ca.to_str().unwrap();
    w.run_env(&["reconcile", "stack", "--once"], &[("SSL_CERT_FILE", ca)])
        .ok();
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/server.key");
    for (file, error) in [
        ("/nonexistent/ca.pem", "SSL_CERT_FILE /nonexistent/ca.pem"),
        (key.to_str().unwrap(), "no certificate in it"),
    ] {
        let r = w.run_env(
            &["reconcile", "stack", "--once"],
            &[("SSL_CERT_FILE", file)],
        );
        r.expect(1);
        assert!(
            r.stderr()
                .contains("the client for metrics and health probes")
                && r.stderr().contains(error),
            "{}",
            r.stderr()
        );
    }
}
