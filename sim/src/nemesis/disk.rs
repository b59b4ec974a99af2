//! What the disk kinds share: slow windows (every disk operation of a store,
//! or only snapshot generation and apply, takes `factor` times longer until
//! the fault ends; overlapping windows on one store are counted), a damaged
//! value (a flipped bit or an unreadable block) in a store's data, and an
//! fsync that fails.

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

pub(super) fn heal_slow(n: &Nemesis, state: &mut FaultState, store: u64) {
    let count = state.slow.entry(store).or_insert(1);
    *count -= 1;
    if *count == 0 {
        state.slow.remove(&store);
        set(n, store, n.baseline_io.clone());
    }
}

pub(super) fn set(n: &Nemesis, store: u64, profile: IoProfile) {
    #[cfg(not(madsim))]
    {
        sim_only(n, store, profile)
    }
    #[cfg(madsim)]
    {
        if let Some(slot) = n.cluster.stores.get(&store) {
            slot.raft_disk.set_profile(profile.clone());
            slot.kv_disk.set_profile(profile);
        }
    }
}

/// Damages one value of the store's data CFs, drawn from the run's seed.
pub(super) fn damage(n: &Nemesis, store: u64, damage: simkv::engine::Damage) -> String {
    #[cfg(not(madsim))]
    {
        sim_only(n, store, damage)
    }
    #[cfg(madsim)]
    {
        use rand::Rng;
        let Some(slot) = n.cluster.stores.get(&store) else { return format!("no store {store} to damage") };
        let mut rng = madsim::rand::thread_rng();
        let (pick, bit) = (rng.gen::<u64>(), rng.gen_range(0..4096usize));
        match slot.kv_disk.nth_key(&simkv::engine::DATA_CFS, pick) {
            Some((cf, key)) => {
                slot.kv_disk.damage(cf, &key, damage, bit);
                format!("{damage:?} in the {} CF of store {store} at key {}", cf.name(), key.escape_ascii())
            }
            None => format!("nothing stored on store {store} to damage yet"),
        }
    }
}

/// The next fsync on the store's raft (or kv) disk fails.
pub(super) fn fail_sync(n: &Nemesis, store: u64, kv: bool) -> String {
    #[cfg(not(madsim))]
    {
        sim_only(n, store, kv)
    }
    #[cfg(madsim)]
    {
        let Some(slot) = n.cluster.stores.get(&store) else { return format!("no store {store}") };
        let (disk, which) = if kv { (&slot.kv_disk, "kv") } else { (&slot.raft_disk, "raft") };
        disk.fail_next_sync();
        format!("the next fsync on store {store}'s {which} disk fails")
    }
}

/// A real run refuses a plan with a disk fault before it starts (see
/// `Fault::sim_only`): RocksDB's files are not the testbed's to slow or damage.
#[cfg(not(madsim))]
fn sim_only(_: &Nemesis, store: u64, what: impl std::fmt::Debug) -> ! {
    unreachable!("a disk fault ({what:?} on store {store}) reached a real run; plans holding one are refused before it starts")
}
