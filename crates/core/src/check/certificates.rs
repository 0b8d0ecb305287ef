//! ACM certificates: a certificate is deleted only after every observed
//! listener and distribution that uses it is switched away or deleted by
//! a step before (ACM refuses to delete a certificate in use).

use super::{Ctx, Problem};
use crate::plan::Step;

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    for (i, s) in plan.graph.iter() {
        let Step::DeleteCertificate { arn, .. } = s else {
            continue;
        };
        let mut users: Vec<(String, Box<dyn Fn(&Step) -> bool + '_>)> = Vec::new();
        for b in &cx.observed.balancers {
            if b.listeners
                .iter()
                .any(|l| l.certificate.as_deref() == Some(arn.as_str()))
            {
                let name = b.name.clone();
                users.push((
                    format!("balancer {}", b.name),
                    Box::new(move |s: &Step| match s {
                        Step::SetListeners { balancer, .. } | Step::DeleteBalancer { balancer } => {
                            balancer.cloud_name == name
                        }
                        _ => false,
                    }),
                ));
            }
        }
        for d in &cx.observed.distributions {
            if d.config
                .viewer_certificate
                .as_ref()
                .is_some_and(|v| v.arn == *arn)
            {
                let id = d.id.clone();
                users.push((
                    format!("distribution {}", d.id),
                    Box::new(move |s: &Step| match s {
                        Step::UpdateDistribution { id: x, .. }
                        | Step::DeleteDistribution { id: x, .. } => *x == id,
                        _ => false,
                    }),
                ));
            }
        }
        for (user, switches) in users {
            let switched = plan
                .graph
                .iter()
                .any(|(j, s)| switches(s) && cx.order.before(j, i));
            if !switched {
                cx.report(Problem::CertificateDeletedInUse {
                    step: cx.name(i),
                    user,
                });
            }
        }
    }
}
