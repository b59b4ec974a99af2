//! What the partition kinds share: cutting one store off from everyone, and
//! finding the region a fault names by index and its leader now.

use super::{between, Link, Nemesis};

/// Every store but `store`.
pub(super) fn others(n: &Nemesis, store: u64) -> Vec<u64> {
    n.store_ids().into_iter().filter(|&s| s != store).collect()
}

/// The links that cut `store` off from every other store and every client.
pub(super) fn isolate(n: &Nemesis, store: u64) -> Vec<Link> {
    let mut links = between(&n.nodes(&[store]), &n.nodes(&others(n, store)));
    links.extend(between(&n.nodes(&[store]), &n.client_nodes()));
    links
}

/// The region a fault names by index (in key order, wrapping around) and the
/// store that leads it now, if one is known.
pub(super) fn region_and_leader(n: &Nemesis, region_index: u64) -> (simkv::meta::Region, Option<u64>) {
    let topology = n.cluster.topology();
    let regions = topology.regions_in_order();
    let region = regions[region_index as usize % regions.len()].clone();
    let leader = topology.leader_of(region.id);
    (region, leader)
}
