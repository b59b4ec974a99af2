//! The store: hosts every local peer and runs one loop over its mailbox (see the
//! module docs of [`crate::raftstore`] for the order of a ready).
//!
//! The store routes (messages and requests to peers by region id; effects out
//! to the transport, batched by destination store), batches (up to 256 messages
//! per loop iteration, then every touched peer handles its ready once), ticks,
//! and creates peers (on open, from the persisted region states). Everything a
//! single replica does lives in [`super::peer`].

use super::config::RaftStoreConfig;
use super::events::{EventSink, Events, StoreEvent};
use super::peer::{Effects, PeerContext, PeerFsm};
use super::router::{engine_ok, Stopped, StoreHandle, StoreMsg};
use super::snapshot::{self, ChunkAssembler, SnapshotWorker};
use super::state::{self, ApplyState, PeerState, RaftLocalState, RegionLocalState};
use crate::codec::keys;
use crate::engine::{Cf, Engine, Snapshot as _};
use crate::meta::{RegionId, StoreId};
use crate::transport::{Frame, RaftEnvelope, SnapshotChunk, Transport};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

pub struct Store<E: Engine> {
    store_id: StoreId,
    cfg: RaftStoreConfig,
    raft_engine: E,
    kv_engine: E,
    peers: BTreeMap<RegionId, PeerFsm<E>>,
    addresses: BTreeMap<StoreId, SocketAddr>,
    transport: Transport,
    events: Events,
    snapshots: SnapshotWorker<E>,
    chunks: ChunkAssembler,
    tx: mpsc::Sender<StoreMsg>,
    inbox: mpsc::Receiver<StoreMsg>,
    /// Raft messages of this loop iteration, batched by destination store.
    outgoing: BTreeMap<StoreId, Vec<RaftEnvelope>>,
    dirty: BTreeSet<RegionId>,
    ticks: u64,
}

/// The parts of a store a peer may use, borrowed apart from the peers.
macro_rules! peer_context {
    ($store:expr) => {
        PeerContext {
            store_id: $store.store_id,
            cfg: &$store.cfg,
            raft_engine: &$store.raft_engine,
            kv_engine: &$store.kv_engine,
            snapshots: &$store.snapshots,
            events: &$store.events,
        }
    };
}

impl<E: Engine> Store<E> {
    /// Loads every live peer from the engines (finishing any snapshot a crash
    /// interrupted) and returns the store with a handle to it.
    pub async fn open(
        store_id: StoreId,
        cfg: RaftStoreConfig,
        raft_engine: E,
        kv_engine: E,
        transport: Transport,
        addresses: BTreeMap<StoreId, SocketAddr>,
        events: Option<EventSink>,
    ) -> Result<(Store<E>, StoreHandle), Stopped> {
        cfg.validate().unwrap_or_else(|e| panic!("invalid raftstore config: {e}"));
        let (tx, inbox) = mpsc::channel(cfg.inbox_capacity);
        let snapshots = SnapshotWorker::new(
            kv_engine.clone(),
            raft_engine.clone(),
            tx.clone(),
            cfg.snapshot_chunk_bytes,
            cfg.snapshot_batch_pairs,
            clears_on_snapshot(&cfg),
        );
        let mut store = Store {
            store_id,
            chunks: ChunkAssembler::new(cfg.max_receiving_snapshots),
            cfg,
            raft_engine,
            kv_engine,
            peers: BTreeMap::new(),
            addresses,
            transport,
            events: Events::new(store_id, events),
            snapshots,
            tx: tx.clone(),
            inbox,
            outgoing: BTreeMap::new(),
            dirty: BTreeSet::new(),
            ticks: 0,
        };
        store.load_peers().await?;
        Ok((store, StoreHandle::new(tx)))
    }

