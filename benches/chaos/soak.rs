//! The soak of `benches/chaos.rs`, with real processes: the local cloud is
//! a state directory on disk; the reconciler is the `converge` binary,
//! killed with SIGKILL and started again; `apply` and `plan` are `converge`
//! processes too. This process loses instances and checks the invariants
//! through its own handle on the same state directory (no faults).

use crate::chaos::{spread, unregistered};
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::core::Desired;
use converge::core::ids::InstanceId;
use converge::core::observed::{InstanceState, MemberState, Observed};
use converge::core::plan::fleet_target;
use converge::sys::SystemClock;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The faults every `converge` process of the soak runs under.
const FAULTS: &str = "throttle=0.2,lag=1s";

/// What the soak saw.
#[derive(Default, Debug)]
struct Soak {
    losses: u32,
    kills: u32,
    /// Kills while the stack was not converged (the loop had work).
    kills_mid_heal: u32,
    /// Kills followed by a new reconciler at once, no apply between.
    restarts_at_once: u32,
    applies: u32,
    applies_failed: Vec<String>,
    plans: u32,
    plans_empty: u32,
    plans_changes: u32,
    plans_throttled: u32,
    /// Leases of a killed process taken over at once (from the logs).
    takeovers: u32,
    /// Reconciler processes started.
    starts: u32,
    /// From a reconciler's start to its first finished pass.
    first_pass: Vec<Duration>,
    heal_times: Vec<Duration>,
    violations: Vec<String>,
    /// Reconciler passes (ok, failed), from their metrics.
    passes: (u64, u64),
    /// Calls to the cloud by the reconcilers (their last scrape), applies
    /// and plans (their `--stats`).
    calls: (u64, u64, u64),
    /// The largest VmHWM of a reconciler process.
    peak_rss_kib: u64,
    /// SIGTERM at the end: how long the loop took to exit.
    stop_took: Option<Duration>,
}

/// The `converge` binary, the stack and the state directory.
struct Bin {
    exe: PathBuf,
    stack: PathBuf,
    state: PathBuf,
    logs: PathBuf,
}

impl Bin {
    /// `converge ARGS STACK` on the state directory, zero delays, the
    /// soak's faults (unless `faults` is false), output to `logs/LOG`.
    fn spawn(&self, args: &[&str], faults: bool, log: &str) -> Child {
        let out = File::create(self.logs.join(log)).unwrap();
        let mut c = Command::new(&self.exe);
        c.arg("--state-dir")
            .arg(&self.state)
            .args(["--local-delays", "zero"])
            .args(args)
            .arg(&self.stack)
            .env("NO_COLOR", "1")
            .env_remove("CONVERGE_LOCAL_FAULTS")
            .env_remove("CONVERGE_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if faults {
            c.args(["--local-faults", FAULTS]);
        }
        c.spawn().unwrap()
    }

    fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.logs.join(log)).unwrap_or_default()
    }

    /// Runs a command to its end; its status and output.
    fn run(&self, args: &[&str], faults: bool, log: &str) -> (ExitStatus, String) {
        let status = self.spawn(args, faults, log).wait().unwrap();
        (status, self.log(log))
    }
}

/// What a failed process said: its lines naming a failure or an error
/// (else its last lines), for a message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let failures: Vec<&str> = lines
        .iter()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("fail") || l.contains("error") || l.contains("panick")
        })
        .take(4)
        .copied()
        .collect();
    if failures.is_empty() {
        lines[lines.len().saturating_sub(6)..].join(" | ")
    } else {
        failures.join(" | ")
    }
}

