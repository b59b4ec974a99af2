//! The store loop: hosts every local peer and drives them (see the module docs of
//! [`crate::raftstore`] for the order of a ready).

use super::cmd::{AdminCmd, CmdBody, RaftCmd, ReadCmd, ReadResult, RegionError, RegionResult, WriteCmd, WriteResult};
use super::config::RaftStoreConfig;
use super::events::{fingerprint, EventSink, StoreEvent};
use super::peer::{PeerFsm, PendingRead, Proposal, ReadCallback, WriteCallback};
use super::state::{self, ApplyState, PeerState, RaftLocalState, RegionLocalState, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use super::storage::{conf_state_of, PeerStorage};
use crate::codec::keys;
use crate::engine::{Cf, Engine, EngineError, IoKind, KvPair, Snapshot as _, WriteBatch, DATA_CFS};
use crate::meta::{Region, RegionEpoch, RegionId, StoreId};
use crate::transport::{Frame, RaftEnvelope, SnapshotChunk, Transport};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use madsim::time::Instant;
use protobuf::Message as _;
use raft::eraftpb::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole, Storage as _};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// What the store loop reacts to.
pub enum StoreMsg {
    Raft(RaftEnvelope),
    SnapshotChunk(SocketAddr, SnapshotChunk),
    Tick,
    Write { region_id: RegionId, epoch: RegionEpoch, cmd: WriteCmd, callback: WriteCallback },
    Read { region_id: RegionId, epoch: RegionEpoch, cmd: ReadCmd, callback: ReadCallback },
    SnapshotGenerated { region_id: RegionId, snapshot: Box<Snapshot>, bytes: usize, took: Duration },
    SnapshotApplied { region_id: RegionId, index: u64, bytes: usize, took: Duration },
}

/// The store loop has stopped because its engines were closed under it (the node
/// crashed). Anything else that goes wrong with an engine panics the node.
#[derive(Debug)]
pub struct Stopped;

fn engine_ok<T>(result: Result<T, EngineError>, what: &str) -> Result<T, Stopped> {
    match result {
        Ok(v) => Ok(v),
        Err(EngineError::Closed(_)) => Err(Stopped),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[cfg(madsim)]
enum WriteKind {
    Cas,
    Other,
}

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
        use bincode::Options;
        bincode::options().with_fixint_encoding().allow_trailing_bytes().with_limit(bytes.len() as u64 * 2 + 1024).deserialize(bytes)
    }
}

/// A cheap, cloneable way to talk to a running store.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<StoreMsg>,
}

impl StoreHandle {
    fn offer(&self, msg: StoreMsg) -> Result<(), RegionError> {
        self.tx
            .clone()
            .try_send(msg)
            .map_err(|e| RegionError::ServerIsBusy { reason: if e.is_full() { "store inbox full".into() } else { "store stopped".into() } })
    }

    /// Delivers a raft message; dropped if the store is overloaded (raft retries).
    pub fn raft(&self, envelope: RaftEnvelope) {
        let _ = self.offer(StoreMsg::Raft(envelope));
    }

    pub fn snapshot_chunk(&self, from: SocketAddr, chunk: SnapshotChunk) {
        let _ = self.offer(StoreMsg::SnapshotChunk(from, chunk));
    }

    pub async fn write(&self, region_id: RegionId, epoch: RegionEpoch, cmd: WriteCmd) -> RegionResult<WriteResult> {
        // A write the store dropped unanswered may still have reached raft.
        let dropped = RegionError::OutcomeUnknown { reason: "store stopped before answering".into() };
        self.ask(|callback| StoreMsg::Write { region_id, epoch, cmd, callback }, dropped).await
    }

    pub async fn read(&self, region_id: RegionId, epoch: RegionEpoch, cmd: ReadCmd) -> RegionResult<ReadResult> {
        // A read that was never answered changed nothing: a definite failure.
        let dropped = RegionError::ServerIsBusy { reason: "store stopped before answering".into() };
        self.ask(|callback| StoreMsg::Read { region_id, epoch, cmd, callback }, dropped).await
    }

    /// Sends a request to the store loop and waits for its answer; `dropped` is
    /// the answer when the loop goes away first.
    async fn ask<T>(&self, message: impl FnOnce(oneshot::Sender<RegionResult<T>>) -> StoreMsg, dropped: RegionError) -> RegionResult<T> {
        let (callback, rx) = oneshot::channel();
        self.offer(message(callback))?;
        rx.await.unwrap_or(Err(dropped))
    }
}

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

/// Who sent a snapshot in chunks: sender, region and (term, index).
type ChunkSource = (SocketAddr, RegionId, (u64, u64));

