//! A store's process dies, and its disks lose what was not synced (a seeded
//! prefix of the unsynced batches survives); it restarts when the fault
//! ends, rebuilding every peer from its disks.

use super::*;

/// `store` crashes, and restarts when the fault ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashRestart {
    pub store: u64,
}

impl Kind for CrashRestart {
    fn weight(weights: &Weights) -> u32 {
        weights.crash_restart
    }

    fn draw(d: &mut Draw, on: &mut Target) -> Self {
        CrashRestart { store: d.store(on.stores) }
    }

    fn stores(&self) -> Vec<u64> {
        vec![self.store]
    }

    fn start(&self, n: &Nemesis, state: &mut FaultState) -> (Vec<Link>, String) {
        crash::crash_store(n, state, self.store);
        (vec![], format!("crash store {}", self.store))
    }

    fn heal(&self, n: &Nemesis, state: &mut FaultState) {
        crash::restart_store(n, state, self.store);
    }
}