    async fn load_peers(&mut self) -> Result<(), Stopped> {
        let (start, end) = keys::region_state_range();
        let states = engine_ok(self.kv_engine.snapshot().scan(Cf::Raft, &start, Some(&end), usize::MAX, false), "scan region states")?;
        for (key, value) in states {
            let region_id = keys::decode_region_state_key(&key).unwrap_or_else(|e| panic!("bad region state key: {e}"));
            let local: RegionLocalState = state::decode(&value, "region state", self.kv_engine.name());
            if local.state == PeerState::Tombstone {
                continue;
            }
            if let Some(index) = self.snapshots.recover_pending(region_id).await? {
                self.events.emit(StoreEvent::SnapshotResumed { store_id: self.store_id, region_id, index });
            }
            let kv = self.kv_engine.snapshot();
            let local: RegionLocalState = match engine_ok(kv.get(Cf::Raft, &keys::region_state_key(region_id)), "read region state")? {
                Some(v) => state::decode(&v, "region state", self.kv_engine.name()),
                None => local,
            };
            let apply_state: ApplyState = state::decode(
                &engine_ok(kv.get(Cf::Raft, &keys::apply_state_key(region_id)), "read apply state")?
                    .unwrap_or_else(|| panic!("region {region_id}: apply state missing")),
                "apply state",
                self.kv_engine.name(),
            );
            let raft_state: RaftLocalState = state::decode(
                &engine_ok(self.raft_engine.snapshot().get(Cf::Raft, &keys::raft_state_key(region_id)), "read raft state")?
                    .unwrap_or_else(|| panic!("region {region_id}: raft state missing")),
                "raft state",
                self.raft_engine.name(),
            );
            let Some(me) = local.region.peer_on_store(self.store_id).copied() else {
                continue;
            };
            self.events.emit(StoreEvent::PeerCreated {
                store_id: self.store_id,
                region: local.region.clone(),
                peer_id: me.id,
                applied_index: apply_state.applied_index,
            });
            #[cfg(madsim)]
            let apply_state = if self.cfg.bugs.reapply_after_restart {
                // Planted bug: forget what was applied since the last compaction.
                ApplyState { applied_index: apply_state.truncated_index, ..apply_state }
            } else {
                apply_state
            };
            crate::trace::working_on(self.store_id, region_id);
            let peer = PeerFsm::create(me, &self.cfg, self.raft_engine.clone(), local.region, raft_state, apply_state);
            self.peers.insert(region_id, peer);
            self.dirty.insert(region_id);
        }
        tracing::info!(store = self.store_id, peers = self.peers.len(), "store opened");
        Ok(())
    }

    /// Runs until the node stops: the loop, plus a task that ticks it.
    pub async fn run(mut self) {
        let mut ticker = self.tx.clone();
        let tick = self.cfg.base_tick();
        madsim::task::spawn(async move {
            loop {
                madsim::time::sleep(tick).await;
                if ticker.send(StoreMsg::Tick).await.is_err() {
                    return;
                }
            }
        });
        while let Some(msg) = self.inbox.next().await {
            if self.step_batch(msg).await.is_err() {
                tracing::info!(store = self.store_id, "store loop stopped: engines closed");
                return;
            }
        }
    }

    async fn step_batch(&mut self, first: StoreMsg) -> Result<(), Stopped> {
        self.handle(first).await?;
        for _ in 0..256 {
            match self.inbox.try_recv() {
                Ok(msg) => self.handle(msg).await?,
                _ => break,
            }
        }
        for region_id in std::mem::take(&mut self.dirty) {
            let Some(mut peer) = self.peers.remove(&region_id) else {
                continue;
            };
            crate::trace::working_on(self.store_id, region_id);
            let result = peer.handle_ready(&peer_context!(self)).await;
            self.peers.insert(region_id, peer);
            self.route(result?);
        }
        for (store_id, envelopes) in std::mem::take(&mut self.outgoing) {
            match self.addresses.get(&store_id) {
                Some(&addr) => self.transport.send(addr, &Frame::Raft(envelopes)),
                None => tracing::warn!(store = self.store_id, to = store_id, "no address for store"),
            }
        }
        Ok(())
    }

