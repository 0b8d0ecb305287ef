//! ACM certificates: a certificate is deleted only after every observed
//! listener and distribution that uses it is switched away or deleted by
//! a step before (ACM refuses to delete a certificate in use).

use super::{Ctx, Problem};
use crate::ids::{BalancerName, DistributionId};
use crate::plan::Step;

/// What uses a certificate.
enum CertUser<'a> {
    /// A listener of this balancer.
    Balancer(&'a BalancerName),
    /// This distribution.
    Distribution(&'a DistributionId),
}

impl CertUser<'_> {
    /// Whether `s` may switch the user away from its certificate (or
    /// delete it).
    fn switched_by(&self, s: &Step) -> bool {
        match (self, s) {
            (
                CertUser::Balancer(name),
                Step::SetListeners { balancer, .. } | Step::DeleteBalancer { balancer },
            ) => balancer.cloud_name == **name,
            (
                CertUser::Distribution(id),
                Step::UpdateDistribution { id: x, .. } | Step::DeleteDistribution { id: x, .. },
            ) => x == *id,
            _ => false,
        }
    }

    fn show(&self) -> String {
        match self {
            CertUser::Balancer(b) => format!("balancer {b}"),
            CertUser::Distribution(d) => format!("distribution {d}"),
        }
    }
}

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let observed = cx.observed;
    for (i, s) in plan.graph.iter() {
        let Step::DeleteCertificate { arn, .. } = s else {
            continue;
        };
        let balancers = observed
            .balancers
            .iter()
            .filter(|b| {
                b.listeners
                    .iter()
                    .any(|l| l.certificate.as_deref() == Some(arn.as_str()))
            })
            .map(|b| CertUser::Balancer(&b.name));
        let distributions = observed
            .distributions
            .iter()
            .filter(|d| {
                d.config
                    .viewer_certificate
                    .as_ref()
                    .is_some_and(|v| v.arn == *arn)
            })
            .map(|d| CertUser::Distribution(&d.id));
        for user in balancers.chain(distributions) {
            let switched = plan
                .graph
                .iter()
                .any(|(j, s)| user.switched_by(s) && cx.order.before(j, i));
            if !switched {
                cx.report(Problem::CertificateDeletedInUse {
                    step: cx.name(i),
                    user: user.show(),
                });
            }
        }
    }
}
