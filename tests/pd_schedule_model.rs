//! PD's schedulers driven to completion against the store's own rule for
//! membership changes (a model-based test across `pd::schedule` and
//! `raftstore::conf_change`, both pure).
//!
//! A random cluster of five stores (some down, random region and leader
//! counts) and a random region (two to four voters, maybe a learner). PD
//! decides, its operator's commands are carried out as the store would carry
//! them out, and PD decides again, until it has nothing left to do. Every
//! command PD sends must be one the store accepts; no replica lands on a down
//! store or on a store already holding one; a change to the leader's own
//! replica is refused and leadership moves first, as the store does; the
//! region never has fewer voters than it started with or PD
//! wants, whichever is fewer; and with enough up stores PD stops with as many
//! voters as it wants, none on a down store but the leader's.

use proptest::prelude::*;
use simkv::meta::{Peer, PeerRole, Region, RegionEpoch};
use simkv::pd::schedule::{decide, ClusterView, Progress};
use simkv::proto::pd::RegionCommand;
use simkv::raftstore::conf_change::change_peers;

fn cluster() -> impl Strategy<Value = (ClusterView, Region, usize, usize)> {
    let stores = 1..=5u64;
    (
        proptest::collection::btree_set(stores.clone(), 0..=2),
        proptest::collection::vec(0..10i64, 5),
        proptest::collection::vec(0..10i64, 5),
        proptest::sample::subsequence((1..=5u64).collect::<Vec<_>>(), 2..=4),
        proptest::option::of(stores),
        any::<prop::sample::Index>(),
        3..=4usize,
    )
        .prop_map(|(down, regions, leaders, voters, learner, leader, max_replicas)| {
            let mut peers: Vec<Peer> = voters.iter().map(|&s| Peer::voter(10 + s, s)).collect();
            if let Some(s) = learner.filter(|s| !voters.contains(s)) {
                peers.push(Peer { id: 10 + s, store_id: s, role: PeerRole::Learner });
            }
            let region = Region { id: 1, start_key: vec![], end_key: vec![], epoch: RegionEpoch::new(1, 1), peers };
            let view = ClusterView {
                up: (1..=5).filter(|s| !down.contains(s)).collect(),
                down: down.into_iter().collect(),
                regions: (1..=5).zip(regions).collect(),
                leaders: (1..=5).zip(leaders).collect(),
                balance_allowed: true,
            };
            (view, region, leader.index(voters.len()), max_replicas)
        })
}

proptest! {
    #[test]
    fn pd_only_asks_for_changes_the_store_accepts((view, mut region, leader_at, max_replicas) in cluster()) {
        let mut leader = region.peers[leader_at];
        let initial = region.voter_ids().len();
        let floor = initial.min(max_replicas);
        let mut next_id = 100;
        let mut decisions = 0;
        while let Some(decision) = decide(&region, &leader, &[], max_replicas, &view) {
            decisions += 1;
            prop_assert!(decisions <= 20, "PD keeps deciding: {:?} on {:?}", decision, region);
            if let Some(store) = decision.new_peer_store() {
                prop_assert!(view.up.contains(&store), "a replica for down store {} ({:?})", store, decision);
                prop_assert!(region.peer_on_store(store).is_none(), "store {} already holds a replica ({:?})", store, decision);
            }
            next_id += 1;
            let mut operator = decision.into_operator(region.id, decision.new_peer_store().map(|_| next_id), u64::MAX);
            for _ in 0..12 {
                match operator.advance(&region, &leader, &[], 0) {
                    Progress::Command(RegionCommand::ChangePeer { epoch, changes }) => {
                        prop_assert_eq!(epoch, region.epoch);
                        if changes.iter().any(|c| c.peer.id == leader.id) {
                            // The store refuses to remove or demote its leader and
                            // hands leadership to another voter first (as
                            // `propose_conf_change` does); PD sends the step again.
                            leader = *region.peers.iter().find(|p| p.role == PeerRole::Voter && p.id != leader.id).expect("another voter");
                            continue;
                        }
                        region = match change_peers(&region, &changes) {
                            Ok(next) => next,
                            Err(why) => return Err(TestCaseError::fail(format!("the store refuses PD's {changes:?} on {region:?}: {why}"))),
                        };
                        prop_assert!(region.voter_ids().len() >= floor, "voters fell to {:?} (floor {})", region.voter_ids(), floor);
                    }
                    Progress::Command(RegionCommand::TransferLeader { to_store }) => {
                        leader = *region.peer_on_store(to_store).filter(|p| p.role == PeerRole::Voter).expect("a transfer to a voter");
                    }
                    Progress::Finished => break,
                    other => return Err(TestCaseError::fail(format!("{:?} stuck: {other:?} on {region:?}", operator.decision))),
                }
            }
        }
        let voters: Vec<&Peer> = region.peers.iter().filter(|p| p.role == PeerRole::Voter).collect();
        prop_assert!(voters.len() <= max_replicas.max(initial), "PD stops with {} voters", voters.len());
        if view.up.len() >= max_replicas {
            prop_assert_eq!(voters.len(), max_replicas, "PD stops at {:?} with {} up stores", region, view.up.len());
            prop_assert!(voters.iter().all(|p| view.up.contains(&p.store_id) || p.id == leader.id), "a down replica kept: {:?}", region);
        }
    }
}
