//! Observability for the reconcile loop: counters and gauges kept in
//! memory ([`Metrics`]), rendered in the Prometheus text exposition format
//! (version 0.0.4), and a small HTTP/1.1 server ([`serve`]) answering
//! `GET /metrics` and `GET /healthz`, for `converge reconcile --listen`.
//!
//! The server is written by hand over tokio's TCP listener rather than
//! with hyper or axum: two fixed routes, one request per connection
//! (`Connection: close`), no bodies, no keep-alive. What a long-running
//! process needs from it is that it cannot be held or grown by a client:
//! the request head is capped ([`ServeLimits::max_request_bytes`]), reading
//! it and writing the answer each have a deadline, each connection is one
//! task, and at most [`ServeLimits::max_connections`] run at once (more are
//! closed at once). Likewise the exposition format is a few lines of
//! code, so no Prometheus client crate is needed.
//!
//! Memory is bounded: label values exist only for what was reported
//! (fleets, action kinds, error kinds, API operations), fleets that left
//! the stack are dropped with [`Metrics::retain_fleets`], and the number of
//! distinct error or action kinds is capped ([`MAX_LABEL_VALUES`]; further
//! kinds are counted under `other`).

use crate::cloud::ApiCall;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The `Content-Type` of `/metrics`: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Distinct label values kept per labelled counter (error kinds, action
/// kinds); further values are counted under [`OTHER`].
pub const MAX_LABEL_VALUES: usize = 256;

/// The label value that absorbs kinds beyond [`MAX_LABEL_VALUES`].
pub const OTHER: &str = "other";

/// The loop's metrics. Cheap to update from any task (one short mutex
/// hold per call); share it with `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reconciles_ok: u64,
    reconciles_error: u64,
    errors: BTreeMap<String, u64>,
    actions: BTreeMap<String, u64>,
    api_calls: BTreeMap<(String, String), u64>,
    fleets: BTreeMap<String, FleetGauge>,
    last_success: Option<Timestamp>,
    last_pass: Option<Timestamp>,
    last_duration: Option<Duration>,
    /// Passes by duration: counts per bucket of [`PASS_BUCKETS`], the sum.
    pass_buckets: [u64; PASS_BUCKETS.len()],
    pass_seconds_sum: f64,
    /// The last reading of each autoscaled fleet's metric.
    readings: BTreeMap<String, f64>,
}

/// The upper bounds, in seconds, of the pass-duration histogram's
/// buckets (`+Inf` is added): a pass is a few milliseconds when nothing
/// changes, seconds to minutes when it launches and waits.
pub const PASS_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FleetGauge {
    desired: u32,
    running: u32,
}

