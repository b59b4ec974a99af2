//! Writing a store's first state.

use super::state::{self, ApplyState, PeerState, RaftLocalState, RegionLocalState, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use crate::codec::keys;
use crate::engine::{Cf, Engine, EngineError, Snapshot as _, WriteBatch};
use crate::meta::{Region, StoreId};

/// Writes the initial state of every region with a replica on `store_id`, unless
/// the store was bootstrapped before. Every replica starts from the same truncated
/// log position, as TiKV's bootstrap does.
pub async fn bootstrap_store<E: Engine>(raft_engine: &E, kv_engine: &E, store_id: StoreId, regions: &[Region]) -> Result<bool, EngineError> {
    let (start, end) = keys::region_state_range();
    if !kv_engine.snapshot().scan(Cf::Raft, &start, Some(&end), 1, false)?.is_empty() {
        return Ok(false);
    }
    let (mut raft_batch, mut kv_batch) = (WriteBatch::new(), WriteBatch::new());
    for region in regions.iter().filter(|r| r.peer_on_store(store_id).is_some()) {
        let raft_state = RaftLocalState { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX, last_index: RAFT_INIT_LOG_INDEX };
        let apply_state = ApplyState { applied_index: RAFT_INIT_LOG_INDEX, truncated_index: RAFT_INIT_LOG_INDEX, truncated_term: RAFT_INIT_LOG_TERM };
        raft_batch.put(Cf::Raft, keys::raft_state_key(region.id), state::encode(&raft_state));
        kv_batch.put(Cf::Raft, keys::apply_state_key(region.id), state::encode(&apply_state));
        let local = RegionLocalState { state: PeerState::Normal, region: region.clone() };
        kv_batch.put(Cf::Raft, keys::region_state_key(region.id), state::encode(&local));
    }
    raft_engine.write(&raft_batch, true).await?;
    kv_engine.write(&kv_batch, true).await?;
    Ok(true)
}
