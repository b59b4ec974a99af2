//! Region snapshots, their whole life: generation, sending in chunks, reassembly,
//! validation, applying, and finishing an apply that a crash interrupted.
//!
//! Snapshots are asynchronous as in TiKV. The [`SnapshotWorker`] takes jobs from
//! the store (generate this region at this index; write this received snapshot)
//! and runs each in a background task that pays simulated snapshot IO, reporting
//! back through the store's mailbox ([`StoreMsg::SnapshotGenerated`],
//! [`StoreMsg::SnapshotApplied`]). While a snapshot's data is written, the peer
//! refuses proposals and holds back committed entries; the snapshot itself stays
//! on the raft engine until its data is durable, so a crash in between is
//! finished by [`recover_pending`] before the peer starts.

use super::router::{engine_ok, Stopped, StoreMsg};
use super::state::{self, ApplyState, PeerState, RegionLocalState};
use super::storage::{conf_state_of, PeerStorage};
use crate::codec::keys;
use crate::engine::{Cf, Engine, EngineError, IoKind, KvPair, Snapshot as _, WriteBatch, DATA_CFS};
use crate::meta::{Region, RegionId};
use crate::planted::{Bug, Bugs};
use crate::transport::{RaftEnvelope, SnapshotChunk};
use bincode::Options as _;
use futures::channel::mpsc;
use futures::SinkExt;
use madsim::time::Instant;
use protobuf::Message as _;
use raft::eraftpb::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The region data a raft snapshot carries (the `data` of raft's `Snapshot`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotData {
    pub region: Region,
    /// Pairs of each data CF, by CF index.
    pub cfs: Vec<(u8, Vec<KvPair>)>,
}

impl SnapshotData {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("snapshot data serializes")
    }

    /// Decodes bytes from the network: a bad length prefix cannot make it allocate
    /// more than the bytes could hold.
    pub fn decode(bytes: &[u8]) -> Result<Self, bincode::Error> {
        Self::options(bytes.len()).deserialize(bytes)
    }

    /// bincode as `encode` writes it, bounded for `len` bytes of input.
    fn options(len: usize) -> impl bincode::Options {
        use bincode::Options;
        bincode::options().with_fixint_encoding().allow_trailing_bytes().with_limit(len as u64 * 2 + 1024)
    }
}

/// One chunk's payload. The first chunk carries the raft message (its
/// snapshot's data emptied) and the region; every other chunk carries a run of
/// one CF's pairs, at most about `chunk_bytes` of them, so a receiver could
/// write each as it comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChunkPart {
    header: Option<(Vec<u8>, Region)>,
    cf: u8,
    pairs: Vec<KvPair>,
}

/// Cuts a raft message carrying snapshot `(term, index)` into chunks.
pub fn into_chunks(envelope: &RaftEnvelope, snapshot: (u64, u64), chunk_bytes: usize) -> Vec<SnapshotChunk> {
    let mut message = raft::eraftpb::Message::parse_from_bytes(&envelope.message).expect("our own raft message decodes");
    let data = SnapshotData::decode(message.get_snapshot().get_data()).expect("our own snapshot data decodes");
    message.mut_snapshot().set_data(Default::default());
    let header = (message.write_to_bytes().expect("raft message encodes"), data.region);
    let mut parts = vec![ChunkPart { header: Some(header), cf: 0, pairs: Vec::new() }];
    for (cf, pairs) in data.cfs {
        let mut part = ChunkPart { header: None, cf, pairs: Vec::new() };
        let mut bytes = 0;
        for (k, v) in pairs {
            bytes += k.len() + v.len();
            part.pairs.push((k, v));
            if bytes >= chunk_bytes {
                parts.push(std::mem::replace(&mut part, ChunkPart { header: None, cf, pairs: Vec::new() }));
                bytes = 0;
            }
        }
        if !part.pairs.is_empty() {
            parts.push(part);
        }
    }
    let total = parts.len() as u32;
    parts
        .into_iter()
        .enumerate()
        .map(|(seq, part)| SnapshotChunk {
            region_id: envelope.region_id,
            from: envelope.from,
            to: envelope.to,
            epoch: envelope.epoch,
            start_key: envelope.start_key.clone(),
            end_key: envelope.end_key.clone(),
            snapshot,
            seq: seq as u32,
            total,
            data: bincode::serialize(&part).expect("chunk part serializes"),
        })
        .collect()
}

