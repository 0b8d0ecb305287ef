//! How the planner scales: a stack of 1,000 fleets behind 100 balancers,
//! with 10,000 and 100,000 instances observed, all up to date (the plan is
//! "no changes", what the reconcile loop computes every round), and the
//! same with 10% of the fleets needing a rolling replacement.
//!
//! Run with `cargo bench -p converge-core --bench plan`. Each case runs in
//! a child process of its own so that its peak memory is its own: the
//! child builds the inputs, resets the kernel's high-water mark of its
//! resident memory (`/proc/self/clear_refs`), plans a few times and reports
//! the best time and the peak resident memory (`VmHWM`). Then it checks
//! the plan with `converge_core::check` as apply does before running it,
//! as many times, and reports the checker's best time and the memory it
//! adds above the inputs and the plan ("check Δ"). Targets: the
//! 100,000-instance case under 1 s and 1 GiB, and no more than 12 times
//! the 10,000-instance case; the checker under the planner's own time.
//!
//! This is a measurement, not a test: it prints figures and fails only if
//! a plan is not what the case expects.

// The benchmark measures the planner from outside: it reads the clock and
// /proc, which the planner itself may not.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{fleet, in_place, name, smallpayroll, ts, zone};
use converge_core::desired::{BalancerSpec, Desired, SecurityGroupSpec, Tags};
use converge_core::observed::Observed;
use converge_core::plan::{Plan, PlanInput};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const FLEETS: usize = 1_000;
const BALANCERS: usize = 100;
const GROUPS: usize = 10;
const AT: &str = "2026-03-07T17:00:00Z";

/// One measured case.
struct Case {
    name: &'static str,
    /// Instances per fleet.
    per_fleet: u32,
    /// Whether 10% of the fleets get a new image.
    replace: bool,
    /// Plans per measurement (the best is kept).
    runs: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "10k",
        per_fleet: 10,
        replace: false,
        runs: 7,
    },
    Case {
        name: "100k",
        per_fleet: 100,
        replace: false,
        runs: 5,
    },
    Case {
        name: "10k-replace",
        per_fleet: 10,
        replace: true,
        runs: 7,
    },
    Case {
        name: "100k-replace",
        per_fleet: 100,
        replace: true,
        runs: 5,
    },
];

/// 1,000 fleets of `per_fleet` instances over three zones, ten security
/// groups, one key pair, 100 balancers of ten fleets each. Every tenth
/// fleet's user data names the previous fleet's addresses.
fn stack(per_fleet: u32) -> Desired {
    let base = smallpayroll();
    let mut d = Desired::empty(name("big"), "us-east-1".into());
    d.tags = base.tags.clone();
    d.key_pairs = base.key_pairs.clone();
    for g in 0..GROUPS {
        d.security_groups.insert(
            name(&format!("g{g}")),
            SecurityGroupSpec {
                description: format!("group {g}"),
                ingress: vec![common::cidr_rule(80 + g as u16, "0.0.0.0/0")],
                tags: Tags::new(),
            },
        );
    }
    for i in 0..FLEETS {
        let user_data = if i % 10 == 1 {
            format!("role=f{i};peers=${{Fleet/f{:04}.privateIps}}", i - 1)
        } else {
            format!("role=f{i}")
        };
        let mut f = fleet(&user_data);
        f.zones = vec![zone("us-east-1a"), zone("us-east-1b"), zone("us-east-1c")];
        f.replicas = per_fleet;
        f.security_groups = vec![name(&format!("g{}", i % GROUPS))];
        d.fleets.insert(name(&format!("f{i:04}")), f);
    }
    let lb = &base.balancers[&name("web")];
    for b in 0..BALANCERS {
        let per = FLEETS / BALANCERS;
        d.balancers.insert(
            name(&format!("b{b:03}")),
            BalancerSpec {
                fleets: (b * per..(b + 1) * per)
                    .map(|i| name(&format!("f{i:04}")))
                    .collect(),
                zones: vec![zone("us-east-1a"), zone("us-east-1b"), zone("us-east-1c")],
                ..lb.clone()
            },
        );
    }
    d
}

/// Runs one case in this process and prints one `RESULT` line.
fn run_case(case: &Case) -> Result<(), String> {
    let before = stack(case.per_fleet);
    let observed: Observed = in_place(&before, ts(AT));
    let mut desired = before;
    let mut replaced = 0;
    if case.replace {
        // Fleets no other fleet's user data names, so that exactly 10%
        // are replaced.
        for (n, f) in desired.fleets.iter_mut() {
            let i: usize = n.as_str()[1..].parse().map_err(|e| format!("{e}"))?;
            if i % 10 == 5 {
                f.image = "ami-2b3c4d5e".into();
                replaced += 1;
            }
        }
    }
    let scale = BTreeMap::new();
    let input = PlanInput {
        desired: &desired,
        observed: &observed,
        at: ts(AT),
        scale: &scale,
        replace: &BTreeSet::new(),
        retire: &BTreeSet::new(),
        ..PlanInput::new(&desired, &observed, ts(AT))
    };
    let inputs_kib = proc_status("VmRSS").unwrap_or(0);
    let reset = reset_peak();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..case.runs {
        let start = Instant::now();
        let plan = converge_core::plan(&input).map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        let s = plan.summary();
        if plan.has_changes() != case.replace || s.replace != replaced {
            return Err(format!(
                "{}: unexpected plan: {s:?}, {} steps",
                case.name,
                plan.graph.len()
            ));
        }
        drop(plan);
    }
    let peak_kib = proc_status("VmHWM").unwrap_or(0);
    let plan = converge_core::plan(&input).map_err(|e| e.to_string())?;
    let check = measure_check(case, &plan, &input)?;
    let s = plan.summary();
    times.sort();
    println!(
        "RESULT {} {} {} {} {} {} {} {} {} {} {} {} {}",
        case.name,
        observed.instances.len(),
        plan.graph.len(),
        s.replace,
        times[0].as_micros(),
        times[times.len() / 2].as_micros(),
        inputs_kib,
        peak_kib,
        u8::from(reset),
        check.best_us,
        check.median_us,
        check.base_kib,
        check.peak_kib,
    );
    Ok(())
}

