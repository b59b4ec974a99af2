//! PD's schedulers and the operators they create. Pure: a region's heartbeat
//! and PD's view of the cluster in, a decision out.
//!
//! On each region heartbeat, if the region has no operator, [`decide`] runs the
//! checkers in order and returns the first thing to do:
//!
//! 1. **replica checker**: promote a caught-up learner the region needs, or
//!    remove one it does not; replace a voter on a store that has been down
//!    longer than PD's limit; add a replica when there are too few voters;
//!    remove one (never the leader) when there are too many;
//! 2. **region balance**: move a replica from the store holding the most
//!    regions to an up store holding the fewest, when they differ by more
//!    than one;
//! 3. **leader balance**: hand leadership to another voter's store when the
//!    leader's store leads more than one region more than it.
//!
//! A decision becomes an [`Operator`]: steps, each one membership change or
//! one leader transfer, delivered one at a time in heartbeat replies and
//! checked off when a heartbeat shows them done. A replica is always added as
//! a learner and promoted only once the leader no longer reports it pending
//! (it has caught up); a replica is removed only after its replacement votes.
//! One operator per region, so never two membership changes at once.

use crate::meta::{Peer, PeerId, PeerRole, Region, RegionId, StoreId};
use crate::proto::pd::RegionCommand;
use crate::proto::{ChangeKind, PeerChange};
use std::collections::BTreeMap;

/// One step of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    AddLearner(Peer),
    /// Promote the learner once it has caught up.
    Promote(Peer),
    Remove(Peer),
    TransferLeader {
        to_store: StoreId,
    },
}

impl Step {
    fn done(&self, region: &Region, leader: &Peer) -> bool {
        match self {
            Step::AddLearner(p) => region.peer(p.id).is_some(),
            Step::Promote(p) => region.peer(p.id).is_some_and(|q| q.role == PeerRole::Voter),
            Step::Remove(p) => region.peer(p.id).is_none(),
            Step::TransferLeader { to_store } => leader.store_id == *to_store,
        }
    }

    /// The step can no longer be done (its peer is gone, or its store holds
    /// another peer of the region).
    fn impossible(&self, region: &Region) -> bool {
        match self {
            // A voter of the region on that store may still be on its way
            // out: wait for it. A learner of another id stays (no operator
            // of ours will remove it: one operator per region, and the one
            // that added it was lost, e.g. with a PD restart) — the replica
            // checker removes it once this operator gives up.
            Step::AddLearner(p) => region.peer_on_store(p.store_id).is_some_and(|q| q.id != p.id && q.role == PeerRole::Learner),
            Step::Promote(p) => region.peer(p.id).is_none(),
            Step::Remove(_) => false,
            Step::TransferLeader { to_store } => region.peer_on_store(*to_store).is_none_or(|p| p.role != PeerRole::Voter),
        }
    }
}

/// What a scheduler decided for one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    AddReplica {
        store: StoreId,
    },
    ReplaceReplica {
        old: Peer,
        store: StoreId,
    },
    MoveReplica {
        from: Peer,
        store: StoreId,
    },
    RemoveReplica {
        peer: Peer,
    },
    PromoteLearner {
        peer: Peer,
    },
    RemoveLearner {
        peer: Peer,
    },
    TransferLeader {
        to_store: StoreId,
    },
    /// Remove `old`, then add a new peer on its store (asked by hand).
    RemoveReAdd {
        old: Peer,
    },
}

impl Decision {
    /// The store a new peer goes to, if the decision adds one (it then needs
    /// a fresh peer id).
    pub fn new_peer_store(&self) -> Option<StoreId> {
        match self {
            Decision::AddReplica { store } | Decision::ReplaceReplica { store, .. } | Decision::MoveReplica { store, .. } => Some(*store),
            Decision::RemoveReAdd { old } => Some(old.store_id),
            _ => None,
        }
    }

    /// Which store a replica leaves, if the decision moves one out.
    pub fn leaving_store(&self) -> Option<StoreId> {
        match self {
            Decision::ReplaceReplica { old: p, .. } | Decision::MoveReplica { from: p, .. } | Decision::RemoveReplica { peer: p } => Some(p.store_id),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Decision::AddReplica { .. } => "add-replica",
            Decision::ReplaceReplica { .. } => "replace-down-replica",
            Decision::MoveReplica { .. } => "balance-region",
            Decision::RemoveReplica { .. } => "remove-extra-replica",
            Decision::PromoteLearner { .. } => "promote-learner",
            Decision::RemoveLearner { .. } => "remove-learner",
            Decision::TransferLeader { .. } => "balance-leader",
            Decision::RemoveReAdd { .. } => "remove-re-add",
        }
    }

