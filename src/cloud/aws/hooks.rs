//! What sits between converge and the wire: an interceptor that counts
//! every request by service and operation (for `--stats` and the
//! benchmark), one that isolates tests on a moto server by account, and an
//! HTTP client wrapper that answers some requests with a throttling error
//! without sending them (fault injection for tests).

use crate::cloud::ApiCall;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts requests sent (every attempt, retries included: that is what
/// AWS bills and throttles) per service and operation.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl CallCounter {
    pub(crate) fn snapshot(&self) -> Vec<ApiCall> {
        lock(&self.counts)
            .iter()
            .map(|((service, operation), calls)| ApiCall {
                service: service.clone(),
                operation: operation.clone(),
                calls: *calls,
            })
            .collect()
    }

    pub(crate) fn reset(&self) {
        lock(&self.counts).clear();
    }
}

/// The service as people name it, from the SDK's service name.
fn service_label(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "ec2" => "EC2".into(),
        "elasticloadbalancing" | "elastic load balancing" => "ELB".into(),
        "elasticloadbalancingv2" | "elastic load balancing v2" => "ELBv2".into(),
        "s3" => "S3".into(),
        "cloudfront" => "CloudFront".into(),
        "route53" | "route 53" => "Route53".into(),
        "ssm" => "SSM".into(),
        "sts" => "STS".into(),
        _ => service.to_owned(),
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "converge::CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (service_label(m.service()), m.name().to_owned()),
            None => ("unknown".to_owned(), "unknown".to_owned()),
        };
        *lock(&self.counts).entry((service, operation)).or_insert(0) += 1;
        Ok(())
    }
}

/// Adds `x-moto-account-id` to every request, so that each test runs in an
/// account of its own on one moto server. AWS ignores the header.
#[derive(Clone, Debug)]
pub(crate) struct MotoAccount(pub(crate) String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "converge::MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// An HTTP client that answers a share of requests with the service's own
/// throttling error instead of sending them, the way AWS refuses a request
/// over its rate before doing anything. Deterministic for a given seed.
#[derive(Clone, Debug)]
pub(crate) struct Throttler {
    inner: SharedHttpClient,
    state: Arc<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    rate: f64,
    rng: Mutex<fastrand::Rng>,
    injected: AtomicU64,
}

impl Throttler {
    pub(crate) fn new(inner: SharedHttpClient, rate: f64, seed: u64) -> Self {
        Self {
            inner,
            state: Arc::new(ThrottleState {
                rate: rate.clamp(0.0, 1.0),
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                injected: AtomicU64::new(0),
            }),
        }
    }

    /// A handle on the number of requests answered with throttling.
    pub(crate) fn injected(&self) -> InjectedCount {
        InjectedCount(self.state.clone())
    }
}

/// How many requests a [`Throttler`] refused.
#[derive(Clone, Debug)]
pub(crate) struct InjectedCount(Arc<ThrottleState>);

impl InjectedCount {
    pub(crate) fn get(&self) -> u64 {
        self.0.injected.load(Ordering::Relaxed)
    }
}

impl HttpClient for Throttler {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ThrottleConnector {
            inner: self.inner.http_connector(settings, components),
            state: self.state.clone(),
        })
    }
}

#[derive(Debug)]
struct ThrottleConnector {
    inner: SharedHttpConnector,
    state: Arc<ThrottleState>,
}

impl HttpConnector for ThrottleConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let throttle = lock(&self.state.rng).f64() < self.state.rate;
        if !throttle {
            return self.inner.call(request);
        }
        self.state.injected.fetch_add(1, Ordering::Relaxed);
        let service = signing_service(&request).unwrap_or_default();
        let (status, body) = throttling_response(&service);
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("400 and 503 are valid statuses"),
            SdkBody::from(body),
        );
        response.headers_mut().insert("content-type", "text/xml");
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// The service a request is signed for, from its SigV4 credential scope
/// (`Credential=AKID/20240101/us-east-1/ec2/aws4_request`): with a custom
/// endpoint every service shares one host, so the host cannot tell.
fn signing_service(request: &HttpRequest) -> Option<String> {
    let auth = request.headers().get("authorization")?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// A throttling error as each service's protocol sends it.
fn throttling_response(service: &str) -> (u16, String) {
    match service {
        "ec2" => (
            503,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded. (injected by converge)</Message></Error></Errors><RequestID>converge-injected</RequestID></Response>".into(),
        ),
        "s3" => (
            503,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate. (injected by converge)</Message><RequestId>converge-injected</RequestId></Error>".into(),
        ),
        // SSM speaks awsJson1.1.
        "ssm" => (
            400,
            "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded (injected by converge)\"}".into(),
        ),
        // ELB (awsQuery) and CloudFront (restXml) share this shape.
        _ => (
            400,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected by converge)</Message></Error><RequestId>converge-injected</RequestId></ErrorResponse>".into(),
        ),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    fn services_have_readable_labels() {
        assert_eq!(service_label("ec2"), "EC2");
        assert_eq!(service_label("elasticloadbalancing"), "ELB");
        assert_eq!(service_label("Elastic Load Balancing v2"), "ELBv2");
        assert_eq!(service_label("cloudfront"), "CloudFront");
    }
}
