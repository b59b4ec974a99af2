//! Pause: the store's process stops running (timers and messages wait) until the
//! fault ends — a long GC pause or a stopped VM.

use super::{FaultState, Nemesis};

pub(super) fn start(n: &Nemesis, state: &mut FaultState, store: u64) -> String {
    if state.paused.insert(store) && !state.down.contains(&store) {
        n.cluster.pause(store);
    }
    format!("pause store {store}")
}

pub(super) fn heal(n: &Nemesis, state: &mut FaultState, store: u64) {
    if state.paused.remove(&store) && !state.down.contains(&store) {
        n.cluster.resume(store);
    }
}