/// The checker's figures for one case.
struct CheckRun {
    best_us: u128,
    median_us: u128,
    /// Resident memory before it runs (inputs and the plan).
    base_kib: u64,
    peak_kib: u64,
}

/// Checks `plan` as apply would before running it, `case.runs` times;
/// an error if it finds a problem (the planner's plans have none).
fn measure_check(case: &Case, plan: &Plan, input: &PlanInput<'_>) -> Result<CheckRun, String> {
    let base_kib = proc_status("VmRSS").unwrap_or(0);
    reset_peak();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..case.runs {
        let start = Instant::now();
        let problems = converge_core::check(plan, input);
        times.push(start.elapsed());
        if let Some(p) = problems.first() {
            return Err(format!(
                "{}: the checker finds {} problem(s): {p}",
                case.name,
                problems.len()
            ));
        }
    }
    times.sort();
    Ok(CheckRun {
        best_us: times[0].as_micros(),
        median_us: times[times.len() / 2].as_micros(),
        base_kib,
        peak_kib: proc_status("VmHWM").unwrap_or(0),
    })
}

/// A field of `/proc/self/status`, in KiB.
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident memory to the current one (Linux ≥ 4.0), so
/// that the peak measured is the planner's; `false` if not possible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Row {
    name: String,
    instances: u64,
    steps: u64,
    replaced: u64,
    best_us: u64,
    median_us: u64,
    inputs_kib: u64,
    peak_kib: u64,
    reset: bool,
    check_best_us: u64,
    check_median_us: u64,
    check_base_kib: u64,
    check_peak_kib: u64,
}

fn parse(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.strip_prefix("RESULT ")?.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some(Row {
        name: f.first()?.to_string(),
        instances: n(1)?,
        steps: n(2)?,
        replaced: n(3)?,
        best_us: n(4)?,
        median_us: n(5)?,
        inputs_kib: n(6)?,
        peak_kib: n(7)?,
        reset: n(8)? == 1,
        check_best_us: n(9)?,
        check_median_us: n(10)?,
        check_base_kib: n(11)?,
        check_peak_kib: n(12)?,
    })
}

/// One line of the table.
fn print_row(row: &Row) {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!(
        "{:<14} {:>9} {:>7} {:>9} {:>10} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10}",
        row.name,
        row.instances,
        row.steps,
        row.replaced,
        format!("{:.1} ms", row.best_us as f64 / 1000.0),
        format!("{:.1} ms", row.median_us as f64 / 1000.0),
        mib(row.inputs_kib),
        mib(row.peak_kib),
        if row.reset {
            mib(row.peak_kib.saturating_sub(row.inputs_kib))
        } else {
            "n/a".into()
        },
        format!("{:.1} ms", row.check_best_us as f64 / 1000.0),
        if row.reset {
            mib(row.check_peak_kib.saturating_sub(row.check_base_kib))
        } else {
            "n/a".into()
        },
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let Some(case) = args
            .get(i + 1)
            .and_then(|n| CASES.iter().find(|c| c.name == n))
        else {
            eprintln!("--case: expected one of {:?}", CASES.map(|c| c.name));
            return ExitCode::FAILURE;
        };
        return match run_case(case) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo bench` passes `--bench`; a name filters the cases.
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find the benchmark's own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "planning {FLEETS} fleets behind {BALANCERS} balancers ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "{:<14} {:>9} {:>7} {:>9} {:>10} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10}",
        "case",
        "instances",
        "steps",
        "replaced",
        "best",
        "median",
        "inputs RSS",
        "peak RSS",
        "plan Δ",
        "check",
        "check Δ"
    );
    let mut rows: Vec<Row> = Vec::new();
    for case in CASES
        .iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
    {
        let out = match Command::new(&exe).args(["--case", case.name]).output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{}: cannot run: {e}", case.name);
                return ExitCode::FAILURE;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(row) = stdout
            .lines()
            .find_map(parse)
            .filter(|_| out.status.success())
        else {
            eprintln!(
                "{}: failed ({}):\n{stdout}{}",
                case.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return ExitCode::FAILURE;
        };
        print_row(&row);
        rows.push(row);
    }
    let best = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.best_us as f64);
    for (big, small) in [("100k", "10k"), ("100k-replace", "10k-replace")] {
        if let (Some(b), Some(s)) = (best(big), best(small)) {
            println!("{big} / {small} time ratio: {:.1}x (target ≤ 12x)", b / s);
        }
    }
    for r in &rows {
        println!(
            "{}: the checker takes {:.0}% of the planner's time (median {:.1} ms; target < 100%)",
            r.name,
            100.0 * r.check_best_us as f64 / r.best_us.max(1) as f64,
            r.check_median_us as f64 / 1000.0
        );
    }
    if let Some(r) = rows.iter().find(|r| r.name == "100k") {
        let ok_time = r.best_us < 1_000_000;
        let ok_mem = r.peak_kib < 1024 * 1024;
        println!(
            "100k: {} 1 s, peak {} 1 GiB",
            if ok_time { "under" } else { "OVER" },
            if ok_mem { "under" } else { "OVER" }
        );
    }
    ExitCode::SUCCESS
}
