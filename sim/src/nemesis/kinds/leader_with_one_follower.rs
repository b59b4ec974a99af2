//! A region's leader and exactly one of its followers are cut off from every
//! other store: with 5 replicas, the leader keeps one follower's answers and
//! no quorum, the shape a lease renewed by one answer needs.

use super::*;

/// The leader of the region at `region_index` (when the fault starts) and
/// its follower on the lowest store id are cut off from the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderWithOneFollower {
    pub region_index: u64,
}

impl Kind for LeaderWithOneFollower {
    fn weight(weights: &Weights) -> u32 {
        weights.leader_with_one_follower
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        LeaderWithOneFollower { region_index: d.below(on.regions) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let (region, leader) = partition::region_and_leader(n, self.region_index);
        let Some(leader) = leader else {
            return (vec![], format!("cut region {}'s leader off with one follower: no leader known", region.id));
        };
        let follower = region.peers.iter().map(|p| p.store_id).filter(|&s| s != leader).min();
        let side: Vec<u64> = std::iter::once(leader).chain(follower).collect();
        let rest: Vec<u64> = n.store_ids().into_iter().filter(|s| !side.contains(s)).collect();
        let what = match follower {
            Some(f) => format!("store {leader}, leader of region {}, with its follower on store {f}, cut off from {rest:?}", region.id),
            None => format!("store {leader}, leader of region {} (no follower), cut off from {rest:?}", region.id),
        };
        (between(&n.nodes(&side), &n.nodes(&rest)), what)
    }
}
