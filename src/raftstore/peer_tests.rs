//! Unit tests of the peer: admission.

use super::*;
use crate::engine::SimEngine;
use crate::meta::RegionEpoch;

fn lone_peer(cfg: &RaftStoreConfig) -> PeerFsm<SimEngine> {
    let me = Peer::voter(11, 1);
    let region = Region { id: 1, start_key: keys::raw_key(b"b"), end_key: keys::raw_key(b"m"), epoch: RegionEpoch::new(2, 3), peers: vec![me] };
    let raft_state = RaftLocalState { term: 5, vote: 0, commit: 5, last_index: 5 };
    let apply_state = ApplyState { applied_index: 5, truncated_index: 5, truncated_term: 5 };
    PeerFsm::create(me, cfg, SimEngine::in_memory("raft"), region, raft_state, apply_state)
}

#[madsim::test]
async fn admission_checks_epoch_range_leadership_and_room() {
    let cfg = RaftStoreConfig::default();
    let mut peer = lone_peer(&cfg);
    let (epoch, key) = (peer.region().epoch, keys::raw_key(b"c"));
    let data = (true, false);
    assert!(matches!(peer.check_request(epoch, data, &[&key], 10), Err(RegionError::NotLeader { region_id: 1, .. })));
    // Alone in its region, the peer elects itself once its timeout passes.
    for _ in 0..cfg.election_ticks_max * 2 {
        peer.tick(&cfg, &Events::new(1, None), false);
    }
    assert!(peer.is_leader());
    assert_eq!(peer.check_request(epoch, data, &[&key], 10), Ok(()));
    // Epoch: a data request ignores conf_ver; an admin check of both does not.
    let other_conf = RegionEpoch::new(1, 3);
    assert_eq!(peer.check_request(other_conf, data, &[&key], 10), Ok(()));
    assert!(matches!(peer.check_request(other_conf, (true, true), &[&key], 10), Err(RegionError::EpochNotMatch { .. })));
    let stale = RegionEpoch::new(2, 2);
    match peer.check_request(stale, data, &[&key], 10) {
        Err(RegionError::EpochNotMatch { current_regions, .. }) => assert_eq!(current_regions, vec![peer.region().clone()]),
        other => panic!("{other:?}"),
    }
    // Range, on every key of a batch.
    let outside = keys::raw_key(b"m");
    assert!(matches!(peer.check_request(epoch, data, &[&key, &outside], 10), Err(RegionError::KeyNotInRegion { .. })));
    // Room and snapshots.
    assert!(matches!(peer.check_request(epoch, data, &[&key], 0), Err(RegionError::ServerIsBusy { .. })));
    peer.applying_snapshot = Some(9);
    assert!(matches!(peer.check_request(epoch, data, &[&key], 10), Err(RegionError::ServerIsBusy { .. })));
}
