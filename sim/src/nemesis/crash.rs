//! Crashing and restarting processes, for the crash kinds and the buggify
//! crash points alike: a store's process dies and its disks lose what was
//! not synced (a seeded prefix of the unsynced batches survives); it
//! restarts rebuilding every peer from its disks. PD likewise, with its
//! clock set back when it comes back. Overlapping crashes compose: each
//! function does nothing, and says so, if the process is already down (or
//! up).

use super::{FaultState, Nemesis};

/// Crashes `store` unless it is down already; says whether it did.
pub(super) fn crash_store(n: &Nemesis, state: &mut FaultState, store: u64) -> bool {
    if !state.down.insert(store) {
        return false;
    }
    n.cluster.crash(store);
    true
}

/// Restarts `store` unless it is up already; says whether it did. A
/// restarted process is not paused.
pub(super) fn restart_store(n: &Nemesis, state: &mut FaultState, store: u64) -> bool {
    if !state.down.remove(&store) {
        return false;
    }
    n.cluster.restart(store);
    state.paused.remove(&store);
    true
}

/// Crashes PD unless it is down already; says whether it did.
pub(super) fn crash_pd(n: &Nemesis, state: &mut FaultState) -> bool {
    if std::mem::replace(&mut state.pd_down, true) {
        return false;
    }
    n.cluster.crash_pd();
    true
}

/// Restarts PD, its clock `clock_back_ms` behind, unless it is up already;
/// says whether it did.
pub(super) fn restart_pd(n: &Nemesis, state: &mut FaultState, clock_back_ms: u64) -> bool {
    if !std::mem::take(&mut state.pd_down) {
        return false;
    }
    n.cluster.restart_pd(-(clock_back_ms as i64));
    true
}
