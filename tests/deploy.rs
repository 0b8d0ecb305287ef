//! What can be checked offline of `deploy/`: every file parses, every
//! metric the alerts and the dashboard use is one `/metrics` serves, the
//! systemd unit passes `systemd-analyze verify` (where systemd's tools
//! are installed), and the command lines of the container image, the
//! Kubernetes Deployment and the unit are ones converge accepts: each is
//! run once (`--once`) against a copy of the example stack on the local
//! cloud. (No image is built here: there is no container engine with a
//! daemon on these machines, and base images come from a registry they
//! cannot reach.)

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support::example;

use converge::reconcile::metrics::Metrics;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap()
}

fn yaml_documents(file: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(&read(file))
        .unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
}

/// The metric names `/metrics` serves (a histogram's with its suffixes).
fn served() -> BTreeSet<String> {
    let m = Metrics::new();
    m.fleet("app", 3, 3);
    m.autoscale_reading("job", 1.0);
    let mut names = BTreeSet::new();
    for line in m.render().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            names.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// The converge and process metric names a PromQL expression uses.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("converge_") || word.starts_with("process_") {
                found.push(word.clone());
            }
            word.clear();
        }
    }
    found
}

#[test]
fn alerts_and_dashboard_use_only_served_metrics() {
    let served = served();
    let mut used = Vec::new();
    let rules = yaml_documents("prometheus/alerts.yaml");
    let groups = rules[0]["groups"].as_array().unwrap();
    let mut alerts = BTreeSet::new();
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        alerts.insert(rule["alert"].as_str().unwrap().to_owned());
        used.extend(metrics_in(rule["expr"].as_str().unwrap()));
        assert!(rule["annotations"]["summary"].is_string(), "{rule}");
    }
    for wanted in [
        "ConvergeNoSuccessfulPass",
        "ConvergeErrorsRising",
        "ConvergeFleetNotConverged",
    ] {
        assert!(alerts.contains(wanted), "{wanted}: {alerts:?}");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/converge-dashboard.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        used.extend(metrics_in(target["expr"].as_str().unwrap()));
    }
    used.extend(metrics_in(
        dashboard["templating"]["list"][1]["query"]
            .as_str()
            .unwrap(),
    ));
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<&String> = used.iter().filter(|m| !served.contains(*m)).collect();
    assert!(
        unknown.is_empty(),
        "not served by /metrics: {unknown:?}\nserved: {served:?}"
    );
}

#[test]
fn kubernetes_manifests_are_a_service_account_and_a_probed_scraped_deployment() {
    let docs = yaml_documents("kubernetes/converge.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Deployment"]);
    let sa = &docs[0];
    assert!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string());
    let pod = &docs[1]["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "converge");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
}

/// The example stack, copied, and a local-cloud state directory.
fn stack() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    example::copy_into(dir.path(), None);
    dir
}

/// Runs converge with `args` (the stack directory and listen address
/// swapped for local ones) for one pass on the local cloud.
fn run_once(what: &str, args: &[String]) {
    let dir = stack();
    let stack = dir.path().join("stack");
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "/manifests" | "/etc/converge/stack" => stack.display().to_string(),
            a if a.ends_with(":9464") => "127.0.0.1:0".to_owned(),
            a => a.to_owned(),
        })
        .chain(["--once".to_owned()])
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_converge"))
        .current_dir(dir.path())
        .args(&args)
        .env("CONVERGE_CLOUD", "local")
        .env("CONVERGE_LOCAL_DELAYS", "zero")
        .env_remove("CONVERGE_LEASE_BUCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: converge {args:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JSON array of strings on a Dockerfile line (`CMD ["a", "b"]`).
fn exec_form(line: &str) -> Vec<String> {
    let json = line.split_once(' ').unwrap().1;
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_command_lines_of_image_deployment_and_unit_are_accepted() {
    let dockerfile = read("Dockerfile");
    let known = [
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "EXPOSE",
        "ENV",
        "ENTRYPOINT",
        "CMD",
    ];
    let mut cmd = None;
    let mut continued = false;
    for line in dockerfile.lines() {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') || continued {
            continued = text.ends_with('\\');
            continue;
        }
        let word = text.split_whitespace().next().unwrap();
        assert!(known.contains(&word), "unknown instruction: {line}");
        continued = text.ends_with('\\');
        if word == "CMD" {
            cmd = Some(exec_form(text));
        }
    }
    // The build stage's Rust is the one the crate asks for.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let rust = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(
        dockerfile.contains(&format!("FROM rust:{rust}-")),
        "rust {rust}"
    );
    run_once("Dockerfile CMD", &cmd.unwrap());

    let docs = yaml_documents("kubernetes/converge.yaml");
    let args: Vec<String> = docs[1]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    run_once("Deployment args", &args);

    let unit = read("systemd/converge.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().unwrap(), "/usr/local/bin/converge");
    run_once("ExecStart", &words.collect::<Vec<_>>());
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(found.status.success());
    // The unit as installed, with the binary where this build put it (the
    // verifier checks the executable exists) and no man pages to look up.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("systemd/converge.service")
        .replace("/usr/local/bin/converge", env!("CARGO_BIN_EXE_converge"))
        .lines()
        .filter(|l| !l.starts_with("Documentation="))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("converge.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("converge.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{text}");
}

/// The example GitHub Actions workflow: it parses, plans pull requests as
/// Markdown with the detailed exit code, and applies on a push to main,
/// with flags converge accepts.
#[test]
fn the_github_actions_example_plans_pull_requests_and_applies_merges() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-actions/converge.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap();
    let wf = &docs[0];
    assert!(wf["on"]["pull_request"].is_object() && wf["on"]["push"].is_object());
    let runs = |job: &str| -> String {
        wf["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plan = runs("plan");
    assert!(
        plan.contains("converge plan \"$STACK\" --format markdown --detailed-exitcode"),
        "{plan}"
    );
    let apply = runs("apply");
    assert!(
        apply.contains("converge apply \"$STACK\" --yes --lease-wait 10m"),
        "{apply}"
    );
    // The flags parse: each command line runs against the local cloud.
    let dir = stack();
    for args in [
        vec![
            "plan",
            "stack",
            "--format",
            "markdown",
            "--detailed-exitcode",
        ],
        vec!["apply", "stack", "--yes", "--lease-wait", "10m"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_converge"))
            .current_dir(dir.path())
            .args(&args)
            .env("CONVERGE_CLOUD", "local")
            .env("CONVERGE_LOCAL_DELAYS", "zero")
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            code == Some(0) || (args[0] == "plan" && code == Some(2)),
            "{args:?}: {code:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