impl Metrics {
    /// Empty metrics: no pass finished yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain numbers behind, never
        // a broken invariant: keep serving them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reconcile pass ended at `at`, after `duration`; `ok` when it
    /// finished without errors (which sets the last success time).
    pub fn pass_finished(&self, ok: bool, at: Timestamp, duration: Duration) {
        let mut inner = self.inner();
        if ok {
            inner.reconciles_ok += 1;
            inner.last_success = Some(at);
        } else {
            inner.reconciles_error += 1;
        }
        inner.last_pass = Some(at);
        inner.last_duration = Some(duration);
        let secs = duration.as_secs_f64();
        inner.pass_seconds_sum += secs;
        for (count, bound) in inner.pass_buckets.iter_mut().zip(PASS_BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
    }

    /// The value an autoscaled fleet's metric was last read as.
    pub fn autoscale_reading(&self, fleet: &str, value: f64) {
        let mut inner = self.inner();
        match inner.readings.get_mut(fleet) {
            Some(v) => *v = value,
            None => {
                inner.readings.insert(fleet.to_owned(), value);
            }
        }
    }

    /// One error of the given kind (`Throttled`, `AccessDenied`, `metric`,
    /// …).
    pub fn error(&self, kind: &str) {
        bump(&mut self.inner().errors, kind);
    }

    /// One action of the given kind was carried out (`RunInstances`,
    /// `AttachVolume`, …).
    pub fn action(&self, kind: &str) {
        bump(&mut self.inner().actions, kind);
    }

    /// The cloud's request counts so far (cumulative, as
    /// [`crate::cloud::Cloud::api_calls`] reports them); replaces the
    /// previous set.
    pub fn set_api_calls(&self, calls: &[ApiCall]) {
        let mut map = BTreeMap::new();
        for c in calls {
            *map.entry((c.service.clone(), c.operation.clone()))
                .or_insert(0) += c.calls;
        }
        self.inner().api_calls = map;
    }

    /// A fleet's desired and running instance counts, as of the last pass.
    pub fn fleet(&self, name: &str, desired: u32, running: u32) {
        let mut inner = self.inner();
        let gauge = FleetGauge { desired, running };
        match inner.fleets.get_mut(name) {
            Some(g) => *g = gauge,
            None => {
                inner.fleets.insert(name.to_owned(), gauge);
            }
        }
    }

    /// Forgets every fleet not in `names` (fleets removed from the stack),
    /// so their gauges stop being exported.
    pub fn retain_fleets<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::BTreeSet<&str> = names.into_iter().collect();
        let mut inner = self.inner();
        inner.fleets.retain(|name, _| keep.contains(name.as_str()));
        inner
            .readings
            .retain(|name, _| keep.contains(name.as_str()));
    }

    /// The metrics in the Prometheus text exposition format (0.0.4):
    /// `# HELP` and `# TYPE` for every family, then its samples, sorted.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        // Writing to a String cannot fail.
        let _ = self.inner().write_to(&mut out);
        out
    }
}

/// Adds one to `kind`'s counter, folding new kinds beyond the cap into
/// [`OTHER`].
fn bump(map: &mut BTreeMap<String, u64>, kind: &str) {
    if let Some(n) = map.get_mut(kind) {
        *n += 1;
    } else if map.len() < MAX_LABEL_VALUES {
        map.insert(kind.to_owned(), 1);
    } else {
        *map.entry(OTHER.to_owned()).or_insert(0) += 1;
    }
}

impl Inner {
    fn write_to(&self, out: &mut String) -> fmt::Result {
        header(
            out,
            "converge_reconciles_total",
            "Reconcile passes finished, by result.",
            "counter",
        )?;
        writeln!(
            out,
            "converge_reconciles_total{{result=\"ok\"}} {}",
            self.reconciles_ok
        )?;
        writeln!(
            out,
            "converge_reconciles_total{{result=\"error\"}} {}",
            self.reconciles_error
        )?;

        header(
            out,
            "converge_errors_total",
            "Errors met by the loop, by kind.",
            "counter",
        )?;
        for (kind, n) in &self.errors {
            writeln!(out, "converge_errors_total{{kind=\"{}\"}} {n}", Label(kind))?;
        }

        header(
            out,
            "converge_actions_total",
            "Actions carried out by the loop, by kind.",
            "counter",
        )?;
        for (kind, n) in &self.actions {
            writeln!(
                out,
                "converge_actions_total{{kind=\"{}\"}} {n}",
                Label(kind)
            )?;
        }

        header(
            out,
            "converge_api_calls_total",
            "Requests sent to the cloud's API, retries included, by service and operation.",
            "counter",
        )?;
        for ((service, operation), n) in &self.api_calls {
            writeln!(
                out,
                "converge_api_calls_total{{service=\"{}\",operation=\"{}\"}} {n}",
                Label(service),
                Label(operation)
            )?;
        }

        header(
            out,
            "converge_fleet_desired_instances",
            "Instances a fleet should have now (schedule and autoscaling applied).",
            "gauge",
        )?;
        for (fleet, g) in &self.fleets {
            writeln!(
                out,
                "converge_fleet_desired_instances{{fleet=\"{}\"}} {}",
                Label(fleet),
                g.desired
            )?;
        }
        header(
            out,
            "converge_fleet_running_instances",
            "Instances of a fleet observed running.",
            "gauge",
        )?;
        for (fleet, g) in &self.fleets {
            writeln!(
                out,
                "converge_fleet_running_instances{{fleet=\"{}\"}} {}",
                Label(fleet),
                g.running
            )?;
        }

        header(
            out,
            "converge_last_success_timestamp_seconds",
            "When the last pass without errors finished, in seconds since the Unix epoch (0: never).",
            "gauge",
        )?;
        writeln!(
            out,
            "converge_last_success_timestamp_seconds {}",
            self.last_success.map(seconds).unwrap_or(0.0)
        )?;
        header(
            out,
            "converge_last_pass_timestamp_seconds",
            "When the last pass finished, in seconds since the Unix epoch (0: never).",
            "gauge",
        )?;
        writeln!(
            out,
            "converge_last_pass_timestamp_seconds {}",
            self.last_pass.map(seconds).unwrap_or(0.0)
        )?;
        self.write_durations(out)?;
        self.write_readings(out)?;
        write_build_info(out)?;
        process::write(out)
    }