pub struct Store<E: Engine> {
    store_id: StoreId,
    cfg: RaftStoreConfig,
    raft_engine: E,
    kv_engine: E,
    peers: BTreeMap<RegionId, PeerFsm<E>>,
    addresses: BTreeMap<StoreId, SocketAddr>,
    transport: Transport,
    events: Option<EventSink>,
    tx: mpsc::Sender<StoreMsg>,
    inbox: mpsc::Receiver<StoreMsg>,
    next_read_id: u64,
    /// Raft messages of this loop iteration, batched by destination store.
    outgoing: BTreeMap<StoreId, Vec<RaftEnvelope>>,
    /// Snapshots arriving in chunks, keyed by sender, region and (term, index).
    receiving: BTreeMap<ChunkSource, Vec<Option<Vec<u8>>>>,
    dirty: BTreeSet<RegionId>,
    ticks: u64,
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
        let mut store = Store {
            store_id,
            cfg,
            raft_engine,
            kv_engine,
            peers: BTreeMap::new(),
            addresses,
            transport,
            events,
            tx: tx.clone(),
            inbox,
            next_read_id: 1,
            outgoing: BTreeMap::new(),
            receiving: BTreeMap::new(),
            dirty: BTreeSet::new(),
            ticks: 0,
        };
        store.load_peers().await?;
        Ok((store, StoreHandle { tx }))
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
            self.recover_pending_snapshot(region_id).await?;
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
            let storage = PeerStorage::new(self.raft_engine.clone(), local.region.clone(), raft_state, apply_state);
            let raw = RawNode::new(&self.raft_config(me.id, apply_state.applied_index), storage, &discard_logger())
                .unwrap_or_else(|e| panic!("region {region_id}: cannot start raft: {e}"));
            let mut peer = PeerFsm::new(me, raw);
            peer.fence_election_timeout(self.cfg.election_ticks_min, self.cfg.election_ticks_max);
            self.peers.insert(region_id, peer);
            self.dirty.insert(region_id);
        }
        tracing::info!(store = self.store_id, peers = self.peers.len(), "store opened");
        Ok(())
    }

    /// raft-rs draws election timeouts from `[min, max)` with an RNG we cannot
    /// seed; every draw is overridden by [`PeerFsm::fence_election_timeout`]
    /// before it is used.
    fn raft_config(&self, peer_id: u64, applied: u64) -> raft::Config {
        let config = raft::Config {
            id: peer_id,
            election_tick: self.cfg.election_ticks_min,
            heartbeat_tick: self.cfg.heartbeat_ticks,
            min_election_tick: self.cfg.election_ticks_min,
            max_election_tick: self.cfg.election_ticks_max,
            applied,
            max_size_per_msg: self.cfg.max_size_per_msg,
            max_inflight_msgs: self.cfg.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config.validate().unwrap_or_else(|e| panic!("invalid raft config: {e}"));
        config
    }

    fn emit(&self, event: StoreEvent) {
        tracing::debug!(store = self.store_id, ?event, "event");
        if let Some(sink) = &self.events {
            sink(&event);
        }
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
        let dirty = std::mem::take(&mut self.dirty);
        for region_id in dirty {
            self.handle_ready(region_id).await?;
        }
        self.flush_outgoing();
        Ok(())
    }

    async fn handle(&mut self, msg: StoreMsg) -> Result<(), Stopped> {
        match msg {
            StoreMsg::Raft(envelope) => self.on_raft_message(envelope),
            StoreMsg::SnapshotChunk(from, chunk) => self.on_snapshot_chunk(from, chunk),
            StoreMsg::Tick => self.on_tick(),
            StoreMsg::Write { region_id, epoch, cmd, callback } => self.on_write(region_id, epoch, cmd, callback),
            StoreMsg::Read { region_id, epoch, cmd, callback } => self.on_read(region_id, epoch, cmd, callback),
            StoreMsg::SnapshotGenerated { region_id, snapshot, bytes, took } => {
                if let Some(peer) = self.peers.get(&region_id) {
                    let index = snapshot.get_metadata().index;
                    peer.raw.store().set_generated(*snapshot);
                    self.emit(StoreEvent::SnapshotGenerated { store_id: self.store_id, region_id, index, bytes, took });
                }
            }
            StoreMsg::SnapshotApplied { region_id, index, bytes, took } => return self.on_snapshot_applied(region_id, index, bytes, took).await,
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
            if let Err(reason) = self.check_snapshot(region_id, msg.get_snapshot()) {
                let index = msg.get_snapshot().get_metadata().index;
                self.emit(StoreEvent::SnapshotRejected { store_id: self.store_id, region_id, index, reason });
                return;
            }
        }
        let peer = self.peers.get_mut(&region_id).expect("checked above");
        let _ = peer.raw.step(msg);
        peer.fence_election_timeout(self.cfg.election_ticks_min, self.cfg.election_ticks_max);
        self.dirty.insert(region_id);
    }

    /// Refuses snapshots that are stale, that overlap another local region, or that
    /// arrive while one is still being applied.
    fn check_snapshot(&self, region_id: RegionId, snapshot: &Snapshot) -> Result<(), &'static str> {
        let peer = &self.peers[&region_id];
        let index = snapshot.get_metadata().index;
        if peer.applying_snapshot.is_some() {
            return Err("another snapshot is being applied");
        }
        if index <= peer.applied_index() || index <= peer.raw.store().truncated_index() {
            return Err("stale: at or below the applied index");
        }
        let Ok(data) = SnapshotData::decode(snapshot.get_data()) else {
            return Err("snapshot data does not decode");
        };
        if data.region.id != region_id {
            return Err("snapshot is for another region");
        }
        if self.peers.values().any(|p| p.region_id() != region_id && p.region().overlaps(&data.region)) {
            return Err("overlaps another region on this store");
        }
        Ok(())
    }

    fn on_snapshot_chunk(&mut self, from: SocketAddr, chunk: SnapshotChunk) {
        if chunk.total == 0 || chunk.seq >= chunk.total || chunk.total > 1 << 16 {
            tracing::warn!(store = self.store_id, "dropping malformed snapshot chunk");
            return;
        }
        let key = (from, chunk.region_id, chunk.snapshot);
        if !self.receiving.contains_key(&key) && self.receiving.len() >= self.cfg.max_receiving_snapshots {
            // Bound memory: forget the oldest half-received snapshot; raft resends.
            let oldest = self.receiving.keys().next().cloned().expect("non-empty");
            self.receiving.remove(&oldest);
        }
        let parts = self.receiving.entry(key).or_insert_with(|| vec![None; chunk.total as usize]);
        if parts.len() != chunk.total as usize {
            return;
        }
        parts[chunk.seq as usize] = Some(chunk.data);
        if parts.iter().all(Option::is_some) {
            let parts = self.receiving.remove(&key).expect("present");
            let message: Vec<u8> = parts.into_iter().flatten().flatten().collect();
            self.on_raft_message(RaftEnvelope { region_id: chunk.region_id, from: chunk.from, to: chunk.to, epoch: chunk.epoch, message });
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let gc = self.ticks.is_multiple_of(self.cfg.raft_log_gc_ticks.max(1));
        let region_ids: Vec<RegionId> = self.peers.keys().copied().collect();
        for region_id in region_ids {
            let peer = self.peers.get_mut(&region_id).expect("listed");
            peer.raw.tick();
            peer.fence_election_timeout(self.cfg.election_ticks_min, self.cfg.election_ticks_max);
            if gc && peer.is_leader() {
                self.maybe_compact_log(region_id);
            }
            self.dirty.insert(region_id);
        }
    }

    /// Proposes CompactLog once enough applied entries sit in the log. Compacts only
    /// what every follower has, unless one lags by more than the limit: then it
    /// compacts anyway and the laggard catches up by snapshot.
    fn maybe_compact_log(&mut self, region_id: RegionId) {
        let limit = self.cfg.raft_log_gc_count_limit;
        let peer = self.peers.get_mut(&region_id).expect("exists");
        let storage = peer.raw.store();
        let (applied, truncated) = (storage.apply_state.applied_index, storage.truncated_index());
        if applied < truncated + limit {
            return;
        }
        let replicated = peer.raw.raft.prs().iter().map(|(_, pr)| pr.matched).min().unwrap_or(applied);
        let compact_to = if applied.saturating_sub(replicated) > limit { applied } else { replicated.min(applied) };
        if compact_to <= truncated {
            return;
        }
        let Ok(term) = peer.raw.store().term(compact_to) else {
            return;
        };
        let epoch = peer.region().epoch;
        let cmd = RaftCmd { region_id, epoch, body: CmdBody::Admin(AdminCmd::CompactLog { index: compact_to, term }) };
        if peer.raw.propose(vec![], cmd.encode()).is_ok() {
            let index = peer.raw.raft.raft_log.last_index();
            peer.proposals.push(Proposal { index, term: peer.raw.raft.term, callback: None });
        }
    }

    /// The checks every request passes before it reaches raft.
    /// Whether applying a snapshot clears the region's old data first (always,
    /// unless the planted bug `snapshot_keeps_stale_keys` is on).
    fn clears_on_snapshot(&self) -> bool {
        #[cfg(madsim)]
        return !self.cfg.bugs.snapshot_keeps_stale_keys;
        #[cfg(not(madsim))]
        return true;
    }

    fn check_request(&self, region_id: RegionId, epoch: RegionEpoch, keys: &[&[u8]]) -> RegionResult<()> {
        let peer = self.peers.get(&region_id).ok_or(RegionError::RegionNotFound { region_id })?;
        let region = peer.region();
        if epoch.version != region.epoch.version {
            return Err(RegionError::EpochNotMatch {
                message: format!("request epoch {epoch}, region {region_id} is at {}", region.epoch),
                current_regions: vec![region.clone()],
            });
        }
        for key in keys {
            if !region.contains(key) {
                return Err(RegionError::KeyNotInRegion { key: key.to_vec(), region_id, start_key: region.start_key.clone(), end_key: region.end_key.clone() });
            }
        }
        if !peer.is_leader() {
            return Err(peer.not_leader());
        }
        if peer.applying_snapshot.is_some() {
            return Err(RegionError::ServerIsBusy { reason: format!("region {region_id} is applying a snapshot") });
        }
        if peer.pending_requests() >= self.cfg.max_pending_requests {
            return Err(RegionError::ServerIsBusy { reason: format!("region {region_id} has too many pending requests") });
        }
        Ok(())
    }

    fn on_write(&mut self, region_id: RegionId, epoch: RegionEpoch, cmd: WriteCmd, callback: WriteCallback) {
        if let Err(e) = self.check_request(region_id, epoch, &[cmd.key()]) {
            let _ = callback.send(Err(e));
            return;
        }
        #[cfg(madsim)]
        let cmd_kind = if matches!(cmd, WriteCmd::Cas { .. }) { WriteKind::Cas } else { WriteKind::Other };
        let peer = self.peers.get_mut(&region_id).expect("checked");
        let data = RaftCmd { region_id, epoch, body: CmdBody::Write(cmd) }.encode();
        let last_before = peer.raw.raft.raft_log.last_index();
        if peer.raw.propose(vec![], data).is_err() || peer.raw.raft.raft_log.last_index() == last_before {
            let _ = callback.send(Err(peer.not_leader()));
            return;
        }
        let (index, term) = (peer.raw.raft.raft_log.last_index(), peer.raw.raft.term);
        #[cfg_attr(not(madsim), allow(unused_mut))]
        let mut callback = Some(callback);
        #[cfg(madsim)]
        if self.cfg.bugs.ack_before_commit && !matches!(cmd_kind, WriteKind::Cas) {
            // Planted bug: the client hears "done" before a quorum has the entry.
            let _ = callback.take().expect("not yet used").send(Ok(WriteResult::Done));
        }
        peer.proposals.push(Proposal { index, term, callback });
        self.dirty.insert(region_id);
    }

    fn on_read(&mut self, region_id: RegionId, epoch: RegionEpoch, cmd: ReadCmd, callback: ReadCallback) {
        let key = match &cmd {
            ReadCmd::Get { key } => key.clone(),
            ReadCmd::Scan { start, .. } => start.clone(),
        };
        let checked = self.check_request(region_id, epoch, &[&key]);
        if self.planted_follower_read(&checked) {
            // Planted bug: serve from local state as soon as possible.
            let id = self.next_read_id;
            self.next_read_id += 1;
            let peer = self.peers.get_mut(&region_id).expect("checked");
            peer.reads.push_back(PendingRead { id, cmd, callback, read_index: Some(0) });
            self.dirty.insert(region_id);
            return;
        }
        if let Err(e) = checked {
            let _ = callback.send(Err(e));
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        let peer = self.peers.get_mut(&region_id).expect("checked");
        peer.raw.read_index(id.to_be_bytes().to_vec());
        peer.reads.push_back(PendingRead { id, cmd, callback, read_index: None });
        self.dirty.insert(region_id);
    }

    /// Whether the planted follower-read bug takes this read (only where the
    /// check failed for want of leadership alone).
    fn planted_follower_read(&self, checked: &RegionResult<()>) -> bool {
        #[cfg(madsim)]
        if self.cfg.bugs.follower_local_read {
            return matches!(checked, Err(RegionError::NotLeader { .. }));
        }
        let _ = checked;
        false
    }

    async fn handle_ready(&mut self, region_id: RegionId) -> Result<(), Stopped> {
        let Some(mut peer) = self.peers.remove(&region_id) else {
            return Ok(());
        };
        let result = self.drive_peer(&mut peer).await;
        self.peers.insert(region_id, peer);
        result
    }

    async fn drive_peer(&mut self, peer: &mut PeerFsm<E>) -> Result<(), Stopped> {
        if peer.raw.has_ready() {
            let mut ready = peer.raw.ready();
            self.observe_role(peer);
            self.queue_messages(peer, ready.take_messages());
            if !ready.snapshot().is_empty() {
                self.adopt_snapshot(peer, ready.snapshot().clone()).await?;
            }
            for read_state in ready.take_read_states() {
                if let Ok(ctx) = <[u8; 8]>::try_from(&read_state.request_ctx[..]) {
                    peer.confirm_read(u64::from_be_bytes(ctx), read_state.index);
                }
            }
            self.apply_entries(peer, ready.take_committed_entries()).await?;
            if !ready.entries().is_empty() || ready.hs().is_some() {
                let mut batch = WriteBatch::new();
                peer.raw.mut_store().append(ready.entries(), ready.hs(), &mut batch);
                #[cfg(madsim)]
                let sync = !(self.cfg.bugs.unsynced_vote && ready.entries().is_empty());
                #[cfg(not(madsim))]
                let sync = true;
                engine_ok(self.raft_engine.write(&batch, sync).await, "persist raft log")?;
            }
            self.queue_messages(peer, ready.take_persisted_messages());
            let mut light = peer.raw.advance(ready);
            self.queue_messages(peer, light.take_messages());
            self.apply_entries(peer, light.take_committed_entries()).await?;
            peer.raw.advance_apply();
        }
        self.serve_reads(peer);
        if peer.raw.store().take_snapshot_request() {
            self.start_generating_snapshot(peer);
        }
        Ok(())
    }

    fn observe_role(&mut self, peer: &mut PeerFsm<E>) {
        let (role, leader) = (peer.raw.raft.state, peer.raw.raft.leader_id);
        if role == peer.last_role && leader == peer.last_leader {
            return;
        }
        if role == StateRole::Leader && peer.last_role != StateRole::Leader {
            tracing::info!(store = self.store_id, region = peer.region_id(), term = peer.raw.raft.term, "became leader");
            self.emit(StoreEvent::BecameLeader { store_id: self.store_id, region_id: peer.region_id(), peer_id: peer.peer.id, term: peer.raw.raft.term });
        }
        if peer.last_role == StateRole::Leader && role != StateRole::Leader {
            peer.fail_unconfirmed_reads();
        }
        peer.last_role = role;
        peer.last_leader = leader;
    }

    fn queue_messages(&mut self, peer: &mut PeerFsm<E>, messages: Vec<Message>) {
        for msg in messages {
            let to_id = msg.to;
            let Some(to) = peer.region().peer(to_id).copied() else {
                peer.raw.report_unreachable(to_id);
                continue;
            };
            let envelope = RaftEnvelope {
                region_id: peer.region_id(),
                from: peer.peer,
                to,
                epoch: peer.region().epoch,
                message: msg.write_to_bytes().expect("raft message encodes"),
            };
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                let meta = msg.get_snapshot().get_metadata();
                self.send_snapshot(envelope, (meta.term, meta.index));
                // The leader learns whether the follower got it from the follower's
                // next response; "finished" just lets it probe again.
                peer.raw.report_snapshot(to_id, SnapshotStatus::Finish);
            } else {
                self.outgoing.entry(to.store_id).or_default().push(envelope);
            }
        }
    }

    fn send_snapshot(&mut self, envelope: RaftEnvelope, snapshot: (u64, u64)) {
        let Some(&addr) = self.addresses.get(&envelope.to.store_id) else {
            return;
        };
        let chunks: Vec<&[u8]> = envelope.message.chunks(self.cfg.snapshot_chunk_bytes).collect();
        let total = chunks.len() as u32;
        for (seq, data) in chunks.into_iter().enumerate() {
            let chunk = SnapshotChunk {
                region_id: envelope.region_id,
                from: envelope.from,
                to: envelope.to,
                epoch: envelope.epoch,
                snapshot,
                seq: seq as u32,
                total,
                data: data.to_vec(),
            };
            self.transport.send(addr, &Frame::SnapshotChunk(chunk));
        }
    }

    fn flush_outgoing(&mut self) {
        for (store_id, envelopes) in std::mem::take(&mut self.outgoing) {
            match self.addresses.get(&store_id) {
                Some(&addr) => self.transport.send(addr, &Frame::Raft(envelopes)),
                None => {
                    tracing::warn!(store = self.store_id, to = store_id, "no address for store")
                }
            }
        }
    }

    /// Applies committed entries in one kv batch: data and apply state together.
    async fn apply_entries(&mut self, peer: &mut PeerFsm<E>, entries: Vec<Entry>) -> Result<(), Stopped> {
        if entries.is_empty() {
            return Ok(());
        }
        if peer.applying_snapshot.is_some() {
            peer.deferred_entries.extend(entries);
            return Ok(());
        }
        let snap = self.kv_engine.snapshot();
        let mut overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut batch = WriteBatch::new();
        let mut apply_state = peer.raw.store().apply_state;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut compacted = false;
        for entry in &entries {
            assert_eq!(entry.index, apply_state.applied_index + 1, "store {} region {}: applying out of order", self.store_id, peer.region_id());
            apply_state.applied_index = entry.index;
            let result = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => Err(RegionError::StaleCommand),
                EntryType::EntryNormal => {
                    let cmd =
                        RaftCmd::decode(&entry.data).unwrap_or_else(|e| panic!("region {}: committed entry {} is corrupt: {e}", peer.region_id(), entry.index));
                    match cmd.body {
                        CmdBody::Write(write) => exec_write(peer.region(), cmd.epoch, write, &snap, &mut overlay, &mut batch),
                        CmdBody::Admin(AdminCmd::CompactLog { index, term }) => {
                            if index > apply_state.truncated_index && index <= apply_state.applied_index {
                                apply_state.truncated_index = index;
                                apply_state.truncated_term = term;
                                compacted = true;
                            }
                            Ok(WriteResult::Done)
                        }
                    }
                }
                other => panic!("region {}: entry type {other:?} is not supported yet", peer.region_id()),
            };
            outcomes.push((entry.index, entry.term, result));
            self.emit(StoreEvent::Applied {
                store_id: self.store_id,
                region_id: peer.region_id(),
                peer_id: peer.peer.id,
                index: entry.index,
                term: entry.term,
                digest: fingerprint(&entry.data),
            });
        }
        batch.put(Cf::Raft, keys::apply_state_key(peer.region_id()), state::encode(&apply_state));
        // Before the raft log is truncated, the applied state must be durable, or a
        // crash could leave applied entries that are neither on disk nor in the log.
        engine_ok(self.kv_engine.write(&batch, compacted).await, "apply")?;
        let old_truncated = peer.raw.store().truncated_index();
        peer.raw.mut_store().apply_state = apply_state;
        if compacted {
            let region_id = peer.region_id();
            let mut gc = WriteBatch::new();
            gc.delete_range(Cf::Raft, keys::raft_log_key(region_id, old_truncated), keys::raft_log_key(region_id, apply_state.truncated_index + 1));
            engine_ok(self.raft_engine.write(&gc, false).await, "raft log gc")?;
            self.emit(StoreEvent::LogCompacted { store_id: self.store_id, region_id, index: apply_state.truncated_index });
        }
        for (index, term, result) in outcomes {
            peer.proposals.applied(index, term, &result);
        }
        Ok(())
    }

    fn serve_reads(&mut self, peer: &mut PeerFsm<E>) {
        let reads = peer.take_servable_reads();
        if reads.is_empty() {
            return;
        }
        let snap = self.kv_engine.snapshot();
        let region = peer.region().clone();
        let engine = self.kv_engine.clone();
        let snap = std::sync::Arc::new(snap);
        for read in reads {
            let (engine, snap, region) = (engine.clone(), snap.clone(), region.clone());
            madsim::task::spawn(async move {
                let result = exec_read(&region, &read.cmd, &*snap);
                let bytes = match &result {
                    Ok(ReadResult::Value(v)) => v.as_ref().map_or(0, Vec::len),
                    Ok(ReadResult::Pairs(pairs)) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
                    Err(_) => 0,
                };
                engine.io(IoKind::Read, bytes).await;
                let _ = read.callback.send(result);
            });
        }
    }

    fn start_generating_snapshot(&mut self, peer: &mut PeerFsm<E>) {
        let storage = peer.raw.store();
        let applied = storage.apply_state.applied_index;
        let Ok(term) = storage.term(applied) else {
            storage.cancel_generating();
            return;
        };
        let region = storage.region.clone();
        let (engine, snap, mut tx) = (self.kv_engine.clone(), self.kv_engine.snapshot(), self.tx.clone());
        let batch_pairs = self.cfg.snapshot_batch_pairs;
        tracing::info!(store = self.store_id, region = region.id, index = applied, "generating snapshot");
        madsim::task::spawn(async move {
            let start = Instant::now();
            let mut cfs = Vec::new();
            let (begin, end) = (keys::data_key(&region.start_key), keys::data_end_key(&region.end_key));
            for cf in DATA_CFS {
                let pairs = snap.scan(cf, &begin, Some(&end), usize::MAX, false).expect("snapshot read");
                // Pay the read IO batch by batch, as a streaming reader would.
                for batch in pairs.chunks(batch_pairs.max(1)) {
                    engine.io(IoKind::SnapshotRead, batch.iter().map(|(k, v)| k.len() + v.len()).sum()).await;
                }
                cfs.push((cf.index() as u8, pairs));
            }
            let data = SnapshotData { region: region.clone(), cfs }.encode();
            let mut snapshot = Snapshot::default();
            snapshot.set_data(data.into());
            let meta = snapshot.mut_metadata();
            meta.index = applied;
            meta.term = term;
            meta.set_conf_state(conf_state_of(&region));
            let bytes = snapshot.get_data().len();
            let msg = StoreMsg::SnapshotGenerated { region_id: region.id, snapshot: Box::new(snapshot), bytes, took: start.elapsed() };
            let _ = tx.send(msg).await;
        });
    }

    /// Takes a snapshot from a ready: the log now starts after it, the snapshot is
    /// kept on the raft engine until its data is written, and the data is written
    /// in the background while the peer refuses proposals.
    async fn adopt_snapshot(&mut self, peer: &mut PeerFsm<E>, snapshot: Snapshot) -> Result<(), Stopped> {
        let region_id = peer.region_id();
        let data = SnapshotData::decode(snapshot.get_data()).expect("checked on receipt");
        let index = snapshot.get_metadata().index;
        let mut raft_batch = WriteBatch::new();
        peer.raw.mut_store().apply_snapshot_meta(&snapshot, data.region.clone(), &mut raft_batch);
        raft_batch.put(Cf::Raft, keys::pending_snapshot_key(region_id), snapshot.write_to_bytes().expect("snapshot encodes"));
        engine_ok(self.raft_engine.write(&raft_batch, true).await, "persist snapshot")?;
        let mut kv_batch = WriteBatch::new();
        let local = RegionLocalState { state: PeerState::Applying, region: data.region.clone() };
        kv_batch.put(Cf::Raft, keys::region_state_key(region_id), state::encode(&local));
        engine_ok(self.kv_engine.write(&kv_batch, true).await, "mark applying")?;
        peer.applying_snapshot = Some(index);
        self.emit(StoreEvent::SnapshotApplying { store_id: self.store_id, region_id, index });
        tracing::info!(store = self.store_id, region = region_id, index, "applying snapshot");
        let (engine, mut tx, chunk_bytes, clear) = (self.kv_engine.clone(), self.tx.clone(), self.cfg.snapshot_chunk_bytes, self.clears_on_snapshot());
        let apply_state = peer.raw.store().apply_state;
        madsim::task::spawn(async move {
            let start = Instant::now();
            let bytes = snapshot.get_data().len();
            let state = ApplyState { applied_index: index, ..apply_state };
            if write_snapshot_data(&engine, data, state, chunk_bytes, clear).await.is_ok() {
                let _ = tx.send(StoreMsg::SnapshotApplied { region_id, index, bytes, took: start.elapsed() }).await;
            }
        });
        Ok(())
    }

    async fn on_snapshot_applied(&mut self, region_id: RegionId, index: u64, bytes: usize, took: Duration) -> Result<(), Stopped> {
        let Some(mut peer) = self.peers.remove(&region_id) else {
            return Ok(());
        };
        peer.applying_snapshot = None;
        peer.raw.mut_store().apply_state.applied_index = index;
        peer.proposals.covered_by_snapshot(index, region_id);
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Raft, keys::pending_snapshot_key(region_id));
        let result = engine_ok(self.raft_engine.write(&batch, false).await, "drop applied snapshot");
        self.emit(StoreEvent::SnapshotApplied { store_id: self.store_id, region_id, index, bytes, took });
        tracing::info!(store = self.store_id, region = region_id, index, took_ms = took.as_millis() as u64, "snapshot applied");
        let deferred = std::mem::take(&mut peer.deferred_entries);
        let applied = self.apply_entries(&mut peer, deferred).await;
        self.peers.insert(region_id, peer);
        self.dirty.insert(region_id);
        result.and(applied)
    }

    /// Finishes a snapshot that a crash interrupted, before the peer starts.
    async fn recover_pending_snapshot(&mut self, region_id: RegionId) -> Result<(), Stopped> {
        let key = keys::pending_snapshot_key(region_id);
        let Some(bytes) = engine_ok(self.raft_engine.snapshot().get(Cf::Raft, &key), "read pending snapshot")? else {
            return Ok(());
        };
        let snapshot = Snapshot::parse_from_bytes(&bytes).unwrap_or_else(|e| panic!("region {region_id}: corrupt pending snapshot: {e}"));
        let meta = snapshot.get_metadata();
        let apply_state: ApplyState = engine_ok(self.kv_engine.snapshot().get(Cf::Raft, &keys::apply_state_key(region_id)), "read apply state")?
            .map(|v| state::decode(&v, "apply state", self.kv_engine.name()))
            .unwrap_or_default();
        if meta.index > apply_state.applied_index {
            tracing::info!(store = self.store_id, region = region_id, index = meta.index, "finishing interrupted snapshot");
            let data = SnapshotData::decode(snapshot.get_data()).expect("pending snapshot decodes");
            let state = ApplyState { applied_index: meta.index, truncated_index: meta.index, truncated_term: meta.term };
            engine_ok(write_snapshot_data(&self.kv_engine, data, state, self.cfg.snapshot_chunk_bytes, self.clears_on_snapshot()).await, "apply snapshot")?;
            self.emit(StoreEvent::SnapshotResumed { store_id: self.store_id, region_id, index: meta.index });
        }
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Raft, key);
        engine_ok(self.raft_engine.write(&batch, true).await, "drop pending snapshot")
    }
}

