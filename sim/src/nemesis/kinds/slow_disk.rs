//! Every disk operation of a store takes `factor` times longer until the
//! fault ends.

use super::*;

/// `store`'s disks are `factor` times slower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowDisk {
    pub store: u64,
    pub factor: u64,
}

impl Kind for SlowDisk {
    fn weight(weights: &Weights) -> u32 {
        weights.slow_disk
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        SlowDisk { store: d.store(on.stores), factor: 10 + d.below(90) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        (vec![], disk::start_slow(n, state, self.store, self.factor, false))
    }

    fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        disk::heal_slow(n, state, self.store);
    }
}
