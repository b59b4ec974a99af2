//! The persisted per-region state, and how it is encoded.
//!
//! * [`RaftLocalState`] (raft engine, `raft_state_key`): hard state and last index,
//!   written in the same synced batch as the log entries it describes.
//! * [`ApplyState`] (kv engine, `apply_state_key`): applied index and the truncated
//!   (compacted) log position, written in the same batch as the data it describes, so
//!   a crash can never separate data from the index that says it was applied.
//! * [`RegionLocalState`] (kv engine, `region_state_key`): the region descriptor and
//!   whether this peer is live, applying a snapshot, or tombstoned.
//!
//! Persisted state that fails to decode means the disk is corrupt: the store
//! panics rather than guess, as TiKV does.

use crate::meta::Region;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first log index and term of a bootstrapped region, as in TiKV: every replica
/// starts from the same truncated position, so no snapshot is needed to begin.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
pub const RAFT_INIT_LOG_TERM: u64 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftLocalState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
    pub last_index: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyState {
    pub applied_index: u64,
    pub truncated_index: u64,
    pub truncated_term: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    Normal,
    /// A snapshot was accepted and its data is being written.
    Applying,
    /// Peer `peer_id` was removed (its data and log are gone); the region
    /// descriptor is the one it died at. No message recreates a peer here
    /// with this id or a lower one, or from an epoch older than this one.
    Tombstone {
        peer_id: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionLocalState {
    pub state: PeerState,
    pub region: Region,
}

/// Adds to `batch` what destroying peer `peer_id` of `region` writes to the kv
/// engine: its data (when it holds any) and apply state deleted, and a
/// tombstone in place of its region state. One batch: a crash leaves the live
/// peer or the tombstone, never half of each.
pub fn tombstone_into(batch: &mut crate::engine::WriteBatch, region: &Region, peer_id: u64, has_data: bool) {
    use crate::codec::keys;
    use crate::engine::Cf;
    if has_data {
        let (begin, end) = keys::region_data_range(&region.start_key, &region.end_key);
        for cf in crate::engine::DATA_CFS {
            batch.delete_range(cf, begin.clone(), end.clone());
        }
    }
    batch.delete(Cf::Raft, keys::apply_state_key(region.id));
    let local = RegionLocalState { state: PeerState::Tombstone { peer_id }, region: region.clone() };
    batch.put(Cf::Raft, keys::region_state_key(region.id), encode(&local));
}

/// Encodes persisted state (bincode, fixed layout).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory state always serializes")
}

/// Decodes persisted state; corrupt state crashes the node with what and where.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str, engine: &str) -> T {
    bincode::deserialize(bytes).unwrap_or_else(|e| panic!("corrupt {what} in {engine}: {e}"))
}
