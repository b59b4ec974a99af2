//! Whichever store leads a region when the fault starts is cut off from
//! every other store and from the clients.

use super::*;

/// The leader of the region at `region_index` (in key order) is cut off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateLeader {
    pub region_index: u64,
}

impl Kind for IsolateLeader {
    fn weight(weights: &Weights) -> u32 {
        weights.isolate_leader
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        IsolateLeader { region_index: d.below(on.regions) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        let (region, leader) = partition::region_and_leader(n, self.region_index);
        match leader {
            Some(leader) => (partition::isolate(n, leader), format!("isolate store {leader}, leader of region {}", region.id)),
            None => (vec![], format!("isolate the leader of region {}: none known", region.id)),
        }
    }
}
