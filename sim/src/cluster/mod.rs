//! The cluster a run drives: one shape ([`ClusterSpec`]) and one interface,
//! two implementations. In simulation ([`sim`]) the stores and PD are madsim
//! nodes with simulated disks; in the real build ([`real`]) they are
//! processes of the `simkv` binary on RocksDB and loopback TCP, started,
//! killed, paused and partitioned by the runner. The workloads, the nemesis,
//! the phases of a run and the checkers are the same code over either.

#[cfg(not(madsim))]
mod real;
#[cfg(madsim)]
mod sim;

#[cfg(not(madsim))]
pub use real::*;
#[cfg(madsim)]
pub use sim::*;

use simkv::engine::IoProfile;
use simkv::pd::PdConfig;
use simkv::planted::Bugs;
use simkv::raftstore::{RaftStoreConfig, StoreEvent};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A raw client on `local` routed by PD's answers (through `pd`), with the
/// run's planted bugs, its routing watched under its client number (the
/// last octet of its IP: `10.0.2.n` in simulation, `127.B.2.n` for real).
async fn connect_client(
    spec: &ClusterSpec,
    addresses: &BTreeMap<simkv::meta::StoreId, std::net::SocketAddr>,
    pd: simkv::pd_client::PdClient,
    local: std::net::SocketAddr,
    mut cfg: simkv::client::ClientConfig,
) -> simkv::client::RawClient {
    cfg.bugs = spec.bugs;
    let source = Box::new(simkv::client::PdRegions(pd));
    let mut client = simkv::client::RawClient::connect(local, addresses.clone(), source, cfg).await.expect("client binds");
    let n = match local.ip() {
        std::net::IpAddr::V4(ip) => u64::from(ip.octets()[3]),
        std::net::IpAddr::V6(_) => 0,
    };
    let routing = spec.routing.clone();
    client.observe(Arc::new(move |event| routing.lock().unwrap().entry(n).or_default().observe(n, event)));
    client
}

impl Cluster {
    /// Connects a transactional client from inside a client node (its raw
    /// routing on `local`, its TSO client on a port of its own).
    pub async fn txn_client(&self, local: std::net::SocketAddr, cfg: simkv::client::ClientConfig, txn: simkv::client::TxnConfig) -> simkv::client::TxnClient {
        let raw = self.raw_client(local, cfg).await;
        let txn = simkv::client::TxnConfig { bugs: self.spec.bugs, ..txn };
        simkv::client::TxnClient::new(raw, self.pd_client(local.ip()).await, txn)
    }
}

/// A node of a run (a store, PD, a client, the nemesis): madsim's node id in
/// simulation, the runner's own numbering in the real build.
#[cfg(madsim)]
pub use madsim::task::NodeId;

/// The shape of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub stores: usize,
    /// Encoded keys at which the key space is pre-split: `n` keys give `n + 1` regions.
    pub split_keys: Vec<Vec<u8>>,
    pub replicas: usize,
    pub raftstore: RaftStoreConfig,
    pub pd: PdConfig,
    pub io: IoProfile,
    /// Where the stores' events are recorded (shared with whoever started the
    /// cluster, so they outlive it).
    pub events: Arc<Mutex<Vec<TimedEvent>>>,
    /// Where PD's events are recorded, with simulated times.
    pub pd_events: Arc<Mutex<Vec<crate::checker::pd::TimedPdEvent>>>,
    /// Each client's routing, watched as it goes (the region-cache rule).
    pub routing: Arc<Mutex<BTreeMap<u64, crate::checker::routing::Watch>>>,
    /// Names of the cluster's madsim nodes, filled as they are created: what a
    /// panic report calls the node that panicked.
    pub node_names: Arc<Mutex<BTreeMap<NodeId, String>>>,
    /// The planted bugs of the run: every store, PD, client and disk gets
    /// them.
    pub bugs: Bugs,
    /// Each store's clock rate, by store id order (missing: exact).
    pub clock_rates: Vec<f64>,
}

impl ClusterSpec {
    /// `stores` stores and `regions` regions split evenly over keys `key000..`.
    pub fn new(stores: usize, regions: usize) -> Self {
        let split_keys = (1..regions).map(|i| simkv::codec::keys::raw_key(format!("key{:03}", i * 1000 / regions).as_bytes())).collect();
        ClusterSpec {
            stores,
            split_keys,
            replicas: 3,
            raftstore: RaftStoreConfig::default(),
            pd: PdConfig::default(),
            io: IoProfile::ssd(),
            events: Arc::default(),
            pd_events: Arc::default(),
            routing: Arc::default(),
            node_names: Arc::default(),
            bugs: Bugs::NONE,
            clock_rates: Vec::new(),
        }
    }
}

/// A recorded store event with the simulated time it happened at.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub at: Duration,
    pub event: StoreEvent,
}

/// A fingerprint of store events with their simulated times: each written
/// as a line into the hash, without building the text.
pub fn events_fingerprint(events: &[TimedEvent]) -> u64 {
    let mut hash = simkv::raftstore::events::Fingerprint::default();
    for e in events {
        let _ = writeln!(hash, "{:?} {:?}", e.at, e.event);
    }
    hash.0
}
