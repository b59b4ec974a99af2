//! Slow disk and slow snapshot IO windows: every disk operation of a store (or
//! only snapshot generation and apply) takes `factor` times longer until the
//! fault ends.

use super::{FaultState, Nemesis};
use simkv::engine::IoProfile;

pub(super) fn start_slow(n: &Nemesis, state: &mut FaultState, store: u64, factor: u64, snapshot_only: bool) -> String {
    *state.slow.entry(store).or_insert(0) += 1;
    let profile =
        if snapshot_only { IoProfile { snapshot_slowdown: factor, ..n.baseline_io.clone() } } else { IoProfile { slowdown: factor, ..n.baseline_io.clone() } };
    set(n, store, profile);
    let what = if snapshot_only { "snapshot IO" } else { "disk" };
    format!("slow {what} on store {store} (x{factor})")
}

pub(super) fn heal(n: &Nemesis, state: &mut FaultState, store: u64) {
    let count = state.slow.entry(store).or_insert(1);
    *count -= 1;
    if *count == 0 {
        state.slow.remove(&store);
        set(n, store, n.baseline_io.clone());
    }
}

pub(super) fn set(n: &Nemesis, store: u64, profile: IoProfile) {
    if let Some(slot) = n.cluster.stores.get(&store) {
        slot.raft_disk.set_profile(profile.clone());
        slot.kv_disk.set_profile(profile);
    }
}
