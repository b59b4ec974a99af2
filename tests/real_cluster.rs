//! The real build, end to end: three store nodes on real TCP sockets with RocksDB
//! engines on a temporary directory, each on its own tokio runtime, serving a raw
//! client. One store is then stopped (its runtime dropped, its RocksDB closed) and
//! reopened from the same directory; it must rejoin and the data must be intact.
//!
//! Compiled only in the real build (`RUSTFLAGS="" cargo test -p simkv`).
#![cfg(not(madsim))]

use simkv::client::{ClientConfig, ClientError, RawClient, StaticRegions};
use simkv::engine::rocks::RocksEngine;
use simkv::engine::{Cf, Engine, Snapshot as _};
use simkv::meta::{presplit_regions, Region, StoreId};
use simkv::raftstore::{bootstrap_store, RaftStoreConfig};
use simkv::server::{run_store_node, StoreNodeConfig};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A free local port, chosen by the OS (the listener is dropped right away).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn raftstore_config() -> RaftStoreConfig {
    // Real time: keep elections quick so the test stays short.
    // Leases: the voters' 180 ms refusal (the 200 ms election timeout less a
    // tick) less a 50 ms drift bound.
    RaftStoreConfig { base_tick_ms: 20, raft_log_gc_count_limit: 20, max_clock_drift_ms: 50, ..RaftStoreConfig::default() }
}

/// Starts one store on a runtime of its own; dropping the runtime stops it.
fn start_store(dir: &Path, id: StoreId, addresses: &BTreeMap<StoreId, SocketAddr>, regions: &[Region]) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let raft = RocksEngine::open(format!("store-{id}/raft"), &dir.join(format!("store-{id}/raft"))).unwrap();
    let kv = RocksEngine::open(format!("store-{id}/kv"), &dir.join(format!("store-{id}/kv"))).unwrap();
    let cfg = StoreNodeConfig { store_id: id, addr: addresses[&id], addresses: addresses.clone(), raftstore: raftstore_config(), events: None, pd: None };
    let regions = regions.to_vec();
    rt.spawn(async move {
        bootstrap_store(&raft, &kv, id, &regions).await.expect("bootstrap");
        run_store_node(cfg, raft, kv).await.expect("store node");
    });
    rt
}

/// Puts until acknowledged. A put of the same value is idempotent, so an unknown
/// outcome (say, the leader was stopped mid-request) may be retried here.
async fn put(client: &RawClient, key: &[u8], value: &[u8]) {
    for attempt in 0.. {
        match client.put(key, value).await {
            Ok(()) => return,
            Err(ClientError::Unknown(_)) if attempt < 20 => continue,
            Err(e) => panic!("put {key:?}: {e}"),
        }
    }
}

async fn wait_for_leaders(client: &RawClient, keys: &[&[u8]]) {
    for key in keys {
        for attempt in 0.. {
            match client.get(key).await {
                Ok(_) => break,
                Err(e) if attempt < 50 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no leader serves {key:?}: {e}"),
            }
        }
    }
}

