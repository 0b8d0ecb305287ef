//! Fault injection into the SDK's requests, for the tests against a moto
//! server (issue 12): an HTTP client wrapper that, request by request,
//! answers with a throttling error without sending, lets the request
//! reach the server and then replaces its answer with a 500, stalls and
//! times out before or after sending, or drops the connection before or
//! after sending. A fault "after" means the request took effect: what
//! makes a retry safe then is the request's own idempotency (client
//! tokens, caller references, ownership checks), which is what the tests
//! prove.
//!
//! moto does not honour EC2 client tokens (a `RunInstances` sent twice
//! with one token launches twice there; on AWS the second call answers
//! the first's reservation). So that a fault after sending tests converge
//! and not moto's gap, the injector enforces AWS's rule for the EC2
//! requests that carry a `ClientToken`
//! (<https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html>):
//! a request repeated with the same token and the same parameters is
//! answered with the first one's answer without reaching moto; the same
//! token with other parameters is refused with
//! `IdempotentParameterMismatch`. A create sent without a token, or with a
//! new token per attempt, still reaches moto twice.
//!
//! moto does not honour elbv2's idempotency either: AWS documents
//! CreateLoadBalancer, CreateTargetGroup and CreateListener as
//! idempotent ("If you attempt to create multiple load balancers with the
//! same settings, each call succeeds", API Reference, CreateLoadBalancer;
//! likewise for target groups and listeners), while moto makes a second
//! balancer of the same name (each gets a random ARN) and a second
//! listener on the same port. The SDK's own retry of a create whose
//! answer was lost then made two balancers in moto, converge remembered
//! the second one's ARN and gave it the listener and target group, and
//! observation, reading the first, never saw them (the loop scenario's
//! "known flaw"). So the injector enforces AWS's rule for these three too,
//! keyed by the balancer's or group's name, or the listener's balancer
//! and port: the same request again is answered with the first answer;
//! another request of that key is refused as AWS does
//! (`DuplicateLoadBalancerName`, `DuplicateTargetGroupName`,
//! `DuplicateListener`); a successful DeleteLoadBalancer,
//! DeleteTargetGroup or DeleteListener forgets the answers that name the
//! deleted ARN.
//!
//! [`AwsFaults::scripted`] puts a chosen fault on the first request of a
//! chosen action, for tests of one case at a time.
//!
//! Configured only through [`AwsOptions::faults`](super::AwsOptions::faults)
//! (tests and benchmarks); nothing in the CLI turns it on.

use super::lock;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The faults to inject: each request draws at most one, with these
/// probabilities (0.0–1.0; their sum at most 1). Deterministic for a seed
/// as long as requests come in the same order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AwsFaults {
    /// Answered with the service's throttling error, not sent (AWS refuses
    /// a request over its rate before doing anything).
    pub throttle: f64,
    /// Sent, and the server's answer replaced with a 500 `InternalError`:
    /// the request may have taken effect.
    pub server_error: f64,
    /// Not sent: after [`stall`](Self::stall), a timeout (as a connect
    /// timeout).
    pub timeout_before: f64,
    /// Sent, the answer never read: after [`stall`](Self::stall), a
    /// timeout (as a read timeout). The request took effect.
    pub timeout_after: f64,
    /// The connection dropped before the request went out (a reset).
    pub drop_before: f64,
    /// Sent, then the connection dropped before the answer: the request
    /// took effect.
    pub drop_after: f64,
    /// How long a timing-out request hangs before it fails.
    pub stall: Duration,
    /// The seed of the draws.
    pub seed: u64,
    /// Faults at chosen calls, whatever the rates: the first request of
    /// each action named (its query `Action`, or for Route 53
    /// `ChangeResourceRecordSets` and `CreateHostedZone`) gets that fault
    /// instead of a draw; an action named twice, its first two requests.
    pub scripted: Vec<(String, Fault)>,
}

