//! A `PeerFsm`: one replica of one region.
//!
//! The peer owns its raft node (fenced, see [`super::raft_node`]), its proposals
//! and its pending reads, and does everything one replica does: admission checks,
//! proposing writes, reads and its own admin commands, deciding when to compact
//! its log, handling its ready in the order raft-rs requires, applying committed
//! entries (through the pure [`super::apply`]) and acting on their exec results,
//! and serving reads. It does not route: what must leave the peer (raft messages,
//! snapshots to send) comes back to the store as [`Effects`].

use super::apply::{self, ExecResult};
use super::cmd::{AdminCmd, ChangeKind, CmdBody, PeerChange, RaftCmd, ReadCmd, RegionError, RegionResult, WriteCmd};
use super::conf_change;
use super::config::RaftStoreConfig;
use super::events::{Events, StoreEvent};
use super::lease::Lease;
use super::pd_worker::PdTask;
use super::proposal::{Proposal, ProposalQueue};
use super::raft_node::RaftNode;
pub use super::read::PendingRead;
use super::router::{ReadCallback, WriteCallback};
use super::snapshot::{ReceiverState, SnapshotWorker};
use super::state::{ApplyState, RaftLocalState};
use super::storage::PeerStorage;
use crate::codec::keys;
use crate::engine::{Cf, Engine, Snapshot as _, WriteBatch};
use crate::meta::{Peer, PeerId, Region, RegionEpoch, RegionId, StoreId};
use crate::planted::Bug;
use crate::transport::RaftEnvelope;
use protobuf::Message as _;
use raft::eraftpb::{Entry, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole, Storage as _};
use std::collections::VecDeque;

/// What a peer needs from its store while it works.
pub struct PeerContext<'a, E: Engine> {
    pub store_id: StoreId,
    pub cfg: &'a RaftStoreConfig,
    pub raft_engine: &'a E,
    pub kv_engine: &'a E,
    pub snapshots: &'a SnapshotWorker<E>,
    pub events: &'a Events,
}

/// The answers an apply decided, by (index, term) of the entry.
pub type Answers = Vec<(u64, u64, RegionResult<super::cmd::WriteResult>)>;

/// What the store must do on a peer's behalf.
#[derive(Default)]
pub struct Effects {
    /// Raft messages, for the store to batch by destination.
    pub messages: Vec<RaftEnvelope>,
    /// Raft messages carrying a snapshot `(term, index)`: sent in chunks.
    pub snapshots: Vec<(RaftEnvelope, (u64, u64))>,
    /// Regions a split created: the store creates their peers; `campaign`
    /// when this peer led the parent (its new neighbours should lead at once).
    pub new_regions: Vec<(Region, bool)>,
    /// Work for the PD worker.
    pub pd_tasks: Vec<PdTask>,
    /// The peer applied its own removal: the store destroys it.
    pub destroy: bool,
    /// A vote was granted among the messages (for the crash point after a
    /// vote is sent).
    pub voted: bool,
    /// Appended entries were acknowledged among the messages (for the crash
    /// point after an acknowledgement is sent).
    pub acked: bool,
}

/// A leader cut off from its region by the buggify site
/// `leader-cut-off-after-write`.
struct CutOff {
    until: madsim::time::Instant,
    /// The round of messages in flight still goes out.
    round_goes_out: bool,
    /// A message of a newer term ends the cut-off early.
    ends_on_newer_term: bool,
}

pub struct PeerFsm<E: Engine> {
    pub peer: Peer,
    pub node: RaftNode<E>,
    pub proposals: ProposalQueue,
    pub reads: VecDeque<PendingRead>,
    next_read_id: u64,
    /// Index of the snapshot whose data is being written, if any. While set, the
    /// peer refuses proposals, holds back committed entries and does not tick.
    pub applying_snapshot: Option<u64>,
    deferred_entries: Vec<Entry>,
    /// Committed entries are held back (in `deferred_entries`) until then:
    /// the buggify site that makes a leader apply a split late.
    split_held_until: Option<madsim::time::Instant>,
    /// Until then this region's raft messages reach the store late by the
    /// given delay: the buggify site that makes a transferring leader hear
    /// the answers to what it sent after the new leader may have been elected.
    hears_late: Option<(madsim::time::Instant, std::time::Duration)>,
    /// The buggify site that deposes a leader while its clients wait (see
    /// `start_cut_off`).
    cut_off: Option<CutOff>,
    last_role: StateRole,
    last_leader: u64,
    /// The region's size and key count at the last split check.
    pub approximate: (u64, u64),
    /// The region epoch a split was last asked for, in this term (no second
    /// ask until the epoch changes, the ask is forgotten, or the peer stops
    /// leading).
    split_asked: Option<(RegionEpoch, u64)>,
    /// The applied index at the last split check that found the region
    /// under its thresholds: a leader hibernates only once it is caught up
    /// (a region written past its threshold and then idle must still split).
    split_checked_index: u64,
    /// Peers this one heard from: an uninitialized peer knows no region yet,
    /// and answers whoever wrote to it.
    peer_cache: std::collections::BTreeMap<u64, Peer>,
    lease: Lease,
    /// Proposals of this leader's term not yet committed, with when they were
    /// proposed: their commit renews the lease from that moment.
    lease_evidence: VecDeque<(u64, madsim::time::Instant)>,
    /// The configuration last reported in a `RaftConfig` event (or the one the
    /// peer started with).
    reported_conf: (Vec<PeerId>, Vec<PeerId>, Vec<PeerId>),
    /// Ticks since this peer last heard a raft message.
    pub silent_ticks: u64,
    /// A restarted peer does not know whether a leader still holds a lease it
    /// acknowledged before the crash: it grants no vote (except to a leader
    /// transfer's candidate) until an election timeout has passed.
    pub no_votes_until: Option<madsim::time::Instant>,
    /// Why this replica's data cannot be trusted (a read failed its
    /// checksum): it serves nothing, applies nothing, hands on any leadership
    /// it gets, and asks the leader for a snapshot that replaces its data.
    pub corrupt: Option<String>,
    /// The store's clock: lease times are read on it.
    clock: crate::clock::Clock,
    /// Not ticking: the region had nothing to do (see `raftstore::hibernate`).
    pub hibernating: bool,
    /// Ticks this leader's region has been settled since anything happened.
    idle_ticks: u64,
}