/// Rebuilds the raft message from its chunks' payloads, in order; None if a
/// payload does not decode or the header is missing.
fn reassemble(payloads: impl IntoIterator<Item = Vec<u8>>) -> Option<Vec<u8>> {
    let mut header = None;
    let mut cfs: Vec<(u8, Vec<KvPair>)> = Vec::new();
    for payload in payloads {
        let part: ChunkPart = SnapshotData::options(payload.len()).deserialize(&payload).ok()?;
        if let Some(h) = part.header {
            header = Some(h);
        }
        match cfs.last_mut() {
            Some((cf, pairs)) if *cf == part.cf => pairs.extend(part.pairs),
            _ if part.pairs.is_empty() => {}
            _ => cfs.push((part.cf, part.pairs)),
        }
    }
    let (message, region) = header?;
    let mut message = raft::eraftpb::Message::parse_from_bytes(&message).ok()?;
    message.mut_snapshot().set_data(SnapshotData { region, cfs }.encode().into());
    message.write_to_bytes().ok()
}

/// Who sent a snapshot in chunks: sender, region and (term, index).
type ChunkSource = (SocketAddr, RegionId, (u64, u64));

/// Snapshots arriving in chunks, reassembled into the raft messages they were.
/// A chunk delivered twice fills its slot twice, never two slots.
pub struct ChunkAssembler {
    receiving: BTreeMap<ChunkSource, Vec<Option<Vec<u8>>>>,
    max_receiving: usize,
    /// Planted bugs (`crate::planted`): none outside simulation.
    bugs: Bugs,
}

impl ChunkAssembler {
    pub fn new(max_receiving: usize) -> ChunkAssembler {
        ChunkAssembler { receiving: BTreeMap::new(), max_receiving: max_receiving.max(1), bugs: Bugs::NONE }
    }

    pub fn with_bugs(mut self, bugs: Bugs) -> ChunkAssembler {
        self.bugs = bugs;
        self
    }

    /// Adds a chunk; returns the whole message once its last chunk arrives.
    /// Malformed chunks are dropped; memory is bounded by forgetting the oldest
    /// half-received snapshot (raft sends it again).
    pub fn add(&mut self, from: SocketAddr, chunk: SnapshotChunk) -> Option<RaftEnvelope> {
        if chunk.total == 0 || chunk.seq >= chunk.total || chunk.total > 1 << 16 {
            tracing::warn!(%from, "dropping malformed snapshot chunk");
            return None;
        }
        let key = (from, chunk.region_id, chunk.snapshot);
        if !self.receiving.contains_key(&key) && self.receiving.len() >= self.max_receiving {
            let oldest = self.receiving.keys().next().cloned().expect("non-empty");
            self.receiving.remove(&oldest);
        }
        let parts = self.receiving.entry(key).or_insert_with(|| vec![None; chunk.total as usize]);
        if parts.len() != chunk.total as usize {
            return None;
        }
        if self.bugs.on(Bug::DuplicateChunkAppliedTwice) {
            // Arrival order, every chunk counted: the first empty slot takes it.
            let free = parts.iter().position(Option::is_none).expect("completed snapshots are removed");
            parts[free] = Some(chunk.data);
        } else {
            parts[chunk.seq as usize] = Some(chunk.data);
        }
        if !parts.iter().all(Option::is_some) {
            return None;
        }
        let parts = self.receiving.remove(&key).expect("present");
        let Some(message) = reassemble(parts.into_iter().flatten()) else {
            tracing::warn!(%from, region = chunk.region_id, "dropping a snapshot whose chunks do not reassemble");
            return None;
        };
        Some(RaftEnvelope {
            region_id: chunk.region_id,
            from: chunk.from,
            to: chunk.to,
            epoch: chunk.epoch,
            start_key: chunk.start_key,
            end_key: chunk.end_key,
            message,
            tombstone: false,
        })
    }
}