impl AwsFaults {
    /// Throttling alone, at `rate`.
    pub fn throttling(rate: f64) -> Self {
        Self {
            throttle: rate,
            seed: 0x00c0_ffee,
            ..Self::default()
        }
    }

    /// Whether any fault can be drawn.
    pub fn any(&self) -> bool {
        self.rates().iter().any(|r| *r > 0.0) || !self.scripted.is_empty()
    }

    fn rates(&self) -> [f64; 6] {
        [
            self.throttle,
            self.server_error,
            self.timeout_before,
            self.timeout_after,
            self.drop_before,
            self.drop_after,
        ]
    }
}

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// See [`AwsFaults::throttle`].
    Throttle,
    /// See [`AwsFaults::server_error`].
    ServerError,
    /// See [`AwsFaults::timeout_before`].
    TimeoutBefore,
    /// See [`AwsFaults::timeout_after`].
    TimeoutAfter,
    /// See [`AwsFaults::drop_before`].
    DropBefore,
    /// See [`AwsFaults::drop_after`].
    DropAfter,
}

const FAULTS: [Fault; 6] = [
    Fault::Throttle,
    Fault::ServerError,
    Fault::TimeoutBefore,
    Fault::TimeoutAfter,
    Fault::DropBefore,
    Fault::DropAfter,
];

impl Fault {
    /// Whether the request reached the server (it may have taken effect).
    pub fn after(self) -> bool {
        matches!(
            self,
            Fault::ServerError | Fault::TimeoutAfter | Fault::DropAfter
        )
    }
}

/// What the injector did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests that went through it.
    pub requests: u64,
    /// Faults injected, by fault.
    pub injected: BTreeMap<Fault, u64>,
    /// Requests answered from an earlier one with the same client token.
    pub replayed: u64,
    /// Requests by service and call (`ec2 DescribeInstances`; REST calls
    /// without an action name by method: `s3 GET`), to tell which calls a
    /// slow run repeated.
    pub by_call: BTreeMap<String, u64>,
}

impl FaultCounts {
    /// Faults injected in all.
    pub fn total(&self) -> u64 {
        self.injected.values().sum()
    }
}

/// The first answer to an idempotent create (a request with a client
/// token, or an elbv2 create).
#[derive(Debug)]
struct Remembered {
    /// The request's body, to tell a repeat from a mismatch.
    request: Vec<u8>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug)]
struct State {
    faults: AwsFaults,
    rng: Mutex<fastrand::Rng>,
    requests: AtomicU64,
    injected: Mutex<BTreeMap<Fault, u64>>,
    replayed: AtomicU64,
    by_call: Mutex<BTreeMap<String, u64>>,
    /// By account, action and key (client token, or elbv2 name).
    tokens: Mutex<BTreeMap<Key, Remembered>>,
    /// What is left of [`AwsFaults::scripted`].
    scripted: Mutex<Vec<(String, Fault)>>,
}

/// What makes two creates the same one: the account, the action and its
/// idempotency key.
type Key = (String, String, String);

/// The HTTP client wrapper that injects [`AwsFaults`].
#[derive(Clone, Debug)]
pub(crate) struct FaultInjector {
    inner: SharedHttpClient,
    state: Arc<State>,
}

/// A handle on a [`FaultInjector`]'s counts.
#[derive(Clone, Debug)]
pub(crate) struct FaultHandle(Arc<State>);

impl FaultHandle {
    /// The counts so far.
    pub(crate) fn counts(&self) -> FaultCounts {
        FaultCounts {
            requests: self.0.requests.load(Ordering::Relaxed),
            injected: lock(&self.0.injected).clone(),
            replayed: self.0.replayed.load(Ordering::Relaxed),
            by_call: lock(&self.0.by_call).clone(),
        }
    }
}

