//! Raftstore under simulation: replication, crashes, snapshots, slow disks, bad
//! input, and determinism. Every test runs in madsim; `MADSIM_TEST_SEED` picks the
//! seed as madsim users expect.
#![cfg(madsim)]

use madsim::time::{sleep, Duration};
use simkv::client::{ClientConfig, ClientError};
use simkv::codec::keys::raw_key;
use simkv::engine::IoProfile;
use simkv::proto::{KvRequest, RawReply, RawRequest, RegionError, RpcRequest, RpcResponse, ServerError};
use simkv::raftstore::StoreEvent;
use simkv::transport::{Frame, Transport};
use simkv_sim::cluster::{Cluster, ClusterSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

fn key(i: usize) -> Vec<u8> {
    format!("key{:03}", i % 1000).into_bytes()
}

/// Waits until every region has reported a leader.
async fn wait_for_leaders(cluster: &Cluster) {
    for _ in 0..200 {
        if cluster.initial_regions.iter().all(|r| cluster.leader_of(r.id).is_some()) {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("not every region elected a leader within 20 simulated seconds");
}

/// Runs `clients` concurrent clients; client `c` writes keys `c, c+clients, ...`
/// with put / cas / get and checks each of its own writes reads back.
async fn concurrent_clients(cluster: &Arc<Cluster>, clients: usize, ops: usize) -> usize {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (node, local) = cluster.client_node();
        let cluster = cluster.clone();
        tasks.push(node.spawn(async move {
            let client = cluster.raw_client(local, ClientConfig::default()).await;
            let mut acknowledged = 0;
            for op in 0..ops {
                let k = key(c + op * clients * 7);
                let value = format!("c{c}-op{op}").into_bytes();
                client.put(&k, &value).await.expect("put on a healthy cluster");
                assert_eq!(client.get(&k).await.unwrap(), Some(value.clone()), "read your write");
                let (swapped, previous) = client.cas(&k, Some(&value), Some(b"swapped")).await.unwrap();
                assert!(swapped, "cas from the value just written: previous {previous:?}");
                let (swapped, previous) = client.cas(&k, Some(&value), Some(b"never")).await.unwrap();
                assert!(!swapped && previous.as_deref() == Some(&b"swapped"[..]));
                acknowledged += 1;
            }
            acknowledged
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

async fn replicated_clients(stores: usize, regions: usize) -> u64 {
    let mut spec = ClusterSpec::new(stores, regions);
    // Replicas stay where the layout put them: PD's balancing is not under test.
    spec.pd.schedule = false;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    assert_eq!(concurrent_clients(&cluster, 4, 15).await, 60);
    sleep(Duration::from_secs(2)).await;
    assert_replicas_converged(&cluster);
    cluster.digest()
}

/// Every replica of every region holds identical data.
fn assert_replicas_converged(cluster: &Cluster) {
    for region in &cluster.initial_regions {
        let copies: Vec<_> = region.peers.iter().map(|p| (p.store_id, cluster.region_data_now(p.store_id, region))).collect();
        for (store, data) in &copies[1..] {
            assert_eq!(data, &copies[0].1, "region {} differs between store {} and store {store}", region.id, copies[0].0);
        }
    }
}

#[madsim::test]
async fn three_stores_one_region() {
    replicated_clients(3, 1).await;
}

#[madsim::test]
async fn three_stores_eight_regions() {
    replicated_clients(3, 8).await;
}

#[madsim::test]
async fn five_stores_one_region() {
    replicated_clients(5, 1).await;
}

#[madsim::test]
async fn five_stores_eight_regions() {
    replicated_clients(5, 8).await;
}

#[madsim::test]
async fn scan_crosses_regions_and_delete_removes() {
    let cluster = Arc::new(Cluster::start(ClusterSpec::new(3, 4)));
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        for i in (0..1000).step_by(50) {
            client.put(&key(i), b"v").await.unwrap();
        }
        let all = client.scan(b"", b"", 1000).await.unwrap();
        assert_eq!(all.len(), 20);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "scan is ordered across regions");
        assert_eq!(client.scan(&key(100), &key(300), 1000).await.unwrap().len(), 4);
        assert_eq!(client.scan(b"", b"", 3).await.unwrap().len(), 3);
        client.delete(&key(0)).await.unwrap();
        assert_eq!(client.get(&key(0)).await.unwrap(), None);
    })
    .await
    .unwrap();
}

/// Kill and restart the leader's store, losing its unsynced writes, while clients
/// write: every acknowledged write is still there at the end.
#[madsim::test]
async fn leader_crash_loses_no_acknowledged_write() {
    leader_crash_scenario().await;
}

async fn leader_crash_scenario() -> u64 {
    let cluster = Arc::new(Cluster::start(ClusterSpec::new(3, 2)));
    wait_for_leaders(&cluster).await;
    let mut writers = Vec::new();
    for c in 0..3 {
        let (node, local) = cluster.client_node();
        let cluster = cluster.clone();
        writers.push(node.spawn(async move {
            let cfg = ClientConfig { rpc_timeout: Duration::from_millis(800), ..ClientConfig::default() };
            let client = cluster.raw_client(local, cfg).await;
            let mut acknowledged = BTreeMap::new();
            for op in 0..60 {
                let (k, v) = (key(c * 300 + op * 5), format!("{c}.{op}").into_bytes());
                match client.put(&k, &v).await {
                    Ok(()) => {
                        acknowledged.insert(k, v);
                    }
                    Err(ClientError::Unknown(_) | ClientError::Failed { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
                sleep(Duration::from_millis(50)).await;
            }
            acknowledged
        }));
    }
    for _ in 0..3 {
        sleep(Duration::from_millis(900)).await;
        let victim = cluster.leader_of(cluster.initial_regions[0].id).unwrap();
        cluster.crash(victim);
        sleep(Duration::from_millis(500)).await;
        cluster.restart(victim);
    }
    let mut acknowledged = BTreeMap::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(acknowledged.len() > 60, "most writes should succeed: {}", acknowledged.len());
    sleep(Duration::from_secs(3)).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        for (k, v) in &acknowledged {
            assert_eq!(client.get(k).await.unwrap().as_ref(), Some(v), "acknowledged write to {k:?} lost");
        }
    })
    .await
    .unwrap();
    assert_replicas_converged(&cluster);
    cluster.digest()
}

/// Writes 150 keys of 200 bytes while `lagger` is cut off, then heals it.
async fn write_while_isolated(cluster: &Arc<Cluster>, lagger: u64) {
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        // Learn the leader while every store is reachable.
        client.put(&key(0), &[b'x'; 200]).await.unwrap();
        c.isolate(lagger);
        for i in 1..150 {
            client.put(&key(i), &[b'x'; 200]).await.unwrap();
        }
    })
    .await
    .unwrap();
    sleep(Duration::from_secs(2)).await;
    cluster.heal(lagger);
}

/// A follower cut off while the log is compacted past it catches up by snapshot;
/// generation and apply both take simulated IO time.
async fn snapshot_catch_up(io: IoProfile) -> Vec<StoreEvent> {
    let mut spec = ClusterSpec::new(3, 1);
    spec.raftstore.raft_log_gc_count_limit = 20;
    spec.raftstore.raft_log_gc_ticks = 3;
    spec.io = io;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let region = cluster.initial_regions[0].clone();
    let leader = cluster.leader_of(region.id).unwrap();
    let lagger = region.peers.iter().map(|p| p.store_id).find(|&s| s != leader).unwrap();
    write_while_isolated(&cluster, lagger).await;
    sleep(Duration::from_secs(20)).await;
    let events: Vec<StoreEvent> = cluster.events().into_iter().map(|e| e.event).collect();
    assert!(events.iter().any(|e| matches!(e, StoreEvent::LogCompacted { store_id, .. } if *store_id == leader)), "the leader compacted its log");
    assert_eq!(cluster.region_data_now(lagger, &region).len(), 150, "the lagging follower caught up");
    assert_replicas_converged(&cluster);
    events.into_iter().filter(|e| matches!(e, StoreEvent::SnapshotGenerated { .. } | StoreEvent::SnapshotApplied { .. })).collect()
}

#[madsim::test]
async fn lagging_follower_catches_up_by_snapshot() {
    let events = snapshot_catch_up(IoProfile::ssd()).await;
    let generated = events.iter().find_map(|e| match e {
        StoreEvent::SnapshotGenerated { took, bytes, .. } => Some((*took, *bytes)),
        _ => None,
    });
    let applied = events.iter().find_map(|e| match e {
        StoreEvent::SnapshotApplied { took, .. } => Some(*took),
        _ => None,
    });
    let (gen_took, bytes) = generated.expect("a snapshot was generated");
    assert!(bytes > 150 * 200, "the snapshot carries the data ({bytes} bytes)");
    assert!(!gen_took.is_zero(), "generation took simulated IO time");
    assert!(!applied.expect("a snapshot was applied").is_zero(), "apply took simulated IO time");
}

#[madsim::test]
async fn slow_disk_and_slow_snapshot_io_still_complete() {
    let slow = IoProfile { slowdown: 20, snapshot_slowdown: 200, ..IoProfile::ssd() };
    let events = snapshot_catch_up(slow).await;
    let took = events.iter().find_map(|e| match e {
        StoreEvent::SnapshotApplied { took, .. } => Some(*took),
        _ => None,
    });
    assert!(took.expect("snapshot applied") >= Duration::from_millis(10), "slow snapshot IO is slow: {took:?}");
}

/// Bad input gets typed errors and the store keeps serving.
#[madsim::test]
async fn bad_input_gets_typed_errors() {
    let mut spec = ClusterSpec::new(3, 2);
    spec.raftstore.max_entry_bytes = 4096;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        client.put(b"key000", b"before").await.unwrap();
        // Oversized value: a typed, final error.
        let err = client.put(b"key001", &vec![0u8; 10_000]).await.unwrap_err();
        assert!(matches!(err, ClientError::Invalid(ServerError::InvalidRequest(ref m)) if m.contains("over the 4096-byte limit")), "{err}");

        // Raw requests straight at a store: unknown region, key outside region.
        let probe = Transport::bind(std::net::SocketAddr::new(local.ip(), 31000)).await.unwrap();
        let region = c.initial_regions[0].clone();
        let leader = c.leader_of(region.id).unwrap();
        let ask = |request: KvRequest, id: u64| {
            let probe = probe.clone();
            let addr = c.addresses[&leader];
            async move {
                probe.send(addr, &Frame::Request { id, payload: RpcRequest::Kv(request).encode() });
                let (frame, _) = probe.recv().await.unwrap();
                match frame.unwrap() {
                    Frame::Response { id: got, payload } => {
                        assert_eq!(got, id);
                        RpcResponse::decode(&payload).unwrap()
                    }
                    other => panic!("unexpected frame {other:?}"),
                }
            }
        };
        let unknown = KvRequest { region_id: 999_999, epoch: region.epoch, cmd: RawRequest::Get { key: raw_key(b"a") } };
        assert_eq!(ask(unknown, 1).await, RpcResponse::Kv(Err(ServerError::Region(RegionError::RegionNotFound { region_id: 999_999 }))));
        let outside = KvRequest { region_id: region.id, epoch: region.epoch, cmd: RawRequest::Get { key: raw_key(b"zzz") } };
        assert!(matches!(ask(outside, 2).await, RpcResponse::Kv(Err(ServerError::Region(RegionError::KeyNotInRegion { .. })))));
        // Garbage frames and garbage payloads: rejected, and the store keeps serving.
        probe.send_bytes(c.addresses[&leader], b"\x00garbage".to_vec());
        probe.send(c.addresses[&leader], &Frame::Request { id: 3, payload: b"\xff\xff".to_vec() });
        let (frame, _) = probe.recv().await.unwrap();
        match frame.unwrap() {
            Frame::Response { id: 3, payload } => assert!(matches!(RpcResponse::decode(&payload).unwrap(), RpcResponse::Rejected(ServerError::Malformed(_)))),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(client.get(b"key000").await.unwrap(), Some(b"before".to_vec()));
        let ok = KvRequest { region_id: region.id, epoch: region.epoch, cmd: RawRequest::Get { key: raw_key(b"key000") } };
        assert_eq!(ask(ok, 4).await, RpcResponse::Kv(Ok(RawReply::Value(Some(b"before".to_vec())))));
    })
    .await
    .unwrap();
}

/// The same seed twice gives the same run, event for event.
#[test]
fn same_seed_same_digest() {
    let seed = std::env::var("MADSIM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let run = |seed| {
        let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        rt.block_on(replicated_clients(3, 4))
    };
    let (first, second) = (run(seed), run(seed));
    assert_eq!(first, second, "seed {seed} is not deterministic");
    assert_ne!(run(seed + 1), first, "different seeds should give different runs");
}

fn twice<T: PartialEq + std::fmt::Debug, F: std::future::Future<Output = T>>(scenario: fn() -> F) {
    let seed = std::env::var("MADSIM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let run = || madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(scenario());
    assert_eq!(run(), run(), "seed {seed} is not deterministic");
}

#[test]
fn leader_crash_is_deterministic() {
    twice(leader_crash_scenario);
}

#[test]
fn snapshot_catch_up_is_deterministic() {
    twice(|| snapshot_catch_up(IoProfile::ssd()));
}

#[test]
fn slow_io_snapshot_is_deterministic() {
    twice(|| snapshot_catch_up(IoProfile { slowdown: 20, snapshot_slowdown: 200, ..IoProfile::ssd() }));
}

#[test]
fn eight_regions_is_deterministic() {
    twice(|| replicated_clients(5, 8));
}

/// Builds a raft snapshot message for `to`'s region, as a buggy or stale leader
/// might send it: metadata at `index`, and `data` as the payload.
fn forged_snapshot(region: &simkv::meta::Region, to_store: u64, index: u64, data: Vec<u8>) -> simkv::transport::RaftEnvelope {
    use protobuf::Message as _;
    use raft::eraftpb::{Message, MessageType, Snapshot};
    let to = *region.peer_on_store(to_store).unwrap();
    let from = *region.peers.iter().find(|p| p.store_id != to_store).unwrap();
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = index;
    snapshot.mut_metadata().term = 100;
    snapshot.set_data(data.into());
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.from = from.id;
    msg.to = to.id;
    msg.term = 100;
    msg.set_snapshot(snapshot);
    simkv::transport::RaftEnvelope::new(region, from, to, msg.write_to_bytes().unwrap())
}

/// A store refuses snapshots that are stale, that would overlap another of its
/// regions, that belong to another region, or that do not decode, and keeps
/// serving both regions afterwards.
async fn forged_snapshots_scenario() -> u64 {
    use simkv::raftstore::SnapshotData;
    let cluster = Arc::new(Cluster::start(ClusterSpec::new(3, 2)));
    wait_for_leaders(&cluster).await;
    let (r1, r2) = (cluster.initial_regions[0].clone(), cluster.initial_regions[1].clone());
    let target = r1.peers[0].store_id;
    assert!(r2.peer_on_store(target).is_some(), "3 stores, 3 replicas: the target hosts both regions");
    let mut widened = r1.clone();
    widened.end_key = r2.end_key.clone();
    widened.epoch.version += 1;
    let empty = |region: &simkv::meta::Region| SnapshotData { region: region.clone(), cfs: vec![] }.encode();
    let forged = vec![
        forged_snapshot(&r1, target, 1, empty(&r1)),
        forged_snapshot(&r1, target, 1_000_000, empty(&widened)),
        forged_snapshot(&r1, target, 1_000_000, empty(&r2)),
        forged_snapshot(&r1, target, 1_000_000, b"\xff\xff\xff\xff\xff\xff\xff\xff not snapshot data".to_vec()),
    ];
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        client.put(b"key000", b"before").await.unwrap();
        let probe = Transport::bind(std::net::SocketAddr::new(local.ip(), 31000)).await.unwrap();
        for envelope in forged {
            probe.send(c.addresses[&target], &Frame::Raft(vec![envelope]));
        }
        sleep(Duration::from_secs(1)).await;
        client.put(b"key000", b"after").await.unwrap();
        client.put(b"key999", b"other region").await.unwrap();
        assert_eq!(client.get(b"key000").await.unwrap(), Some(b"after".to_vec()));
    })
    .await
    .unwrap();
    // The forged messages may arrive in any order.
    let mut reasons: Vec<&str> = cluster
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            StoreEvent::SnapshotRejected { store_id, reason, .. } if store_id == target => Some(reason),
            _ => None,
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["overlaps another region on this store", "snapshot data does not decode", "snapshot is for another region", "stale: at or below the applied index",]
    );
    assert!(!cluster.events().iter().any(|e| matches!(e.event, StoreEvent::SnapshotApplying { .. })), "no forged snapshot was applied");
    sleep(Duration::from_secs(2)).await;
    assert_replicas_converged(&cluster);
    cluster.digest()
}

