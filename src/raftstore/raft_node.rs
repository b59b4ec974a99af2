//! raft-rs's `RawNode`, fenced for determinism.
//!
//! raft-rs redraws its randomized election timeout from an RNG we cannot seed
//! whenever it resets (a new term or role). [`RaftNode`] draws its own from
//! `[min, max)` with the run's RNG whenever (term, role) changes, and imposes it
//! after **every** call that can change raft's state, before any tick can read
//! raft-rs's draw. Peers thus keep randomised timeouts (split votes resolve) and
//! runs stay replayable. The raw node is private: no call path can forget the
//! fence.

use super::config::RaftStoreConfig;
use super::storage::PeerStorage;
use crate::engine::Engine;
use raft::eraftpb::Message;
use raft::{LightReady, Raft, RawNode, Ready, SnapshotStatus, StateRole};

pub struct RaftNode<E: Engine> {
    raw: RawNode<PeerStorage<E>>,
    range: (usize, usize),
    /// Our timeout for the current (term, role).
    timeout: Option<((u64, StateRole), usize)>,
    /// Commits are broadcast at once until this index commits (see
    /// [`RaftNode::broadcast_commits_until`]); 0 when none is pending.
    broadcast_until: u64,
}

impl<E: Engine> RaftNode<E> {
    pub fn new(raw: RawNode<PeerStorage<E>>, election_ticks: (usize, usize)) -> Self {
        let mut node = RaftNode { raw, range: election_ticks, timeout: None, broadcast_until: 0 };
        node.fence();
        node
    }

    fn fence(&mut self) {
        let key = (self.raw.raft.term, self.raw.raft.state);
        let timeout = match self.timeout {
            Some((k, t)) if k == key => t,
            _ => {
                use rand::Rng;
                let t = madsim::rand::thread_rng().gen_range(self.range.0..self.range.1);
                self.timeout = Some((key, t));
                t
            }
        };
        self.raw.raft.set_randomized_election_timeout(timeout);
    }

    /// Runs `f` on the raw node, then re-imposes the fence.
    fn fenced<T>(&mut self, f: impl FnOnce(&mut RawNode<PeerStorage<E>>) -> T) -> T {
        let out = f(&mut self.raw);
        self.fence();
        out
    }

    /// Raft's state, read-only.
    pub fn raft(&self) -> &Raft<PeerStorage<E>> {
        &self.raw.raft
    }

    pub fn store(&self) -> &PeerStorage<E> {
        self.raw.store()
    }

    pub fn mut_store(&mut self) -> &mut PeerStorage<E> {
        self.raw.mut_store()
    }

    pub fn election_timeout(&self) -> usize {
        self.raw.raft.randomized_election_timeout()
    }

    pub fn tick(&mut self) -> bool {
        self.fenced(|raw| raw.tick())
    }

    pub fn step(&mut self, msg: Message) -> raft::Result<()> {
        let out = self.fenced(|raw| raw.step(msg));
        if self.broadcast_until > 0 && self.raw.raft.raft_log.committed >= self.broadcast_until {
            // The step that committed it has broadcast the commit.
            self.broadcast_until = 0;
            self.raw.skip_bcast_commit(true);
        }
        out
    }

    /// A leader waking from hibernation starts its quorum check afresh: it
    /// did not tick while its followers stayed silent on purpose, so their
    /// silence until now is no evidence against it.
    pub fn restart_quorum_check(&mut self) {
        self.raw.raft.election_elapsed = 0;
    }

    /// A leader tells followers a new commit index with its next append or
    /// heartbeat (raft-rs's `skip_bcast_commit`, as TiKV runs it), not with
    /// an append round of its own: under load that round was a third of the
    /// raft messages. Followers apply up to one heartbeat later; raft-rs
    /// still broadcasts at once while a membership change is pending. An
    /// entry followers must apply promptly (a split: the new regions'
    /// peers campaign as soon as it applies, and a follower that has not
    /// applied it cannot vote for them) asks for the broadcast until it
    /// commits.
    pub fn broadcast_commits_until(&mut self, index: u64) {
        self.broadcast_until = self.broadcast_until.max(index);
        self.raw.skip_bcast_commit(false);
    }