    /// The operator carrying the decision out; `new_peer_id` for a decision
    /// that adds a peer.
    pub fn into_operator(self, region_id: RegionId, new_peer_id: Option<PeerId>, deadline_ms: u64) -> Operator {
        let new_peer = |store_id| Peer { id: new_peer_id.expect("a decision adding a peer has an id"), store_id, role: PeerRole::Learner };
        let steps = match self {
            Decision::AddReplica { store } => vec![Step::AddLearner(new_peer(store)), Step::Promote(new_peer(store))],
            Decision::ReplaceReplica { old: from, store } | Decision::MoveReplica { from, store } => {
                vec![Step::AddLearner(new_peer(store)), Step::Promote(new_peer(store)), Step::Remove(from)]
            }
            Decision::RemoveReplica { peer } | Decision::RemoveLearner { peer } => vec![Step::Remove(peer)],
            Decision::PromoteLearner { peer } => vec![Step::Promote(peer)],
            Decision::TransferLeader { to_store } => vec![Step::TransferLeader { to_store }],
            Decision::RemoveReAdd { old } => vec![Step::Remove(old), Step::AddLearner(new_peer(old.store_id)), Step::Promote(new_peer(old.store_id))],
        };
        Operator { region_id, kind: self.name(), decision: self, steps, at: 0, deadline_ms }
    }
}

/// Where an operator stands after a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Send this to the region's leader.
    Command(RegionCommand),
    /// The current step waits (a learner catching up).
    Waiting,
    Finished,
    /// The operator can no longer succeed, or ran out of time.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub region_id: RegionId,
    pub kind: &'static str,
    pub decision: Decision,
    pub steps: Vec<Step>,
    /// The first step not yet done.
    pub at: usize,
    pub deadline_ms: u64,
}

impl Operator {
    /// Checks off the steps the heartbeat shows done and says what comes next.
    pub fn advance(&mut self, region: &Region, leader: &Peer, pending: &[Peer], now_ms: u64) -> Progress {
        while self.at < self.steps.len() && self.steps[self.at].done(region, leader) {
            self.at += 1;
        }
        let Some(step) = self.steps.get(self.at) else {
            return Progress::Finished;
        };
        if now_ms > self.deadline_ms {
            return Progress::Failed(format!("timed out at step {} of {}: {step:?}", self.at + 1, self.steps.len()));
        }
        if step.impossible(region) {
            return Progress::Failed(format!("step {step:?} can no longer be done on {region:?}"));
        }
        if region.is_joint() {
            return Progress::Waiting; // the leader leaves it first
        }
        let change = |kind, peer: Peer| RegionCommand::ChangePeer { epoch: region.epoch, changes: vec![PeerChange { kind, peer }] };
        match *step {
            Step::AddLearner(p) if region.peer_on_store(p.store_id).is_some() => Progress::Waiting,
            Step::AddLearner(p) => Progress::Command(change(ChangeKind::AddLearner, p)),
            Step::Promote(p) if pending.iter().any(|q| q.id == p.id) => Progress::Waiting,
            Step::Promote(p) => Progress::Command(change(ChangeKind::AddVoter, p)),
            Step::Remove(p) => Progress::Command(change(ChangeKind::Remove, region.peer(p.id).copied().unwrap_or(p))),
            Step::TransferLeader { to_store } => Progress::Command(RegionCommand::TransferLeader { to_store }),
        }
    }
}

/// PD's view of the cluster, for the schedulers.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Stores PD may place replicas on (registered and up), by id.
    pub up: Vec<StoreId>,
    /// Stores down longer than PD's limit.
    pub down: Vec<StoreId>,
    /// Regions with a replica on each store (counting operators in flight).
    pub regions: BTreeMap<StoreId, i64>,
    /// Regions each store leads.
    pub leaders: BTreeMap<StoreId, i64>,
    /// Whether the balance schedulers may start another operator.
    pub balance_allowed: bool,
}

impl ClusterView {
    fn count(map: &BTreeMap<StoreId, i64>, store: StoreId) -> i64 {
        map.get(&store).copied().unwrap_or(0)
    }

