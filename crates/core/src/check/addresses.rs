//! Declared addresses (`spec.privateIps`): a launch gives one to each of
//! its instances, each one of its fleet's; no two launches take one; and
//! an address a live instance holds is taken only after that instance's
//! termination (a shutting-down one frees it by itself).

use super::{Ctx, Problem};
use crate::observed::InstanceState;
use crate::plan::{Step, StepId};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub(super) fn check(cx: &mut Ctx<'_>) {
    let plan = cx.plan;
    let mut taken: BTreeMap<Ipv4Addr, StepId> = BTreeMap::new();
    for (i, s) in plan.graph.iter() {
        let Step::Launch {
            fleet,
            count,
            private_ips,
            ..
        } = s
        else {
            continue;
        };
        if private_ips.is_empty() {
            continue;
        }
        let declared = cx
            .desired
            .fleets
            .get(fleet)
            .map(|f| f.private_ips.as_slice())
            .unwrap_or_default();
        if private_ips.len() != *count as usize {
            cx.report(Problem::LaunchAddressCount {
                step: cx.name(i),
                count: *count,
                addresses: private_ips.len() as u32,
            });
        }
        for ip in private_ips {
            if !declared.contains(ip) {
                cx.report(Problem::UndeclaredAddress {
                    step: cx.name(i),
                    ip: *ip,
                });
            }
            if let Some(first) = taken.insert(*ip, i) {
                cx.report(Problem::AddressTakenTwice {
                    ip: *ip,
                    first: cx.name(first),
                    second: cx.name(i),
                });
            }
            held_until_terminated(cx, i, *ip);
        }
    }
}

/// The launch `i` of `ip` comes after the termination of the live
/// instance that holds it, if one does.
fn held_until_terminated(cx: &mut Ctx<'_>, i: StepId, ip: Ipv4Addr) {
    let holders = cx.observed.instances.iter().filter(|o| {
        o.private_ip == Some(ip)
            && !matches!(
                o.state,
                InstanceState::Terminated | InstanceState::ShuttingDown
            )
    });
    for holder in holders {
        let terms = cx.index.terminates(&holder.id).to_vec();
        if !terms.iter().any(|&t| cx.order.before(t, i)) {
            cx.report(Problem::AddressTakenWhileHeld {
                step: cx.name(i),
                ip,
                holder: holder.id.clone(),
            });
        }
    }
}
