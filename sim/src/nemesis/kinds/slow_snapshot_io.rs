//! Snapshot generation and apply on a store take `factor` times longer until
//! the fault ends; its other disk work runs at the usual speed.

use super::*;

/// `store`'s snapshot IO is `factor` times slower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowSnapshotIo {
    pub store: u64,
    pub factor: u64,
}

impl Kind for SlowSnapshotIo {
    fn weight(weights: &Weights) -> u32 {
        weights.slow_snapshot_io
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        SlowSnapshotIo { store: d.store(on.stores), factor: 100 + d.below(900) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        (vec![], disk::start_slow(n, state, self.store, self.factor, true))
    }

    fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        disk::heal_slow(n, state, self.store);
    }
}