impl FaultInjector {
    pub(crate) fn new(inner: SharedHttpClient, faults: AwsFaults) -> Self {
        let seed = faults.seed;
        let scripted = faults.scripted.clone();
        Self {
            inner,
            state: Arc::new(State {
                faults,
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                requests: AtomicU64::new(0),
                injected: Mutex::new(BTreeMap::new()),
                replayed: AtomicU64::new(0),
                by_call: Mutex::new(BTreeMap::new()),
                tokens: Mutex::new(BTreeMap::new()),
                scripted: Mutex::new(scripted),
            }),
        }
    }

    pub(crate) fn handle(&self) -> FaultHandle {
        FaultHandle(self.state.clone())
    }
}

impl HttpClient for FaultInjector {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultConnector {
            inner: self.inner.http_connector(settings, components),
            state: self.state.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultConnector {
    inner: SharedHttpConnector,
    state: Arc<State>,
}

impl State {
    /// The fault of a request of `action`: a scripted one, else a draw.
    fn fault_for(&self, action: Option<&str>) -> Option<Fault> {
        if let Some(action) = action {
            let mut scripted = lock(&self.scripted);
            if let Some(i) = scripted.iter().position(|(a, _)| a == action) {
                let (_, fault) = scripted.remove(i);
                *lock(&self.injected).entry(fault).or_insert(0) += 1;
                return Some(fault);
            }
        }
        self.draw()
    }

    fn draw(&self) -> Option<Fault> {
        let x = lock(&self.rng).f64();
        let mut acc = 0.0;
        for (fault, rate) in FAULTS.iter().zip(self.faults.rates()) {
            acc += rate.clamp(0.0, 1.0);
            if x < acc {
                *lock(&self.injected).entry(*fault).or_insert(0) += 1;
                return Some(*fault);
            }
        }
        None
    }
}

impl HttpConnector for FaultConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let state = self.state.clone();
        state.requests.fetch_add(1, Ordering::Relaxed);
        let service = signing_service(&request).unwrap_or_default();
        let action = action_of(&request);
        let call = format!(
            "{service} {}",
            action.as_deref().unwrap_or(request.method())
        );
        *lock(&state.by_call).entry(call).or_insert(0) += 1;
        let token = token_key(&request);
        if let Some(key) = &token
            && let Some(answer) = replay(&state, key)
        {
            return HttpConnectorFuture::ready(Ok(answer));
        }
        let deleted = deleted_arn(&request);
        let fault = state.fault_for(action.as_deref());
        let stall = state.faults.stall;
        match fault {
            Some(Fault::Throttle) => {
                let (status, body) = throttling_response(&service);
                return HttpConnectorFuture::ready(Ok(xml_response(status, body)));
            }
            Some(Fault::DropBefore) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::io(
                    "connection reset by peer before the request was sent (injected by converge)"
                        .into(),
                )));
            }
            Some(Fault::TimeoutBefore) => {
                return HttpConnectorFuture::new(async move {
                    tokio::time::sleep(stall).await;
                    Err(ConnectorError::timeout(
                        "timed out connecting (injected by converge)".into(),
                    ))
                });
            }
            _ => {}
        }
        let sent = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let mut response = sent.await?;
            if let Some((key, body)) = token {
                response = remember(&state, key, body, response).await?;
            }
            if let Some(arn) = deleted
                && response.status().is_success()
            {
                forget(&state, &arn);
            }
            match fault {
                Some(Fault::ServerError) => {
                    let (status, body) = server_error_response(&service);
                    Ok(xml_response(status, body))
                }
                Some(Fault::TimeoutAfter) => {
                    tokio::time::sleep(stall).await;
                    Err(ConnectorError::timeout(
                        "timed out reading the response (injected by converge)".into(),
                    ))
                }
                Some(Fault::DropAfter) => Err(ConnectorError::io(
                    "connection reset by peer before the response (injected by converge)".into(),
                )),
                _ => Ok(response),
            }
        })
    }
}

