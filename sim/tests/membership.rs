//! Membership changes end to end: add a learner, promote it, remove a voter
//! (the leader too), move a replica through joint consensus, re-add a removed
//! store under a new peer id; data follows every change and removed peers
//! leave a tombstone and no data.
#![cfg(madsim)]

use madsim::time::{sleep, Duration};
use simkv::client::ClientConfig;
use simkv::meta::{Peer, PeerRole, Region};
use simkv::proto::{ChangeKind, PeerChange};
use simkv::raftstore::StoreEvent;
use simkv_sim::admin::Admin;
use simkv_sim::cluster::{Cluster, ClusterSpec};
use std::sync::Arc;

fn key(i: usize) -> Vec<u8> {
    format!("key{i:03}").into_bytes()
}

fn change(kind: ChangeKind, peer: Peer) -> PeerChange {
    PeerChange { kind, peer }
}

async fn wait_for_leader(cluster: &Cluster, region_id: u64) {
    for _ in 0..200 {
        if cluster.leader_of(region_id).is_some() {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("region {region_id} elected no leader within 20 simulated seconds");
}

fn peer_on(region: &Region, store: u64) -> Option<Peer> {
    region.peer_on_store(store).copied()
}

async fn membership_scenario() -> u64 {
    let mut spec = ClusterSpec::new(5, 1);
    spec.replicas = 3;
    let cluster = Arc::new(Cluster::start(spec));
    let region_id = cluster.initial_regions[0].id;
    assert_eq!(cluster.initial_regions[0].peers.iter().map(|p| p.store_id).collect::<Vec<_>>(), vec![1, 2, 3]);
    wait_for_leader(&cluster, region_id).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        for i in 0..20 {
            client.put(&key(i), format!("v{i}").as_bytes()).await.unwrap();
        }
        let admin = Admin::new(c.clone(), std::net::SocketAddr::new(local.ip(), 30001)).await;
        let within = Duration::from_secs(30);
        // A learner on store 4, then promoted.
        let learner = Peer { id: 900, store_id: 4, role: PeerRole::Learner };
        admin.change_peer(region_id, within, |r| peer_on(r, 4).is_none().then(|| vec![change(ChangeKind::AddLearner, learner)])).await.unwrap();
        admin
            .change_peer(region_id, within, |r| (peer_on(r, 4)?.role == PeerRole::Learner).then(|| vec![change(ChangeKind::AddVoter, learner)]))
            .await
            .unwrap();
        // Remove store 1's peer, whoever leads (a leader hands leadership on first).
        admin.change_peer(region_id, within, |r| peer_on(r, 1).map(|p| vec![change(ChangeKind::Remove, p)])).await.unwrap();
        for i in 20..30 {
            client.put(&key(i), format!("v{i}").as_bytes()).await.unwrap();
        }
        // Move store 2's replica to store 5 through joint consensus.
        let newcomer = Peer { id: 901, store_id: 5, role: PeerRole::Learner };
        admin.change_peer(region_id, within, |r| peer_on(r, 5).is_none().then(|| vec![change(ChangeKind::AddLearner, newcomer)])).await.unwrap();
        admin
            .change_peer(region_id, within, |r| {
                let old = peer_on(r, 2)?;
                (old.role == PeerRole::Voter && !r.is_joint()).then(|| vec![change(ChangeKind::AddVoter, newcomer), change(ChangeKind::AddLearner, old)])
            })
            .await
            .unwrap();
        // The leader leaves the joint configuration by itself.
        while c.topology().regions[&region_id].is_joint() {
            sleep(Duration::from_millis(100)).await;
        }
        admin
            .change_peer(region_id, within, |r| peer_on(r, 2).filter(|p| p.role == PeerRole::Learner).map(|p| vec![change(ChangeKind::Remove, p)]))
            .await
            .unwrap();
        // Store 1 again, under a new peer id, over its tombstone.
        let back = Peer { id: 902, store_id: 1, role: PeerRole::Learner };
        admin.change_peer(region_id, within, |r| peer_on(r, 1).is_none().then(|| vec![change(ChangeKind::AddLearner, back)])).await.unwrap();
        admin.change_peer(region_id, within, |r| (peer_on(r, 1)?.role == PeerRole::Learner).then(|| vec![change(ChangeKind::AddVoter, back)])).await.unwrap();
        for i in 30..40 {
            client.put(&key(i), format!("v{i}").as_bytes()).await.unwrap();
        }
        for i in 0..40 {
            assert_eq!(client.get(&key(i)).await.unwrap(), Some(format!("v{i}").into_bytes()), "key {i} after the moves");
        }
    })
    .await
    .unwrap();
    sleep(Duration::from_secs(3)).await;
    let region = cluster.topology().regions[&region_id].clone();
    let mut stores: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    stores.sort();
    assert_eq!(stores, vec![1, 3, 4, 5], "members after the moves: {region:?}");
    assert!(region.peers.iter().all(|p| p.role == PeerRole::Voter));
    assert_eq!(peer_on(&region, 1).unwrap().id, 902);
    let data: Vec<_> = stores.iter().map(|&s| cluster.region_data(s, &region)).collect();
    assert_eq!(data[0].len(), 40);
    assert!(data.iter().all(|d| d == &data[0]), "every member holds the same data");
    assert!(cluster.region_data(2, &region).is_empty(), "the removed store's data is gone");
    let destroyed: Vec<(u64, u64)> = cluster
        .events()
        .iter()
        .filter_map(|e| match e.event {
            StoreEvent::PeerDestroyed { store_id, peer_id, .. } => Some((store_id, peer_id)),
            _ => None,
        })
        .collect();
    let events: Vec<StoreEvent> = cluster.events().into_iter().map(|e| e.event).collect();
    assert_eq!(simkv_sim::checker::membership::check(&events), None);
    assert_eq!(simkv_sim::checker::raft::check(&events), None);
    let original = &cluster.initial_regions[0];
    assert_eq!(destroyed, vec![(1, peer_on(original, 1).unwrap().id), (2, peer_on(original, 2).unwrap().id)]);
    cluster.digest()
}

#[madsim::test]
async fn replicas_move_and_data_follows() {
    membership_scenario().await;
}

#[test]
fn membership_changes_are_deterministic() {
    let run = || madsim::runtime::Runtime::with_seed_and_config(7, madsim::Config::default()).block_on(membership_scenario());
    assert_eq!(run(), run());
}
