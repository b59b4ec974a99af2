//! Crash and restart: the store's process dies and its disks lose what was not
//! synced (a seeded prefix of the unsynced batches survives); it restarts when
//! the fault ends, rebuilding every peer from its disks. PD likewise, with its
//! clock set back when it comes back.

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

pub(super) fn start_pd(n: &Nemesis, state: &mut FaultState, clock_back_ms: u64) -> String {
    crash_pd(n, state);
    format!("crash pd (it comes back with its clock {clock_back_ms} ms behind)")
}

pub(super) fn heal_pd(n: &Nemesis, state: &mut FaultState, clock_back_ms: u64) {
    restart_pd(n, state, clock_back_ms);
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
