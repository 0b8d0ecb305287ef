//! Where a fleet's instances go: counts spread over zones, growth and
//! shrinking that keep zones even, and successors paired with their
//! predecessors' zones.

use super::Retiring;
use crate::ids::Zone;
use std::collections::{BTreeMap, VecDeque};

/// Spreads `count` instances evenly over `zones`, the remainder going to
/// the zones listed first.
pub(super) fn spread(count: u32, zones: &[Zone]) -> Vec<(Zone, u32)> {
    if zones.is_empty() {
        return Vec::new();
    }
    zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.clone(), spread_share(count, zones.len(), i)))
        .collect()
}

/// The share of `count` instances spread evenly over `zones` zones that
/// goes to the zone at `index`: the remainder goes to the zones listed
/// first. Validation uses it to check a fleet's declared addresses per
/// subnet.
pub fn spread_share(count: u32, zones: usize, index: usize) -> u32 {
    let n = zones.max(1) as u32;
    count / n + u32::from((index as u32) < count % n)
}

/// Per zone, how many instances a fleet keeps when it moves from `have`
/// (one count per zone, in the zones' order) to `target` without moving
/// any instance: growth goes to the zones with the fewest (the first
/// listed on a tie), shrinking takes from the zones with the most (the
/// last listed on a tie), so the zones stay as even as they can.
pub(super) fn fill(target: u32, zones: &[Zone], have: &[u32]) -> Vec<(Zone, u32)> {
    if zones.is_empty() {
        return Vec::new();
    }
    let mut counts: Vec<u32> = zones
        .iter()
        .enumerate()
        .map(|(i, _)| have.get(i).copied().unwrap_or(0))
        .collect();
    // Level the lowest zones up (or the highest down) a step at a time:
    // a handful of rounds per zone, whatever the counts.
    let mut total: u64 = counts.iter().map(|c| u64::from(*c)).sum();
    let target = u64::from(target);
    while total < target {
        let low = counts.iter().copied().min().unwrap_or(0);
        let at_low: Vec<usize> = (0..counts.len()).filter(|i| counts[*i] == low).collect();
        let next = counts.iter().copied().filter(|c| *c > low).min();
        let k = at_low.len() as u64;
        let left = target - total;
        let room = next.map_or(u64::MAX, |n| u64::from(n - low).saturating_mul(k));
        if left >= room {
            for i in &at_low {
                counts[*i] = next.unwrap_or(low);
            }
            total += room;
        } else {
            for (j, i) in at_low.iter().enumerate() {
                let add = left / k + u64::from((j as u64) < left % k);
                counts[*i] += add as u32;
            }
            total = target;
        }
    }
    while total > target {
        let high = counts.iter().copied().max().unwrap_or(0);
        let at_high: Vec<usize> = (0..counts.len()).filter(|i| counts[*i] == high).collect();
        let next = counts
            .iter()
            .copied()
            .filter(|c| *c < high)
            .max()
            .unwrap_or(0);
        let k = at_high.len() as u64;
        let left = total - target;
        let room = u64::from(high - next).saturating_mul(k);
        if left >= room {
            for i in &at_high {
                counts[*i] = next;
            }
            total -= room;
        } else {
            // The last listed give first, mirroring `spread`.
            for (j, i) in at_high.iter().rev().enumerate() {
                let take = left / k + u64::from((j as u64) < left % k);
                counts[*i] -= take as u32;
            }
            total = target;
        }
    }
    zones.iter().cloned().zip(counts).collect()
}

