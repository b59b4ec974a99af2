//! The next fsync on a store's raft disk (or kv disk) fails: the store must
//! not acknowledge what it could not make durable.

use super::*;

/// The next fsync on `store`'s kv disk (`kv`) or raft disk fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSync {
    pub store: u64,
    pub kv: bool,
}

impl Kind for FailSync {
    fn weight(weights: &Weights) -> u32 {
        weights.fail_sync
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        FailSync { store: d.store(on.stores), kv: d.below(2) == 1 }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, _: &mut FaultState) -> (Vec<Link>, String) {
        (vec![], disk::fail_sync(n, self.store, self.kv))
    }
}