    fn write_durations(&self, out: &mut String) -> fmt::Result {
        header(
            out,
            "converge_last_pass_duration_seconds",
            "How long the last pass took (0: none yet).",
            "gauge",
        )?;
        writeln!(
            out,
            "converge_last_pass_duration_seconds {}",
            self.last_duration.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        )?;
        header(
            out,
            "converge_pass_duration_seconds",
            "How long reconcile passes take.",
            "histogram",
        )?;
        for (count, bound) in self.pass_buckets.iter().zip(PASS_BUCKETS) {
            writeln!(
                out,
                "converge_pass_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            )?;
        }
        let total = self.reconciles_ok + self.reconciles_error;
        writeln!(
            out,
            "converge_pass_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        )?;
        writeln!(
            out,
            "converge_pass_duration_seconds_sum {}",
            self.pass_seconds_sum
        )?;
        writeln!(out, "converge_pass_duration_seconds_count {total}")
    }

    fn write_readings(&self, out: &mut String) -> fmt::Result {
        header(
            out,
            "converge_autoscale_metric_value",
            "The last reading of an autoscaled fleet's metric (autoscale.metric.url).",
            "gauge",
        )?;
        for (fleet, value) in &self.readings {
            writeln!(
                out,
                "converge_autoscale_metric_value{{fleet=\"{}\"}} {value}",
                Label(fleet)
            )?;
        }
        Ok(())
    }
}

/// `converge_build_info`: always 1, with the version and commit as labels
/// (the Prometheus convention for build information).
fn write_build_info(out: &mut String) -> fmt::Result {
    header(
        out,
        "converge_build_info",
        "The running converge's version and commit (always 1).",
        "gauge",
    )?;
    writeln!(
        out,
        "converge_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        Label(env!("CONVERGE_COMMIT"))
    )
}

/// The process metrics of the Prometheus client libraries' convention
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
/// read from `/proc/self` on Linux; elsewhere they are left out.
mod process {
    use super::header;
    use std::fmt::{self, Write as _};

    /// Clock ticks per second of `/proc/self/stat`'s times: 100 on every
    /// Linux platform converge builds for (`sysconf(_SC_CLK_TCK)`, which
    /// needs libc to ask).
    const TICKS_PER_SECOND: f64 = 100.0;

    /// Bytes per page of `/proc/self/statm` (4 KiB on x86-64 and the
    /// usual aarch64 kernels).
    const PAGE_BYTES: u64 = 4096;

    pub(super) fn write(out: &mut String) -> fmt::Result {
        let Some(stat) = read_stat() else {
            return Ok(());
        };
        header(
            out,
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds.",
            "counter",
        )?;
        writeln!(out, "process_cpu_seconds_total {}", stat.cpu_seconds)?;
        if let Some(rss) = resident_bytes() {
            header(
                out,
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                "gauge",
            )?;
            writeln!(out, "process_resident_memory_bytes {rss}")?;
        }
        if let Some(fds) = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count()) {
            header(out, "process_open_fds", "Open file descriptors.", "gauge")?;
            writeln!(out, "process_open_fds {fds}")?;
        }
        if let Some(max) = max_fds() {
            header(
                out,
                "process_max_fds",
                "The most file descriptors the process may open.",
                "gauge",
            )?;
            writeln!(out, "process_max_fds {max}")?;
        }
        if let Some(start) = stat.start_seconds {
            header(
                out,
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch.",
                "gauge",
            )?;
            writeln!(out, "process_start_time_seconds {start}")?;
        }
        Ok(())
    }

    struct Stat {
        cpu_seconds: f64,
        start_seconds: Option<f64>,
    }

    fn read_stat() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name, in parentheses, may hold spaces: the fields
        // counted below start after its closing parenthesis (field 3).
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let cpu_seconds = (field(14)? + field(15)?) / TICKS_PER_SECOND;
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let start_seconds = boot.zip(field(22)).map(|(b, t)| b + t / TICKS_PER_SECOND);
        Some(Stat {
            cpu_seconds,
            start_seconds,
        })
    }