#[test]
fn three_real_stores_serve_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    let store_ids: Vec<StoreId> = vec![1, 2, 3];
    let addresses: BTreeMap<StoreId, SocketAddr> = store_ids.iter().map(|&id| (id, free_addr())).collect();
    let mut next_id = 1000;
    let regions = presplit_regions(&[simkv::codec::keys::raw_key(b"m")], &store_ids, 3, &mut next_id);
    assert_eq!(regions.len(), 2);

    let mut runtimes: BTreeMap<StoreId, tokio::runtime::Runtime> = store_ids.iter().map(|&id| (id, start_store(&dir, id, &addresses, &regions))).collect();

    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client_cfg = ClientConfig { rpc_timeout: Duration::from_millis(500), max_attempts: 60, ..ClientConfig::default() };
    let client = client_rt.block_on(RawClient::connect(free_addr(), addresses.clone(), Box::new(StaticRegions(regions.clone())), client_cfg)).unwrap();

    client_rt.block_on(async {
        wait_for_leaders(&client, &[b"a", b"z"]).await;
        for i in 0..40u32 {
            let key = format!("{}{i:03}", if i % 2 == 0 { 'a' } else { 'x' });
            client.put(key.as_bytes(), format!("v{i}").as_bytes()).await.unwrap();
        }
        assert_eq!(client.get(b"a000").await.unwrap(), Some(b"v0".to_vec()));
        assert_eq!(client.get(b"x001").await.unwrap(), Some(b"v1".to_vec()));
        assert_eq!(client.cas(b"a000", Some(b"v0"), Some(b"w0")).await.unwrap(), (true, Some(b"v0".to_vec())));
        assert!(!client.cas(b"a000", Some(b"v0"), Some(b"u0")).await.unwrap().0);
        client.delete(b"x001").await.unwrap();
        assert_eq!(client.get(b"x001").await.unwrap(), None);
        // A scan crossing the region boundary at "m".
        let all = client.scan(b"", b"\xff", 100).await.unwrap();
        assert_eq!(all.len(), 39);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    });

    // Stop store 2 (its RocksDB closes when the runtime drops its tasks), keep
    // writing through the other two, then reopen store 2 from its directory.
    runtimes.remove(&2).unwrap().shutdown_timeout(Duration::from_secs(5));
    client_rt.block_on(async {
        for i in 40..60u32 {
            put(&client, format!("a{i:03}").as_bytes(), b"after-stop").await;
        }
    });
    // RocksDB's LOCK is released once the last handle is gone.
    runtimes.insert(2, reopen(&dir, 2, &addresses, &regions));
    client_rt.block_on(async {
        for i in 60..70u32 {
            put(&client, format!("x{i:03}").as_bytes(), b"after-restart").await;
        }
        let all = client.scan(b"", b"\xff", 1000).await.unwrap();
        assert_eq!(all.len(), 39 + 20 + 10);
        assert_eq!(client.get(b"a000").await.unwrap(), Some(b"w0".to_vec()));
    });
    // Give the restarted follower time to apply the last entries, stop everything,
    // and compare what each store's RocksDB holds: the replicas must be identical.
    // Real time is not ours to control: on a slow machine a lagging replica may
    // need another round (all stores restarted) to catch up.
    drop(client);
    client_rt.shutdown_timeout(Duration::from_secs(5));
    for round in 0..5 {
        std::thread::sleep(Duration::from_secs(3));
        for (_, rt) in std::mem::take(&mut runtimes) {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        std::thread::sleep(Duration::from_millis(500));
        let data: Vec<_> = store_ids
            .iter()
            .map(|id| {
                let kv = RocksEngine::open(format!("check-{id}"), &dir.join(format!("store-{id}/kv"))).unwrap();
                kv.snapshot().scan(Cf::Default, b"z", Some(b"{"), usize::MAX, false).unwrap()
            })
            .collect();
        if (data[0] == data[1] && data[0] == data[2]) || round == 4 {
            assert_eq!(data[0].len(), 69, "store 1 holds every live key");
            assert_eq!(data[0], data[1], "restarted store 2 caught up");
            assert_eq!(data[0], data[2]);
            return;
        }
        runtimes = store_ids.iter().map(|&id| (id, reopen(&dir, id, &addresses, &regions))).collect();
    }
}

/// Starts a store again from its directory, retrying while RocksDB's LOCK is
/// still held by the handle being dropped.
fn reopen(dir: &Path, id: StoreId, addresses: &BTreeMap<StoreId, SocketAddr>, regions: &[Region]) -> tokio::runtime::Runtime {
    for _ in 0..50 {
        if let Ok(rt) = std::panic::catch_unwind(|| start_store(dir, id, addresses, regions)) {
            return rt;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("store {id} cannot reopen its RocksDB");
}