    pub fn propose(&mut self, data: Vec<u8>) -> raft::Result<()> {
        self.fenced(|raw| raw.propose(vec![], data))
    }

    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.fenced(|raw| raw.read_index(ctx))
    }

    /// Starts an election now (a new region's peer next to the old leader).
    /// Asks the leader for a snapshot at least at this peer's last index
    /// (a damaged replica's repair).
    pub fn request_snapshot(&mut self) -> raft::Result<()> {
        self.fenced(|raw| raw.request_snapshot())
    }

    pub fn campaign(&mut self) -> raft::Result<()> {
        self.fenced(|raw| raw.campaign())
    }

    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    pub fn ready(&mut self) -> Ready {
        self.fenced(|raw| raw.ready())
    }

    /// Everything in `ready` is persisted; raft's applied index is moved
    /// separately, by [`RaftNode::advance_apply_to`], to what the state machine
    /// really applied.
    pub fn advance_append(&mut self, ready: Ready) -> LightReady {
        self.fenced(|raw| raw.advance_append(ready))
    }

    pub fn advance_apply_to(&mut self, applied: u64) {
        self.fenced(|raw| raw.advance_apply_to(applied))
    }

    /// Proposes a membership change (`cc`'s context carries our command).
    pub fn propose_conf_change(&mut self, cc: raft::eraftpb::ConfChangeV2) -> raft::Result<()> {
        self.fenced(|raw| raw.propose_conf_change(vec![], cc))
    }

    /// Hands an applied membership change to raft-rs: its configuration
    /// changes now.
    pub fn apply_conf_change(&mut self, cc: &raft::eraftpb::ConfChangeV2) -> raft::Result<raft::eraftpb::ConfState> {
        self.fenced(|raw| raw.apply_conf_change(cc))
    }

    /// Starts handing leadership to `to` (raft-rs first brings its log up to
    /// date, then tells it to campaign at once).
    pub fn transfer_leader(&mut self, to: u64) {
        self.fenced(|raw| raw.transfer_leader(to))
    }

    /// Planted bug support: forgets that a membership change is pending.
    pub fn forget_pending_conf(&mut self) {
        self.fenced(|raw| raw.raft.pending_conf_index = 0)
    }

    pub fn report_unreachable(&mut self, to: u64) {
        self.fenced(|raw| raw.report_unreachable(to))
    }

    pub fn report_snapshot(&mut self, to: u64, status: SnapshotStatus) {
        self.fenced(|raw| raw.report_snapshot(to, status))
    }
}

/// raft-rs draws election timeouts from `[min, max)` with an RNG we cannot
/// seed; every draw is overridden by the fence in [`RaftNode`] before it is used.
pub fn raft_config(cfg: &RaftStoreConfig, peer_id: u64, applied: u64) -> raft::Config {
    let config = raft::Config {
        id: peer_id,
        election_tick: cfg.election_ticks_min,
        heartbeat_tick: cfg.heartbeat_ticks,
        min_election_tick: cfg.election_ticks_min,
        max_election_tick: cfg.election_ticks_max,
        applied,
        max_size_per_msg: cfg.max_size_per_msg,
        max_inflight_msgs: cfg.max_inflight_msgs,
        check_quorum: true,
        pre_vote: true,
        // See `RaftNode::broadcast_commits_until`.
        skip_bcast_commit: true,
        // Not `batch_append` (one append per follower for a round's
        // proposals): with it on, many-regions seed 1 had a follower panic in
        // raft-rs ("to_commit 27 is out of range [last_index 26]"). Likely
        // raft-rs 0.7's `is_continuous_ents`, which calls any entries
        // continuous with an append carrying none, so a batched append's
        // entries may not follow its index, and the follower's
        // `index + entries.len()` overshoots its log.
        ..Default::default()
    };
    config.validate().unwrap_or_else(|e| panic!("invalid raft config: {e}"));
    config
}

pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}