/// What a receiver must know of its own peer to judge a snapshot.
pub struct ReceiverState {
    pub region_id: RegionId,
    pub applying: bool,
    pub applied_index: u64,
    pub truncated_index: u64,
    /// A damaged replica asked for this snapshot: one at its applied index
    /// replaces its data and is not stale.
    pub repairing: bool,
}

/// Refuses snapshots that are stale, that do not decode, that are for another
/// region, that overlap another region on this store (`overlaps`), or that
/// arrive while one is still being applied.
pub fn validate(receiver: &ReceiverState, snapshot: &Snapshot, overlaps: impl Fn(&Region) -> bool) -> Result<(), &'static str> {
    let index = snapshot.get_metadata().index;
    if receiver.applying {
        return Err("another snapshot is being applied");
    }
    let stale = if receiver.repairing { index < receiver.applied_index } else { index <= receiver.applied_index || index <= receiver.truncated_index };
    if stale {
        return Err("stale: at or below the applied index");
    }
    let Ok(data) = SnapshotData::decode(snapshot.get_data()) else {
        return Err("snapshot data does not decode");
    };
    if data.region.id != receiver.region_id {
        return Err("snapshot is for another region");
    }
    if overlaps(&data.region) {
        return Err("overlaps another region on this store");
    }
    Ok(())
}

/// Runs snapshot jobs in the background and reports to the store's mailbox.
pub struct SnapshotWorker<E: Engine> {
    store_id: crate::meta::StoreId,
    kv_engine: E,
    raft_engine: E,
    tx: mpsc::Sender<StoreMsg>,
    chunk_bytes: usize,
    batch_pairs: usize,
    /// Planted bugs (`crate::planted`): none outside simulation.
    bugs: Bugs,
}

impl<E: Engine> SnapshotWorker<E> {
    /// Whether applying clears the region's old data first (always, unless a
    /// planted bug says not to).
    fn clears(&self) -> bool {
        !self.bugs.on(Bug::SnapshotKeepsStaleKeys)
    }

    pub fn new(store_id: crate::meta::StoreId, engines: (E, E), tx: mpsc::Sender<StoreMsg>, chunk_bytes: usize, batch_pairs: usize, bugs: Bugs) -> Self {
        let (kv_engine, raft_engine) = engines;
        SnapshotWorker { store_id, kv_engine, raft_engine, tx, chunk_bytes, batch_pairs, bugs }
    }

    /// Builds a snapshot of `region` as applied at (`index`, `term`) from a kv
    /// snapshot taken now, reading batch by batch as a streaming reader would.
    pub fn generate(&self, region: Region, index: u64, term: u64) {
        let (engine, snap, mut tx, batch_pairs) = (self.kv_engine.clone(), self.kv_engine.snapshot(), self.tx.clone(), self.batch_pairs.max(1));
        madsim::task::spawn(async move {
            let start = Instant::now();
            let mut cfs = Vec::new();
            let (begin, end) = keys::region_data_range(&region.start_key, &region.end_key);
            for cf in DATA_CFS {
                let pairs = snap.scan(cf, &begin, Some(&end), usize::MAX, false).expect("snapshot read");
                for batch in pairs.chunks(batch_pairs) {
                    engine.io(IoKind::SnapshotRead, batch.iter().map(|(k, v)| k.len() + v.len()).sum()).await;
                }
                cfs.push((cf.index() as u8, pairs));
            }
            if let Some(failure) = snap.failure() {
                // Never replicate what this disk cannot vouch for.
                let reason = format!("generating a snapshot at index {index}: {failure}");
                let _ = tx.send(StoreMsg::Corrupted { region_id: region.id, reason }).await;
                return;
            }
            let mut snapshot = Snapshot::default();
            snapshot.set_data(SnapshotData { region: region.clone(), cfs }.encode().into());
            let meta = snapshot.mut_metadata();
            meta.index = index;
            meta.term = term;
            meta.set_conf_state(conf_state_of(&region));
            let bytes = snapshot.get_data().len();
            let _ = tx.send(StoreMsg::SnapshotGenerated { region_id: region.id, snapshot: Box::new(snapshot), bytes, took: start.elapsed() }).await;
        });
    }

