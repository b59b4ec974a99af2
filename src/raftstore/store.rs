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
use super::hibernate::{self, StoreLiveness};
use super::pd_worker::{self, PdTask};
use super::peer::{Effects, PeerContext, PeerFsm};
use super::router::{engine_ok, Stopped, StoreHandle, StoreMsg};
use super::snapshot::{self, ChunkAssembler, SnapshotWorker};
use super::state::{self, ApplyState, PeerState, RaftLocalState, RegionLocalState, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use crate::codec::keys;
use crate::engine::{Cf, Engine, Snapshot as _, WriteBatch};
use crate::meta::{Region, RegionId, StoreId};
use crate::pd_client::PdClient;
use crate::planted::Bug;
use crate::proto::pd::StoreStats;
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
    /// Boxed: a peer is large (its raft state machine), and the map moves
    /// values when it rebalances and when a peer is taken out for a ready.
    peers: BTreeMap<RegionId, Box<PeerFsm<E>>>,
    addresses: BTreeMap<StoreId, SocketAddr>,
    transport: Transport,
    events: Events,
    snapshots: SnapshotWorker<E>,
    chunks: ChunkAssembler,
    tx: mpsc::Sender<StoreMsg>,
    inbox: mpsc::Receiver<StoreMsg>,
    /// Raft messages of this loop iteration, batched by destination store.
    outgoing: BTreeMap<StoreId, Vec<RaftEnvelope>>,
    /// Whether the messages about to be sent grant a vote.
    outgoing_vote: bool,
    /// The messages about to go out acknowledge appended entries.
    outgoing_ack: bool,
    dirty: BTreeSet<RegionId>,
    ticks: u64,
    /// The PD worker, when the store runs with PD.
    pd: Option<futures::channel::mpsc::UnboundedSender<PdTask>>,
    /// Stores whose address PD is being asked for.
    resolving: BTreeSet<StoreId>,
    /// When each other store was last heard from (see `hibernate`).
    liveness: StoreLiveness,
    /// Stores sent anything since the last keepalive round.
    sent_this_round: BTreeSet<StoreId>,
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

/// What a store is opened with.
pub struct StoreSetup<E: Engine> {
    pub store_id: StoreId,
    pub cfg: RaftStoreConfig,
    pub raft_engine: E,
    pub kv_engine: E,
    pub transport: Transport,
    /// Where every store listens.
    pub addresses: BTreeMap<StoreId, SocketAddr>,
    pub events: Option<EventSink>,
    /// PD, if the store runs with one (heartbeats, splits).
    pub pd: Option<PdClient>,
}

impl<E: Engine> Store<E> {
    /// Loads every live peer from the engines (finishing any snapshot a crash
    /// interrupted) and returns the store with a handle to it.
    pub async fn open(setup: StoreSetup<E>) -> Result<(Store<E>, StoreHandle), Stopped> {
        let StoreSetup { store_id, cfg, raft_engine, kv_engine, transport, addresses, events, pd } = setup;
        cfg.validate().unwrap_or_else(|e| panic!("invalid raftstore config: {e}"));
        let (tx, inbox) = mpsc::channel(cfg.inbox_capacity);
        let snapshots =
            SnapshotWorker::new(store_id, (kv_engine.clone(), raft_engine.clone()), tx.clone(), cfg.snapshot_chunk_bytes, cfg.snapshot_batch_pairs, cfg.bugs);
        let mut store = Store {
            store_id,
            chunks: ChunkAssembler::new(cfg.max_receiving_snapshots).with_bugs(cfg.bugs),
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
            outgoing_vote: false,
            outgoing_ack: false,
            dirty: BTreeSet::new(),
            ticks: 0,
            pd: pd.map(|pd| pd_worker::start(store_id, pd, tx.clone())),
            resolving: BTreeSet::new(),
            liveness: StoreLiveness::default(),
            sent_this_round: BTreeSet::new(),
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
            if let PeerState::Tombstone { peer_id } = local.state {
                // A crash between the tombstone and the log's deletion leaves
                // the log behind: finish the destroy. Say the peer is gone
                // whether or not the crash left a log: a peer that never wrote
                // a raft state leaves none, so nothing on disk tells whether
                // the crash came before `PeerDestroyed` was said (to whoever
                // heard it already, it is no news).
                let interrupted = engine_ok(self.raft_engine.snapshot().get(Cf::Raft, &keys::raft_state_key(region_id)), "read raft state")?.is_some();
                self.delete_raft_state(region_id).await?;
                if interrupted {
                    tracing::info!(store = self.store_id, region = region_id, peer = peer_id, "finished destroying a peer a crash interrupted");
                }
                self.events.emit(StoreEvent::PeerDestroyed { store_id: self.store_id, region_id, peer_id });
                continue;
            }
            let (events, store_id) = (&self.events, self.store_id);
            self.snapshots.recover_pending(region_id, |index, region| events.emit(StoreEvent::SnapshotResumed { store_id, region_id, index, region })).await?;
            let kv = self.kv_engine.snapshot();
            let local: RegionLocalState = match engine_ok(kv.get(Cf::Raft, &keys::region_state_key(region_id)), "read region state")? {
                Some(v) => state::decode(&v, "region state", self.kv_engine.name()),
                None => local,
            };
            if matches!(local.state, PeerState::Applying) {
                // A snapshot being applied is kept until its data is written
                // (and the region marked normal again), so this cannot be.
                panic!("region {region_id}: its region state says a snapshot is being applied, but no snapshot is kept");
            }
            let apply_state: ApplyState = state::decode(
                &engine_ok(kv.get(Cf::Raft, &keys::apply_state_key(region_id)), "read apply state")?
                    .unwrap_or_else(|| panic!("region {region_id}: apply state missing")),
                "apply state",
                self.kv_engine.name(),
            );
            let raft_state: RaftLocalState = match engine_ok(self.raft_engine.snapshot().get(Cf::Raft, &keys::raft_state_key(region_id)), "read raft state")? {
                Some(bytes) => state::decode(&bytes, "raft state", self.raft_engine.name()),
                // A region created by a split whose raft state a crash lost (it
                // is written after the split's kv batch): it starts as new.
                None if apply_state.applied_index == RAFT_INIT_LOG_INDEX => initial_raft_state(),
                None => panic!("region {region_id}: raft state missing at applied index {}", apply_state.applied_index),
            };
            let Some(me) = local.region.peer_on_store(self.store_id).copied() else {
                continue;
            };
            self.events.emit(StoreEvent::PeerCreated {
                store_id: self.store_id,
                region: local.region.clone(),
                peer_id: me.id,
                applied_index: apply_state.applied_index,
            });
            let apply_state = if self.cfg.bugs.on(Bug::ReapplyAfterRestart) {
                // Planted bug: forget what was applied since the last compaction.
                ApplyState { applied_index: apply_state.truncated_index, ..apply_state }
            } else {
                apply_state
            };
            crate::trace::working_on(self.store_id, region_id);
            let mut peer = Box::new(PeerFsm::create(me, &self.cfg, self.raft_engine.clone(), local.region, raft_state, apply_state));
            peer.no_votes_until = NO_VOTES_AFTER_RESTART.then(|| self.cfg.clock.now() + self.cfg.election_timeout());
            self.peers.insert(region_id, peer);
            self.dirty.insert(region_id);
        }
        tracing::info!(store = self.store_id, peers = self.peers.len(), "store opened");
        Ok(())
    }

    /// The regions of the store's peers, as they are now.
    pub fn regions(&self) -> Vec<Region> {
        self.peers.values().map(|p| p.region().clone()).collect()
    }

    /// Runs until the node stops: the loop, plus a task that ticks it.
    pub async fn run(mut self) {
        let mut ticker = self.tx.clone();
        let (tick, clock) = (self.cfg.base_tick(), self.cfg.clock.clone());
        madsim::task::spawn(async move {
            loop {
                clock.sleep(tick).await;
                if ticker.send(StoreMsg::Tick).await.is_err() {
                    return;
                }
            }
        });
        while let Some(msg) = self.inbox.next().await {
            match self.step_batch(msg).await {
                Ok(()) => {}
                Err(Stopped::Closed) => {
                    tracing::info!(store = self.store_id, "store loop stopped: engines closed");
                    return;
                }
                Err(Stopped::Failed(reason)) => {
                    crate::supervisor::fail_stop(self.store_id, &reason).await;
                    return;
                }
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
            let result = super::ready::handle_ready(&mut peer, &peer_context!(self)).await;
            self.peers.insert(region_id, peer);
            self.route(region_id, result?).await?;
        }
        let sent = !self.outgoing.is_empty();
        for (store_id, mut envelopes) in std::mem::take(&mut self.outgoing) {
            if envelopes.len() > 1 && crate::buggify::fires(crate::buggify::Site::ReorderMessages) {
                envelopes.reverse();
            }
            self.sent_this_round.insert(store_id);
            match self.addresses.get(&store_id) {
                Some(&addr) => self.transport.send(addr, &Frame::Raft(envelopes)),
                // Dropped (raft sends again); PD is asked where the store is.
                None => self.resolve(store_id),
            }
        }
        if std::mem::take(&mut self.outgoing_ack) {
            crate::buggify::crash_point(crate::buggify::Site::CrashAfterAck, self.store_id).await;
        }
        if std::mem::take(&mut self.outgoing_vote) {
            crate::buggify::crash_point(crate::buggify::Site::CrashAfterVote, self.store_id).await;
        }
        if sent {
            crate::buggify::crash_point(crate::buggify::Site::CrashAfterSend, self.store_id).await;
        }

        Ok(())
    }

    async fn handle(&mut self, msg: StoreMsg) -> Result<(), Stopped> {
        if let Some((region_id, why)) = msg.wakes() {
            if let Some(peer) = self.peers.get_mut(&region_id) {
                peer.touch(&self.events, why);
            }
        }
        match msg {
            StoreMsg::Raft(envelope) => match self.peers.get(&envelope.region_id).and_then(|peer| peer.hears_late()) {
                Some(delay) => {
                    let mut tx = self.tx.clone();
                    madsim::task::spawn(async move {
                        madsim::time::sleep(delay).await;
                        let _ = tx.send(StoreMsg::HeldRaft(envelope)).await;
                    });
                }
                None => self.on_raft_message(envelope).await?,
            },
            StoreMsg::HeldRaft(envelope) => self.on_raft_message(envelope).await?,
            StoreMsg::SnapshotChunk(_, _) if crate::buggify::fires(crate::buggify::Site::DropSnapshotChunk) => {}
            StoreMsg::SnapshotChunk(from, chunk) => {
                if let Some(envelope) = self.chunks.add(from, chunk) {
                    self.on_raft_message(envelope).await?;
                }
            }
            StoreMsg::Tick => self.on_tick(),
            StoreMsg::DiskFailed(reason) => return Err(Stopped::Failed(reason)),
            StoreMsg::Corrupted { region_id, reason } => {
                if let Some(peer) = self.peers.get_mut(&region_id) {
                    peer.node.store().cancel_generating();
                    peer.found_corrupt(&self.events, reason);
                    self.dirty.insert(region_id);
                }
            }
            StoreMsg::Write { region_id, epoch, callback, .. } if self.split_since(region_id, epoch) => {
                let _ = callback.send(Err(self.epoch_not_match_with_siblings(region_id, epoch)));
            }
            StoreMsg::Read { region_id, epoch, callback, .. } if self.split_since(region_id, epoch) => {
                let _ = callback.send(Err(self.epoch_not_match_with_siblings(region_id, epoch)));
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
                    peer.propose_read(&self.cfg, &self.events, epoch, cmd, callback);
                    self.dirty.insert(region_id);
                }
                None => drop(callback.send(Err(super::cmd::RegionError::RegionNotFound { region_id }))),
            },
            StoreMsg::SplitIds { region_id, epoch, split_keys, ids } => {
                if let Some(peer) = self.peers.get_mut(&region_id) {
                    crate::trace::working_on(self.store_id, region_id);
                    peer.propose_split(&self.cfg, epoch, split_keys, ids);
                    self.dirty.insert(region_id);
                }
            }
            StoreMsg::ChangePeer { region_id, epoch, changes, callback } => match self.peers.get_mut(&region_id) {
                Some(peer) => {
                    crate::trace::working_on(self.store_id, region_id);
                    peer.propose_conf_change(&self.cfg, &self.events, epoch, changes, callback);
                    self.dirty.insert(region_id);
                }
                None => {
                    if let Some(callback) = callback {
                        let _ = callback.send(Err(super::cmd::RegionError::RegionNotFound { region_id }));
                    }
                }
            },
            StoreMsg::Tombstone { region_id, peer_id, epoch } => self.on_tombstone(region_id, peer_id, epoch).await?,
            StoreMsg::StoreAddress { store, addr } => {
                self.resolving.remove(&store);
                self.addresses.insert(store, addr);
            }
            StoreMsg::TransferLeader { region_id, to_store } => {
                if let Some(peer) = self.peers.get_mut(&region_id) {
                    if let Some(to) = peer.region().peer_on_store(to_store).copied() {
                        crate::trace::working_on(self.store_id, region_id);
                        peer.transfer_leader(&self.cfg, to.id);
                        self.dirty.insert(region_id);
                    }
                }
            }
            StoreMsg::AskSplit { region_id, split_key } => {
                if let (Some(peer), Some(pd)) = (self.peers.get(&region_id), &self.pd) {
                    let region = peer.region();
                    if peer.is_leader() && region.contains(&split_key) && split_key != region.start_key {
                        let _ = pd.unbounded_send(PdTask::AskSplit { region: region.clone(), split_key });
                    }
                }
            }
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
                self.events.emit(StoreEvent::SnapshotApplied { store_id: self.store_id, region_id, index, bytes, took, region: peer.region().clone() });
                tracing::info!(store = self.store_id, region = region_id, index, took_ms = took.as_millis() as u64, "snapshot applied");
                crate::trace::working_on(self.store_id, region_id);
                let result = super::ready::on_snapshot_applied(&mut peer, &peer_context!(self), index).await;
                self.peers.insert(region_id, peer);
                self.dirty.insert(region_id);
                self.route(region_id, result?).await?;
            }
        }
        Ok(())
    }

    /// Whether `region_id` split (its version moved) since `epoch`.
    fn split_since(&self, region_id: RegionId, epoch: crate::meta::RegionEpoch) -> bool {
        self.peers.get(&region_id).is_some_and(|p| p.is_initialized() && epoch.version < p.region().epoch.version)
    }

    /// `EpochNotMatch` for a request routed with a layout from before a split:
    /// the region as it is now and the regions this store holds that came out
    /// of the same splits (its right-hand siblings, at the same version), so the
    /// client learns the whole new layout in one answer, as TiKV does.
    fn epoch_not_match_with_siblings(&self, region_id: RegionId, epoch: crate::meta::RegionEpoch) -> super::cmd::RegionError {
        let region = self.peers[&region_id].region().clone();
        let mut current_regions = vec![region.clone()];
        let mut end = region.end_key.clone();
        while !end.is_empty() {
            let Some(next) = self.peers.values().map(|p| p.region()).find(|r| r.start_key == end && r.epoch.version == region.epoch.version) else { break };
            end = next.end_key.clone();
            current_regions.push(next.clone());
        }
        super::cmd::RegionError::EpochNotMatch {
            message: format!("request epoch {epoch}, region {region_id} is at {} after a split", region.epoch),
            current_regions,
        }
    }

    async fn on_raft_message(&mut self, envelope: RaftEnvelope) -> Result<(), Stopped> {
        // Any envelope says its store is alive; a keepalive says nothing else.
        self.liveness.heard(envelope.from.store_id, self.cfg.clock.now());
        if envelope.is_keepalive() {
            return Ok(());
        }
        if envelope.tombstone {
            return self.on_tombstone_notice(&envelope).await;
        }
        self.on_raft_step(envelope);
        Ok(())
    }

    /// Tells peer `to` (not in `region`, which is newer than what it knows)
    /// that it was removed.
    fn tell_tombstone(&mut self, from: crate::meta::Peer, region: Region, to: crate::meta::Peer) {
        self.outgoing.entry(to.store_id).or_default().push(RaftEnvelope::tombstone(&region, from, to));
    }

    /// A leader says this store's peer is no longer a member: destroy it if
    /// the notice is newer than what the peer knows and names this very peer.
    async fn on_tombstone_notice(&mut self, notice: &RaftEnvelope) -> Result<(), Stopped> {
        self.on_tombstone(notice.region_id, notice.to.id, notice.epoch).await
    }

    /// Peer `peer_id` is not in the region at `epoch`: destroy it if that
    /// epoch is newer than what the peer knows.
    async fn on_tombstone(&mut self, region_id: RegionId, peer_id: u64, epoch: crate::meta::RegionEpoch) -> Result<(), Stopped> {
        let Some(peer) = self.peers.get(&region_id) else {
            return Ok(());
        };
        let stale = peer.peer.id == peer_id && peer.region().epoch.conf_ver < epoch.conf_ver && peer.applying_snapshot.is_none();
        if stale {
            tracing::info!(store = self.store_id, region = region_id, peer = peer_id, "removed while away: destroying");
            self.destroy_peer(region_id, Tombstone::Write(epoch)).await?;
        }
        Ok(())
    }

    fn on_raft_step(&mut self, envelope: RaftEnvelope) {
        let Ok(msg) = Message::parse_from_bytes(&envelope.message) else {
            tracing::warn!(store = self.store_id, region = envelope.region_id, "dropping undecodable raft message");
            return;
        };
        let region_id = envelope.region_id;
        if let Some(peer) = self.peers.get(&region_id) {
            if peer.is_initialized() && peer.region().peer(envelope.from.id).is_none() && envelope.epoch.conf_ver < peer.region().epoch.conf_ver {
                // The sender was removed and missed it: tell it (a sender that
                // knows no region yet asks PD instead, when it falls silent).
                if envelope.epoch.conf_ver > 0 {
                    self.tell_tombstone(peer.peer, peer.region().clone(), envelope.from);
                }
                return;
            }
        }
        if !self.peers.contains_key(&region_id) && !self.maybe_create_peer(&envelope, &msg) {
            tracing::debug!(store = self.store_id, region = region_id, "raft message for a region this store does not host");
            return;
        }
        let peer = self.peers.get(&region_id).expect("present or just created");
        if envelope.to.id != peer.peer.id {
            return;
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            let overlaps =
                |region: &crate::meta::Region| self.peers.values().any(|p| p.region_id() != region_id && p.is_initialized() && p.region().overlaps(region));
            if let Err(reason) = snapshot::validate(&peer.receiver_state(), msg.get_snapshot(), overlaps) {
                let index = msg.get_snapshot().get_metadata().index;
                self.events.emit(StoreEvent::SnapshotRejected { store_id: self.store_id, region_id, index, reason });
                return;
            }
        }
        crate::trace::working_on(self.store_id, region_id);
        let peer = self.peers.get_mut(&region_id).expect("checked above");
        peer.heard_from(envelope.from);
        let notice = msg.get_msg_type() == MessageType::MsgHeartbeat && msg.context.as_ref() == hibernate::NOTICE;
        let term = msg.term;
        if !notice {
            peer.wake(&self.events, "raft message");
        }
        peer.step(&self.cfg, msg);
        if notice {
            peer.took_notice(envelope.from, term, &self.events);
        }
        self.dirty.insert(region_id);
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let due = |every: u64| self.ticks.is_multiple_of(every.max(1));
        let (gc_due, split_due, heartbeat_due) = (due(self.cfg.raft_log_gc_ticks), due(self.cfg.split_check_ticks), due(self.cfg.pd_heartbeat_ticks));
        if self.cfg.scrub_ticks > 0 && due(self.cfg.scrub_ticks) {
            self.scrub();
        }
        let (now, leader_timeout) = (self.cfg.clock.now(), self.cfg.election_timeout());
        // Stores hosting peers of this store's hibernating leaders: they get
        // a keepalive each heartbeat round in which they got nothing else.
        let mut keep_alive = BTreeSet::new();
        let heed_silence = !self.cfg.bugs.on(Bug::HibernationIgnoresSilence);
        for (&region_id, peer) in self.peers.iter_mut() {
            crate::trace::working_on(self.store_id, region_id);
            if heed_silence && peer.hibernating && !peer.is_leader() && !peer.leader_store().is_some_and(|s| self.liveness.alive(s, now, leader_timeout)) {
                peer.wake(&self.events, "leader's store silent");
            }
            if !peer.hibernating && peer.is_leader() {
                for notice in peer.maybe_hibernate(&self.cfg, &self.events).into_iter().flatten() {
                    self.outgoing.entry(notice.to.store_id).or_default().push(notice);
                }
            }
            if peer.hibernating {
                if peer.is_leader() {
                    keep_alive.extend(peer.region().peers.iter().map(|p| p.store_id).filter(|&s| s != self.store_id));
                }
            } else {
                peer.tick(&self.cfg, &self.events, gc_due);
                self.dirty.insert(region_id);
            }
            let Some(pd) = &self.pd else { continue };
            if split_due && !peer.hibernating {
                if let Some(split_key) = peer.check_split(&self.kv_engine, &self.cfg, &self.events, self.ticks, self.cfg.split_check_ticks * 5) {
                    let _ = pd.unbounded_send(PdTask::AskSplit { region: peer.region().clone(), split_key });
                }
            }
            let check = self.cfg.stale_peer_check_ticks.max(1);
            if !peer.is_leader() && !peer.hibernating && peer.silent_ticks >= check && peer.silent_ticks.is_multiple_of(check) {
                let _ = pd.unbounded_send(PdTask::CheckStalePeer { peer: peer.peer, region_id, epoch: peer.region().epoch });
            }
            if heartbeat_due {
                if let Some(hb) = peer.heartbeat() {
                    let _ = pd.unbounded_send(PdTask::RegionHeartbeat(hb));
                }
            }
        }
        if self.ticks.is_multiple_of(self.cfg.heartbeat_ticks.max(1) as u64) {
            for store in keep_alive {
                if !self.sent_this_round.contains(&store) {
                    self.outgoing.entry(store).or_default().push(RaftEnvelope::keepalive(self.store_id, store));
                }
            }
            self.sent_this_round.clear();
        }
        if let (Some(pd), true) = (&self.pd, heartbeat_due) {
            let applying = self.peers.values().filter(|p| p.applying_snapshot.is_some()).count() as u64;
            let used_bytes = self.peers.values().map(|p| p.approximate.0).sum();
            let stats = StoreStats { capacity_bytes: 0, used_bytes, region_count: self.peers.len() as u64, applying_snapshots: applying, sending_snapshots: 0 };
            let _ = pd.unbounded_send(PdTask::StoreHeartbeat(stats));
        }
    }

    /// Reads every initialized replica's data (all data CFs of its range)
    /// and marks the replicas whose data fails its checksums, as a
    /// background scrubber would. Charges no IO: it stands for a scan that
    /// runs at low priority.
    fn scrub(&mut self) {
        for (&region_id, peer) in self.peers.iter_mut() {
            if !peer.is_initialized() || peer.applying_snapshot.is_some() || peer.corrupt.is_some() {
                continue;
            }
            let snap = self.kv_engine.snapshot();
            let (start, end) = keys::region_data_range(&peer.region().start_key, &peer.region().end_key);
            for cf in crate::engine::DATA_CFS {
                for _ in snap.iter(cf, &start, Some(&end), false) {}
            }
            if let Some(failure) = snap.failure() {
                peer.found_corrupt(&self.events, format!("scrubbing: {failure}"));
                self.dirty.insert(region_id);
            }
        }
    }

    /// Creates the peer of a region a split made (its state is already in the
    /// kv engine, written with the split); `campaign` starts its election at
    /// once. A region this store already hosts is left alone.
    async fn create_split_peer(&mut self, region: Region, campaign: bool) -> Result<(), Stopped> {
        let Some(me) = region.peer_on_store(self.store_id).copied() else {
            return Ok(());
        };
        if let Some(existing) = self.peers.get(&region.id) {
            if existing.is_initialized() || existing.applying_snapshot.is_some() {
                tracing::warn!(store = self.store_id, region = region.id, "split made a region this store already hosts");
                return Ok(());
            }
            // An uninitialized peer a message created: the split wins.
            self.peers.remove(&region.id);
        }
        let known = engine_ok(self.kv_engine.snapshot().get(Cf::Raft, &keys::region_state_key(region.id)), "read region state")?;
        if let Some(bytes) = known {
            let local: RegionLocalState = state::decode(&bytes, "region state", self.kv_engine.name());
            if matches!(local.state, PeerState::Tombstone { .. }) {
                // Its peer here was removed after the split (the split was
                // applied here late): it stays removed.
                tracing::info!(store = self.store_id, region = region.id, "split made a region whose peer here is tombstoned");
                return Ok(());
            }
        }
        let raft_state = initial_raft_state();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, keys::raft_state_key(region.id), state::encode(&raft_state));
        engine_ok(self.raft_engine.write(&batch, false).await, "write split raft state")?;
        let apply_state = ApplyState { applied_index: RAFT_INIT_LOG_INDEX, truncated_index: RAFT_INIT_LOG_INDEX, truncated_term: RAFT_INIT_LOG_TERM };
        if self.cfg.bugs.on(Bug::SplitDefersApplyState) {
            // Planted bug: the apply state the split's batch left out.
            let mut kv = WriteBatch::new();
            kv.put(Cf::Raft, keys::apply_state_key(region.id), state::encode(&apply_state));
            engine_ok(self.kv_engine.write(&kv, true).await, "write split apply state")?;
        }
        self.events.emit(StoreEvent::PeerCreated { store_id: self.store_id, region: region.clone(), peer_id: me.id, applied_index: apply_state.applied_index });
        crate::trace::working_on(self.store_id, region.id);
        let mut peer = Box::new(PeerFsm::create(me, &self.cfg, self.raft_engine.clone(), region.clone(), raft_state, apply_state));
        if campaign {
            peer.campaign();
        }
        self.peers.insert(region.id, peer);
        self.dirty.insert(region.id);
        Ok(())
    }

    /// Creates an uninitialized peer for a message to a region this store does
    /// not host, when that is safe, as TiKV does: the message is addressed to
    /// this store, is one a new leader sends first (a vote request, or a
    /// heartbeat that commits nothing), the region was never hosted here (no
    /// state on disk: not tombstoned), and no initialized local region overlaps
    /// the sender's range (if one does, it has not applied the split that made
    /// the region yet, and will create the peer itself: the split wins).
    /// The region's tombstone, if any, must allow it (see `PeerState::Tombstone`).
    fn maybe_create_peer(&mut self, envelope: &RaftEnvelope, msg: &Message) -> bool {
        let recreate = self.cfg.bugs.on(Bug::RecreateRemovedPeer);
        let initial = match msg.get_msg_type() {
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => true,
            MessageType::MsgHeartbeat => msg.commit == 0,
            // Planted bug: any late message may bring a removed peer back.
            _ => recreate,
        };
        if !initial || envelope.to.store_id != self.store_id {
            return false;
        }
        let range =
            Region { id: envelope.region_id, start_key: envelope.start_key.clone(), end_key: envelope.end_key.clone(), epoch: envelope.epoch, peers: vec![] };
        if self.peers.values().any(|p| p.is_initialized() && p.region().overlaps(&range)) {
            return false;
        }
        let mut over_tombstone = false;
        match self.kv_engine.snapshot().get(Cf::Raft, &keys::region_state_key(envelope.region_id)) {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                let local: RegionLocalState = state::decode(&bytes, "region state", self.kv_engine.name());
                let PeerState::Tombstone { peer_id } = local.state else { return false };
                // Only a newer incarnation (peer ids only grow), from a
                // configuration not older than the one the peer died at: a
                // message from before the removal never brings a peer back.
                if !recreate && (envelope.to.id <= peer_id || envelope.epoch.conf_ver < local.region.epoch.conf_ver) {
                    tracing::debug!(
                        store = self.store_id,
                        region = envelope.region_id,
                        peer = envelope.to.id,
                        tombstone = peer_id,
                        "message for a removed peer dropped"
                    );
                    return false;
                }
                over_tombstone = true;
            }
            Err(_) => return false,
        }
        tracing::info!(store = self.store_id, region = envelope.region_id, peer = envelope.to.id, over_tombstone, "creating a peer from a message");
        crate::trace::working_on(self.store_id, envelope.region_id);
        // A vote an earlier incarnation of this peer gave must hold (a peer
        // over a tombstone is a new peer: the old one's state is gone).
        let raft_state: RaftLocalState = match self.raft_engine.snapshot().get(Cf::Raft, &keys::raft_state_key(envelope.region_id)) {
            Ok(Some(bytes)) if !over_tombstone => state::decode(&bytes, "raft state", self.raft_engine.name()),
            Ok(_) => RaftLocalState::default(),
            Err(_) => return false,
        };
        let raft_state = if self.cfg.bugs.on(Bug::UninitializedVoteForgotten) { RaftLocalState::default() } else { raft_state };
        let peer = Box::new(PeerFsm::uninitialized(envelope.to, envelope.region_id, &self.cfg, self.raft_engine.clone(), raft_state));
        self.events.emit(StoreEvent::PeerCreated { store_id: self.store_id, region: peer.region().clone(), peer_id: envelope.to.id, applied_index: 0 });
        self.peers.insert(envelope.region_id, peer);
        self.dirty.insert(envelope.region_id);
        true
    }

    /// Sends what a peer's ready produced, creates the regions it split off,
    /// and destroys the peer if it applied its own removal.
    async fn route(&mut self, region_id: RegionId, effects: Effects) -> Result<(), Stopped> {
        let destroy = effects.destroy;
        self.route_effects(effects).await?;
        if destroy {
            // The apply batch that removed the peer already holds its tombstone.
            self.destroy_peer(region_id, Tombstone::Written).await?;
        }
        Ok(())
    }

    async fn route_effects(&mut self, effects: Effects) -> Result<(), Stopped> {
        for (region, campaign) in effects.new_regions {
            self.create_split_peer(region, campaign).await?;
        }
        if let Some(pd) = &self.pd {
            for task in effects.pd_tasks {
                let _ = pd.unbounded_send(task);
            }
        }
        self.outgoing_vote |= effects.voted;
        self.outgoing_ack |= effects.acked;
        for envelope in effects.messages {
            self.outgoing.entry(envelope.to.store_id).or_default().push(envelope);
        }
        for (envelope, snapshot) in effects.snapshots {
            let Some(&addr) = self.addresses.get(&envelope.to.store_id) else {
                self.resolve(envelope.to.store_id);
                continue;
            };
            for chunk in snapshot::into_chunks(&envelope, snapshot, self.cfg.snapshot_chunk_bytes) {
                self.send_chunk(addr, chunk);
            }
        }
        Ok(())
    }

    /// Destroys a peer: its data, apply state and region state give way to a
    /// tombstone in one synced kv batch (a crash leaves the live peer or the
    /// tombstone, never half of each), then its log and raft state go.
    /// The tombstone is written here unless the apply batch already wrote it.
    async fn destroy_peer(&mut self, region_id: RegionId, tombstone: Tombstone) -> Result<(), Stopped> {
        let Some(mut peer) = self.peers.remove(&region_id) else {
            return Ok(());
        };
        let log_first = self.cfg.bugs.on(Bug::DestroyDeletesLogFirst);
        if log_first {
            // Planted bug: the log and raft state go before the tombstone.
            self.delete_raft_state(region_id).await?;
        }
        if let Tombstone::Write(epoch) = tombstone {
            if log_first {
                crate::buggify::crash_point(crate::buggify::Site::CrashMidDestroy, self.store_id).await;
            }
            let mut region = peer.region().clone();
            region.epoch.conf_ver = region.epoch.conf_ver.max(epoch.conf_ver);
            region.epoch.version = region.epoch.version.max(epoch.version);
            let mut kv = WriteBatch::new();
            state::tombstone_into(&mut kv, &region, peer.peer.id, peer.is_initialized());
            engine_ok(self.kv_engine.write(&kv, true).await, "write tombstone")?;
        }
        if !log_first {
            crate::buggify::crash_point(crate::buggify::Site::CrashMidDestroy, self.store_id).await;
            self.delete_raft_state(region_id).await?;
        }
        peer.proposals.peer_destroyed(region_id);
        for read in peer.reads.drain(..) {
            let _ = read.callback.send(Err(super::cmd::RegionError::RegionNotFound { region_id }));
        }
        self.dirty.remove(&region_id);
        tracing::info!(store = self.store_id, region = region_id, peer = peer.peer.id, "peer destroyed");
        self.events.emit(StoreEvent::PeerDestroyed { store_id: self.store_id, region_id, peer_id: peer.peer.id });
        Ok(())
    }

    /// Deletes a region's log, raft state and any pending snapshot.
    async fn delete_raft_state(&mut self, region_id: RegionId) -> Result<(), Stopped> {
        let mut raft = WriteBatch::new();
        raft.delete_range(Cf::Raft, keys::raft_log_key(region_id, 0), keys::raft_log_end_key(region_id));
        raft.delete(Cf::Raft, keys::raft_state_key(region_id));
        raft.delete(Cf::Raft, keys::pending_snapshot_key(region_id));
        engine_ok(self.raft_engine.write(&raft, true).await, "delete raft state")
    }

    /// Asks PD where a store this one has no address for listens (once at a
    /// time per store).
    fn resolve(&mut self, store_id: StoreId) {
        match &self.pd {
            Some(pd) if self.resolving.insert(store_id) => {
                tracing::info!(store = self.store_id, to = store_id, "asking PD where a store listens");
                let _ = pd.unbounded_send(PdTask::ResolveStore { store: store_id });
            }
            Some(_) => {}
            None => tracing::warn!(store = self.store_id, to = store_id, "no address for store"),
        }
    }

    fn send_chunk(&self, addr: SocketAddr, chunk: SnapshotChunk) {
        self.transport.send(addr, &Frame::SnapshotChunk(chunk));
    }
}

/// Where a destroyed peer's tombstone comes from.
enum Tombstone {
    /// The peer applied its own removal: the apply batch wrote it.
    Written,
    /// A newer epoch told the peer it was removed: write it now, at that epoch.
    Write(crate::meta::RegionEpoch),
}

/// Whether a restarted peer waits an election timeout before it votes (see
/// `PeerFsm::no_votes_until`).
const NO_VOTES_AFTER_RESTART: bool = true;

/// The raft state every new replica starts from (bootstrap and split alike).
pub fn initial_raft_state() -> RaftLocalState {
    RaftLocalState { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX, last_index: RAFT_INIT_LOG_INDEX }
}
