//! The real build as a user runs it: PD and three stores as processes of the
//! `simkv` binary, talking over TCP, storing in RocksDB. A client writes enough
//! keys for regions to split (a tiny split threshold), PD's routing table must
//! show the splits, every key must read back through PD-routed requests; then a
//! store and PD are killed and restarted: data stays, timestamps never go back.
//! Last, a fourth store joins without an id (PD gives it one), PD's region
//! balance moves replicas onto it through membership changes, and the client
//! finds it through PD.
//!
//! Compiled only in the real build (`RUSTFLAGS="" cargo test -p simkv`).
#![cfg(not(madsim))]

mod common;

use common::{free_addr, Process};

use simkv::client::{ClientConfig, ClientError, PdRegions, RawClient};
use simkv::pd_client::{PdClient, PdClientConfig};
use simkv::rpc::RpcClient;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn simkv(args: &[String]) -> Process {
    Process(Command::new(env!("CARGO_BIN_EXE_simkv")).args(args).env("RUST_LOG", "warn").spawn().expect("simkv starts"))
}

fn pd_process_at(addr: SocketAddr, dir: &Path) -> Process {
    simkv(&["pd".into(), "--addr".into(), addr.to_string(), "--data-dir".into(), dir.join("pd").display().to_string()])
}

fn store(id: u64, stores: &BTreeMap<u64, SocketAddr>, pd: SocketAddr, dir: &Path) -> Process {
    store_process(Some(id), stores[&id], stores, pd, dir)
}

/// A store process; without `id` it joins with an id from PD.
fn store_process(id: Option<u64>, addr: SocketAddr, stores: &BTreeMap<u64, SocketAddr>, pd: SocketAddr, dir: &Path) -> Process {
    let list: Vec<String> = stores.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
    let id_args: Vec<String> = id.map(|id| vec!["--id".into(), id.to_string()]).unwrap_or_default();
    let data = id.map_or_else(|| format!("store-{}", addr.port()), |id| format!("store-{id}"));
    let mut args: Vec<String> = vec!["store".into()];
    args.extend(id_args);
    args.extend([
        "--addr".into(),
        addr.to_string(),
        "--pd".into(),
        pd.to_string(),
        "--data-dir".into(),
        dir.join(data).display().to_string(),
        "--stores".into(),
        list.join(","),
        "--split-keys".into(),
        "16".into(),
        "--tick-ms".into(),
        "20".into(),
    ]);
    simkv(&args)
}

async fn pd_client(pd: SocketAddr) -> PdClient {
    let rpc = RpcClient::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    PdClient::new(Arc::new(rpc), pd, PdClientConfig { timeout: Duration::from_millis(500), attempts: 20, backoff: Duration::from_millis(50) })
}