    fn resident_bytes() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * PAGE_BYTES)
    }

    fn max_fds() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn seconds(t: Timestamp) -> f64 {
    t.as_second() as f64 + f64::from(t.subsec_nanosecond()) / 1e9
}

/// A label value escaped for the text format: backslash, double quote and
/// line feed.
struct Label<'a>(&'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Binding the listener failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: String,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl From<BindError> for io::Error {
    fn from(e: BindError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// Binds a TCP listener for [`serve`] on `addr` (`127.0.0.1:9100`,
/// `[::]:9100`, `localhost:0`); the error names the address.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_owned(),
        source,
    })
}

/// What one client may cost the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// The largest request head (request line and headers) read; larger
    /// requests are answered 431.
    pub max_request_bytes: usize,
    /// How long a client has to send its request head; then 408.
    pub read_timeout: Duration,
    /// How long writing the answer may take before the connection is
    /// dropped.
    pub write_timeout: Duration,
    /// Connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    /// 8 KiB heads, 5 s to send the request, 10 s to take the answer, 64
    /// connections.
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Serves `GET` (and `HEAD`) `/healthz` (200 `ok` while `healthy()` says so, else 503)
/// and `GET /metrics` (200, [`Metrics::render`], [`CONTENT_TYPE`]) on
/// `listener` until `stop` turns true (or its sender is dropped); other
/// paths are 404 and other methods on these paths 405. Connections still
/// open when it stops are dropped. Errors accepting one connection are
/// logged and do not stop the server. Uses [`ServeLimits::default`].
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    healthy: impl Fn() -> bool + Send + Sync + 'static,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_with(listener, metrics, healthy, stop, ServeLimits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    healthy: impl Fn() -> bool + Send + Sync + 'static,
    mut stop: watch::Receiver<bool>,
    limits: ServeLimits,
) -> io::Result<()> {
    let healthy: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(healthy);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    // Nobody can tell this server to stop any more: its
                    // owner is gone.
                    break;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Usually one aborted connection or a full file
                        // table; pause so that a lasting error is not a
                        // hot loop.
                        tracing::warn!(error = %e, "metrics server: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::debug!("metrics server: too many connections, one closed");
                    continue;
                };
                let metrics = metrics.clone();
                let healthy = healthy.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    connection(stream, &metrics, &*healthy, limits).await;
                });
            }
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Why no request could be read.
enum ReadError {
    /// The client closed or the socket failed: nothing to answer.
    Gone,
    /// The head is larger than allowed.
    TooLarge,
    /// The head does not parse.
    Malformed,
}

/// The parts of a request this server looks at.
struct Request {
    method: String,
    path: String,
}