/// A store that crashes while writing a received snapshot finishes it on restart
/// (the snapshot was persisted on the raft engine before the write began).
async fn interrupted_snapshot_scenario() -> u64 {
    let mut spec = ClusterSpec::new(3, 1);
    spec.raftstore.raft_log_gc_count_limit = 20;
    spec.raftstore.raft_log_gc_ticks = 3;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let region = cluster.initial_regions[0].clone();
    let leader = cluster.leader_of(region.id).unwrap();
    let lagger = region.peers.iter().map(|p| p.store_id).find(|&s| s != leader).unwrap();
    // Applying a snapshot on the lagger's disk takes seconds.
    cluster.stores[&lagger].kv_disk.set_profile(IoProfile { snapshot_slowdown: 20_000, ..IoProfile::ssd() });
    write_while_isolated(&cluster, lagger).await;
    let is_lagger = |store: u64| store == lagger;
    let applying = || cluster.events().iter().any(|e| matches!(e.event, StoreEvent::SnapshotApplying { store_id, .. } if is_lagger(store_id)));
    for _ in 0..300 {
        if applying() {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    assert!(applying(), "the lagger started applying a snapshot");
    cluster.crash(lagger);
    let applied = |events: &[simkv_sim::cluster::TimedEvent]| {
        events.iter().any(|e| matches!(e.event, StoreEvent::SnapshotApplied { store_id, .. } if is_lagger(store_id)))
    };
    assert!(!applied(&cluster.events()), "the crash came before the snapshot's data was written");
    cluster.stores[&lagger].kv_disk.set_profile(IoProfile::ssd());
    sleep(Duration::from_secs(1)).await;
    cluster.restart(lagger);
    sleep(Duration::from_secs(10)).await;
    assert!(
        cluster.events().iter().any(|e| matches!(e.event, StoreEvent::SnapshotResumed { store_id, .. } if is_lagger(store_id))),
        "the restarted store finished the interrupted snapshot"
    );
    assert_eq!(cluster.region_data_now(lagger, &region).len(), 150, "the lagging follower caught up");
    assert_replicas_converged(&cluster);
    cluster.digest()
}

#[madsim::test]
async fn restart_finishes_an_interrupted_snapshot() {
    interrupted_snapshot_scenario().await;
}

#[test]
fn interrupted_snapshot_is_deterministic() {
    twice(interrupted_snapshot_scenario);
}

#[madsim::test]
async fn stale_and_overlapping_snapshots_are_rejected() {
    forged_snapshots_scenario().await;
}

#[test]
fn forged_snapshots_are_deterministic() {
    twice(forged_snapshots_scenario);
}

/// Damage built on purpose, where chance would rarely put it. A flipped bit
/// under the leader: the read that meets it is refused (never served), the
/// leader hands leadership over and is repaired by a snapshot, and every read
/// sees the good value. An unreadable value under a follower nobody reads:
/// the scrubber finds it and the follower is repaired too. At the end no
/// damaged value is left and the replicas agree.
#[madsim::test]
async fn damaged_data_is_refused_and_repaired() {
    use simkv::engine::{Cf, Damage};
    let mut spec = ClusterSpec::new(3, 1);
    spec.pd.schedule = false;
    spec.raftstore.scrub_ticks = 20;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let region = cluster.initial_regions[0].clone();
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    let (sick_leader, sick_follower) = node
        .spawn(async move {
            let client = c.raw_client(local, ClientConfig::default()).await;
            for i in 0..10 {
                client.put(&key(i), b"good").await.unwrap();
            }
            sleep(Duration::from_secs(1)).await;
            let stored = |i| simkv::codec::keys::data_key(&raw_key(&key(i)));
            let leader = c.leader_of(region.id).unwrap();
            assert!(c.stores[&leader].kv_disk.damage(Cf::Default, &stored(3), Damage::BitFlip, 9));
            for _ in 0..20 {
                assert_eq!(client.get(&key(3)).await.unwrap(), Some(b"good".to_vec()), "a damaged value is never served");
            }
            let follower = *c.stores.keys().find(|s| **s != leader && c.leader_of(region.id) != Some(**s)).unwrap();
            assert!(c.stores[&follower].kv_disk.damage(Cf::Default, &stored(7), Damage::Unreadable, 0));
            sleep(Duration::from_secs(6)).await;
            assert_eq!(client.get(&key(7)).await.unwrap(), Some(b"good".to_vec()));
            (leader, follower)
        })
        .await
        .unwrap();
    let events = cluster.events();
    let found = |store: u64, how: &str| {
        events.iter().any(|e| matches!(&e.event, StoreEvent::DataCorrupted { store_id, reason, .. } if *store_id == store && reason.contains(how)))
    };
    let repaired = |store: u64| events.iter().any(|e| matches!(e.event, StoreEvent::DataRepaired { store_id, .. } if store_id == store));
    assert!(found(sick_leader, "fails its checksum") && repaired(sick_leader), "the leader's damage was found and repaired");
    assert!(found(sick_follower, "scrubbing") && repaired(sick_follower), "the scrubber found the follower's damage");
    assert_ne!(cluster.leader_of(region.id), Some(sick_leader), "the damaged leader stepped down");
    for slot in cluster.stores.values() {
        assert!(slot.kv_disk.damaged().is_empty(), "store {} still holds damage", slot.id);
    }
    assert_replicas_converged(&cluster);
}

/// The last of `Hibernated` / `Woke` each peer reported: whether it
/// hibernates now, per (store, region).
fn hibernating(cluster: &Cluster) -> BTreeMap<(u64, u64), bool> {
    let mut state = BTreeMap::new();
    for e in cluster.events() {
        match e.event {
            StoreEvent::Hibernated { store_id, region_id, .. } => drop(state.insert((store_id, region_id), true)),
            StoreEvent::Woke { store_id, region_id, .. } => drop(state.insert((store_id, region_id), false)),
            _ => {}
        }
    }
    state
}

/// Regions without traffic hibernate — every peer, leader and followers —
/// and a write wakes only its own region, and is served at once.
#[madsim::test]
async fn idle_regions_hibernate_and_a_write_wakes_only_its_region() {
    let mut spec = ClusterSpec::new(3, 4);
    spec.pd.schedule = false;
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        for i in (0..1000).step_by(50) {
            client.put(&key(i), b"v").await.unwrap();
        }
        sleep(Duration::from_secs(5)).await;
        let asleep = hibernating(&c);
        let peers: usize = c.initial_regions.iter().map(|r| r.peers.len()).sum();
        assert_eq!(asleep.values().filter(|h| **h).count(), peers, "every peer hibernates: {asleep:?}");
        let woken_before = c.events().iter().filter(|e| matches!(e.event, StoreEvent::Woke { .. })).count();
        let started = madsim::time::Instant::now();
        client.put(&key(0), b"w").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100), "a write to a hibernating region waited {:?}", started.elapsed());
        sleep(Duration::from_millis(300)).await;
        let region = c.initial_regions.iter().find(|r| r.contains(&raw_key(&key(0)))).unwrap().id;
        let woke: Vec<u64> = c.events()[..]
            .iter()
            .filter_map(|e| match e.event {
                StoreEvent::Woke { region_id, .. } => Some(region_id),
                _ => None,
            })
            .skip(woken_before)
            .collect();
        assert!(!woke.is_empty() && woke.iter().all(|r| *r == region), "only region {region} woke: {woke:?}");
    })
    .await
    .unwrap();
}

