//! The lock checker: once the clients have stopped and sweeps have resolved
//! every lock they found, no replica holds a lock. A lock left behind is a
//! transaction nobody can finish or roll back (a commit that left its lock,
//! a resolution that missed a replica).

use simkv::engine::KvPair;
use simkv::meta::{RegionId, StoreId};

/// One replica's lock CF.
pub struct Replica {
    pub store_id: StoreId,
    pub region_id: RegionId,
    pub locks: Vec<KvPair>,
}

/// Every lock the replicas hold, described.
pub fn held(replicas: &[Replica]) -> Vec<String> {
    let mut out = Vec::new();
    for replica in replicas {
        for (key, value) in &replica.locks {
            let user_key =
                simkv::codec::keys::decode_lock_key(key).map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_else(|e| format!("{key:?} ({e})"));
            let lock = simkv::mvcc::Lock::decode(value);
            out.push(format!(
                "store {} region {}: key {user_key:?} locked by transaction {} (primary {:?})",
                replica.store_id,
                replica.region_id,
                lock.start_ts,
                String::from_utf8_lossy(&lock.primary)
            ));
        }
    }
    out
}

/// The failure for locks still `held` at the end of the liveness phase.
pub fn explain(held: &[String]) -> String {
    let shown: Vec<&str> = held.iter().take(3).map(String::as_str).collect();
    format!(
        "{} lock(s) outlived their transactions' resolution (the clients had stopped and sweeps had resolved every lock they found): {}",
        held.len(),
        shown.join("; ")
    )
}