/// The value of a query-protocol parameter (form-encoded, decoded).
fn param(text: &str, name: &str) -> Option<String> {
    text.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(decode)
}

/// `%XX` and `+` decoded.
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)),
            _ => None,
        };
        if let Some((h, l)) = escaped {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query-protocol request's body, as text.
fn query_text(request: &HttpRequest) -> Option<&str> {
    std::str::from_utf8(request.body().bytes()?).ok()
}

/// The API version of elbv2 (application and network balancers).
const ELBV2: &str = "2015-12-01";

/// Whether a request is to elbv2 (classic ELB shares its signing name).
fn elbv2(request: &HttpRequest, text: &str) -> bool {
    signing_service(request).as_deref() == Some("elasticloadbalancing")
        && param(text, "Version").as_deref() == Some(ELBV2)
}

/// The action of a request: its query `Action`, or for Route 53's REST
/// calls the two converge sends that change something.
fn action_of(request: &HttpRequest) -> Option<String> {
    if let Some(a) = query_text(request).and_then(|t| param(t, "Action")) {
        return Some(a);
    }
    // awsJson services (ACM, SSM) name the action in a header:
    // `X-Amz-Target: CertificateManager.RequestCertificate`.
    if let Some(t) = request.headers().get("x-amz-target") {
        return t.rsplit('.').next().map(str::to_owned);
    }
    if request.method() != "POST" {
        return None;
    }
    let path = request.uri().split('?').next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    if path.ends_with("/rrset") {
        Some("ChangeResourceRecordSets".to_owned())
    } else if path.ends_with("/hostedzone") {
        Some("CreateHostedZone".to_owned())
    } else {
        None
    }
}

/// The idempotency key of a create (account, action, key) and its body:
/// an EC2 request's `ClientToken`, an elbv2 balancer's or target group's
/// name, or a listener's balancer and port.
fn token_key(request: &HttpRequest) -> Option<(Key, Vec<u8>)> {
    let text = query_text(request)?;
    let action = param(text, "Action")?;
    let key = match param(text, "ClientToken").filter(|t| !t.is_empty()) {
        Some(token) => token,
        None if !elbv2(request, text) => return None,
        None => match action.as_str() {
            "CreateLoadBalancer" | "CreateTargetGroup" => param(text, "Name")?,
            "CreateListener" => format!(
                "{} port {}",
                param(text, "LoadBalancerArn")?,
                param(text, "Port")?
            ),
            _ => return None,
        },
    };
    let account = request
        .headers()
        .get("x-moto-account-id")
        .unwrap_or_default()
        .to_owned();
    Some(((account, action, key), text.as_bytes().to_vec()))
}

/// The ARN an elbv2 delete names, if the request is one.
fn deleted_arn(request: &HttpRequest) -> Option<String> {
    let text = query_text(request)?;
    if !elbv2(request, text) {
        return None;
    }
    match param(text, "Action")?.as_str() {
        "DeleteLoadBalancer" => param(text, "LoadBalancerArn"),
        "DeleteTargetGroup" => param(text, "TargetGroupArn"),
        "DeleteListener" => param(text, "ListenerArn"),
        _ => None,
    }
}

/// Forgets the remembered answers that name `arn` (it was deleted: a
/// create of the same name makes a new one, on AWS as on moto).
fn forget(state: &State, arn: &str) {
    lock(&state.tokens).retain(|_, r| !String::from_utf8_lossy(&r.body).contains(arn));
}

/// The refusal of another request under a key already used.
fn mismatch(key: &Key) -> HttpResponse {
    let (action, k) = (key.1.as_str(), key.2.as_str());
    let duplicate = |code: &str, what: &str| {
        xml_response(
            400,
            query_error(
                "Sender",
                code,
                &format!("{what} '{k}' already exists with other settings"),
            ),
        )
    };
    match action {
        "CreateLoadBalancer" => duplicate("DuplicateLoadBalancerName", "A load balancer named"),
        "CreateTargetGroup" => duplicate("DuplicateTargetGroupName", "A target group named"),
        "CreateListener" => duplicate("DuplicateListener", "A listener on"),
        _ => xml_response(
            400,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>IdempotentParameterMismatch</Code><Message>client token {k} was used with other parameters (enforced by converge's fault injector)</Message></Error></Errors><RequestID>converge-injected</RequestID></Response>"
            ),
        ),
    }
}

/// The remembered answer to a repeated request, or a mismatch error; `None`
/// when the token is new.
fn replay(state: &State, key: &(Key, Vec<u8>)) -> Option<HttpResponse> {
    let tokens = lock(&state.tokens);
    let r = tokens.get(&key.0)?;
    state.replayed.fetch_add(1, Ordering::Relaxed);
    if r.request != key.1 {
        return Some(mismatch(&key.0));
    }
    let mut response = HttpResponse::new(status(r.status), SdkBody::from(r.body.clone()));
    for (k, v) in &r.headers {
        response.headers_mut().insert(k.clone(), v.clone());
    }
    Some(response)
}

/// Reads a successful answer to an idempotent create, remembers
/// it, and gives it back.
async fn remember(
    state: &State,
    key: Key,
    request: Vec<u8>,
    response: HttpResponse,
) -> Result<HttpResponse, ConnectorError> {
    let code = response.status().as_u16();
    if !(200..300).contains(&code) {
        return Ok(response);
    }
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let body = ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|e| ConnectorError::io(e.into()))?
        .to_vec();
    let mut out = HttpResponse::new(status(code), SdkBody::from(body.clone()));
    for (k, v) in &headers {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    lock(&state.tokens).insert(
        key,
        Remembered {
            request,
            status: code,
            headers,
            body,
        },
    );
    Ok(out)
}

fn status(code: u16) -> StatusCode {
    StatusCode::try_from(code)
        .or_else(|_| StatusCode::try_from(500))
        .expect("500 is a valid status")
}

fn xml_response(code: u16, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(status(code), SdkBody::from(body));
    response.headers_mut().insert("content-type", "text/xml");
    response
}

/// The service a request is signed for, from its SigV4 credential scope
/// (`Credential=AKID/20240101/us-east-1/ec2/aws4_request`): with a custom
/// endpoint every service shares one host, so the host cannot tell.
pub(crate) fn signing_service(request: &HttpRequest) -> Option<String> {
    let auth = request.headers().get("authorization")?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// A throttling error as each service's protocol sends it.
fn throttling_response(service: &str) -> (u16, String) {
    match service {
        "ec2" => (503, ec2_error("RequestLimitExceeded", "Request limit exceeded.")),
        "s3" => (503, s3_error("SlowDown", "Please reduce your request rate.")),
        // SSM and ACM speak awsJson1.1.
        "ssm" | "acm" => (
            400,
            "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded (injected by converge)\"}".into(),
        ),
        // ELB (awsQuery), CloudFront and Route 53 (restXml) share this shape.
        _ => (400, query_error("Sender", "Throttling", "Rate exceeded")),
    }
}

/// A 500 as each service's protocol sends it.
fn server_error_response(service: &str) -> (u16, String) {
    match service {
        "ec2" => (
            500,
            ec2_error("InternalError", "An internal error has occurred."),
        ),
        "s3" => (
            500,
            s3_error(
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
        ),
        "ssm" | "acm" => (
            500,
            "{\"__type\":\"InternalServerError\",\"message\":\"internal error (injected by converge)\"}".into(),
        ),
        _ => (
            500,
            query_error("Receiver", "InternalFailure", "internal failure"),
        ),
    }
}

fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message} (injected by converge)</Message></Error></Errors><RequestID>converge-injected</RequestID></Response>"
    )
}