/// One connection: read one request, answer it, close.
async fn connection(
    mut stream: TcpStream,
    metrics: &Metrics,
    healthy: &(dyn Fn() -> bool + Send + Sync),
    limits: ServeLimits,
) {
    let read = tokio::time::timeout(
        limits.read_timeout,
        read_request(&mut stream, limits.max_request_bytes),
    )
    .await;
    let response = match read {
        Err(_) => Response::text(408, "request timeout\n"),
        Ok(Err(ReadError::Gone)) => return,
        Ok(Err(ReadError::TooLarge)) => Response::text(431, "request header too large\n"),
        Ok(Err(ReadError::Malformed)) => Response::text(400, "bad request\n"),
        Ok(Ok(request)) => route(&request, metrics, healthy),
    };
    let bytes = response.into_bytes();
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the end of the request head (`\r\n\r\n`); the body, if
/// any, is never read.
async fn read_request(stream: &mut TcpStream, max: usize) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Gone
            } else {
                ReadError::Malformed
            });
        }
        // Look for the end of the head across the chunk boundary too.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf[from..], b"\r\n\r\n") {
            break from + i;
        }
        if buf.len() > max {
            return Err(ReadError::TooLarge);
        }
    };
    if end > max {
        return Err(ReadError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ReadError::Malformed)?;
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && version.starts_with("HTTP/1.") =>
        {
            let path = target.split(['?', '#']).next().unwrap_or_default();
            Ok(Request {
                method: method.to_owned(),
                path: path.to_owned(),
            })
        }
        _ => Err(ReadError::Malformed),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn route(
    request: &Request,
    metrics: &Metrics,
    healthy: &(dyn Fn() -> bool + Send + Sync),
) -> Response {
    let known = matches!(request.path.as_str(), "/healthz" | "/metrics");
    if !known {
        return Response::text(404, "not found\n");
    }
    if request.method != "GET" && request.method != "HEAD" {
        let mut r = Response::text(405, "method not allowed\n");
        r.allow = true;
        return r;
    }
    let mut r = match request.path.as_str() {
        "/healthz" if healthy() => Response::text(200, "ok\n"),
        "/healthz" => Response::text(503, "unhealthy\n"),
        _ => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body: metrics.render(),
            allow: false,
            head_only: false,
        },
    };
    // HEAD: the same head, the length of the body it would get, no body
    // (RFC 9110 9.3.2).
    r.head_only = request.method == "HEAD";
    r
}

