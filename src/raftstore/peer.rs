//! A `PeerFsm`: one replica of one region, wrapping a raft-rs `RawNode`.
//!
//! The peer keeps the bookkeeping that ties client requests to the log:
//! proposals waiting for their entry to be applied (matched by index *and* term
//! when the entry at their index is applied: see [`super::proposal`]), and linearizable
//! reads waiting first for a ReadIndex confirmation and then for the apply index to
//! reach it. It performs no IO itself: the store drives it.

use super::cmd::{ReadCmd, ReadResult, RegionError, RegionResult};
use super::storage::PeerStorage;
use crate::engine::Engine;
use crate::meta::{Peer, Region};
use futures::channel::oneshot;
use raft::{RawNode, StateRole};
use std::collections::VecDeque;

pub use super::proposal::{Proposal, ProposalQueue, WriteCallback};
pub type ReadCallback = oneshot::Sender<RegionResult<ReadResult>>;

pub struct PendingRead {
    pub id: u64,
    pub cmd: ReadCmd,
    pub callback: ReadCallback,
    /// Set once the leader has confirmed its leadership for this read.
    pub read_index: Option<u64>,
}

pub struct PeerFsm<E: Engine> {
    pub peer: Peer,
    pub raw: RawNode<PeerStorage<E>>,
    pub proposals: ProposalQueue,
    pub reads: VecDeque<PendingRead>,
    /// Index of the snapshot whose data is being written, if any. While set, the
    /// peer refuses proposals and holds back committed entries.
    pub applying_snapshot: Option<u64>,
    pub deferred_entries: Vec<raft::eraftpb::Entry>,
    pub ticks: u64,
    pub last_role: StateRole,
    pub last_leader: u64,
    /// Our election timeout for the current (term, role), drawn from the run's
    /// seed; re-imposed on raft-rs after every tick and step (see
    /// [`PeerFsm::fence_election_timeout`]).
    election_timeout: Option<((u64, StateRole), usize)>,
}

impl<E: Engine> PeerFsm<E> {
    pub fn new(peer: Peer, raw: RawNode<PeerStorage<E>>) -> Self {
        PeerFsm {
            peer,
            raw,
            proposals: ProposalQueue::default(),
            reads: VecDeque::new(),
            applying_snapshot: None,
            deferred_entries: Vec::new(),
            ticks: 0,
            last_role: StateRole::Follower,
            election_timeout: None,
            last_leader: raft::INVALID_ID,
        }
    }

    /// raft-rs redraws its election timeout from an RNG we cannot seed whenever
    /// it resets (new term, new role). We draw our own from `[min, max)` with
    /// the run's RNG whenever (term, role) changes, and impose it after every
    /// call that may have reset it, before any tick can read raft-rs's draw.
    /// Peers thus keep randomised timeouts (split votes resolve) and runs stay
    /// replayable.
    pub fn fence_election_timeout(&mut self, min: usize, max: usize) {
        let key = (self.raw.raft.term, self.raw.raft.state);
        let timeout = match self.election_timeout {
            Some((k, t)) if k == key => t,
            _ => {
                use rand::Rng;
                let t = madsim::rand::thread_rng().gen_range(min..max);
                self.election_timeout = Some((key, t));
                t
            }
        };
        self.raw.raft.set_randomized_election_timeout(timeout);
    }

    pub fn region(&self) -> &Region {
        &self.raw.store().region
    }

    pub fn region_id(&self) -> u64 {
        self.raw.store().region_id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn applied_index(&self) -> u64 {
        self.raw.store().apply_state.applied_index
    }

    pub fn pending_requests(&self) -> usize {
        self.proposals.len() + self.reads.len()
    }

    pub fn leader_hint(&self) -> Option<Peer> {
        let leader = self.raw.raft.leader_id;
        self.region().peer(leader).copied()
    }

    pub fn not_leader(&self) -> RegionError {
        RegionError::NotLeader { region_id: self.region_id(), leader: self.leader_hint() }
    }

    /// Marks the read with context `id` as confirmed at `read_index`.
    pub fn confirm_read(&mut self, id: u64, read_index: u64) {
        if let Some(read) = self.reads.iter_mut().find(|r| r.id == id) {
            read.read_index = Some(read_index);
        }
    }

    /// Removes and returns the reads that may now be served: confirmed at an index
    /// the peer has applied.
    pub fn take_servable_reads(&mut self) -> Vec<PendingRead> {
        let applied = self.applied_index();
        let mut servable = Vec::new();
        let mut waiting = VecDeque::new();
        for read in self.reads.drain(..) {
            match read.read_index {
                Some(index) if index <= applied && self.applying_snapshot.is_none() => servable.push(read),
                _ => waiting.push_back(read),
            }
        }
        self.reads = waiting;
        servable
    }

    /// On losing leadership, reads not yet confirmed can never be: fail them.
    pub fn fail_unconfirmed_reads(&mut self) {
        let error = self.not_leader();
        let mut kept = VecDeque::new();
        for read in self.reads.drain(..) {
            if read.read_index.is_some() {
                kept.push_back(read);
            } else {
                let _ = read.callback.send(Err(error.clone()));
            }
        }
        self.reads = kept;
    }
}