    /// Adopts a received snapshot from a ready: the log now starts after it, the
    /// snapshot is kept on the raft engine until its data is written, the region
    /// is marked applying, and the data is written in the background.
    pub async fn start_apply(&self, storage: &mut PeerStorage<E>, snapshot: Snapshot) -> Result<(), Stopped> {
        let region_id = storage.region_id;
        let data = SnapshotData::decode(snapshot.get_data()).expect("validated on receipt");
        let index = snapshot.get_metadata().index;
        let mut raft_batch = WriteBatch::new();
        storage.apply_snapshot_meta(&snapshot, data.region.clone(), &mut raft_batch);
        raft_batch.put(Cf::Raft, keys::pending_snapshot_key(region_id), snapshot.write_to_bytes().expect("snapshot encodes"));
        let mut kv_batch = WriteBatch::new();
        let local = RegionLocalState { state: PeerState::Applying, region: data.region.clone() };
        kv_batch.put(Cf::Raft, keys::region_state_key(region_id), state::encode(&local));
        if self.bugs.on(Bug::MarkApplyingFirst) {
            // Planted bug: the region is marked applying before the snapshot
            // it is applying is kept anywhere.
            engine_ok(self.kv_engine.write(&kv_batch, true).await, "mark applying")?;
            crate::buggify::crash_point(crate::buggify::Site::CrashAfterSnapshotMeta, self.store_id).await;
            engine_ok(self.raft_engine.write(&raft_batch, true).await, "persist snapshot")?;
        } else {
            engine_ok(self.raft_engine.write(&raft_batch, true).await, "persist snapshot")?;
            crate::buggify::crash_point(crate::buggify::Site::CrashAfterSnapshotMeta, self.store_id).await;
            engine_ok(self.kv_engine.write(&kv_batch, true).await, "mark applying")?;
        }
        let (engine, mut tx, chunk_bytes, clear) = (self.kv_engine.clone(), self.tx.clone(), self.chunk_bytes, self.clears());
        let state = ApplyState { applied_index: index, ..storage.apply_state };
        madsim::task::spawn(async move {
            let start = Instant::now();
            let bytes = snapshot.get_data().len();
            match write_data(&engine, data, state, chunk_bytes, clear).await {
                Ok(()) => drop(tx.send(StoreMsg::SnapshotApplied { region_id, index, bytes, took: start.elapsed() }).await),
                Err(EngineError::Closed(_)) => {}
                Err(e) => drop(tx.send(StoreMsg::DiskFailed(format!("writing snapshot data of region {region_id}: {e}"))).await),
            }
        });
        Ok(())
    }