impl<E: Engine> PeerFsm<E> {
    /// Starts the peer `me` of `region` from its persisted state.
    pub fn create(me: Peer, cfg: &RaftStoreConfig, raft_engine: E, region: Region, raft_state: RaftLocalState, apply_state: ApplyState) -> Self {
        let storage = PeerStorage::new(raft_engine, region.clone(), raft_state, apply_state);
        let reported_conf = (region.voter_ids(), region.outgoing_voter_ids(), region.learner_ids());
        let raw = RawNode::new(&super::raft_node::raft_config(cfg, me.id, apply_state.applied_index), storage, &super::raft_node::discard_logger())
            .unwrap_or_else(|e| panic!("region {}: cannot start raft: {e}", region.id));
        PeerFsm {
            peer: me,
            node: RaftNode::new(raw, (cfg.election_ticks_min, cfg.election_ticks_max)),
            proposals: ProposalQueue::new(cfg.bugs),
            reads: VecDeque::new(),
            next_read_id: 1,
            applying_snapshot: None,
            deferred_entries: Vec::new(),
            split_held_until: None,
            hears_late: None,
            cut_off: None,
            last_role: StateRole::Follower,
            last_leader: raft::INVALID_ID,
            approximate: (0, 0),
            split_asked: None,
            split_checked_index: 0,
            peer_cache: std::collections::BTreeMap::new(),
            lease: Lease::new(cfg.lease_duration()),
            lease_evidence: VecDeque::new(),
            reported_conf,
            silent_ticks: 0,
            no_votes_until: None,
            corrupt: None,
            clock: cfg.clock.clone(),
            hibernating: false,
            idle_ticks: 0,
        }
    }

    /// A peer created by a message for a region this store did not host: it
    /// knows no range, no peers and no log, and waits for a snapshot from the
    /// region's leader.
    /// `raft_state` is what an earlier incarnation persisted (its vote), if any.
    pub fn uninitialized(me: Peer, region_id: RegionId, cfg: &RaftStoreConfig, raft_engine: E, raft_state: RaftLocalState) -> Self {
        let region = Region { id: region_id, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(0, 0), peers: vec![] };
        // Nothing is applied: commit and the log start from nothing too (a vote
        // survives; entries, if any, are ignored until a snapshot replaces them).
        let raft_state = RaftLocalState { commit: 0, last_index: 0, ..raft_state };
        PeerFsm::create(me, cfg, raft_engine, region, raft_state, ApplyState::default())
    }

    /// Whether the peer holds its region's data (it knows the region's peers).
    pub fn is_initialized(&self) -> bool {
        !self.region().peers.is_empty()
    }

    /// A request or command for the region: it is not idle (a read served
    /// on the lease changes no raft state), and a hibernating peer wakes.
    pub fn touch(&mut self, events: &Events, why: &'static str) {
        self.idle_ticks = 0;
        self.wake(events, why);
    }

    /// A hibernating peer wakes (`why` says what, for the event). Raft
    /// traffic wakes without making the region busy: heartbeats keep going
    /// while a leader counts its settled ticks.
    pub fn wake(&mut self, events: &Events, why: &'static str) {
        if !self.hibernating {
            return;
        }
        self.hibernating = false;
        if self.is_leader() {
            self.node.restart_quorum_check();
        }
        events.emit(StoreEvent::Woke { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, why });
    }

    /// Whether this leader's region has nothing to do: nothing proposed,
    /// read, being replicated, applied or changed, and every peer holds the
    /// whole log.
    fn settled(&self) -> bool {
        let raft = self.node.raft();
        let last = raft.raft_log.last_index();
        self.is_leader()
            && self.is_initialized()
            && self.applying_snapshot.is_none()
            && self.corrupt.is_none()
            && self.proposals.is_empty()
            && self.reads.is_empty()
            && self.deferred_entries.is_empty()
            && !self.region().is_joint()
            && raft.raft_log.committed == last
            && self.node.store().apply_state.applied_index == last
            && raft.lead_transferee.is_none()
            && !raft.has_pending_conf()
            && raft.pending_read_count() == 0
            && raft.ready_read_count() == 0
            && !self.node.has_ready()
            && raft.prs().iter().all(|(_, pr)| pr.matched == last)
    }

    /// Called on each tick of a leader that is awake: counts settled ticks,
    /// and after `hibernate_after_ticks` of them hibernates, returning the
    /// notices for its peers.
    pub fn maybe_hibernate(&mut self, cfg: &RaftStoreConfig, events: &Events) -> Option<Vec<RaftEnvelope>> {
        let split_unchecked = (cfg.region_split_keys > 0 || cfg.region_split_bytes > 0) && self.split_checked_index < self.applied_index();
        if cfg.hibernate_after_ticks == 0 || !self.settled() || split_unchecked {
            self.idle_ticks = 0;
            return None;
        }
        self.idle_ticks += 1;
        if self.idle_ticks < cfg.hibernate_after_ticks {
            return None;
        }
        let raft = self.node.raft();
        let (term, last) = (raft.term, raft.raft_log.last_index());
        let notices = self
            .region()
            .peers
            .iter()
            .filter(|p| p.id != self.peer.id)
            .map(|to| {
                let mut msg = Message::default();
                msg.set_msg_type(MessageType::MsgHeartbeat);
                (msg.from, msg.to, msg.term, msg.commit) = (self.peer.id, to.id, term, last);
                msg.context = super::hibernate::NOTICE.to_vec().into();
                RaftEnvelope::new(self.region(), self.peer, *to, msg.write_to_bytes().expect("raft message encodes"))
            })
            .collect();
        self.hibernating = true;
        events.emit(StoreEvent::Hibernated { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, leader: true });
        Some(notices)
    }

    /// A follower took its leader's hibernation notice (already stepped as
    /// the heartbeat it is): it hibernates if it follows that leader in
    /// that term and has nothing left to commit.
    pub fn took_notice(&mut self, from: Peer, term: u64, events: &Events) {
        let raft = self.node.raft();
        let follows = raft.state == StateRole::Follower && raft.leader_id == from.id && raft.term == term;
        let caught_up = raft.raft_log.committed == raft.raft_log.last_index();
        if !follows || !caught_up || !self.is_initialized() || self.applying_snapshot.is_some() || self.corrupt.is_some() || self.hibernating {
            return;
        }
        self.hibernating = true;
        self.idle_ticks = 0;
        events.emit(StoreEvent::Hibernated { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, leader: false });
    }

    /// The store of the leader this peer follows, if it knows one.
    pub fn leader_store(&self) -> Option<crate::meta::StoreId> {
        let leader = self.node.raft().leader_id;
        self.region().peer(leader).or_else(|| self.peer_cache.get(&leader)).map(|p| p.store_id)
    }

    /// Remembers the sender of a message (see `peer_cache`).
    pub fn heard_from(&mut self, peer: Peer) {
        self.peer_cache.insert(peer.id, peer);
    }

    /// Starts an election at once (not while writing a snapshot's data: see
    /// [`PeerFsm::tick`]).
    pub fn campaign(&mut self) {
        if self.applying_snapshot.is_none() {
            let _ = self.node.campaign();
        }
    }

    pub fn region(&self) -> &Region {
        &self.node.store().region
    }

    pub fn region_id(&self) -> RegionId {
        self.node.store().region_id
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft().state == StateRole::Leader
    }

    pub fn applied_index(&self) -> u64 {
        self.node.store().apply_state.applied_index
    }

