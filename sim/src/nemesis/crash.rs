//! Crash and restart: the store's process dies and its disks lose what was not
//! synced (a seeded prefix of the unsynced batches survives); it restarts when
//! the fault ends, rebuilding every peer from its disks.

use super::{FaultState, Nemesis};

pub(super) fn start(n: &Nemesis, state: &mut FaultState, store: u64) -> String {
    if state.down.insert(store) {
        n.cluster.crash(store);
    }
    format!("crash store {store}")
}

pub(super) fn heal(n: &Nemesis, state: &mut FaultState, store: u64) {
    if state.down.remove(&store) {
        n.cluster.restart(store);
        // A restarted process is not paused.
        state.paused.remove(&store);
    }
}
