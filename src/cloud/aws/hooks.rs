//! What sits between converge and the wire: an interceptor that counts
//! every request by service and operation (for `--stats` and the
//! benchmark) and one that isolates tests on a moto server by account.
//! Fault injection for tests is in `faults.rs`.

use super::lock;
use crate::cloud::ApiCall;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_have_readable_labels() {
        assert_eq!(service_label("ec2"), "EC2");
        assert_eq!(service_label("elasticloadbalancing"), "ELB");
        assert_eq!(service_label("Elastic Load Balancing v2"), "ELBv2");
        assert_eq!(service_label("cloudfront"), "CloudFront");
    }
}