/// The total of a `--stats` report (`API calls (N in all):`).
fn stats_total(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("API calls (")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A running `converge reconcile`.
struct Loop {
    child: Child,
    n: u32,
    port: u16,
    started: Instant,
    first_pass: bool,
    /// Its last metrics: calls, passes ok, passes failed.
    scraped: (u64, u64, u64),
    hwm_kib: u64,
}

impl Loop {
    fn start(bin: &Bin, n: u32) -> Loop {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = bin.spawn(
            &["reconcile", "--interval", "1s", "--listen", &listen],
            true,
            &format!("reconcile-{n}.log"),
        );
        Loop {
            child,
            n,
            port,
            started: Instant::now(),
            first_pass: false,
            scraped: (0, 0, 0),
            hwm_kib: 0,
        }
    }

    /// Reads its peak RSS and, every `scrape`, its metrics.
    fn sample(&mut self, scrape: bool, s: &mut Soak) {
        self.hwm_kib = self.hwm_kib.max(status_kib(self.child.id(), "VmHWM:"));
        if !scrape {
            return;
        }
        if let Some(m) = metrics(self.port) {
            let sum = |prefix: &str| -> u64 {
                m.lines()
                    .filter(|l| l.starts_with(prefix))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>() as u64
            };
            self.scraped = (
                sum("converge_api_calls_total{"),
                sum("converge_reconciles_total{result=\"ok\"}"),
                sum("converge_reconciles_total{result=\"error\"}"),
            );
            if !self.first_pass && self.scraped.1 + self.scraped.2 > 0 {
                self.first_pass = true;
                s.first_pass.push(self.started.elapsed());
            }
        }
    }

    /// Adds what it measured to the soak's figures.
    fn account(&self, bin: &Bin, s: &mut Soak) {
        s.starts += 1;
        s.calls.0 += self.scraped.0;
        s.passes.0 += self.scraped.1;
        s.passes.1 += self.scraped.2;
        s.peak_rss_kib = s.peak_rss_kib.max(self.hwm_kib);
        let log = bin.log(&format!("reconcile-{}.log", self.n));
        check_log(&log, &format!("reconciler {}", self.n), s);
    }

    /// SIGKILL, as the OOM killer or `kill -9` would, and reaped.
    fn kill(mut self, bin: &Bin, s: &mut Soak) {
        self.sample(true, s);
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.account(bin, s);
    }

    /// SIGTERM; how long it took to exit, and its status.
    fn stop(mut self, bin: &Bin, s: &mut Soak) -> (Duration, Option<i32>) {
        self.sample(true, s);
        let sent = Instant::now();
        let term = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(term.success());
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code();
            }
            if sent.elapsed() > Duration::from_secs(30) {
                self.child.kill().unwrap();
                break self.child.wait().unwrap().code();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = sent.elapsed();
        self.account(bin, s);
        (took, code)
    }
}

/// What a process's log must not say, whatever happened to it.
fn check_log(log: &str, who: &str, s: &mut Soak) {
    if log.contains("panicked") {
        s.violations.push(format!("{who} panicked: {}", tail(log)));
    }
    if log.contains("is being changed by") {
        s.violations.push(format!(
            "{who} was refused the lease of a killed process: {}",
            tail(log)
        ));
    }
    s.takeovers += log.matches("took the stack's lease over").count() as u32;
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` of a reconciler, if it answers within half a second.
fn metrics(port: u16) -> Option<String> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// A `/proc/PID/status` figure in KiB (0 when unreadable).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Serves the job fleet's metric (`0`) on a port of its own, forever.
fn serve_metric() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0");
        }
    });
    port
}

/// The example stack in `dir/stack`, its job fleet's metric read from
/// `metric_port`, and its app fleet's health grace an hour: the probes go
/// to the simulated instances' private addresses, which nothing on this
/// host serves, so within the soak they must not judge.
fn write_stack(dir: &Path, metric_port: u16) -> PathBuf {
    crate::example::copy_into(dir, None);
    let stack = dir.join("stack");
    let app = stack.join("30-app.yaml");
    let text = std::fs::read_to_string(&app).unwrap();
    let text = text
        .replace("grace: 5m", "grace: 1h")
        .replace("127.0.0.1:9100", &format!("127.0.0.1:{metric_port}"));
    std::fs::write(&app, text).unwrap();
    stack
}

/// The soak's own look at the world: no faults, no delays, no lag.
struct Observer {
    cloud: LocalCloud,
    desired: Desired,
    rt: tokio::runtime::Runtime,
}

impl Observer {
    fn observe(&self) -> Option<Observed> {
        let policy = converge::apply::RetryPolicy::default();
        self.rt
            .block_on(converge::commands::observe_for(
                &self.cloud,
                &self.desired,
                &policy,
            ))
            .ok()
    }

    /// Why the stack is not converged (a plan not empty, a running
    /// instance outside its balancer), or `None`.
    fn unconverged(&self, o: &Observed) -> Option<String> {
        let at = jiff::Timestamp::now();
        let input = converge::core::plan::PlanInput::new(&self.desired, o, at);
        match converge::core::plan(&input) {
            Ok(p) if p.has_changes() => Some(format!("{} change(s) planned", p.changes.len())),
            Ok(_) => unregistered(&self.desired, o),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// What is running beside the chaos: the loop, or the apply that runs
/// while it is down.
enum Phase {
    Looping(Loop),
    Applying { child: Child, n: u32 },
}

/// The chaos's state between ticks.
struct Chaos {
    rng: fastrand::Rng,
    lost_by_chaos: BTreeSet<InstanceId>,
    last_in_service: BTreeMap<String, Vec<InstanceId>>,
    unhealed_since: Option<Instant>,
    converged: bool,
    kill_at: Option<Instant>,
    plan: Option<(Child, u32)>,
    loops: u32,
}

/// The soak: `length` of chaos, then the checks after it. False when an
/// invariant broke or a check after it failed.
pub fn soak(length: Duration) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let bin = Bin {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_converge")),
        stack: write_stack(tmp.path(), serve_metric()),
        state: tmp.path().join("state"),
        logs: tmp.path().to_owned(),
    };
    let desired = converge::manifest::load(&bin.stack, &|_| None)
        .unwrap()
        .desired;
    let config = LocalConfig {
        region: desired.region.clone(),
        delays: Delays::zero(),
        faults: Faults::default(),
    };
    let obs = Observer {
        cloud: LocalCloud::open(&bin.state, config, Arc::new(SystemClock)).unwrap(),
        desired,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    let mut s = Soak::default();
    println!(
        "soak: {length:?}, state in {}, faults {FAULTS}",
        bin.state.display()
    );
    let phase = chaos(&bin, &obs, length, &mut s);
    let after = after_the_soak(&bin, &obs, phase, &mut s);
    report(&s, length, &after);
    let ok = s.violations.is_empty() && after.iter().all(|(_, r)| r.is_ok());
    if !ok || std::env::var_os("CONVERGE_SOAK_KEEP").is_some() {
        // Kept for a look: the logs of every process.
        println!("logs kept in {}", tmp.keep().display());
    }
    ok
}

/// The chaos itself, a tick every 250 ms; answers what runs at its end.
fn chaos(bin: &Bin, obs: &Observer, length: Duration, s: &mut Soak) -> Phase {
    let mut c = Chaos {
        rng: fastrand::Rng::with_seed(12),
        lost_by_chaos: BTreeSet::new(),
        last_in_service: BTreeMap::new(),
        unhealed_since: None,
        converged: false,
        kill_at: None,
        plan: None,
        loops: 1,
    };
    let mut phase = Phase::Looping(Loop::start(bin, 1));
    let start = Instant::now();
    let mut tick = 0u64;
    while start.elapsed() < length {
        std::thread::sleep(Duration::from_millis(250));
        tick += 1;
        let second = tick.is_multiple_of(4);
        if let Some(o) = obs.observe() {
            check_invariants(
                &obs.desired,
                &o,
                &c.lost_by_chaos,
                &mut c.last_in_service,
                s,
            );
            c.converged = obs.unconverged(&o).is_none();
            if c.converged
                && let Some(since) = c.unhealed_since.take()
            {
                s.heal_times.push(since.elapsed());
            }
            if second {
                lose(obs, &o, &mut c, s);
            }
        }
        phase = step(bin, phase, second, &mut c, s);
        if tick.is_multiple_of(12) {
            plan_beside(bin, &mut c, s);
        }
        if tick.is_multiple_of(240) {
            println!(
                "  {:>4.0} s: {} lost, {} SIGKILLs, {} applies, {} plans, {} heals",
                start.elapsed().as_secs_f64(),
                s.losses,
                s.kills,
                s.applies,
                s.plans,
                s.heal_times.len()
            );
        }
    }
    while let Some((mut child, n)) = c.plan.take() {
        let status = child.wait().unwrap();
        plan_done(bin, status, n, s);
    }
    phase
}

/// Maybe loses a running instance (one chance in five a second); after a
/// loss, maybe times a SIGKILL for while the loop heals.
fn lose(obs: &Observer, o: &Observed, c: &mut Chaos, s: &mut Soak) {
    let running: Vec<&InstanceId> = o
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| &i.id)
        .collect();
    if running.is_empty() || c.rng.f64() >= 0.2 {
        return;
    }
    let victim = running[c.rng.usize(0..running.len())].clone();
    if obs.cloud.lose_instance(&victim).is_ok() {
        s.losses += 1;
        c.lost_by_chaos.insert(victim);
        c.unhealed_since.get_or_insert_with(Instant::now);
        if c.kill_at.is_none() && c.rng.f64() < 0.3 {
            let after = Duration::from_millis(c.rng.u64(200..2500));
            c.kill_at = Some(Instant::now() + after);
        }
    }
}

/// The loop's side of a tick: sampled, maybe SIGKILLed (then, two times
/// in three, an apply runs first), started again.
fn step(bin: &Bin, phase: Phase, second: bool, c: &mut Chaos, s: &mut Soak) -> Phase {
    match phase {
        Phase::Looping(mut l) => {
            l.sample(second, s);
            if let Some(status) = l.child.try_wait().unwrap() {
                let log = bin.log(&format!("reconcile-{}.log", l.n));
                s.violations.push(format!(
                    "reconciler {} exited on its own ({status}): {}",
                    l.n,
                    tail(&log)
                ));
                l.account(bin, s);
                c.loops += 1;
                return Phase::Looping(Loop::start(bin, c.loops));
            }
            let timed = c.kill_at.is_some_and(|t| Instant::now() >= t);
            let random = second && c.rng.f64() < 0.02;
            if !(timed || random) || l.started.elapsed() < Duration::from_millis(500) {
                return Phase::Looping(l);
            }
            c.kill_at = None;
            s.kills += 1;
            s.kills_mid_heal += u32::from(!c.converged);
            l.kill(bin, s);
            c.loops += 1;
            if c.rng.f64() < 1.0 / 3.0 {
                // Restarted at once, as a supervisor would: the new
                // reconciler takes the dead one's lease over.
                s.restarts_at_once += 1;
                return Phase::Looping(Loop::start(bin, c.loops));
            }
            // While the loop is down, an operator applies.
            s.applies += 1;
            let n = s.applies;
            let child = bin.spawn(
                &["apply", "--yes", "--stats"],
                true,
                &format!("apply-{n}.log"),
            );
            Phase::Applying { child, n }
        }
        Phase::Applying { mut child, n } => match child.try_wait().unwrap() {
            None => Phase::Applying { child, n },
            Some(status) => {
                apply_done(bin, status, n, s);
                Phase::Looping(Loop::start(bin, c.loops))
            }
        },
    }
}

/// Accounts for a finished apply.
fn apply_done(bin: &Bin, status: ExitStatus, n: u32, s: &mut Soak) {
    let log = bin.log(&format!("apply-{n}.log"));
    s.calls.1 += stats_total(&log);
    check_log(&log, &format!("apply {n}"), s);
    if !status.success() {
        s.applies_failed
            .push(format!("apply {n}: {status}: {}", tail(&log)));
    }
}

/// Every three seconds: a `plan --detailed-exitcode` beside the loop,
/// unless the last one still runs.
fn plan_beside(bin: &Bin, c: &mut Chaos, s: &mut Soak) {
    if let Some((child, n)) = &mut c.plan {
        match child.try_wait().unwrap() {
            None => return,
            Some(status) => plan_done(bin, status, *n, s),
        }
    }
    s.plans += 1;
    let args = ["plan", "--detailed-exitcode", "--stats"];
    c.plan = Some((bin.spawn(&args, true, "plan.log"), s.plans));
}

/// Accounts for a finished plan: 0 empty, 2 changes; a failure is a
/// broken invariant unless the cloud throttled it past its retries.
fn plan_done(bin: &Bin, status: ExitStatus, n: u32, s: &mut Soak) {
    let log = bin.log("plan.log");
    s.calls.2 += stats_total(&log);
    check_log(&log, &format!("plan {n}"), s);
    match status.code() {
        Some(0) => s.plans_empty += 1,
        Some(2) => s.plans_changes += 1,
        _ if log.contains("RequestLimitExceeded") => s.plans_throttled += 1,
        _ => s
            .violations
            .push(format!("plan {n} failed ({status}): {}", tail(&log))),
    }
}

/// After the chaos: the apply in flight finishes, the loop is stopped with
/// SIGTERM (out within 10 s, lease released), an apply converges the
/// stack, one plan is empty, and destroy leaves only what policies retain.
fn after_the_soak(
    bin: &Bin,
    obs: &Observer,
    phase: Phase,
    s: &mut Soak,
) -> Vec<(&'static str, Result<String, String>)> {
    let l = match phase {
        Phase::Looping(l) => l,
        Phase::Applying { mut child, n } => {
            let status = child.wait().unwrap();
            apply_done(bin, status, n, s);
            Loop::start(bin, 0)
        }
    };
    // Let the loop take its lease before it is stopped.
    std::thread::sleep(Duration::from_secs(3));
    let lease = bin.state.join(format!("lease-{}.json", obs.desired.stack));
    let (took, code) = l.stop(bin, s);
    s.stop_took = Some(took);
    let stopped = if took > Duration::from_secs(10) || code != Some(0) || lease.exists() {
        Err(format!(
            "{took:?}, exit {code:?}, lease left: {}",
            lease.exists()
        ))
    } else {
        Ok(format!(
            "exited 0 in {:.2} s, lease released",
            took.as_secs_f64()
        ))
    };
    // Past the describes' lag behind the loop's last creates (a launch in
    // flight at the SIGTERM finishes; only its wait is abandoned).
    std::thread::sleep(Duration::from_secs(2));
    let (status, log) = bin.run(&["apply", "--yes", "--stats"], true, "apply-after.log");
    s.calls.1 += stats_total(&log);
    let applied = if status.success() {
        Ok("exit 0".to_owned())
    } else {
        Err(format!("{status}: {}", tail(&log)))
    };
    // Past the describes' lag behind the apply's last creates.
    std::thread::sleep(Duration::from_secs(2));
    let (status, log) = bin.run(
        &["plan", "--detailed-exitcode", "--stats"],
        true,
        "plan-after.log",
    );
    s.calls.2 += stats_total(&log);
    let seen = obs.observe();
    if let Some(o) = &seen {
        check_invariants(&obs.desired, o, &BTreeSet::new(), &mut BTreeMap::new(), s);
    }
    let planned = match (status.code(), seen) {
        (Some(0), Some(o)) => match obs.unconverged(&o) {
            None => Ok("empty (exit 0), every running instance in its balancer".to_owned()),
            Some(why) => Err(format!("plan empty but not converged: {why}")),
        },
        _ => Err(format!("{status}: {}", tail(&log))),
    };
    let destroyed = destroy(bin, obs, s);
    vec![
        ("SIGTERM", stopped),
        ("apply", applied),
        ("plan", planned),
        ("destroy", destroyed),
    ]
}

/// `converge destroy --yes`, then what is left, from the soak's own look.
fn destroy(bin: &Bin, obs: &Observer, s: &mut Soak) -> Result<String, String> {
    let (status, log) = bin.run(&["destroy", "--yes", "--stats"], true, "destroy.log");
    s.calls.1 += stats_total(&log);
    if !status.success() {
        return Err(format!("{status}: {}", tail(&log)));
    }
    let o = obs.observe().ok_or("observing after destroy failed")?;
    let live = o.instances.iter().filter(|i| i.state.is_live()).count();
    if live > 0 || !o.balancers.is_empty() || !o.distributions.is_empty() {
        return Err(format!(
            "{live} instances, {} balancers, {} distributions left",
            o.balancers.len(),
            o.distributions.len()
        ));
    }
    Ok(format!(
        "left {} volume(s), {} bucket(s) (retained by their policies)",
        o.volumes.len(),
        o.buckets.len()
    ))
}

/// The invariants of issue 12 on one observation: no fleet over its
/// target (its autoscaling maximum) plus `maxSurge`; one volume per
/// Volume, attached only to its fleet's instance, and no two volumes on
/// one device; no fleet's last InService member terminated but by the
/// chaos.
fn check_invariants(
    desired: &Desired,
    o: &Observed,
    lost_by_chaos: &BTreeSet<InstanceId>,
    last_in_service: &mut BTreeMap<String, Vec<InstanceId>>,
    s: &mut Soak,
) {
    let now = jiff::Timestamp::now();
    for (name, spec) in &desired.fleets {
        let live = o
            .instances
            .iter()
            .filter(|i| i.owner.name == *name && i.state.is_live())
            .count() as u32;
        let target = match &spec.autoscale {
            Some(a) => a.max.max(a.min),
            None => fleet_target(spec, now, None, live).0,
        };
        if live > target + spec.update.max_surge {
            s.violations.push(format!(
                "Fleet/{name}: {live} live instances, over {target} + maxSurge {}",
                spec.update.max_surge
            ));
        }
    }
    check_volumes(desired, o, s);
    for b in &o.balancers {
        let key = b.owner.name.to_string();
        let in_service: Vec<InstanceId> = b
            .members
            .iter()
            .filter(|m| m.state == MemberState::InService)
            .map(|m| m.instance.clone())
            .collect();
        if let Some(prev) = last_in_service.get(&key)
            && prev.len() == 1
        {
            let only = &prev[0];
            let ended = o
                .instances
                .iter()
                .any(|i| i.id == *only && !i.state.is_live());
            if ended && !lost_by_chaos.contains(only) && in_service.is_empty() {
                s.violations.push(format!(
                    "Balancer/{key}: its last healthy member {only} was terminated"
                ));
            }
        }
        last_in_service.insert(key, in_service);
    }
}

/// One volume per Volume; each attached (if at all) to an instance of its
/// own fleet; no instance with two volumes on one device. (A volume
/// attached to two instances at once cannot be observed: the model, like
/// EC2 without Multi-Attach, has one attachment per volume.)
fn check_volumes(desired: &Desired, o: &Observed, s: &mut Soak) {
    let mut devices = BTreeMap::new();
    for (name, spec) in &desired.volumes {
        let mine: Vec<_> = o.volumes.iter().filter(|v| v.owner.name == *name).collect();
        if mine.len() > 1 {
            s.violations
                .push(format!("Volume/{name}: {} volumes", mine.len()));
        }
        for v in mine {
            let Some(a) = &v.attachment else { continue };
            let fleet = o
                .instances
                .iter()
                .find(|i| i.id == a.instance)
                .map(|i| i.owner.name.clone());
            if let (Some(want), Some(got)) = (&spec.attach, &fleet)
                && want.fleet != *got
            {
                s.violations.push(format!(
                    "Volume/{name}: {} attached to {} of Fleet/{got}",
                    v.id, a.instance
                ));
            }
            if let Some(other) =
                devices.insert((a.instance.clone(), a.device.clone()), v.id.clone())
            {
                s.violations.push(format!(
                    "{} and {other} both attached to {} at {}",
                    v.id, a.instance, a.device
                ));
            }
        }
    }
}

/// Prints the figures.
fn report(s: &Soak, length: Duration, after: &[(&str, Result<String, String>)]) {
    let secs = length.as_secs_f64();
    println!(
        "{secs:.0} s: {} instances lost; {} reconciler SIGKILLs ({} while the stack was healing), {} followed by an apply ({} failed), {} by a new reconciler at once; {} lease(s) of a killed process taken over at once",
        s.losses,
        s.kills,
        s.kills_mid_heal,
        s.applies,
        s.applies_failed.len(),
        s.restarts_at_once,
        s.takeovers
    );
    for f in &s.applies_failed {
        println!("  {f}");
    }
    println!(
        "{} plans beside the loop: {} empty, {} with changes, {} failed on throttling past their retries",
        s.plans, s.plans_empty, s.plans_changes, s.plans_throttled
    );
    let mut heal = s.heal_times.clone();
    if !heal.is_empty() {
        let (median, p95, max) = spread(&mut heal);
        println!(
            "heal time (first loss of a burst to a converged stack, seen every 250 ms): median {:.1} s, p95 {:.1} s, max {:.1} s over {} bursts",
            median.as_secs_f64(),
            p95.as_secs_f64(),
            max.as_secs_f64(),
            heal.len()
        );
    }
    let mut first = s.first_pass.clone();
    if !first.is_empty() {
        let (median, _, max) = spread(&mut first);
        println!(
            "a reconciler's first pass done after its start: median {:.1} s, max {:.1} s ({} of {} processes; the others were killed before their metrics showed one)",
            median.as_secs_f64(),
            max.as_secs_f64(),
            first.len(),
            s.starts
        );
    }
    let (rec, apply, plan) = s.calls;
    let total = rec + apply + plan;
    println!(
        "calls to the cloud: {total} ({:.1}/s): reconcilers {rec} (their /metrics, scraped every second, so up to a second's calls before each SIGKILL are missed), applies and destroy {apply}, plans {plan}; reconciler passes {} ok, {} failed",
        total as f64 / secs,
        s.passes.0,
        s.passes.1
    );
    println!(
        "peak RSS of a reconciler process (VmHWM): {:.1} MiB",
        s.peak_rss_kib as f64 / 1024.0
    );
    for (what, r) in after {
        match r {
            Ok(m) => println!("after the soak, {what}: {m}"),
            Err(e) => println!("after the soak, {what}: FAILED: {e}"),
        }
    }
    if s.violations.is_empty() {
        println!("invariants: all held");
    } else {
        println!("invariants: {} broken:", s.violations.len());
        for v in s.violations.iter().take(20) {
            println!("  {v}");
        }
    }
}