/// Retries `op` while the cluster settles (leaders elected, PD learning).
async fn eventually<T, F: std::future::Future<Output = Result<T, ClientError>>>(what: &str, mut op: impl FnMut() -> F) -> T {
    let mut last = None;
    for _ in 0..100 {
        match op().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {:?}", last)
}

#[test]
fn pd_and_store_processes_split_serve_restart_and_grow() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pd_addr = free_addr();
    let stores: BTreeMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_addr())).collect();
    let mut pd_process = pd_process_at(pd_addr, dir);
    let mut store_processes: BTreeMap<u64, Process> = stores.keys().map(|&id| (id, store(id, &stores, pd_addr, dir))).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let pd = pd_client(pd_addr).await;
        let client = RawClient::connect(free_addr(), stores.clone(), Box::new(PdRegions(pd_client(pd_addr).await)), ClientConfig::default()).await.unwrap();
        let key = |i: usize| format!("key{i:04}").into_bytes();
        for i in 0..200 {
            let (k, v) = (key(i), format!("v{i}").into_bytes());
            eventually("put", || client.put(&k, &v)).await;
        }
        // Splits happen as regions grow; PD learns them from the stores. The
        // client only waits: a region written past its threshold must split
        // even when nothing touches it again (its leader does not hibernate
        // before a split check has caught up with what it applied).
        let mut regions = 0;
        for _ in 0..100 {
            regions = pd.scan_regions(&[], 1000).await.map(|r| r.len()).unwrap_or(0);
            if regions >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(regions >= 4, "200 keys with a 16-key threshold made only {regions} regions");
        for i in 0..200 {
            let k = key(i);
            assert_eq!(eventually("get", || client.get(&k)).await, Some(format!("v{i}").into_bytes()), "key {i}");
        }
        let ts_before = pd.get_ts(1).await.unwrap();

        // A store process dies and comes back from its RocksDB.
        drop(store_processes.remove(&2));
        for i in 200..220 {
            let k = key(i);
            eventually("put with a store down", || client.put(&k, b"late")).await;
        }
        store_processes.insert(2, store(2, &stores, pd_addr, dir));
        // PD dies and comes back: timestamps go on increasing.
        drop(std::mem::replace(&mut pd_process, pd_process_at(pd_addr, dir)));
        let ts_after = pd.get_ts(1).await.unwrap();
        assert!(ts_after > ts_before, "{ts_after} after {ts_before}");
        for i in (0..220).step_by(7) {
            let expected = if i < 200 { format!("v{i}").into_bytes() } else { b"late".to_vec() };
            let k = key(i);
            assert_eq!(eventually("get after restarts", || client.get(&k)).await, Some(expected), "key {i}");
        }
        let scanned = eventually("scan", || client.scan(b"key", b"kez", 1000)).await;
        assert_eq!(scanned.len(), 220, "a scan across every region finds every key");

        // A fourth store joins with an id from PD; PD moves replicas onto it.
        store_processes.insert(4, store_process(None, free_addr(), &stores, pd_addr, dir));
        let mut joined = 0;
        for _ in 0..300 {
            let regions = pd.scan_regions(&[], 1000).await.unwrap_or_default();
            joined = regions.iter().filter(|(r, _)| r.peers.iter().any(|p| !stores.contains_key(&p.store_id))).count();
            if joined >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(joined >= 2, "PD moved only {joined} regions onto the new store");
        for i in (0..220).step_by(3) {
            let expected = if i < 200 { format!("v{i}").into_bytes() } else { b"late".to_vec() };
            let k = key(i);
            assert_eq!(eventually("get after the new store joined", || client.get(&k)).await, Some(expected), "key {i}");
        }

        // Transactions over the real cluster, and the table CLI.
        let raw = RawClient::connect(free_addr(), BTreeMap::new(), Box::new(PdRegions(pd_client(pd_addr).await)), ClientConfig::default()).await.unwrap();
        let txns = simkv::client::TxnClient::new(raw, pd_client(pd_addr).await, simkv::client::TxnConfig::default());
        let mut t = txns.begin().await.unwrap();
        t.set(b"acct-a", b"70");
        t.set(b"acct-b", b"30");
        t.commit().await.unwrap();
        let t = txns.begin().await.unwrap();
        let total: i64 = t.scan(b"acct-", b"acct.", 10).await.unwrap().iter().map(|(_, v)| String::from_utf8_lossy(v).parse::<i64>().unwrap()).sum();
        assert_eq!(total, 100);
        let table = |args: &[&str]| {
            let out =
                Command::new(env!("CARGO_BIN_EXE_simkv")).args(["table", "--pd", &pd_addr.to_string()]).args(args).env("RUST_LOG", "warn").output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let created = table(&["create", "people", "--columns", "name,email,age", "--unique", "email", "--index", "age"]);
        assert_eq!(created.0, Some(0), "{created:?}");
        for (pk, name, age) in [("1", "ann", "30"), ("2", "bob", "41"), ("3", "cat", "30")] {
            let inserted = table(&["insert", "people", pk, name, &format!("{name}@example.com"), age]);
            assert_eq!(inserted.0, Some(0), "{inserted:?}");
        }
        let found = table(&["find", "people", "age", "30"]);
        assert_eq!(found.1, "1: name=\"ann\" email=\"ann@example.com\" age=30\n3: name=\"cat\" email=\"cat@example.com\" age=30\n", "{found:?}");
        let duplicate = table(&["insert", "people", "4", "dan", "bob@example.com", "22"]);
        assert_eq!(duplicate.0, Some(1));
        assert!(duplicate.2.contains("duplicate value \"bob@example.com\" for unique index email (held by row 2)"), "{duplicate:?}");
    });
    drop(store_processes);
    drop(pd_process);
}