    /// The data is written: the snapshot need not be kept any longer.
    pub async fn finish_apply(&self, region_id: RegionId) -> Result<(), Stopped> {
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Raft, keys::pending_snapshot_key(region_id));
        engine_ok(self.raft_engine.write(&batch, false).await, "drop applied snapshot")
    }

    /// Finishes a snapshot that a crash interrupted, before the peer starts.
    /// If its data had to be written again,
    /// `resumed` hears of it as soon as the data is durable (a stop right
    /// after must not hide it).
    pub async fn recover_pending(&self, region_id: RegionId, resumed: impl FnOnce(u64, Region)) -> Result<(), Stopped> {
        let key = keys::pending_snapshot_key(region_id);
        let Some(bytes) = engine_ok(self.raft_engine.snapshot().get(Cf::Raft, &key), "read pending snapshot")? else {
            return Ok(());
        };
        let snapshot = Snapshot::parse_from_bytes(&bytes).unwrap_or_else(|e| panic!("region {region_id}: corrupt pending snapshot: {e}"));
        let meta = snapshot.get_metadata();
        let apply_state: ApplyState = engine_ok(self.kv_engine.snapshot().get(Cf::Raft, &keys::apply_state_key(region_id)), "read apply state")?
            .map(|v| state::decode(&v, "apply state", self.kv_engine.name()))
            .unwrap_or_default();
        // Not written yet: the kv engine's state is behind the snapshot (a
        // damaged replica's repair may bring a snapshot at its own applied
        // index; its log was dropped up to it all the same).
        if meta.index > apply_state.applied_index || apply_state.truncated_index < meta.index {
            tracing::info!(region = region_id, index = meta.index, "finishing interrupted snapshot");
            let data = SnapshotData::decode(snapshot.get_data()).expect("pending snapshot decodes");
            let region = data.region.clone();
            let state = ApplyState { applied_index: meta.index, truncated_index: meta.index, truncated_term: meta.term };
            engine_ok(write_data(&self.kv_engine, data, state, self.chunk_bytes, self.clears()).await, "apply snapshot")?;
            resumed(meta.index, region);
        }
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Raft, key);
        engine_ok(self.raft_engine.write(&batch, true).await, "drop pending snapshot")
    }
}

