//! Membership changes: what a `ChangePeer` command does to a region descriptor,
//! and the raft-rs `ConfChangeV2` it stands for. Pure.
//!
//! * one change is a **simple** change: add a voter or a learner, promote a
//!   learner, demote a voter, remove a peer;
//! * several changes **enter joint consensus**: a promoted or added voter is an
//!   `IncomingVoter`, a demoted voter a `DemotingVoter`, until
//! * an empty change list **leaves joint consensus**: incoming voters become
//!   voters, demoting voters learners.
//!
//! As in TiKV, a voter is never removed inside a joint change (demote it, leave
//! joint, then remove the learner), and a store never holds two peers of one
//! region. [`change_peers`] is called twice with the same answer: when the
//! change is proposed (to refuse a bad one early, with a reason) and when it
//! is applied (where the answer is what every replica does). `conf_ver` grows
//! by the number of peers whose part changed.

use super::cmd::{ChangeKind, PeerChange};
use crate::meta::{Peer, PeerRole, Region};
use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};

/// The region after `changes`, or why they cannot be made.
pub fn change_peers(region: &Region, changes: &[PeerChange]) -> Result<Region, String> {
    let mut next = region.clone();
    if changes.is_empty() {
        if !region.is_joint() {
            return Err("not in a joint configuration: nothing to leave".into());
        }
        let mut moved = 0;
        for peer in &mut next.peers {
            match peer.role {
                PeerRole::IncomingVoter => peer.role = PeerRole::Voter,
                PeerRole::DemotingVoter => peer.role = PeerRole::Learner,
                _ => continue,
            }
            moved += 1;
        }
        next.epoch.conf_ver += moved;
        return Ok(next);
    }
    if region.is_joint() {
        return Err("the region is in a joint configuration: leave it first".into());
    }
    let joint = changes.len() > 1;
    for (i, change) in changes.iter().enumerate() {
        let peer = change.peer;
        if changes[..i].iter().any(|c| c.peer.store_id == peer.store_id || c.peer.id == peer.id) {
            return Err(format!("store {} or peer {} named twice", peer.store_id, peer.id));
        }
        let existing = next.peers.iter().position(|p| p.store_id == peer.store_id || p.id == peer.id);
        if let Some(at) = existing {
            let current = next.peers[at];
            if current.id != peer.id || current.store_id != peer.store_id {
                return Err(format!("store {} already holds peer {} of region {}, not peer {}", current.store_id, current.id, region.id, peer.id));
            }
        }
        let role = existing.map(|at| next.peers[at].role);
        match (change.kind, role) {
            (ChangeKind::AddVoter, None) => next.peers.push(Peer { role: if joint { PeerRole::IncomingVoter } else { PeerRole::Voter }, ..peer }),
            (ChangeKind::AddVoter, Some(PeerRole::Learner)) => {
                next.peers[existing.expect("some")].role = if joint { PeerRole::IncomingVoter } else { PeerRole::Voter };
            }
            (ChangeKind::AddLearner, None) => next.peers.push(Peer { role: PeerRole::Learner, ..peer }),
            (ChangeKind::AddLearner, Some(PeerRole::Voter)) => {
                next.peers[existing.expect("some")].role = if joint { PeerRole::DemotingVoter } else { PeerRole::Learner };
            }
            (ChangeKind::Remove, Some(PeerRole::Learner)) => drop(next.peers.remove(existing.expect("some"))),
            (ChangeKind::Remove, Some(PeerRole::Voter)) if !joint => drop(next.peers.remove(existing.expect("some"))),
            (ChangeKind::Remove, Some(PeerRole::Voter)) => return Err(format!("peer {} is a voter: demote it before removing it in a joint change", peer.id)),
            (ChangeKind::Remove, None) => return Err(format!("peer {} is not a member of region {}", peer.id, region.id)),
            (kind, Some(role)) => return Err(format!("peer {} is already a {role:?}: {kind:?} changes nothing", peer.id)),
        }
    }
    if next.voter_ids().is_empty() {
        return Err("the change would leave no voter".into());
    }
    if joint && !next.is_joint() {
        // raft-rs enters joint consensus for any several changes; a region
        // whose roles show no joint state would never leave it.
        return Err("several changes at once must move a voter (a joint change): change learners one at a time".into());
    }
    next.epoch.conf_ver += changes.len() as u64;
    Ok(next)
}