/// Replaces the region's data with the snapshot's (clearing the old data first,
/// unless a planted bug says not to), paying snapshot write IO, and marks the
/// region live again, all in one synced batch.
async fn write_snapshot_data<E: Engine>(engine: &E, data: SnapshotData, apply_state: ApplyState, chunk_bytes: usize, clear: bool) -> Result<(), EngineError> {
    let region = data.region;
    let mut batch = WriteBatch::new();
    let (begin, end) = (keys::data_key(&region.start_key), keys::data_end_key(&region.end_key));
    if clear {
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

fn read_current<S: crate::engine::Snapshot>(snap: &S, overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>, key: &[u8]) -> Option<Vec<u8>> {
    match overlay.get(key) {
        Some(value) => value.clone(),
        None => snap.get(Cf::Default, key).expect("kv read during apply"),
    }
}

/// Executes one raw write at apply time, re-checking epoch and range.
fn exec_write<S: crate::engine::Snapshot>(
    region: &Region,
    epoch: RegionEpoch,
    cmd: WriteCmd,
    snap: &S,
    overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    batch: &mut WriteBatch,
) -> RegionResult<WriteResult> {
    if epoch.version != region.epoch.version {
        return Err(RegionError::EpochNotMatch { message: format!("proposed at {epoch}, applied at {}", region.epoch), current_regions: vec![region.clone()] });
    }
    if !region.contains(cmd.key()) {
        return Err(RegionError::KeyNotInRegion {
            key: cmd.key().to_vec(),
            region_id: region.id,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
        });
    }
    let set = |batch: &mut WriteBatch, overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>, key: Vec<u8>, value: Option<Vec<u8>>| {
        match &value {
            Some(v) => batch.put(Cf::Default, key.clone(), v.clone()),
            None => batch.delete(Cf::Default, key.clone()),
        }
        overlay.insert(key, value);
    };
    match cmd {
        WriteCmd::Put { key, value } => {
            set(batch, overlay, keys::data_key(&key), Some(value));
            Ok(WriteResult::Done)
        }
        WriteCmd::Delete { key } => {
            set(batch, overlay, keys::data_key(&key), None);
            Ok(WriteResult::Done)
        }
        WriteCmd::Cas { key, expected, new } => {
            let data_key = keys::data_key(&key);
            let previous = read_current(snap, overlay, &data_key);
            let succeeded = previous == expected;
            if succeeded {
                set(batch, overlay, data_key, new);
            }
            Ok(WriteResult::Cas { succeeded, previous })
        }
    }
}

fn exec_read<S: crate::engine::Snapshot>(region: &Region, cmd: &ReadCmd, snap: &S) -> RegionResult<ReadResult> {
    match cmd {
        ReadCmd::Get { key } => Ok(ReadResult::Value(snap.get(Cf::Default, &keys::data_key(key)).expect("kv read"))),
        ReadCmd::Scan { start, end, limit } => {
            let region_end = keys::data_end_key(&region.end_key);
            let mut stop = if end.is_empty() { region_end.clone() } else { keys::data_key(end) };
            if stop > region_end {
                stop = region_end;
            }
            let pairs = snap
                .scan(Cf::Default, &keys::data_key(start), Some(&stop), *limit, false)
                .expect("kv scan")
                .into_iter()
                .map(|(k, v)| (keys::origin_key(&k).expect("data key").to_vec(), v))
                .collect();
            Ok(ReadResult::Pairs(pairs))
        }
    }
}

fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