/// Replaces the region's data with the snapshot's (clearing the old data first,
/// unless told not to), paying snapshot write IO, and marks the region live
/// again, all in one synced batch.
async fn write_data<E: Engine>(engine: &E, data: SnapshotData, apply_state: ApplyState, chunk_bytes: usize, clear: bool) -> Result<(), EngineError> {
    let region = data.region;
    let mut batch = WriteBatch::new();
    if clear {
        let (begin, end) = keys::region_data_range(&region.start_key, &region.end_key);
        for cf in DATA_CFS {
            batch.delete_range(cf, begin.clone(), end.clone());
        }
    }
    let mut pending_bytes = 0;
    for (cf_index, pairs) in data.cfs {
        let cf = DATA_CFS.into_iter().find(|cf| cf.index() == cf_index as usize).expect("snapshot CF is a data CF");
        for (k, v) in pairs {
            pending_bytes += k.len() + v.len();
            batch.put(cf, k, v);
            if pending_bytes >= chunk_bytes {
                engine.io(IoKind::SnapshotWrite, std::mem::take(&mut pending_bytes)).await;
            }
        }
    }
    engine.io(IoKind::SnapshotWrite, pending_bytes).await;
    batch.put(Cf::Raft, keys::apply_state_key(region.id), state::encode(&apply_state));
    let local = RegionLocalState { state: PeerState::Normal, region };
    batch.put(Cf::Raft, keys::region_state_key(local.region.id), state::encode(&local));
    engine.write(&batch, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Peer, RegionEpoch};

    /// A snapshot message for region 3 carrying `pairs` default-CF pairs and a
    /// few lock-CF ones.
    fn envelope(pairs: usize) -> RaftEnvelope {
        let region = Region { id: 3, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 1), peers: vec![] };
        let default: Vec<KvPair> = (0..pairs).map(|i| (format!("k{i:04}").into_bytes(), vec![i as u8; 20])).collect();
        let lock: Vec<KvPair> = (0..3).map(|i| (format!("l{i}").into_bytes(), b"lock".to_vec())).collect();
        let mut message = raft::eraftpb::Message::default();
        message.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
        message.mut_snapshot().set_data(SnapshotData { region, cfs: vec![(0, default), (1, lock)] }.encode().into());
        message.mut_snapshot().mut_metadata().index = 40;
        RaftEnvelope {
            region_id: 3,
            from: Peer::voter(31, 1),
            to: Peer::voter(32, 2),
            epoch: RegionEpoch::new(1, 1),
            start_key: vec![],
            end_key: vec![],
            message: message.write_to_bytes().unwrap(),
            tombstone: false,
        }
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 1, n], 20160))
    }

    /// Chunks cut at pair boundaries reassemble into the very message, in any
    /// arrival order, only when all have come, and a duplicate changes nothing.
    #[test]
    fn chunks_reassemble_in_any_order_and_only_when_complete() {
        let whole = envelope(40);
        let mut chunks = into_chunks(&whole, (2, 40), 300);
        assert_eq!(chunks.len(), 1 + 4 + 1, "a header, 40 pairs of 25 bytes in runs of 12, the lock CF");
        chunks.reverse();
        let mut assembler = ChunkAssembler::new(4);
        let last = chunks.pop().unwrap();
        let duplicate = chunks[1].clone();
        for chunk in chunks {
            assert_eq!(assembler.add(addr(1), chunk), None);
        }
        assert_eq!(assembler.add(addr(1), duplicate), None, "a duplicate does not complete the snapshot");
        assert_eq!(assembler.add(addr(1), last), Some(whole));
    }

    /// The planted bug: a duplicate takes the place of a chunk still on its
    /// way, so the snapshot completes without it (and with the duplicate's
    /// pairs twice).
    #[cfg(madsim)]
    #[test]
    fn the_planted_bug_applies_a_duplicate_twice() {
        let whole = envelope(40);
        let mut chunks = into_chunks(&whole, (2, 40), 300);
        let mut assembler = ChunkAssembler::new(4).with_bugs(Bugs::NONE.with(Bug::DuplicateChunkAppliedTwice));
        let last = chunks.pop().unwrap();
        let duplicate = chunks[1].clone();
        for chunk in chunks {
            assert_eq!(assembler.add(addr(1), chunk), None);
        }
        let broken = assembler.add(addr(1), duplicate).expect("the duplicate completed it");
        assert_ne!(broken, whole);
        drop(last);
    }

    #[test]
    fn malformed_chunks_are_dropped_and_memory_is_bounded() {
        let mut assembler = ChunkAssembler::new(2);
        let mut bad = into_chunks(&envelope(10), (2, 40), 4).remove(0);
        bad.seq = bad.total;
        assert_eq!(assembler.add(addr(1), bad), None);
        // Three senders each start a snapshot; only two are kept.
        for n in 1..=3 {
            assert_eq!(assembler.add(addr(n), into_chunks(&envelope(10), (2, 40), 4).remove(0)), None);
        }
        assert_eq!(assembler.receiving.len(), 2);
        assert!(!assembler.receiving.keys().any(|(from, _, _)| *from == addr(1)), "the oldest was forgotten");
        // A chunk whose payload is garbage: the snapshot is dropped, not applied.
        let mut garbage = into_chunks(&envelope(1), (3, 50), 1 << 20);
        for chunk in &mut garbage {
            chunk.data = vec![0xff; 7];
        }
        let mut fresh = ChunkAssembler::new(2);
        assert!(garbage.into_iter().all(|c| fresh.add(addr(4), c).is_none()));
    }

    fn snapshot_of(region: Region, index: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.set_data(SnapshotData { region, cfs: vec![] }.encode().into());
        snapshot.mut_metadata().index = index;
        snapshot
    }

    #[test]
    fn validation_refuses_stale_foreign_overlapping_and_concurrent_snapshots() {
        let region = Region { id: 3, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 1), peers: vec![] };
        let receiver = |applying| ReceiverState { region_id: 3, applying, applied_index: 10, truncated_index: 8, repairing: false };
        let never = |_: &Region| false;
        assert_eq!(validate(&receiver(false), &snapshot_of(region.clone(), 11), never), Ok(()));
        assert!(validate(&receiver(false), &snapshot_of(region.clone(), 10), never).is_err());
        assert!(validate(&receiver(true), &snapshot_of(region.clone(), 11), never).is_err());
        assert!(validate(&receiver(false), &snapshot_of(Region { id: 4, ..region.clone() }, 11), never).is_err());
        assert!(validate(&receiver(false), &snapshot_of(region.clone(), 11), |_| true).is_err());
        let mut garbage = snapshot_of(region, 11);
        garbage.set_data(vec![0xff; 3].into());
        assert_eq!(validate(&receiver(false), &garbage, never), Err("snapshot data does not decode"));
    }
}