    async fn handle(&mut self, msg: StoreMsg) -> Result<(), Stopped> {
        match msg {
            StoreMsg::Raft(envelope) => self.on_raft_message(envelope),
            StoreMsg::SnapshotChunk(from, chunk) => {
                if let Some(envelope) = self.chunks.add(from, chunk) {
                    self.on_raft_message(envelope);
                }
            }
            StoreMsg::Tick => {
                self.ticks += 1;
                let gc_due = self.ticks.is_multiple_of(self.cfg.raft_log_gc_ticks.max(1));
                for (&region_id, peer) in self.peers.iter_mut() {
                    crate::trace::working_on(self.store_id, region_id);
                    peer.tick(&self.cfg, gc_due);
                    self.dirty.insert(region_id);
                }
            }
            StoreMsg::Write { region_id, epoch, cmd, callback } => match self.peers.get_mut(&region_id) {
                Some(peer) => {
                    crate::trace::working_on(self.store_id, region_id);
                    peer.propose_write(&self.cfg, epoch, cmd, callback);
                    self.dirty.insert(region_id);
                }
                None => drop(callback.send(Err(super::cmd::RegionError::RegionNotFound { region_id }))),
            },
            StoreMsg::Read { region_id, epoch, cmd, callback } => match self.peers.get_mut(&region_id) {
                Some(peer) => {
                    crate::trace::working_on(self.store_id, region_id);
                    peer.propose_read(&self.cfg, epoch, cmd, callback);
                    self.dirty.insert(region_id);
                }
                None => drop(callback.send(Err(super::cmd::RegionError::RegionNotFound { region_id }))),
            },
            StoreMsg::SnapshotGenerated { region_id, snapshot, bytes, took } => {
                if let Some(peer) = self.peers.get_mut(&region_id) {
                    let index = snapshot.get_metadata().index;
                    peer.on_snapshot_generated(*snapshot);
                    self.events.emit(StoreEvent::SnapshotGenerated { store_id: self.store_id, region_id, index, bytes, took });
                }
            }
            StoreMsg::SnapshotApplied { region_id, index, bytes, took } => {
                let Some(mut peer) = self.peers.remove(&region_id) else {
                    return Ok(());
                };
                self.events.emit(StoreEvent::SnapshotApplied { store_id: self.store_id, region_id, index, bytes, took });
                tracing::info!(store = self.store_id, region = region_id, index, took_ms = took.as_millis() as u64, "snapshot applied");
                crate::trace::working_on(self.store_id, region_id);
                let result = peer.on_snapshot_applied(&peer_context!(self), index).await;
                self.peers.insert(region_id, peer);
                self.dirty.insert(region_id);
                result?;
            }
        }
        Ok(())
    }

    fn on_raft_message(&mut self, envelope: RaftEnvelope) {
        let Ok(msg) = Message::parse_from_bytes(&envelope.message) else {
            tracing::warn!(store = self.store_id, region = envelope.region_id, "dropping undecodable raft message");
            return;
        };
        let region_id = envelope.region_id;
        let Some(peer) = self.peers.get(&region_id) else {
            tracing::debug!(store = self.store_id, region = region_id, "raft message for a region this store does not host");
            return;
        };
        if envelope.to.id != peer.peer.id {
            return;
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            let overlaps = |region: &crate::meta::Region| self.peers.values().any(|p| p.region_id() != region_id && p.region().overlaps(region));
            if let Err(reason) = snapshot::validate(&peer.receiver_state(), msg.get_snapshot(), overlaps) {
                let index = msg.get_snapshot().get_metadata().index;
                self.events.emit(StoreEvent::SnapshotRejected { store_id: self.store_id, region_id, index, reason });
                return;
            }
        }
        crate::trace::working_on(self.store_id, region_id);
        self.peers.get_mut(&region_id).expect("checked above").step(msg);
        self.dirty.insert(region_id);
    }

    /// Sends what a peer's ready produced.
    fn route(&mut self, effects: Effects) {
        for envelope in effects.messages {
            self.outgoing.entry(envelope.to.store_id).or_default().push(envelope);
        }
        for (envelope, snapshot) in effects.snapshots {
            let Some(&addr) = self.addresses.get(&envelope.to.store_id) else {
                continue;
            };
            for chunk in snapshot::into_chunks(&envelope, snapshot, self.cfg.snapshot_chunk_bytes) {
                self.send_chunk(addr, chunk);
            }
        }
    }

    fn send_chunk(&self, addr: SocketAddr, chunk: SnapshotChunk) {
        self.transport.send(addr, &Frame::SnapshotChunk(chunk));
    }
}

/// Whether applying a snapshot clears the region's old data first (always,
/// unless the planted bug `snapshot_keeps_stale_keys` is on).
fn clears_on_snapshot(cfg: &RaftStoreConfig) -> bool {
    #[cfg(madsim)]
    return !cfg.bugs.snapshot_keeps_stale_keys;
    #[cfg(not(madsim))]
    {
        let _ = cfg;
        true
    }
}