    pub fn leader_hint(&self) -> Option<Peer> {
        self.region().peer(self.node.raft().leader_id).copied()
    }

    pub fn not_leader(&self) -> RegionError {
        RegionError::NotLeader { region_id: self.region_id(), leader: self.leader_hint() }
    }

    /// What a snapshot receiver must know of this peer.
    pub fn receiver_state(&self) -> ReceiverState {
        ReceiverState {
            region_id: self.region_id(),
            applying: self.applying_snapshot.is_some(),
            applied_index: self.applied_index(),
            truncated_index: self.node.store().truncated_index(),
            repairing: self.corrupt.is_some(),
        }
    }

    /// The checks every request passes before it reaches raft: epoch (the parts
    /// `checks` names, see [`CmdBody::epoch_checks`]), keys in range, leadership,
    /// no snapshot being applied, room for one more.
    pub fn check_request(&self, epoch: RegionEpoch, checks: (bool, bool), keys: &[&[u8]], max_pending: usize) -> RegionResult<()> {
        let region = self.region();
        if !epoch.matches(&region.epoch, checks) {
            return Err(RegionError::EpochNotMatch {
                message: format!("request epoch {epoch}, region {} is at {}", region.id, region.epoch),
                current_regions: vec![region.clone()],
            });
        }
        if let Some(key) = keys.iter().find(|k| !region.contains(k)) {
            return Err(RegionError::KeyNotInRegion {
                key: key.to_vec(),
                region_id: region.id,
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
            });
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        if let Some(reason) = &self.corrupt {
            return Err(RegionError::DataCorrupted { region_id: region.id, reason: reason.clone() });
        }
        if self.applying_snapshot.is_some() {
            return Err(RegionError::ServerIsBusy { reason: format!("region {} is applying a snapshot", region.id) });
        }
        if self.proposals.len() + self.reads.len() >= max_pending {
            return Err(RegionError::ServerIsBusy { reason: format!("region {} has too many pending requests", region.id) });
        }
        Ok(())
    }

    /// Proposes a command; returns the (index, term) its entry got, or None if
    /// raft dropped it (no leader, a transfer in progress).
    fn propose(&mut self, cmd: RaftCmd) -> Option<(u64, u64)> {
        let last_before = self.node.raft().raft_log.last_index();
        if self.node.propose(cmd.encode()).is_err() || self.node.raft().raft_log.last_index() == last_before {
            return None;
        }
        self.proposed()
    }

    /// The entry just appended: its (index, term), remembered as lease evidence.
    fn proposed(&mut self) -> Option<(u64, u64)> {
        let index = self.node.raft().raft_log.last_index();
        self.lease_evidence.push_back((index, self.clock.now()));
        Some((index, self.node.raft().term))
    }

    pub fn propose_write(&mut self, cfg: &RaftStoreConfig, epoch: RegionEpoch, cmd: WriteCmd, callback: WriteCallback) {
        let keys = cmd.keys();
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
        if let Err(e) = self.check_request(epoch, (true, false), &keys, cfg.max_pending_requests) {
            let _ = callback.send(Err(e));
            return;
        }
        let is_cas = matches!(cmd, WriteCmd::Cas { .. } | WriteCmd::Txn(_));
        let Some((index, term)) = self.propose(RaftCmd { region_id: self.region_id(), epoch, body: CmdBody::Write(cmd) }) else {
            let _ = callback.send(Err(self.not_leader()));
            return;
        };
        let mut callback = Some(callback);
        if cfg.bugs.on(Bug::AckBeforeCommit) && !is_cas {
            // Planted bug: the client hears "done" before a quorum has the entry.
            let _ = callback.take().expect("not yet used").send(Ok(super::cmd::WriteResult::Done));
        }
        self.proposals.push(Proposal { index, term, callback });
        if self.cut_off.is_none() && crate::buggify::fires(crate::buggify::Site::LeaderCutOffAfterWrite) {
            self.start_cut_off(crate::buggify::draw_ms(0, 1) == 0);
        }
    }

    /// Cuts this leader off from its region, both ways, for 3 s: the
    /// followers elect another leader while this one still holds its
    /// clients' writes, and it catches up while they still wait. Two shapes:
    /// - `committed_elsewhere`: the write just proposed goes out before the
    ///   cut, so the next leader commits it unbeknown to us; the cut lasts
    ///   its 3 s, the next leader compacts its log meanwhile, and we catch
    ///   up by snapshot;
    /// - otherwise nothing goes out, so the next leader writes over the
    ///   write's index; the cut ends as soon as a message of a newer term
    ///   reaches us, and we catch up by log.
    fn start_cut_off(&mut self, committed_elsewhere: bool) {
        tracing::info!(region = self.region_id(), peer = self.peer.id, committed_elsewhere, "buggify: leader cut off after a write");
        let until = madsim::time::Instant::now() + std::time::Duration::from_secs(3);
        self.cut_off = Some(CutOff { until, round_goes_out: committed_elsewhere, ends_on_newer_term: !committed_elsewhere });
    }

    /// Whether the region's raft messages are dropped both ways now (the
    /// cut-off is over once its time is up).
    fn is_cut_off(&mut self) -> bool {
        if self.cut_off.as_ref().is_some_and(|c| madsim::time::Instant::now() >= c.until) {
            self.cut_off = None;
        }
        self.cut_off.is_some()
    }

    pub fn propose_read(&mut self, cfg: &RaftStoreConfig, events: &Events, epoch: RegionEpoch, cmd: ReadCmd, callback: ReadCallback) {
        let keys = cmd.keys();
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
        let checked = self.check_request(epoch, (true, false), &keys, cfg.max_pending_requests);
        let id = self.next_read_id;
        if cfg.bugs.on(Bug::FollowerLocalRead) && matches!(checked, Err(RegionError::NotLeader { .. })) {
            // Planted bug: serve from local state as soon as possible.
            self.next_read_id += 1;
            self.reads.push_back(PendingRead { id, cmd, callback, read_index: Some(0), epoch: self.region().epoch, sent_at: None });
            return;
        }
        if let Err(e) = checked {
            let _ = callback.send(Err(e));
            return;
        }
        self.next_read_id += 1;
        if cfg.lease_reads && self.lease_valid() {
            // No other leader can exist yet: everything committed is the
            // latest state; serve once it is applied.
            let mut committed = self.node.raft().raft_log.committed;
            if cfg.bugs.on(Bug::LeaseReadIgnoresSplit) {
                // Planted bug: serve from what is applied already.
                committed = self.applied_index();
            }
            let term = self.node.raft().term;
            events.emit(StoreEvent::LeaseRead { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, term, read_id: id });
            self.reads.push_back(PendingRead { id, cmd, callback, read_index: Some(committed), epoch: self.region().epoch, sent_at: None });
            return;
        }
        self.node.read_index(id.to_be_bytes().to_vec());
        let sent_at = Some(self.clock.now());
        self.reads.push_back(PendingRead { id, cmd, callback, read_index: None, epoch: self.region().epoch, sent_at });
    }

    /// Whether this leader's lease lets it serve a read without ReadIndex:
    /// valid, and the leader has committed an entry of its own term.
    fn lease_valid(&self) -> bool {
        let raft = self.node.raft();
        self.is_leader() && raft.raft_log.term(raft.raft_log.committed).ok() == Some(raft.term) && self.lease.is_valid(self.clock.now(), self.applied_index())
    }

    /// Proposes a membership change (see [`conf_change`]). Refused with a typed
    /// error while another is unapplied, when it cannot be made, and when it
    /// would remove or demote this leader: then leadership is handed to the
    /// most up-to-date other voter first, and the change is for it to make.
    pub fn propose_conf_change(
        &mut self,
        cfg: &RaftStoreConfig,
        events: &Events,
        epoch: RegionEpoch,
        changes: Vec<PeerChange>,
        callback: Option<WriteCallback>,
    ) {
        let reply = |callback: Option<WriteCallback>, result| {
            if let Some(callback) = callback {
                let _ = callback.send(result);
            }
        };
        if let Err(e) = self.check_request(epoch, (false, true), &[], cfg.max_pending_requests) {
            return reply(callback, Err(e));
        }
        let region_id = self.region_id();
        let two_pending = cfg.bugs.on(Bug::TwoPendingConfChanges);
        let raft = self.node.raft();
        if raft.has_pending_conf() && !two_pending {
            let (pending_index, applied_index) = (raft.pending_conf_index, raft.raft_log.applied);
            return reply(callback, Err(RegionError::ConfChangePending { region_id, pending_index, applied_index }));
        }
        if let Err(reason) = conf_change::change_peers(self.region(), &changes) {
            return reply(callback, Err(RegionError::ConfChangeRefused { region_id, reason }));
        }
        if changes.iter().any(|c| c.peer.id == self.peer.id && c.kind != ChangeKind::AddVoter) {
            let target = self.best_transferee();
            if let Some(target) = target {
                self.transfer_leader(cfg, target);
            }
            let reason = format!("peer {} leads the region and cannot remove or demote itself; leadership goes to peer {target:?} first", self.peer.id);
            return reply(callback, Err(RegionError::ConfChangeRefused { region_id, reason }));
        }
        let cmd = RaftCmd { region_id, epoch: self.region().epoch, body: CmdBody::Admin(AdminCmd::ChangePeer { changes: changes.clone() }) };
        let cc = conf_change::to_conf_change_v2(&changes, cmd.encode());
        if two_pending {
            // Planted bug: raft-rs's own one-at-a-time guard is bypassed too.
            self.node.forget_pending_conf();
        }
        let last_before = self.node.raft().raft_log.last_index();
        if self.node.propose_conf_change(cc.clone()).is_err() || self.node.raft().raft_log.last_index() == last_before {
            return reply(callback, Err(self.not_leader()));
        }
        let (index, term) = self.proposed().expect("appended");
        self.lease.suspect_until_applied(index);
        events.emit(StoreEvent::ConfChangeProposed { store_id: events.store_id, region_id, peer_id: self.peer.id, index, term });
        if cfg.bugs.on(Bug::ConfChangeAtPropose) {
            // Planted bug: the configuration changes before the entry is even committed.
            let _ = self.node.apply_conf_change(&cc);
        }
        self.proposals.push(Proposal { index, term, callback });
    }

    /// The voter (not this peer) whose log is the most up to date.
    fn best_transferee(&self) -> Option<PeerId> {
        let voters = self.region().voter_ids();
        let raft = self.node.raft();
        raft.prs()
            .iter()
            .filter(|(id, _)| **id != self.peer.id && voters.contains(id))
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// Hands leadership to voter `to`. The lease is made suspect first: once
    /// `to` campaigns, followers vote for it without waiting out a timeout.
    pub fn transfer_leader(&mut self, cfg: &RaftStoreConfig, to: PeerId) -> bool {
        if !self.is_leader() || to == self.peer.id || !self.region().voter_ids().contains(&to) || self.region().is_joint() {
            return false;
        }
        if cfg.bugs.on(Bug::LeaseRenewedAcrossTransfer) {
            // Planted bug: the lease is voided, but evidence gathered before
            // the transfer could have finished renews it again.
            self.lease.expire();
        } else if !cfg.bugs.on(Bug::LeaseKeptOnTransfer) {
            self.lease.suspect_transfer(self.clock.now(), cfg.election_timeout() * 2);
        }
        if crate::buggify::fires(crate::buggify::Site::ReadIndexAcrossTransfer) {
            let delay = std::time::Duration::from_millis(crate::buggify::draw_ms(200, 800));
            self.hears_late = Some((madsim::time::Instant::now() + std::time::Duration::from_secs(2), delay));
        }
        self.node.transfer_leader(to);
        true
    }

    /// How late this region's raft messages reach the store now, if a
    /// buggify site holds them back (see `hears_late`).
    pub fn hears_late(&self) -> Option<std::time::Duration> {
        self.hears_late.filter(|(until, _)| madsim::time::Instant::now() < *until).map(|(_, delay)| delay)
    }

    /// One base tick. A peer writing a snapshot's data does not tick: raft-rs's
    /// applied index lags the snapshot until the data is written, and a campaign
    /// would read entries the snapshot replaced.
    pub fn tick(&mut self, cfg: &RaftStoreConfig, events: &Events, gc_due: bool) {
        self.silent_ticks += 1;
        if self.applying_snapshot.is_some() {
            return;
        }
        if self.corrupt.is_some() {
            self.tick_corrupt(cfg);
            return;
        }
        self.node.tick();
        if gc_due && self.is_leader() {
            self.maybe_compact_log(cfg.raft_log_gc_count_limit);
        }
        if self.is_leader() && self.region().is_joint() && !self.node.raft().has_pending_conf() {
            // A joint configuration is left as soon as it was entered (by
            // whoever leads when it is applied, or leads after).
            self.propose_conf_change(cfg, events, self.region().epoch, Vec::new(), None);
        }
    }

    /// A damaged replica: a leader hands leadership to the most up-to-date
    /// voter (and keeps ticking to lead until then); a follower asks the
    /// leader for a snapshot of at least its last log index, until raft
    /// takes the request. Its raft log is intact, so it still votes and may
    /// even be elected — when its log is the only one up to date, no other
    /// voter can win — but then it only replicates and hands leadership on.
    fn tick_corrupt(&mut self, cfg: &RaftStoreConfig) {
        self.node.tick();
        if self.is_leader() {
            if let Some(to) = self.best_transferee() {
                self.transfer_leader(cfg, to);
            }
        } else if self.node.raft().pending_request_snapshot == raft::INVALID_INDEX {
            let _ = self.node.request_snapshot();
        }
    }

    /// A read of this replica's data failed its checksum (or could not be
    /// read): stop trusting it until a snapshot from the leader replaces it.
    pub fn found_corrupt(&mut self, events: &Events, reason: String) {
        self.touch(events, "damage found");
        if self.corrupt.is_some() || !self.is_initialized() {
            return;
        }
        tracing::warn!(store = events.store_id, region = self.region_id(), peer = self.peer.id, %reason, "replica data damaged: repairing from the leader");
        events.emit(StoreEvent::DataCorrupted { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, reason: reason.clone() });
        self.lease.expire();
        let error = RegionError::DataCorrupted { region_id: self.region_id(), reason: reason.clone() };
        for read in self.reads.drain(..) {
            let _ = read.callback.send(Err(error.clone()));
        }
        self.corrupt = Some(reason);
    }

    /// Proposes CompactLog once enough applied entries sit in the log. Compacts only
    /// what every follower has, unless one lags by more than the limit: then it
    /// compacts anyway and the laggard catches up by snapshot.
    fn maybe_compact_log(&mut self, limit: u64) {
        let limit = if crate::buggify::fires(crate::buggify::Site::ShrinkLogGc) { 1 } else { limit };
        let storage = self.node.store();
        let (applied, truncated) = (storage.apply_state.applied_index, storage.truncated_index());
        if applied < truncated + limit {
            return;
        }
        let replicated = self.node.raft().prs().iter().map(|(_, pr)| pr.matched).min().unwrap_or(applied);
        let compact_to = if applied.saturating_sub(replicated) > limit { applied } else { replicated.min(applied) };
        if compact_to <= truncated {
            return;
        }
        let Ok(term) = self.node.store().term(compact_to) else {
            return;
        };
        let cmd = RaftCmd { region_id: self.region_id(), epoch: self.region().epoch, body: CmdBody::Admin(AdminCmd::CompactLog { index: compact_to, term }) };
        if let Some((index, term)) = self.propose(cmd) {
            self.proposals.push(Proposal { index, term, callback: None });
        }
    }

    pub fn step(&mut self, cfg: &RaftStoreConfig, msg: Message) {
        if self.is_cut_off() {
            if msg.term <= self.node.raft().term || !self.cut_off.as_ref().is_some_and(|c| c.ends_on_newer_term) {
                return;
            }
            self.cut_off = None; // the region has moved on: we hear again
        }
        if cfg.bugs.on(Bug::LeaseRenewedByOneFollower) && msg.get_msg_type() == MessageType::MsgHeartbeatResponse && self.is_leader() {
            // Planted bug: one follower's answer is taken for a quorum's.
            self.lease.renew(self.clock.now(), self.applied_index());
        }
        let vote = matches!(msg.get_msg_type(), MessageType::MsgRequestVote | MessageType::MsgRequestPreVote);
        if vote && msg.context.as_ref() != raft::CAMPAIGN_TRANSFER && self.no_votes_until.is_some_and(|t| self.clock.now() < t) {
            return;
        }
        self.silent_ticks = 0;
        if msg.get_msg_type() == MessageType::MsgTimeoutNow && self.corrupt.is_some() {
            return; // no leadership handed to a damaged replica
        }
        if msg.get_msg_type() == MessageType::MsgTimeoutNow && self.applying_snapshot.is_some() {
            // A leader hands over leadership: campaigning now would read the
            // entries the snapshot being written replaced (raft-rs's applied
            // index lags it). The transfer fails; the leader keeps leading.
            tracing::info!(region = self.region_id(), peer = self.peer.id, "refusing leadership while applying a snapshot");
            return;
        }
        let _ = self.node.step(msg);
    }

    /// Entries a late split held back, once their time has come.
    pub fn release_held(&mut self) -> Option<Vec<Entry>> {
        if self.split_held_until.is_none_or(|until| self.clock.now() < until) {
            return None;
        }
        self.split_held_until = None;
        Some(std::mem::take(&mut self.deferred_entries))
    }

    /// raft-rs's applied index moves to what the state machine applied
    /// (entries held back behind a snapshot being written are not).
    pub fn advance_apply(&mut self) {
        self.node.advance_apply_to(self.applied_index());
    }

    /// The ready, if raft has one, with its messages (those that may go
    /// before the write) queued.
    pub fn take_ready(&mut self, events: &Events, effects: &mut Effects) -> Option<raft::Ready> {
        if !self.node.has_ready() {
            return None;
        }
        let mut ready = self.node.ready();
        self.observe_role(events);
        self.queue_messages(ready.take_messages(), effects, events);
        if let Some(cut_off) = &mut self.cut_off {
            cut_off.round_goes_out = false;
        }
        Some(ready)
    }

    /// The ReadIndex answers of a ready: each confirms its read at an index,
    /// and (a quorum having answered a heartbeat sent then) renews the lease.
    pub fn take_read_states(&mut self, ready: &mut raft::Ready) {
        for read_state in ready.take_read_states() {
            let Ok(id) = <[u8; 8]>::try_from(&read_state.request_ctx[..]) else {
                continue;
            };
            let id = u64::from_be_bytes(id);
            if let Some(read) = self.reads.iter_mut().find(|r| r.id == id) {
                read.read_index = Some(read_state.index);
                if let Some(sent_at) = read.sent_at {
                    // A quorum answered a heartbeat sent at `sent_at`.
                    self.lease.renew(sent_at, self.node.store().apply_state.applied_index);
                }
            }
        }
    }

    /// What a ready asks to persist to the raft engine: its new entries and
    /// hard state, and whether the write must be synced (always, unless a
    /// planted bug says otherwise). `None` when there is nothing to write.
    pub fn persist(&mut self, cfg: &RaftStoreConfig, ready: &raft::Ready) -> Option<(WriteBatch, bool)> {
        if ready.entries().is_empty() && ready.hs().is_none() {
            return None;
        }
        let mut batch = WriteBatch::new();
        self.node.mut_store().append(ready.entries(), ready.hs(), &mut batch);
        Some((batch, !(cfg.bugs.on(Bug::UnsyncedVote) && ready.entries().is_empty())))
    }

    /// The ready is persisted: its persisted messages (votes, append
    /// responses) are queued, raft advances, and the light ready's messages
    /// are queued too. Returns the light ready (its committed entries are
    /// still to apply).
    pub fn persisted(&mut self, mut ready: raft::Ready, events: &Events, effects: &mut Effects) -> raft::LightReady {
        self.queue_messages(ready.take_persisted_messages(), effects, events);
        let mut light = self.node.advance_append(ready);
        self.queue_messages(light.take_messages(), effects, events);
        light
    }

    /// The end of a ready: raft's applied index, the lease renewed by what
    /// committed, the configuration reported if it changed.
    pub fn finish_ready(&mut self, events: &Events) {
        self.advance_apply();
        self.renew_lease_by_commits();
        self.report_conf(events);
    }

    /// Starts generating the snapshot raft asked for, if it did.
    pub fn maybe_generate_snapshot(&mut self, ctx: &PeerContext<'_, E>) {
        if !self.node.store().take_snapshot_request() {
            return;
        }
        let storage = self.node.store();
        let applied = storage.apply_state.applied_index;
        match storage.term(applied) {
            // Never replicate what this disk cannot vouch for.
            Ok(_) if self.corrupt.is_some() => storage.cancel_generating(),
            Ok(term) => {
                tracing::info!(store = ctx.store_id, region = self.region_id(), index = applied, "generating snapshot");
                ctx.snapshots.generate(storage.region.clone(), applied, term);
            }
            Err(_) => storage.cancel_generating(),
        }
    }

    /// This leader's entries that a quorum now holds renew its lease from the
    /// moment they were proposed.
    fn renew_lease_by_commits(&mut self) {
        let (committed, leader) = (self.node.raft().raft_log.committed, self.is_leader());
        let mut latest = None;
        while self.lease_evidence.front().is_some_and(|(index, _)| *index <= committed) {
            latest = self.lease_evidence.pop_front().map(|(_, at)| at);
        }
        if let (Some(at), true) = (latest, leader) {
            self.lease.renew(at, self.applied_index());
        }
    }

    /// Reports the configuration raft-rs now counts by, if it changed.
    fn report_conf(&mut self, events: &Events) {
        let conf = self.node.raft().prs().conf().to_conf_state();
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        let now = (sorted(&conf.voters), sorted(&conf.voters_outgoing), sorted(&conf.learners));
        if now != self.reported_conf {
            events.emit(StoreEvent::RaftConfig {
                store_id: events.store_id,
                region_id: self.region_id(),
                peer_id: self.peer.id,
                voters: now.0.clone(),
                outgoing: now.1.clone(),
                learners: now.2.clone(),
            });
            self.reported_conf = now;
        }
    }

    fn observe_role(&mut self, events: &Events) {
        let (role, leader, term) = (self.node.raft().state, self.node.raft().leader_id, self.node.raft().term);
        if role == self.last_role && leader == self.last_leader {
            return;
        }
        if role == StateRole::Leader && self.last_role != StateRole::Leader {
            tracing::info!(store = events.store_id, region = self.region_id(), term, "became leader");
            events.emit(StoreEvent::BecameLeader { store_id: events.store_id, region_id: self.region_id(), peer_id: self.peer.id, term });
        }
        if self.last_role == StateRole::Leader && role != StateRole::Leader {
            self.fail_unconfirmed_reads();
            self.lease.expire();
            self.lease_evidence.clear();
            // A split asked for in this term dies with it: whoever leads next
            // (this peer again, too) asks afresh at its next check, not only
            // once the old ask's retry time is up.
            self.split_asked = None;
        }
        self.last_role = role;
        self.last_leader = leader;
    }

    /// On losing leadership, reads not yet confirmed can never be: fail them.
    fn fail_unconfirmed_reads(&mut self) {
        let error = self.not_leader();
        let (confirmed, unconfirmed): (VecDeque<_>, VecDeque<_>) = self.reads.drain(..).partition(|r| r.read_index.is_some());
        self.reads = confirmed;
        for read in unconfirmed {
            let _ = read.callback.send(Err(error.clone()));
        }
    }

    fn queue_messages(&mut self, messages: Vec<Message>, effects: &mut Effects, events: &Events) {
        if self.is_cut_off() && self.cut_off.as_ref().is_some_and(|c| !c.round_goes_out) {
            for msg in messages.iter().filter(|m| m.get_msg_type() == MessageType::MsgSnapshot) {
                self.node.report_snapshot(msg.to, SnapshotStatus::Failure);
            }
            return;
        }
        for msg in messages {
            if msg.get_msg_type() == MessageType::MsgHeartbeatResponse && msg.context.as_ref() == super::hibernate::NOTICE {
                continue; // a hibernating leader expects no answer
            }
            let to_id = msg.to;
            if msg.get_msg_type() == MessageType::MsgAppendResponse && !msg.reject {
                effects.acked = true;
            }
            if msg.get_msg_type() == MessageType::MsgRequestVoteResponse && !msg.reject {
                effects.voted = true;
                events.emit(StoreEvent::Voted {
                    store_id: events.store_id,
                    region_id: self.region_id(),
                    peer_id: self.peer.id,
                    term: msg.term,
                    candidate: to_id,
                });
            }
            let Some(to) = self.region().peer(to_id).or_else(|| self.peer_cache.get(&to_id)).copied() else {
                self.node.report_unreachable(to_id);
                continue;
            };
            let envelope = RaftEnvelope::new(self.region(), self.peer, to, msg.write_to_bytes().expect("raft message encodes"));
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                let meta = msg.get_snapshot().get_metadata();
                effects.snapshots.push((envelope, (meta.term, meta.index)));
                // The leader learns whether the follower got it from the follower's
                // next response; "finished" just lets it probe again.
                self.node.report_snapshot(to_id, SnapshotStatus::Finish);
            } else {
                effects.messages.push(envelope);
            }
        }
    }

    /// Committed entries, decided against the kv engine as it is now: what
    /// to write (data and apply state in one batch), and what follows once it
    /// is written. `None` when they are not applied now: held back behind a
    /// snapshot being written or a late split, or on a damaged replica (the
    /// snapshot it asked for covers them).
    pub fn prepare_apply(&mut self, ctx: &PeerContext<'_, E>, entries: Vec<Entry>) -> Option<apply::ApplyOutput> {
        if entries.is_empty() {
            return None;
        }
        if self.applying_snapshot.is_some() || self.split_held_until.is_some() {
            self.deferred_entries.extend(entries);
            return None;
        }
        let late_split = crate::buggify::Site::LateSplitApply;
        if self.is_leader() && crate::buggify::enabled(late_split) && entries.iter().any(is_split) && crate::buggify::fires(late_split) {
            // The leader applies the split late; its followers, on time.
            self.split_held_until = Some(self.clock.now() + std::time::Duration::from_millis(crate::buggify::draw_ms(1000, 3000)));
            self.deferred_entries.extend(entries);
            return None;
        }
        if self.corrupt.is_some() {
            return None;
        }
        let snap = ctx.kv_engine.snapshot();
        let mut output = apply::apply_entries_with(self.region(), self.node.store().apply_state, &entries, &snap, ctx.cfg.bugs);
        if let Some(failure) = snap.failure() {
            // The outcome was decided on data this disk cannot vouch for.
            let first = entries.first().map_or(0, |e| e.index);
            self.found_corrupt(ctx.events, format!("applying from index {first}: {failure}"));
            return None;
        }
        let me = self.peer.id;
        if let Some(ExecResult::ChangePeer { region, .. }) =
            output.exec_results.iter().find(|e| matches!(e, ExecResult::ChangePeer { region, .. } if region.peer(me).is_none()))
        {
            // This peer applies its own removal: the tombstone goes in the same
            // batch, so a crash cannot leave a region state without this peer
            // and without a tombstone.
            super::state::tombstone_into(&mut output.batch, region, me, true);
        }
        for applied in &output.applied {
            ctx.events.emit(StoreEvent::Applied {
                store_id: ctx.store_id,
                region_id: self.region_id(),
                peer_id: self.peer.id,
                index: applied.index,
                term: applied.term,
                digest: applied.digest,
                write_epochs: applied.write_epochs,
            });
        }
        Some(output)
    }

    /// The kv writes an apply takes (its batch, taken out of `output`), in
    /// order, each with its sync flag: one batch, unless a planted bug writes
    /// the apply state first.
    pub fn apply_writes(cfg: &RaftStoreConfig, output: &mut apply::ApplyOutput) -> Vec<(WriteBatch, bool, &'static str)> {
        let batch = std::mem::take(&mut output.batch);
        if cfg.bugs.on(Bug::ApplyStateBeforeData) {
            // Planted bug: the apply state goes first, in a batch of its own;
            // the data it covers follows.
            let (state, data) = split_state_from_data(&batch);
            return vec![(state, true, "apply state"), (data, true, "apply")];
        }
        vec![(batch, output.sync, "apply")]
    }

    /// The apply's batch is written: the peer takes its new apply state and
    /// region. Returns what the applied admin commands decided (to carry out
    /// with [`PeerFsm::on_exec_result`]) and the answers (for
    /// [`PeerFsm::answer`]), in that order.
    pub fn applied(&mut self, output: apply::ApplyOutput) -> (Vec<ExecResult>, Answers) {
        let (before, after) = (self.region().epoch, output.region.epoch);
        assert!(
            after.conf_ver >= before.conf_ver && after.version >= before.version,
            "region {}: applying entries up to {} moved the epoch back, {before:?} -> {after:?}",
            self.region_id(),
            output.apply_state.applied_index
        );
        let committed = self.node.raft().raft_log.committed;
        assert!(
            output.apply_state.applied_index <= committed,
            "region {}: applied index {} past the commit index {committed}",
            self.region_id(),
            output.apply_state.applied_index
        );
        assert!(
            output.apply_state.applied_index > self.applied_index(),
            "region {}: an apply moved the applied index from {} to {}",
            self.region_id(),
            self.applied_index(),
            output.apply_state.applied_index
        );
        self.node.mut_store().apply_state = output.apply_state;
        self.node.mut_store().region = output.region;
        (output.exec_results, output.results)
    }

    /// Answers the proposals an apply decided.
    pub fn answer(&mut self, results: Answers) {
        for (index, term, result) in results {
            self.proposals.applied(index, term, &result);
        }
    }

    /// The raft log below `index` (from `old_truncated`), for deleting once
    /// a compaction is applied.
    pub fn log_gc_batch(&self, old_truncated: u64, index: u64) -> WriteBatch {
        let region_id = self.region_id();
        let mut gc = WriteBatch::new();
        gc.delete_range(Cf::Raft, keys::raft_log_key(region_id, old_truncated), keys::raft_log_key(region_id, index + 1));
        gc
    }

    /// Carries out what an applied admin command decided, once its IO (the
    /// log's deletion, the split's crash point) is done.
    pub fn on_exec_result(&mut self, ctx: &PeerContext<'_, E>, exec: ExecResult, effects: &mut Effects) {
        match exec {
            ExecResult::CompactLog { index, .. } => {
                assert!(
                    index <= self.applied_index(),
                    "region {}: log compacted to {index}, past the applied index {}",
                    self.region_id(),
                    self.applied_index()
                );
                ctx.events.emit(StoreEvent::LogCompacted { store_id: ctx.store_id, region_id: self.region_id(), index });
            }
            ExecResult::Split { derived, new_regions, index } => {
                let regions: Vec<Region> = std::iter::once(derived).chain(new_regions.iter().cloned()).collect();
                tracing::info!(store = ctx.store_id, region = self.region_id(), index, into = regions.len(), "region split");
                ctx.events.emit(StoreEvent::Split { store_id: ctx.store_id, regions: regions.clone(), index });
                let leader = self.is_leader();
                effects.new_regions.extend(new_regions.into_iter().map(|r| (r, leader)));
                if leader {
                    effects.pd_tasks.push(PdTask::ReportSplit { regions });
                }
                self.split_asked = None;
            }
            ExecResult::ChangePeer { region, changes, index } => {
                let cc = conf_change::to_conf_change_v2(&changes, Vec::new());
                let applied_at_propose = ctx.cfg.bugs.on(Bug::ConfChangeAtPropose);
                match self.node.apply_conf_change(&cc) {
                    Ok(conf) => {
                        let mut voters = conf.voters.clone();
                        voters.sort_unstable();
                        assert!(
                            applied_at_propose || voters == region.voter_ids(),
                            "region {}: raft voters {voters:?} after the change, the region says {:?}",
                            region.id,
                            region.voter_ids()
                        );
                    }
                    Err(e) if applied_at_propose => tracing::debug!(error = %e, "conf change applied twice"),
                    Err(e) => panic!("region {}: raft refused the membership change applied at {index}: {e}", region.id),
                }
                tracing::info!(store = ctx.store_id, region = region.id, index, conf_ver = region.epoch.conf_ver, "membership changed");
                ctx.events.emit(StoreEvent::ConfChangeApplied { store_id: ctx.store_id, region: region.clone(), index });
                if region.peer(self.peer.id).is_none() {
                    effects.destroy = true;
                } else if let Some(hb) = self.heartbeat() {
                    effects.pd_tasks.push(PdTask::RegionHeartbeat(hb));
                }
            }
        }
    }

    /// Serves the reads confirmed at an index this peer has applied, each from a
    /// kv snapshot taken now, paying read IO in the background.
    pub fn serve_reads(&mut self, ctx: &PeerContext<'_, E>) {
        if self.applying_snapshot.is_some() || self.corrupt.is_some() {
            return;
        }
        let applied = self.applied_index();
        let (ready, waiting): (VecDeque<_>, VecDeque<_>) = self.reads.drain(..).partition(|r| r.read_index.is_some_and(|i| i <= applied));
        self.reads = waiting;
        if ready.is_empty() {
            return;
        }
        let mut region = self.region().clone();
        for read in ready.iter().filter(|r| r.sent_at.is_none() && r.epoch.version == region.epoch.version) {
            // Served on the lease: from this state, as it is now.
            let (store_id, region_id, peer_id, read_id, version) = (ctx.store_id, region.id, self.peer.id, read.id, region.epoch.version);
            ctx.events.emit(StoreEvent::LeaseServed { store_id, region_id, peer_id, read_id, version });
        }
        if ctx.cfg.bugs.on(Bug::ScanIgnoresRegionEnd) {
            // Planted bug: scans run on to the end of the key space.
            region.end_key.clear();
        }
        if let Err(failure) = super::read::serve(ready, region, ctx.kv_engine, ctx.cfg.bugs) {
            self.found_corrupt(ctx.events, format!("serving a read: {failure}"));
        }
    }

    /// A ready's snapshot, to start writing: entries a late split held back
    /// that it covers are dropped.
    pub fn snapshot_to_apply(&mut self, ready: &raft::Ready) -> Option<Snapshot> {
        if ready.snapshot().is_empty() {
            return None;
        }
        let snapshot = ready.snapshot().clone();
        let index = snapshot.get_metadata().index;
        if self.split_held_until.take().is_some() {
            // Entries held back (a split applied late) that the snapshot covers.
            self.deferred_entries.retain(|e| e.index > index);
        }
        Some(snapshot)
    }

    /// The snapshot's region state and meta are written and its data is being
    /// written: the peer applies nothing until it is.
    pub fn snapshot_applying(&mut self, ctx: &PeerContext<'_, E>, index: u64) {
        self.applying_snapshot = Some(index);
        ctx.events.emit(StoreEvent::SnapshotApplying { store_id: ctx.store_id, region_id: self.region_id(), index, region: self.region().clone() });
        tracing::info!(store = ctx.store_id, region = self.region_id(), index, "applying snapshot");
    }

    pub fn on_snapshot_generated(&mut self, snapshot: Snapshot) {
        self.node.store().set_generated(snapshot);
    }

    /// The snapshot's data is written: the peer's applied index moves to it, the
    /// proposals it covers learn their outcome is unknown. Returns the entries
    /// held back, to apply once the snapshot is marked done.
    pub fn snapshot_applied(&mut self, ctx: &PeerContext<'_, E>, index: u64) -> Vec<Entry> {
        self.applying_snapshot = None;
        if let Some(reason) = self.corrupt.take() {
            tracing::info!(store = ctx.store_id, region = self.region_id(), index, %reason, "damaged replica repaired by a snapshot");
            ctx.events.emit(StoreEvent::DataRepaired { store_id: ctx.store_id, region_id: self.region_id(), peer_id: self.peer.id, index });
        }
        let before = self.applied_index();
        assert!(index >= before, "region {}: a snapshot at {index} would move the applied index back from {before}", self.region_id());
        self.node.mut_store().apply_state.applied_index = index;
        self.proposals.covered_by_snapshot(index, self.region_id());
        std::mem::take(&mut self.deferred_entries)
    }

    /// Measures the region and decides whether it should split: past the key
    /// count or the size the config allows. Returns the key to split at (the
    /// middle key), unless this leader already asked for a split of this epoch
    /// within `retry_ticks` ticks (`now` counts ticks).
    pub fn check_split(&mut self, kv: &E, cfg: &RaftStoreConfig, events: &Events, now: u64, retry_ticks: u64) -> Option<Vec<u8>> {
        if !self.is_leader() || self.applying_snapshot.is_some() || self.corrupt.is_some() || (cfg.region_split_keys == 0 && cfg.region_split_bytes == 0) {
            return None;
        }
        if let Some((epoch, at)) = self.split_asked {
            if epoch == self.region().epoch && now < at + retry_ticks {
                return None;
            }
        }
        let snap = kv.snapshot();
        let (bytes, count, middle) = if cfg.bugs.on(Bug::SplitCheckMeasuresNothing) { (0, 0, None) } else { super::split_check::measure(&snap, self.region()) };
        if let Some(failure) = snap.failure() {
            self.found_corrupt(events, format!("checking for a split: {failure}"));
            return None;
        }
        self.approximate = (bytes, count);
        let over_keys = cfg.region_split_keys > 0 && count > cfg.region_split_keys;
        let over_bytes = cfg.region_split_bytes > 0 && bytes > cfg.region_split_bytes;
        if !over_keys && !over_bytes {
            self.split_checked_index = self.applied_index();
        }
        let middle = middle.filter(|_| over_keys || over_bytes)?;
        tracing::debug!(region = self.region_id(), keys = count, bytes, "asking PD to split");
        self.split_asked = Some((self.region().epoch, now));
        Some(middle)
    }

    /// Proposes a split with the ids PD gave, if this peer still leads the
    /// region at the epoch the ids were asked for.
    pub fn propose_split(&mut self, cfg: &RaftStoreConfig, epoch: RegionEpoch, split_keys: Vec<Vec<u8>>, ids: Vec<super::cmd::SplitIds>) {
        if !self.is_leader() || self.region().epoch != epoch || self.applying_snapshot.is_some() {
            tracing::debug!(region = self.region_id(), leader = self.is_leader(), ?epoch, "split ids arrived too late: not proposed");
            return;
        }
        let cmd = RaftCmd { region_id: self.region_id(), epoch, body: CmdBody::Admin(AdminCmd::BatchSplit { split_keys, ids }) };
        if let Some((index, term)) = self.propose(cmd) {
            // The new regions' peers campaign at once when it applies.
            let suspect = !cfg.bugs.on(Bug::LeaseReadIgnoresSplit);
            if suspect {
                self.lease.suspect_until_applied(index);
            }
            self.node.broadcast_commits_until(index);
            self.proposals.push(Proposal { index, term, callback: None });
        }
    }

    /// What PD should know of this region, if this peer leads it.
    pub fn heartbeat(&self) -> Option<crate::proto::pd::RegionHeartbeat> {
        if !self.is_leader() {
            return None;
        }
        let raft = self.node.raft();
        let last = raft.raft_log.last_index();
        // Lagging: it needs a snapshot, or is far behind.
        let truncated = self.node.store().truncated_index();
        let pending_peers = raft
            .prs()
            .iter()
            .filter(|(id, pr)| **id != self.peer.id && (pr.matched < truncated || pr.matched + 100 < last))
            .filter_map(|(id, _)| self.region().peer(*id).copied())
            .collect();
        Some(crate::proto::pd::RegionHeartbeat {
            region: self.region().clone(),
            leader: self.peer,
            pending_peers,
            approximate_size: self.approximate.0,
            approximate_keys: self.approximate.1,
            term: raft.term,
        })
    }
}

/// A batch's writes to the raft CF (apply and region state) and the rest.
/// Whether `entry` is a split command.
fn is_split(entry: &Entry) -> bool {
    entry.get_entry_type() == raft::eraftpb::EntryType::EntryNormal
        && !entry.data.is_empty()
        && RaftCmd::decode(&entry.data).is_ok_and(|cmd| matches!(cmd.body, CmdBody::Admin(AdminCmd::BatchSplit { .. })))
}

fn split_state_from_data(batch: &WriteBatch) -> (WriteBatch, WriteBatch) {
    let (mut state, mut data) = (WriteBatch::new(), WriteBatch::new());
    for m in batch.mutations() {
        let into = if m.cf() == Cf::Raft { &mut state } else { &mut data };
        into.push(m.clone());
    }
    (state, data)
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod pipeline_tests;
