//! The proposal queue: client writes (and the store's own admin commands)
//! waiting for their log entry to be applied.
//!
//! A proposal is identified by the (index, term) its entry had when this peer,
//! as leader, appended it. It is answered when the entry at its index is
//! **applied**: the result if that entry has its term, `StaleCommand` if another
//! term's entry took the index. Nothing earlier is proof: an entry cut from this
//! peer's log may still sit in another peer's log and be committed by a later
//! leader (with five voters, a leader can win without the peer that cut it), so
//! a proposal is never told it failed before an entry at its index is applied
//! (TiKV's rule). A snapshot that covers a proposal's index leaves its outcome
//! unknown.

use super::cmd::{RegionError, RegionResult, WriteResult};
pub use super::router::WriteCallback;
use crate::planted::{Bug, Bugs};
use std::collections::VecDeque;

/// A proposal waiting for its entry to apply.
pub struct Proposal {
    pub index: u64,
    pub term: u64,
    /// None for admin commands the store proposes itself.
    pub callback: Option<WriteCallback>,
}

/// Proposals ordered by (index, term).
#[derive(Default)]
pub struct ProposalQueue {
    queue: VecDeque<Proposal>,
    bugs: Bugs,
}

impl ProposalQueue {
    pub fn new(bugs: Bugs) -> Self {
        ProposalQueue { queue: VecDeque::new(), bugs }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a proposal just appended to the log. An older-term proposal at
    /// this index or later stays queued: its entry was cut from this log, but
    /// not necessarily from every log.
    pub fn push(&mut self, proposal: Proposal) {
        let at = self.queue.partition_point(|p| (p.index, p.term) <= (proposal.index, proposal.term));
        self.queue.insert(at, proposal);
    }

    /// The entry at (`index`, `term`) was applied with `result`: answers the
    /// proposal it belongs to, and tells every proposal for this index or an
    /// earlier one with another term that its entry lost the index.
    pub fn applied(&mut self, index: u64, term: u64, result: &RegionResult<WriteResult>) {
        while self.queue.front().is_some_and(|p| p.index <= index) {
            let proposal = self.queue.pop_front().expect("front exists");
            let own = proposal.term == term || self.bugs.on(Bug::SupersededProposalTakesResult);
            let outcome = if proposal.index == index && own {
                result.clone()
            } else {
                tracing::debug!(proposal_index = proposal.index, proposal_term = proposal.term, index, term, "proposal superseded");
                Err(RegionError::StaleCommand)
            };
            if let Some(callback) = proposal.callback {
                let _ = callback.send(outcome);
            }
        }
    }

    /// The peer is being destroyed: no entry will tell the proposals their
    /// fate (others may still commit them). Their outcome is unknown.
    pub fn peer_destroyed(&mut self, region_id: u64) {
        for proposal in self.queue.drain(..) {
            if let Some(callback) = proposal.callback {
                let reason = format!("region {region_id}: the peer was removed before its entry applied");
                let _ = callback.send(Err(RegionError::OutcomeUnknown { reason }));
            }
        }
    }

    /// A snapshot up to `index` replaced the log: proposals it covers may or may
    /// not be in it, and no entry will come to tell. Their outcome is unknown.
    pub fn covered_by_snapshot(&mut self, index: u64, region_id: u64) {
        if self.bugs.on(Bug::SnapshotCoveredProposalFails) {
            return; // planted bug: the next applied entry will say StaleCommand
        }
        while self.queue.front().is_some_and(|p| p.index <= index) {
            let proposal = self.queue.pop_front().expect("front exists");
            if let Some(callback) = proposal.callback {
                let reason = format!("region {region_id}: a snapshot up to index {index} replaced the log");
                let _ = callback.send(Err(RegionError::OutcomeUnknown { reason }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot::Receiver;

    fn proposal(index: u64, term: u64) -> (Proposal, Receiver<RegionResult<WriteResult>>) {
        let (tx, rx) = futures::channel::oneshot::channel();
        (Proposal { index, term, callback: Some(tx) }, rx)
    }

    fn answer(rx: &mut Receiver<RegionResult<WriteResult>>) -> Option<RegionResult<WriteResult>> {
        rx.try_recv().expect("not cancelled")
    }

    /// Five voters A..E. A leads term 2 and appends P at index 5, which reaches
    /// only B. C leads term 3 with A and overwrites A's index 5. A leads term 4
    /// and appends Q at index 5: P's entry is gone from A's log — but B, D and
    /// E still hold logs whose last term is 2, so B can win term 5 with their
    /// votes and commit P. A then applies (5, term 2): P took effect and must be
    /// answered so, not told StaleCommand when Q was appended.
    #[test]
    fn a_proposal_cut_from_our_log_can_still_commit_elsewhere() {
        let mut queue = ProposalQueue::default();
        let (p, mut p_rx) = proposal(5, 2);
        queue.push(p);
        let (q, mut q_rx) = proposal(5, 4);
        queue.push(q);
        assert!(answer(&mut p_rx).is_none(), "P must not be told anything while its index is not applied");
        assert_eq!(queue.len(), 2);
        // B's term-5 log is applied on A: index 4 from term 2, index 5 = P.
        queue.applied(4, 2, &Ok(WriteResult::Done));
        assert!(answer(&mut p_rx).is_none());
        queue.applied(5, 2, &Ok(WriteResult::Done));
        assert_eq!(answer(&mut p_rx), Some(Ok(WriteResult::Done)), "P took effect");
        assert_eq!(answer(&mut q_rx), Some(Err(RegionError::StaleCommand)), "Q lost index 5");
        assert!(queue.is_empty());
    }

    #[test]
    fn proposals_are_answered_by_index_and_term() {
        let mut queue = ProposalQueue::default();
        let (a, mut a_rx) = proposal(3, 1);
        let (b, mut b_rx) = proposal(4, 1);
        let (c, mut c_rx) = proposal(6, 1);
        queue.push(b);
        queue.push(a);
        queue.push(c);
        queue.applied(3, 1, &Ok(WriteResult::Done));
        assert_eq!(answer(&mut a_rx), Some(Ok(WriteResult::Done)));
        assert!(answer(&mut b_rx).is_none());
        // A new leader's entry took index 4: b is stale; c waits.
        queue.applied(4, 2, &Ok(WriteResult::Done));
        assert_eq!(answer(&mut b_rx), Some(Err(RegionError::StaleCommand)));
        assert!(answer(&mut c_rx).is_none());
        // Index 5 applied: c (index 6) still waits.
        queue.applied(5, 2, &Ok(WriteResult::Done));
        assert!(answer(&mut c_rx).is_none());
        queue.covered_by_snapshot(10, 1);
        assert!(matches!(answer(&mut c_rx), Some(Err(RegionError::OutcomeUnknown { .. }))));
    }

    #[test]
    fn results_reach_the_proposal_unchanged() {
        let mut queue = ProposalQueue::default();
        let (a, mut a_rx) = proposal(7, 3);
        queue.push(a);
        queue.applied(7, 3, &Ok(WriteResult::Cas { succeeded: false, previous: Some(b"x".to_vec()) }));
        assert_eq!(answer(&mut a_rx), Some(Ok(WriteResult::Cas { succeeded: false, previous: Some(b"x".to_vec()) })));
    }

    /// The same interleaving, played by five real raft-rs nodes (1 = A, 2 = B,
    /// 3 = C, 4 = D, 5 = E), with A's queue fed exactly as the peer feeds it.
    /// A leads and proposes P, which reaches only B. C wins the next term with
    /// D and E and overwrites P on A alone: the moment the old rule told P it
    /// failed (a newer term's entry appended over it). B still holds P and wins
    /// the term after with D and E (their logs are no newer than B's), commits
    /// P, and A applies it: P took effect.
    #[test]
    fn five_raft_nodes_commit_a_proposal_its_leader_cut() {
        use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType};
        use raft::storage::MemStorage;
        use raft::{Config, RawNode};

        struct Node {
            raw: RawNode<MemStorage>,
            applied: Vec<(u64, u64, Vec<u8>)>,
            appended: Vec<(u64, u64)>,
        }
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut nodes: Vec<Node> = (1..=5u64)
            .map(|id| {
                let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3, 4, 5], vec![])));
                let config = Config { id, election_tick: 10, heartbeat_tick: 1, ..Config::default() };
                Node { raw: RawNode::new(&config, storage, &logger).unwrap(), applied: vec![], appended: vec![] }
            })
            .collect();
        let mut in_flight: Vec<Message> = Vec::new();
        // One ready per node, in raft-rs's order; messages go to `in_flight`.
        let drive = |nodes: &mut Vec<Node>, in_flight: &mut Vec<Message>| {
            for node in nodes.iter_mut() {
                if !node.raw.has_ready() {
                    continue;
                }
                let mut ready = node.raw.ready();
                in_flight.extend(ready.take_messages());
                let apply = |node: &mut Node, entries: Vec<Entry>| {
                    for e in entries.into_iter().filter(|e| e.get_entry_type() == EntryType::EntryNormal) {
                        node.applied.push((e.index, e.term, e.data.to_vec()));
                    }
                };
                apply(node, ready.take_committed_entries());
                node.appended.extend(ready.entries().iter().map(|e| (e.index, e.term)));
                node.raw.mut_store().wl().append(ready.entries()).unwrap();
                if let Some(hs) = ready.hs() {
                    node.raw.mut_store().wl().set_hardstate(hs.clone());
                }
                in_flight.extend(ready.take_persisted_messages());
                let mut light = node.raw.advance(ready);
                if let Some(commit) = light.commit_index() {
                    node.raw.mut_store().wl().mut_hard_state().commit = commit;
                }
                in_flight.extend(light.take_messages());
                apply(node, light.take_committed_entries());
                node.raw.advance_apply();
            }
        };
        // Delivers messages until none is left; `allowed` says which links work.
        let settle = |nodes: &mut Vec<Node>, in_flight: &mut Vec<Message>, allowed: &dyn Fn(&Message) -> bool| {
            for _ in 0..50 {
                drive(nodes, in_flight);
                if in_flight.is_empty() {
                    return;
                }
                for msg in std::mem::take(in_flight) {
                    if allowed(&msg) {
                        let _ = nodes[msg.to as usize - 1].raw.step(msg);
                    }
                }
            }
        };
        let all = |_: &Message| true;
        let among = |group: [u64; 3]| move |m: &Message| group.contains(&m.from) && group.contains(&m.to);

        // A leads.
        nodes[0].raw.campaign().unwrap();
        settle(&mut nodes, &mut in_flight, &all);
        assert!(nodes[0].raw.raft.state == raft::StateRole::Leader);
        // A proposes P; only B hears of it.
        let mut queue = ProposalQueue::default();
        nodes[0].raw.propose(vec![], b"P".to_vec()).unwrap();
        let p_at = (nodes[0].raw.raft.raft_log.last_index(), nodes[0].raw.raft.term);
        let (p, mut p_rx) = proposal(p_at.0, p_at.1);
        queue.push(p);
        settle(&mut nodes, &mut in_flight, &|m| m.from != 1 || m.to == 2);
        // C campaigns: D and E vote for it (A and B hold a newer log and refuse);
        // its first entry reaches A only.
        nodes[2].raw.campaign().unwrap();
        let votes = |m: &Message| matches!(m.get_msg_type(), MessageType::MsgRequestVote | MessageType::MsgRequestVoteResponse);
        settle(&mut nodes, &mut in_flight, &|m| (among([3, 4, 5])(m) && votes(m)) || (m.from == 3 && m.to == 1) || (m.from == 1 && m.to == 3));
        assert!(nodes[2].raw.raft.state == raft::StateRole::Leader);
        assert!(nodes[0].appended.iter().any(|&(index, term)| index == p_at.0 && term > p_at.1), "C's entry overwrote P on A: the old rule failed P here");
        for (index, term, _) in std::mem::take(&mut nodes[0].applied) {
            queue.applied(index, term, &Ok(WriteResult::Done));
        }
        assert!(answer(&mut p_rx).is_none(), "P must not be told anything yet: B still has it");
        // B campaigns (twice: D and E already voted in C's term): D and E vote for
        // it. B commits P, and everyone, A too, applies it.
        for _ in 0..2 {
            if nodes[1].raw.raft.state != raft::StateRole::Leader {
                nodes[1].raw.campaign().unwrap();
                settle(&mut nodes, &mut in_flight, &among([2, 4, 5]));
            }
        }
        assert!(nodes[1].raw.raft.state == raft::StateRole::Leader);
        // The network heals; B's heartbeats find A and C.
        for _ in 0..3 {
            nodes[1].raw.tick();
            settle(&mut nodes, &mut in_flight, &all);
        }
        assert!(nodes[0].applied.iter().any(|(index, term, data)| (*index, *term) == p_at && data == b"P"), "A applied P: {:?}", nodes[0].applied);
        for (index, term, _) in std::mem::take(&mut nodes[0].applied) {
            queue.applied(index, term, &Ok(WriteResult::Done));
        }
        assert_eq!(answer(&mut p_rx), Some(Ok(WriteResult::Done)), "P took effect, and A's client hears so");
    }
}