/// A hibernating region whose leader's store is cut off: the followers
/// stop hearing that store's keepalives, wake, and elect a leader, and the
/// region serves writes again without the cut-off store.
#[madsim::test]
async fn hibernating_followers_replace_a_leader_that_is_cut_off() {
    cut_off_hibernating_leader(false).await;
}

/// The same with the planted bug `hibernation_ignores_silence`: the test
/// catches it (no follower takes over).
#[test]
fn planted_hibernation_ignores_silence_is_caught() {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(cut_off_hibernating_leader(true))));
    let message = caught.expect_err("the bug goes unnoticed");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("a follower took over without any request"), "{message}");
}

async fn cut_off_hibernating_leader(bug: bool) {
    let mut spec = ClusterSpec::new(3, 2);
    spec.pd.schedule = false;
    if bug {
        spec.bugs = simkv::planted::Bugs::NONE.with(simkv::planted::Bug::HibernationIgnoresSilence);
    }
    let cluster = Arc::new(Cluster::start(spec));
    wait_for_leaders(&cluster).await;
    let (node, local) = cluster.client_node();
    let c = cluster.clone();
    node.spawn(async move {
        let client = c.raw_client(local, ClientConfig::default()).await;
        client.put(&key(0), b"before").await.unwrap();
        sleep(Duration::from_secs(5)).await;
        let region = c.initial_regions.iter().find(|r| r.contains(&raw_key(&key(0)))).unwrap().id;
        assert!(hibernating(&c).iter().filter(|((_, r), _)| *r == region).all(|(_, h)| *h), "the region hibernates");
        let old = c.leader_of(region).unwrap();
        c.isolate(old);
        // No request comes (a request to a follower would wake it too): the
        // followers must notice the silence themselves.
        sleep(Duration::from_secs(5)).await;
        let new = c.leader_of(region).unwrap();
        assert_ne!(new, old, "a follower took over without any request");
        // A write sent to the cut-off leader times out (its outcome unknown);
        // the client tries again until a new leader takes it.
        let started = madsim::time::Instant::now();
        while let Err(e) = client.put(&key(0), b"after").await {
            assert!(started.elapsed() < Duration::from_secs(10), "no leader took the write within 10 s: {e}");
            sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(client.get(&key(0)).await.unwrap(), Some(b"after".to_vec()));
        let woke_by_silence =
            c.events().iter().any(|e| matches!(e.event, StoreEvent::Woke { region_id, why, .. } if region_id == region && why == "leader's store silent"));
        assert!(woke_by_silence, "a follower woke because the leader's store fell silent");
        c.heal(old);
    })
    .await
    .unwrap();
}