fn s3_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message} (injected by converge)</Message><RequestId>converge-injected</RequestId></Error>"
    )
}

fn query_error(kind: &str, code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message} (injected by converge)</Message></Error><RequestId>converge-injected</RequestId></ErrorResponse>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_service_comes_from_the_credential_scope() {
        let mut r = HttpRequest::get("http://127.0.0.1:5000/").expect("request");
        r.headers_mut().insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=abc",
        );
        assert_eq!(signing_service(&r).as_deref(), Some("elasticloadbalancing"));
    }

    #[test]
    fn the_client_token_key_is_read_from_a_query_body() {
        let mut r = HttpRequest::new(SdkBody::from(
            "Action=RunInstances&Version=2016-11-15&ClientToken=abc-1&MinCount=1",
        ));
        r.headers_mut().insert("x-moto-account-id", "123456789012");
        let (key, _) = token_key(&r).expect("a token");
        assert_eq!(
            key,
            (
                "123456789012".to_owned(),
                "RunInstances".to_owned(),
                "abc-1".to_owned()
            )
        );
        let r = HttpRequest::new(SdkBody::from("Action=DescribeInstances&Version=2016-11-15"));
        assert!(token_key(&r).is_none());
    }

    #[test]
    fn draws_follow_the_rates() {
        let state = FaultInjector::new(
            SharedHttpClient::new(NoClient),
            AwsFaults {
                throttle: 0.2,
                drop_after: 0.1,
                seed: 7,
                ..AwsFaults::default()
            },
        )
        .state;
        let n = 10_000;
        let drawn: Vec<Option<Fault>> = (0..n).map(|_| state.draw()).collect();
        let share = |f| drawn.iter().filter(|d| **d == Some(f)).count() as f64 / n as f64;
        assert!((share(Fault::Throttle) - 0.2).abs() < 0.02);
        assert!((share(Fault::DropAfter) - 0.1).abs() < 0.02);
        assert_eq!(share(Fault::ServerError), 0.0);
        assert!(Fault::DropAfter.after() && !Fault::DropBefore.after());
    }

    /// A server that answers every request `200` with a body naming the
    /// request's number, and counts them.
    #[derive(Debug, Default)]
    struct Counting(Arc<AtomicU64>);

    impl HttpConnector for Counting {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            HttpConnectorFuture::ready(Ok(HttpResponse::new(
                status(200),
                SdkBody::from(format!("<r>{n}</r>")),
            )))
        }
    }

    /// A connector with no faults in front of a [`Counting`] server, its
    /// count of requests sent, and its injector.
    fn counting() -> (FaultConnector, Arc<AtomicU64>, FaultInjector) {
        let sent = Arc::new(AtomicU64::new(0));
        let injector = FaultInjector::new(SharedHttpClient::new(NoClient), AwsFaults::default());
        let c = FaultConnector {
            inner: SharedHttpConnector::new(Counting(sent.clone())),
            state: injector.state.clone(),
        };
        (c, sent, injector)
    }

    fn ec2_request(body: &str) -> HttpRequest {
        let mut r = HttpRequest::new(SdkBody::from(body.to_owned()));
        r.headers_mut().insert("x-moto-account-id", "123456789012");
        r
    }

    async fn body_of(r: Result<HttpResponse, ConnectorError>) -> (u16, String) {
        let r = r.expect("an answer");
        let code = r.status().as_u16();
        let bytes = ByteStream::new(r.into_body())
            .collect()
            .await
            .expect("a body");
        (code, String::from_utf8_lossy(&bytes.to_vec()).into_owned())
    }

    /// What makes the fault tests able to fail: a repeat with the same
    /// token never reaches the server, another request under that token
    /// is refused, and a request without one always reaches it.
    #[tokio::test]
    async fn a_client_token_is_honoured_as_aws_does() {
        let (c, sent, injector) = counting();
        let launch = "Action=RunInstances&ClientToken=t-1&MinCount=1";
        assert_eq!(
            body_of(c.call(ec2_request(launch)).await).await,
            (200, "<r>1</r>".into())
        );
        assert_eq!(
            body_of(c.call(ec2_request(launch)).await).await,
            (200, "<r>1</r>".into())
        );
        assert_eq!(
            sent.load(Ordering::Relaxed),
            1,
            "the repeat was answered, not sent"
        );
        let (code, body) = body_of(
            c.call(ec2_request(
                "Action=RunInstances&ClientToken=t-1&MinCount=2",
            ))
            .await,
        )
        .await;
        assert_eq!(code, 400);
        assert!(body.contains("IdempotentParameterMismatch"), "{body}");
        let untokened = "Action=CreateVpc&CidrBlock=10.0.0.0%2F16";
        body_of(c.call(ec2_request(untokened)).await).await;
        body_of(c.call(ec2_request(untokened)).await).await;
        assert_eq!(
            sent.load(Ordering::Relaxed),
            3,
            "requests without a token all go out"
        );
        assert_eq!(injector.handle().counts().replayed, 2);
    }

    fn elbv2_request(body: &str) -> HttpRequest {
        let mut r = ec2_request(body);
        r.headers_mut().insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=abc",
        );
        r
    }

    /// elbv2's creates are idempotent as on AWS: the same request again is
    /// answered from the first, another one under the name refused as a
    /// duplicate, and once the balancer is deleted a create of the name
    /// reaches the server again.
    #[tokio::test]
    async fn elbv2_creates_are_idempotent_as_on_aws() {
        let (c, sent, _) = counting();
        let create = "Action=CreateLoadBalancer&Version=2015-12-01&Name=web&Subnets.member.1=s-1";
        for _ in 0..2 {
            let answer = body_of(c.call(elbv2_request(create)).await).await;
            assert_eq!(answer, (200, "<r>1</r>".into()));
        }
        assert_eq!(sent.load(Ordering::Relaxed), 1, "the repeat was answered");
        let other = "Action=CreateLoadBalancer&Version=2015-12-01&Name=web&Subnets.member.1=s-2";
        let (code, body) = body_of(c.call(elbv2_request(other)).await).await;
        assert_eq!(code, 400);
        assert!(body.contains("DuplicateLoadBalancerName"), "{body}");
        // The remembered answer names "<r>1</r>"; a delete of that ARN
        // (form-encoded) forgets it.
        let delete = "Action=DeleteLoadBalancer&Version=2015-12-01&LoadBalancerArn=%3Cr%3E1";
        body_of(c.call(elbv2_request(delete)).await).await;
        body_of(c.call(elbv2_request(create)).await).await;
        assert_eq!(
            sent.load(Ordering::Relaxed),
            3,
            "the delete and a create after it are sent"
        );
        // Classic ELB (another version) is left to moto.
        let classic = "Action=CreateLoadBalancer&Version=2012-06-01&LoadBalancerName=old";
        body_of(c.call(elbv2_request(classic)).await).await;
        body_of(c.call(elbv2_request(classic)).await).await;
        assert_eq!(sent.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn scripted_faults_hit_the_chosen_calls_once() {
        let state = FaultInjector::new(
            SharedHttpClient::new(NoClient),
            AwsFaults {
                scripted: vec![("CreateListener".into(), Fault::DropAfter)],
                ..AwsFaults::default()
            },
        )
        .state;
        assert_eq!(state.fault_for(Some("CreateLoadBalancer")), None);
        assert_eq!(
            state.fault_for(Some("CreateListener")),
            Some(Fault::DropAfter)
        );
        assert_eq!(state.fault_for(Some("CreateListener")), None);
        assert_eq!(
            decode("arn%3Aaws%3Alb%2Fweb+1%zz%4"),
            "arn:aws:lb/web 1%zz%4"
        );
    }

    #[derive(Debug)]
    struct NoClient;

    impl HttpClient for NoClient {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            unreachable!("never connected in these tests")
        }
    }
}