/// An answer, always with `Connection: close`.
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// Send `Allow: GET, HEAD` (with 405).
    allow: bool,
    /// Answer a HEAD: the head alone.
    head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            allow: false,
            head_only: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test fails

    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn empty_metrics_render_every_family() {
        let text = Metrics::new().render();
        let expected = "\
# HELP converge_reconciles_total Reconcile passes finished, by result.
# TYPE converge_reconciles_total counter
converge_reconciles_total{result=\"ok\"} 0
converge_reconciles_total{result=\"error\"} 0
# HELP converge_errors_total Errors met by the loop, by kind.
# TYPE converge_errors_total counter
# HELP converge_actions_total Actions carried out by the loop, by kind.
# TYPE converge_actions_total counter
# HELP converge_api_calls_total Requests sent to the cloud's API, retries included, by service and operation.
# TYPE converge_api_calls_total counter
# HELP converge_fleet_desired_instances Instances a fleet should have now (schedule and autoscaling applied).
# TYPE converge_fleet_desired_instances gauge
# HELP converge_fleet_running_instances Instances of a fleet observed running.
# TYPE converge_fleet_running_instances gauge
# HELP converge_last_success_timestamp_seconds When the last pass without errors finished, in seconds since the Unix epoch (0: never).
# TYPE converge_last_success_timestamp_seconds gauge
converge_last_success_timestamp_seconds 0
# HELP converge_last_pass_timestamp_seconds When the last pass finished, in seconds since the Unix epoch (0: never).
# TYPE converge_last_pass_timestamp_seconds gauge
converge_last_pass_timestamp_seconds 0
# HELP converge_last_pass_duration_seconds How long the last pass took (0: none yet).
# TYPE converge_last_pass_duration_seconds gauge
converge_last_pass_duration_seconds 0
# HELP converge_pass_duration_seconds How long reconcile passes take.
# TYPE converge_pass_duration_seconds histogram
converge_pass_duration_seconds_bucket{le=\"0.01\"} 0
";
        assert!(text.starts_with(expected), "{text}");
        let build = format!(
            "converge_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            env!("CONVERGE_COMMIT")
        );
        assert!(text.contains(&build), "{text}");
        // Process metrics where /proc has them (Linux).
        if cfg!(target_os = "linux") {
            for family in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_open_fds ",
                "process_max_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(text.contains(&format!("\n{family}")), "{family} in\n{text}");
            }
        }
    }

    #[test]
    fn samples_are_counted_sorted_and_typed() {
        let m = Metrics::new();
        m.pass_finished(
            true,
            at("2026-03-09T14:00:00.5Z"),
            Duration::from_millis(1250),
        );
        m.pass_finished(false, at("2026-03-09T14:00:30Z"), Duration::from_millis(20));
        m.action("RunInstances");
        m.action("RunInstances");
        m.action("AttachVolume");
        m.error("Throttled");
        m.set_api_calls(&[
            ApiCall {
                service: "EC2".into(),
                operation: "DescribeInstances".into(),
                calls: 7,
            },
            ApiCall {
                service: "ELB".into(),
                operation: "DescribeLoadBalancers".into(),
                calls: 2,
            },
        ]);
        m.fleet("db", 1, 0);
        m.fleet("app", 3, 2);
        m.fleet("app", 3, 3);
        m.autoscale_reading("job", 12.0);
        m.autoscale_reading("job", 27.5);
        let text = m.render();
        for line in [
            "converge_reconciles_total{result=\"ok\"} 1",
            "converge_reconciles_total{result=\"error\"} 1",
            "converge_actions_total{kind=\"AttachVolume\"} 1\nconverge_actions_total{kind=\"RunInstances\"} 2\n",
            "converge_errors_total{kind=\"Throttled\"} 1",
            "converge_api_calls_total{service=\"EC2\",operation=\"DescribeInstances\"} 7",
            "converge_api_calls_total{service=\"ELB\",operation=\"DescribeLoadBalancers\"} 2",
            "converge_fleet_desired_instances{fleet=\"app\"} 3\nconverge_fleet_desired_instances{fleet=\"db\"} 1\n",
            "converge_fleet_running_instances{fleet=\"app\"} 3\nconverge_fleet_running_instances{fleet=\"db\"} 0\n",
            // The success time stays at the last ok pass.
            "converge_last_success_timestamp_seconds 1773064800.5\n",
            "converge_last_pass_timestamp_seconds 1773064830\n",
            "converge_last_pass_duration_seconds 0.02\n",
            // 20 ms and 1.25 s: one pass at most 0.05 s, both at most 2.5 s.
            "converge_pass_duration_seconds_bucket{le=\"0.01\"} 0\nconverge_pass_duration_seconds_bucket{le=\"0.05\"} 1\n",
            "converge_pass_duration_seconds_bucket{le=\"1\"} 1\nconverge_pass_duration_seconds_bucket{le=\"2.5\"} 2\n",
            "converge_pass_duration_seconds_bucket{le=\"+Inf\"} 2\nconverge_pass_duration_seconds_sum 1.27\nconverge_pass_duration_seconds_count 2\n",
            "converge_autoscale_metric_value{fleet=\"job\"} 27.5\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Every sample line belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|f| declared.last().is_some_and(|d| d == f))
                    .unwrap_or(name);
                assert_eq!(Some(&family.to_owned()), declared.last(), "{line}");
            }
        }

        m.retain_fleets(["app"]);
        let text = m.render();
        assert!(!text.contains("fleet=\"db\""), "{text}");
        assert!(!text.contains("fleet=\"job\""), "{text}");
        assert!(text.contains("fleet=\"app\""), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.fleet("a\"b\\c\nd", 1, 1);
        m.error("weird \"kind\"");
        let text = m.render();
        assert!(
            text.contains("converge_fleet_desired_instances{fleet=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("converge_errors_total{kind=\"weird \\\"kind\\\"\"} 1\n"),
            "{text}"
        );
        // No sample spans two lines.
        assert!(text.lines().all(|l| l.starts_with("converge_")
            || l.starts_with("process_")
            || l.starts_with("# ")));
    }

    #[test]
    fn distinct_kinds_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_LABEL_VALUES + 10 {
            m.action(&format!("kind-{i}"));
        }
        m.action("kind-0");
        let text = m.render();
        let samples = text
            .lines()
            .filter(|l| l.starts_with("converge_actions_total{"))
            .count();
        assert_eq!(samples, MAX_LABEL_VALUES + 1);
        assert!(text.contains("converge_actions_total{kind=\"other\"} 10\n"));
        assert!(text.contains("converge_actions_total{kind=\"kind-0\"} 2\n"));
    }

    /// Sends `request` as is and reads the whole answer.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the server answers within 10 s")
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n")
                .as_bytes(),
        )
        .await
    }

    struct Server {
        addr: SocketAddr,
        healthy: Arc<AtomicBool>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(limits: ServeLimits) -> (Server, Arc<Metrics>) {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let healthy = Arc::new(AtomicBool::new(true));
        let (stop, stop_rx) = watch::channel(false);
        let h = healthy.clone();
        let task = tokio::spawn(serve_with(
            listener,
            metrics.clone(),
            move || h.load(Ordering::SeqCst),
            stop_rx,
            limits,
        ));
        (
            Server {
                addr,
                healthy,
                stop,
                task,
            },
            metrics,
        )
    }

    #[tokio::test]
    async fn serves_healthz_and_metrics_over_tcp() {
        let (server, metrics) = start(ServeLimits::default()).await;
        metrics.pass_finished(true, at("2026-03-09T14:00:00Z"), Duration::from_secs(1));
        metrics.fleet("app", 3, 2);

        let r = get(server.addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nok\n"), "{r}");

        server.healthy.store(false, Ordering::SeqCst);
        let r = get(server.addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");

        let r = get(server.addr, "/metrics?x=1").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{r}"
        );
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{head}"
        );
        // The process's own figures (open files, memory) move between two
        // renders; the loop's do not.
        let converge_only = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("converge_"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(converge_only(body), converge_only(&metrics.render()));
        assert!(body.contains("converge_fleet_running_instances{fleet=\"app\"} 2\n"));
        assert!(body.contains("\nprocess_open_fds "), "{body}");

        let r = get(server.addr, "/nope").await;
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");

        let r = exchange(
            server.addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");

        // HEAD: the head GET would get, with its length, and no body.
        let r = exchange(server.addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        // (The loop is unhealthy by now: "unhealthy\n" is 10 bytes.)
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.contains("\r\nContent-Length: 10\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "no body: {r:?}");

        let r = exchange(server.addr, b"garbage\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");

        server.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("the server stops when told")
            .unwrap()
            .unwrap();
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn a_slow_or_greedy_client_cannot_hold_the_server() {
        let limits = ServeLimits {
            read_timeout: Duration::from_millis(200),
            max_request_bytes: 1024,
            ..ServeLimits::default()
        };
        let (server, _) = start(limits).await;

        // A client that connects and sends half a request, then nothing.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        // Others are still served meanwhile.
        let r = get(server.addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        // And the idle one is told off and closed after the read timeout.
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut out))
            .await
            .expect("the idle connection is closed")
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");

        // A head larger than the limit.
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(4096)
        );
        let r = exchange(server.addr, big.as_bytes()).await;
        assert!(
            r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{r}"
        );

        drop(server.stop);
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("the server stops when its stop sender is dropped")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn bind_names_the_address() {
        let taken = bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = bind(&addr).await.unwrap_err();
        assert_eq!(e.to_string(), format!("cannot listen on {addr}"));
        let e = bind("not an address").await.unwrap_err();
        assert!(e.to_string().contains("not an address"), "{e}");
    }
}
