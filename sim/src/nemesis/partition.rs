//! Partitions between stores: random halves, one store isolated (from stores and
//! clients), the current leader of a region isolated, an asymmetric (one-way)
//! partition, and a bridge (two sides that meet only through one store).

use super::{between, Fault, Link, Nemesis};

/// The links a partition fault cuts, and how to say what it did; `None` for
/// faults that are not partitions.
pub(super) fn links(n: &Nemesis, fault: &Fault) -> Option<(Vec<Link>, String)> {
    let all = n.store_ids();
    let others = |store: u64| all.iter().copied().filter(|&s| s != store).collect::<Vec<_>>();
    let isolate = |store: u64| {
        let mut links = between(&n.nodes(&[store]), &n.nodes(&others(store)));
        links.extend(between(&n.nodes(&[store]), &n.client_nodes()));
        links
    };
    Some(match fault {
        Fault::PartitionHalves { side } => {
            let rest: Vec<u64> = all.iter().copied().filter(|s| !side.contains(s)).collect();
            (between(&n.nodes(side), &n.nodes(&rest)), format!("partition {side:?} | {rest:?}"))
        }
        Fault::IsolateStore { store } => (isolate(*store), format!("isolate store {store}")),
        Fault::IsolateLeader { region_index } => {
            let (region, leader) = region_and_leader(n, *region_index);
            match leader {
                Some(leader) => (isolate(leader), format!("isolate store {leader}, leader of region {}", region.id)),
                None => (vec![], format!("isolate the leader of region {}: none known", region.id)),
            }
        }
        Fault::Asymmetric { from, to } => {
            // Everything `from` sends to `to` is lost; `to` still reaches `from`.
            let targets = n.nodes(to);
            let links = n.nodes(from).into_iter().flat_map(|a| targets.iter().map(move |&b| (a, b))).collect();
            (links, format!("one-way: {from:?} cannot send to {to:?}, but hear from them"))
        }
        Fault::SlowLeaderCutOff { region_index } => {
            let (region, leader) = region_and_leader(n, *region_index);
            let Some(leader) = leader else {
                return Some((vec![], format!("slow the clock of region {}'s leader: none known", region.id)));
            };
            let x = n.clock_rates.iter().map(|r| (r - 1.0).abs()).fold(0.0, f64::max);
            for slot in n.cluster.stores.values() {
                slot.clock.set_rate(if slot.id == leader { 1.0 - x } else { 1.0 + x });
            }
            (
                between(&n.nodes(&[leader]), &n.nodes(&others(leader))),
                format!("store {leader}, leader of region {}, clock slow by {x:.3}, others fast, cut off from the other stores", region.id),
            )
        }
        Fault::LeaderWithOneFollower { region_index } => {
            let (region, leader) = region_and_leader(n, *region_index);
            let Some(leader) = leader else {
                return Some((vec![], format!("cut region {}'s leader off with one follower: no leader known", region.id)));
            };
            let follower = region.peers.iter().map(|p| p.store_id).filter(|&s| s != leader).min();
            let side: Vec<u64> = std::iter::once(leader).chain(follower).collect();
            let rest: Vec<u64> = all.iter().copied().filter(|s| !side.contains(s)).collect();
            let what = match follower {
                Some(f) => format!("store {leader}, leader of region {}, with its follower on store {f}, cut off from {rest:?}", region.id),
                None => format!("store {leader}, leader of region {} (no follower), cut off from {rest:?}", region.id),
            };
            (between(&n.nodes(&side), &n.nodes(&rest)), what)
        }
        Fault::IsolatePd => {
            let mut others = n.nodes(&all);
            others.extend(n.client_nodes());
            (between(&[n.pd_node()], &others), "isolate pd".to_string())
        }
        Fault::Bridge { left, bridge, right } => {
            (between(&n.nodes(left), &n.nodes(right)), format!("bridge: {left:?} and {right:?} meet only through store {bridge}"))
        }
        _ => return None,
    })
}

/// The region a fault names by index (in key order, wrapping around) and the
/// store that leads it now, if one is known.
fn region_and_leader(n: &Nemesis, region_index: u64) -> (simkv::meta::Region, Option<u64>) {
    let topology = n.cluster.topology();
    let regions = topology.regions_in_order();
    let region = regions[region_index as usize % regions.len()].clone();
    let leader = topology.leader_of(region.id);
    (region, leader)
}