    /// The up store without a replica of `region` holding the fewest regions
    /// (lowest id on ties).
    fn best_target(&self, region: &Region) -> Option<StoreId> {
        self.up.iter().copied().filter(|&s| region.peer_on_store(s).is_none()).min_by_key(|&s| (Self::count(&self.regions, s), s))
    }
}

/// What to do for `region` (led by `leader`, with `pending` peers lagging),
/// given `max_replicas` voters wanted and PD's `view`.
pub fn decide(region: &Region, leader: &Peer, pending: &[Peer], max_replicas: usize, view: &ClusterView) -> Option<Decision> {
    if region.is_joint() {
        return None;
    }
    let voters: Vec<Peer> = region.peers.iter().filter(|p| p.role == PeerRole::Voter).copied().collect();
    let learners: Vec<Peer> = region.peers.iter().filter(|p| p.role == PeerRole::Learner).copied().collect();
    // 1. Replica checker.
    if let Some(&learner) = learners.first() {
        if voters.len() < max_replicas && view.up.contains(&learner.store_id) {
            return (!pending.iter().any(|p| p.id == learner.id)).then_some(Decision::PromoteLearner { peer: learner });
        }
        return Some(Decision::RemoveLearner { peer: learner });
    }
    if let Some(&down) = voters.iter().find(|p| view.down.contains(&p.store_id) && p.id != leader.id) {
        return match view.best_target(region) {
            Some(store) => Some(Decision::ReplaceReplica { old: down, store }),
            None if voters.len() > max_replicas => Some(Decision::RemoveReplica { peer: down }),
            None => None,
        };
    }
    if voters.len() < max_replicas {
        return view.best_target(region).map(|store| Decision::AddReplica { store });
    }
    if voters.len() > max_replicas {
        let extra = voters.iter().filter(|p| p.id != leader.id).max_by_key(|p| (ClusterView::count(&view.regions, p.store_id), p.store_id))?;
        return Some(Decision::RemoveReplica { peer: *extra });
    }
    if !view.balance_allowed || !pending.is_empty() {
        return None;
    }
    // 2. Region balance.
    let fullest = voters.iter().filter(|p| view.up.contains(&p.store_id)).max_by_key(|p| (ClusterView::count(&view.regions, p.store_id), p.store_id));
    if let (Some(from), Some(store)) = (fullest, view.best_target(region)) {
        if ClusterView::count(&view.regions, from.store_id) > ClusterView::count(&view.regions, store) + 1 {
            return Some(Decision::MoveReplica { from: *from, store });
        }
    }
    // 3. Leader balance.
    let target = voters
        .iter()
        .filter(|p| p.id != leader.id && view.up.contains(&p.store_id))
        .min_by_key(|p| (ClusterView::count(&view.leaders, p.store_id), p.store_id))?;
    (ClusterView::count(&view.leaders, leader.store_id) > ClusterView::count(&view.leaders, target.store_id) + 1)
        .then_some(Decision::TransferLeader { to_store: target.store_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RegionEpoch;

    fn region(peers: Vec<Peer>) -> Region {
        Region { id: 1, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(3, 1), peers }
    }

    fn view(up: &[u64], regions: &[(u64, i64)], leaders: &[(u64, i64)]) -> ClusterView {
        ClusterView {
            up: up.to_vec(),
            down: vec![],
            regions: regions.iter().copied().collect(),
            leaders: leaders.iter().copied().collect(),
            balance_allowed: true,
        }
    }

    fn three() -> Region {
        region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3)])
    }

    #[test]
    fn too_few_replicas_are_made_up_through_a_learner() {
        let r = region(vec![Peer::voter(11, 1), Peer::voter(12, 2)]);
        let v = view(&[1, 2, 3, 4], &[(1, 5), (2, 5), (3, 2), (4, 1)], &[]);
        let decision = decide(&r, &r.peers[0], &[], 3, &v).unwrap();
        assert_eq!(decision, Decision::AddReplica { store: 4 }, "the emptiest store");
        let mut op = decision.into_operator(1, Some(40), 1000);
        let learner = Peer { id: 40, store_id: 4, role: PeerRole::Learner };
        let add = RegionCommand::ChangePeer { epoch: r.epoch, changes: vec![PeerChange { kind: ChangeKind::AddLearner, peer: learner }] };
        assert_eq!(op.advance(&r, &r.peers[0], &[], 0), Progress::Command(add));
        let mut with_learner = r.clone();
        with_learner.peers.push(learner);
        with_learner.epoch.conf_ver += 1;
        assert_eq!(op.advance(&with_learner, &r.peers[0], &[learner], 10), Progress::Waiting, "not caught up yet");
        let promote = RegionCommand::ChangePeer { epoch: with_learner.epoch, changes: vec![PeerChange { kind: ChangeKind::AddVoter, peer: learner }] };
        assert_eq!(op.advance(&with_learner, &r.peers[0], &[], 20), Progress::Command(promote));
        let mut promoted = with_learner.clone();
        promoted.peers[2].role = PeerRole::Voter;
        assert_eq!(op.advance(&promoted, &r.peers[0], &[], 30), Progress::Finished);
        let mut late = decision.into_operator(1, Some(40), 1000);
        assert!(matches!(late.advance(&with_learner, &r.peers[0], &[], 2000), Progress::Failed(e) if e.contains("timed out")));
    }

    #[test]
    fn down_replicas_are_replaced_and_extras_removed_never_the_leader() {
        let r = three();
        let mut v = view(&[1, 2, 4], &[(4, 0)], &[]);
        v.down = vec![3];
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &v), Some(Decision::ReplaceReplica { old: r.peers[2], store: 4 }));
        let four = region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3), Peer::voter(14, 4)]);
        let v = view(&[1, 2, 3, 4], &[(1, 9), (2, 3), (3, 3), (4, 3)], &[]);
        assert_eq!(decide(&four, &four.peers[0], &[], 3, &v), Some(Decision::RemoveReplica { peer: four.peers[3] }), "store 1 is fullest but leads");
    }

    #[test]
    fn balance_moves_regions_then_leaders() {
        let r = three();
        let v = view(&[1, 2, 3, 4, 5], &[(1, 4), (2, 4), (3, 4), (4, 0), (5, 1)], &[]);
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &v), Some(Decision::MoveReplica { from: r.peers[2], store: 4 }));
        let balanced = view(&[1, 2, 3], &[(1, 4), (2, 4), (3, 4)], &[(1, 4), (2, 1), (3, 0)]);
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &balanced), Some(Decision::TransferLeader { to_store: 3 }));
        assert_eq!(decide(&r, &r.peers[2], &[], 3, &balanced), None, "store 3 leads the fewest");
        let busy = ClusterView { balance_allowed: false, ..v };
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &busy), None);
    }

    /// PD restarted and lost the operator that had added learner 99 on
    /// store 4; a new operator moving a replica to store 4 must give up, not
    /// wait out its timeout, so that the replica checker removes the learner.
    #[test]
    fn an_add_to_a_store_holding_a_leftover_learner_fails_at_once() {
        let with_leftover = region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3), Peer { id: 99, store_id: 4, role: PeerRole::Learner }]);
        let mut op = Decision::MoveReplica { from: Peer::voter(11, 1), store: 4 }.into_operator(1, Some(100), 60_000);
        assert!(matches!(op.advance(&with_leftover, &Peer::voter(12, 2), &[], 10), Progress::Failed(_)));
        assert_eq!(
            decide(&with_leftover, &Peer::voter(12, 2), &[], 3, &view(&[1, 2, 3, 4], &[(1, 5), (2, 5), (3, 5), (4, 1)], &[])),
            Some(Decision::RemoveLearner { peer: Peer { id: 99, store_id: 4, role: PeerRole::Learner } })
        );
        // A voter still on its way out of store 4 is waited for.
        let leaving = region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3), Peer::voter(98, 4)]);
        let mut op = Decision::MoveReplica { from: Peer::voter(11, 1), store: 4 }.into_operator(1, Some(100), 60_000);
        assert_eq!(op.advance(&leaving, &Peer::voter(12, 2), &[], 10), Progress::Waiting);
    }

    #[test]
    fn learners_are_promoted_when_needed_and_removed_otherwise() {
        let mut r = region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer { id: 14, store_id: 4, role: PeerRole::Learner }]);
        let v = view(&[1, 2, 4], &[], &[]);
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &v), Some(Decision::PromoteLearner { peer: r.peers[2] }));
        assert_eq!(decide(&r, &r.peers[0], &[r.peers[2]], 3, &v), None, "it is still catching up");
        r.peers.push(Peer::voter(13, 3));
        assert_eq!(decide(&r, &r.peers[0], &[], 3, &v), Some(Decision::RemoveLearner { peer: r.peers[2] }));
    }
}