/// Pairs deficits (zones to launch a successor in, in order) with
/// instances that must go (sorted oldest first): each deficit first takes
/// the oldest instance in its own zone, then the remaining deficits take
/// the remaining instances oldest first. Returns the pairs in deficit
/// order, the instances left without a successor, and the deficits left
/// without a predecessor (growth).
pub(super) fn pair_by_zone<'o>(
    deficits: Vec<Zone>,
    old: Vec<Retiring<'o>>,
) -> (Vec<(Zone, Retiring<'o>)>, Vec<Retiring<'o>>, Vec<Zone>) {
    let mut by_zone: BTreeMap<Zone, VecDeque<(usize, Retiring<'o>)>> = BTreeMap::new();
    for (age, r) in old.into_iter().enumerate() {
        by_zone
            .entry(r.instance.zone.clone())
            .or_default()
            .push_back((age, r));
    }
    let mut slots: Vec<(Zone, Option<Retiring<'o>>)> = deficits
        .into_iter()
        .map(|zone| {
            let same = by_zone.get_mut(&zone).and_then(|q| q.pop_front());
            (zone, same.map(|(_, r)| r))
        })
        .collect();
    // What is left, oldest first, fills the deficits that found no
    // instance in their zone.
    let mut rest: Vec<(usize, Retiring<'o>)> = by_zone.into_values().flatten().collect();
    rest.sort_by_key(|(age, _)| *age);
    let mut rest = rest.into_iter().map(|(_, r)| r);
    for slot in slots.iter_mut().filter(|(_, r)| r.is_none()) {
        match rest.next() {
            Some(r) => slot.1 = Some(r),
            None => break,
        }
    }
    let leftover: Vec<Retiring<'o>> = rest.collect();
    let mut pairs = Vec::new();
    let mut growth = Vec::new();
    for (zone, r) in slots {
        match r {
            Some(r) => pairs.push((zone, r)),
            None => growth.push(zone),
        }
    }
    (pairs, leftover, growth)
}

/// Groups a list of zones (one entry per instance) into counts, keeping the
/// order zones first appear in.
pub(super) fn group_zones(zones: &[Zone]) -> Vec<(Zone, u32)> {
    let mut out: Vec<(Zone, u32)> = Vec::new();
    for z in zones {
        match out.iter_mut().find(|(x, _)| x == z) {
            Some((_, n)) => *n += 1,
            None => out.push((z.clone(), 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{InstanceState, ObservedInstance};
    use crate::plan::TerminateReason;
    use jiff::Timestamp;

    #[test]
    fn spread_gives_the_remainder_to_the_first_zones() {
        let z = |s: &'static str| Zone::from(s);
        let zones = [z("a"), z("b")];
        assert_eq!(spread(3, &zones), vec![(z("a"), 2), (z("b"), 1)]);
        assert_eq!(spread(0, &zones), vec![(z("a"), 0), (z("b"), 0)]);
        assert_eq!(spread(4, &zones), vec![(z("a"), 2), (z("b"), 2)]);
        assert!(spread(4, &[]).is_empty());
    }

    #[test]
    fn fill_grows_the_emptiest_zones_and_shrinks_the_fullest() {
        let z = |s: &'static str| Zone::from(s);
        let zones = [z("a"), z("b")];
        // Nothing moves: b keeps its two when the target is already met.
        assert_eq!(fill(2, &zones, &[0, 2]), vec![(z("a"), 0), (z("b"), 2)]);
        assert_eq!(fill(3, &zones, &[0, 2]), vec![(z("a"), 1), (z("b"), 2)]);
        assert_eq!(fill(1, &zones, &[1, 1]), vec![(z("a"), 1), (z("b"), 0)]);
        assert_eq!(fill(0, &zones, &[1, 2]), vec![(z("a"), 0), (z("b"), 0)]);
        assert_eq!(fill(3, &zones, &[0, 0]), spread(3, &zones));
        assert!(fill(4, &[], &[]).is_empty());
    }

    #[test]
    fn successors_go_in_their_predecessors_zone_first() {
        let z = |s: &'static str| Zone::from(s);
        let inst = |id: &'static str, zone: &'static str, minute: i64| ObservedInstance {
            vpc: None,
            public_ip: None,
            subnet: None,
            id: id.into(),
            owner: crate::observed::Owner {
                stack: "s".into(),
                kind: crate::ids::Kind::Fleet,
                name: "app".into(),
            },
            zone: z(zone),
            state: InstanceState::Running,
            private_ip: None,
            launched_at: Timestamp::UNIX_EPOCH
                .checked_add(jiff::SignedDuration::from_mins(minute))
                .unwrap_or(Timestamp::UNIX_EPOCH),
            image: "ami-1".into(),
            instance_type: "t3.micro".into(),
            key_name: None,
            groups: Vec::new(),
            spec_hash: None,
            user_data: None,
            tags: Default::default(),
            profile: None,
            metadata: Default::default(),
        };
        // Oldest first: b1 (minute 1), a1 (2), b2 (3), a2 (4).
        let all = [
            inst("i-b1", "b", 1),
            inst("i-a1", "a", 2),
            inst("i-b2", "b", 3),
            inst("i-a2", "a", 4),
        ];
        let old: Vec<Retiring> = all
            .iter()
            .map(|i| Retiring {
                instance: i,
                reason: TerminateReason::Outdated,
            })
            .collect();
        let ids = |v: &[(Zone, Retiring)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(zone, r)| (zone.to_string(), r.instance.id.to_string()))
                .collect()
        };
        // Two deficits in a, one in b: a's take a's instances, b's takes
        // b's oldest; b2 is left over (the fleet shrinks).
        let (pairs, leftover, growth) = pair_by_zone(vec![z("a"), z("a"), z("b")], old.clone());
        assert_eq!(
            ids(&pairs),
            [("a", "i-a1"), ("a", "i-a2"), ("b", "i-b1")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(leftover.len(), 1);
        assert_eq!(leftover[0].instance.id.as_str(), "i-b2");
        assert!(growth.is_empty());
        // Deficits in a zone nobody runs in take the oldest remaining;
        // deficits beyond the instances are growth.
        let (pairs, leftover, growth) =
            pair_by_zone(vec![z("a"), z("c"), z("c"), z("c"), z("c")], old);
        assert_eq!(
            ids(&pairs),
            [("a", "i-a1"), ("c", "i-b1"), ("c", "i-b2"), ("c", "i-a2")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(leftover.is_empty());
        assert_eq!(growth, vec![z("c")]);
    }
}