/// The raft-rs change for `changes`, carrying `context` (our encoded command).
/// Several changes use an explicit transition: raft-rs enters joint consensus
/// and stays there until we propose the empty change that leaves it.
pub fn to_conf_change_v2(changes: &[PeerChange], context: Vec<u8>) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    cc.set_changes(
        changes
            .iter()
            .map(|c| {
                let mut single = ConfChangeSingle::default();
                single.set_change_type(match c.kind {
                    ChangeKind::AddVoter => ConfChangeType::AddNode,
                    ChangeKind::AddLearner => ConfChangeType::AddLearnerNode,
                    ChangeKind::Remove => ConfChangeType::RemoveNode,
                });
                single.node_id = c.peer.id;
                single
            })
            .collect(),
    );
    if changes.len() > 1 {
        cc.set_transition(ConfChangeTransition::Explicit);
    }
    cc.set_context(context.into());
    cc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RegionEpoch;

    fn region(peers: Vec<Peer>) -> Region {
        Region { id: 1, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(3, 1), peers }
    }

    fn change(kind: ChangeKind, id: u64, store_id: u64) -> PeerChange {
        PeerChange { kind, peer: Peer::voter(id, store_id) }
    }

    fn three() -> Region {
        region(vec![Peer::voter(11, 1), Peer::voter(12, 2), Peer::voter(13, 3)])
    }

    #[test]
    fn simple_changes_add_promote_demote_and_remove() {
        let with_learner = change_peers(&three(), &[change(ChangeKind::AddLearner, 14, 4)]).unwrap();
        assert_eq!(with_learner.learner_ids(), vec![14]);
        assert_eq!(with_learner.epoch.conf_ver, 4);
        let promoted = change_peers(&with_learner, &[change(ChangeKind::AddVoter, 14, 4)]).unwrap();
        assert_eq!(promoted.voter_ids(), vec![11, 12, 13, 14]);
        let removed = change_peers(&promoted, &[change(ChangeKind::Remove, 11, 1)]).unwrap();
        assert_eq!(removed.voter_ids(), vec![12, 13, 14]);
        assert_eq!(removed.epoch.conf_ver, 6);
        let demoted = change_peers(&removed, &[change(ChangeKind::AddLearner, 12, 2)]).unwrap();
        assert_eq!((demoted.voter_ids(), demoted.learner_ids()), (vec![13, 14], vec![12]));
    }

    #[test]
    fn a_joint_move_enters_then_leaves() {
        let with_learner = change_peers(&three(), &[change(ChangeKind::AddLearner, 14, 4)]).unwrap();
        // Swap store 1 for store 4 in one step: promote 14, demote 11.
        let joint = change_peers(&with_learner, &[change(ChangeKind::AddVoter, 14, 4), change(ChangeKind::AddLearner, 11, 1)]).unwrap();
        assert!(joint.is_joint());
        assert_eq!(joint.voter_ids(), vec![12, 13, 14]);
        assert_eq!(joint.outgoing_voter_ids(), vec![11, 12, 13]);
        assert_eq!(joint.learner_next_ids(), vec![11]);
        assert!(change_peers(&joint, &[change(ChangeKind::Remove, 11, 1)]).unwrap_err().contains("leave it first"));
        let left = change_peers(&joint, &[]).unwrap();
        assert!(!left.is_joint());
        assert_eq!((left.voter_ids(), left.learner_ids()), (vec![12, 13, 14], vec![11]));
        assert_eq!(left.epoch.conf_ver, joint.epoch.conf_ver + 2);
    }

    #[test]
    fn bad_changes_say_why() {
        let r = three();
        let err = |changes: &[PeerChange]| change_peers(&r, changes).unwrap_err();
        assert!(err(&[]).contains("not in a joint configuration"));
        assert!(err(&[change(ChangeKind::AddVoter, 11, 1)]).contains("already a Voter"));
        assert!(err(&[change(ChangeKind::AddVoter, 99, 1)]).contains("store 1 already holds peer 11"));
        assert!(err(&[change(ChangeKind::Remove, 14, 4)]).contains("not a member"));
        assert!(err(&[change(ChangeKind::AddLearner, 14, 4), change(ChangeKind::Remove, 11, 1)]).contains("demote it before removing"));
        assert!(err(&[change(ChangeKind::AddLearner, 14, 4), change(ChangeKind::AddVoter, 15, 4)]).contains("named twice"));
        // Found by the model test below: two learner changes at once would put
        // raft-rs in joint consensus that the region's roles do not show.
        assert!(err(&[change(ChangeKind::AddLearner, 14, 4), change(ChangeKind::AddLearner, 15, 5)]).contains("change learners one at a time"));
        let one = region(vec![Peer::voter(11, 1)]);
        assert!(change_peers(&one, &[change(ChangeKind::Remove, 11, 1)]).unwrap_err().contains("no voter"));
    }

    #[test]
    fn the_raft_change_matches_the_descriptor() {
        let cc = to_conf_change_v2(&[change(ChangeKind::AddVoter, 14, 4), change(ChangeKind::AddLearner, 11, 1)], vec![7]);
        assert_eq!(cc.enter_joint(), Some(false), "joint, left explicitly");
        assert_eq!(cc.get_context(), &[7]);
        assert!(to_conf_change_v2(&[], vec![]).leave_joint());
        assert_eq!(to_conf_change_v2(&[change(ChangeKind::Remove, 11, 1)], vec![]).enter_joint(), None);
    }

    /// A model-based test: random sequences of changes (good and bad) go
    /// through [`change_peers`]; every change it accepts is also applied to
    /// raft-rs's own configuration through [`to_conf_change_v2`], and the two
    /// must agree on voters, outgoing voters, learners and learners-next after
    /// every step. Along the way: `conf_ver` only grows, no store holds two
    /// peers, a voter always remains, and a joint configuration is entered
    /// only by several changes and left only by the empty one.
    mod model {
        use super::*;
        use proptest::prelude::*;
        use raft::eraftpb::ConfState;
        use raft::storage::MemStorage;
        use raft::{Config, RawNode};

        fn change_strategy() -> impl Strategy<Value = Vec<PeerChange>> {
            let one = (0..3u8, 1..6u64).prop_map(|(kind, store)| {
                let kind = [ChangeKind::AddVoter, ChangeKind::AddLearner, ChangeKind::Remove][kind as usize];
                // Peer ids follow stores, so re-adding a store reuses its id.
                PeerChange { kind, peer: Peer::voter(10 + store, store) }
            });
            prop_oneof![1 => Just(vec![]), 6 => proptest::collection::vec(one, 1..3)]
        }

        fn raft_node() -> RawNode<MemStorage> {
            let storage = MemStorage::new_with_conf_state(ConfState::from((vec![11, 12, 13], vec![])));
            let cfg = Config { id: 11, ..Config::default() };
            RawNode::new(&cfg, storage, &crate::raftstore::raft_node::discard_logger()).unwrap()
        }

        fn sorted(ids: &[u64]) -> Vec<u64> {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        }

        proptest! {
            #[test]
            fn change_peers_agrees_with_raft(steps in proptest::collection::vec(change_strategy(), 1..25)) {
                let mut region = three();
                let mut node = raft_node();
                for changes in steps {
                    let Ok(next) = change_peers(&region, &changes) else { continue };
                    prop_assert!(next.epoch.conf_ver > region.epoch.conf_ver, "conf_ver grows: {:?} -> {:?}", region, next);
                    let mut stores: Vec<u64> = next.peers.iter().map(|p| p.store_id).collect();
                    stores.sort_unstable();
                    stores.dedup();
                    prop_assert_eq!(stores.len(), next.peers.len(), "a store holds two peers: {:?}", next);
                    prop_assert!(!next.voter_ids().is_empty());
                    prop_assert_eq!(next.is_joint(), changes.len() > 1, "joint exactly when several changes are made at once");
                    if changes.is_empty() {
                        prop_assert!(!next.is_joint(), "the empty change leaves joint");
                    }
                    let conf = node.apply_conf_change(&to_conf_change_v2(&changes, vec![])).expect("raft-rs takes every change we accept");
                    prop_assert_eq!(sorted(&conf.voters), next.voter_ids(), "voters after {:?}", changes);
                    prop_assert_eq!(sorted(&conf.voters_outgoing), next.outgoing_voter_ids(), "outgoing voters after {:?}", changes);
                    prop_assert_eq!(sorted(&conf.learners), next.learner_ids(), "learners after {:?}", changes);
                    prop_assert_eq!(sorted(&conf.learners_next), next.learner_next_ids(), "learners next after {:?}", changes);
                    region = next;
                }
            }
        }
    }
}
