//! A simulated cluster: stores as madsim nodes on fixed addresses, each with a raft
//! disk and a kv disk ([`SimDisk`]) held here, outside the node, so that they
//! survive a kill. A crash kills the node and then crashes its disks, which keep
//! their synced state plus a seeded-random prefix of the unsynced batches.

use super::{events_fingerprint, ClusterSpec, NodeId, TimedEvent};

use crate::topology::Topology;
use madsim::runtime::Handle;
pub use madsim::runtime::NodeHandle;
use simkv::client::{ClientConfig, RawClient};
use simkv::engine::{Cf, KvPair, SimDisk, SimEngine, Snapshot as _, DATA_CFS};
use simkv::meta::{presplit_regions, Region, StoreId};
use simkv::pd::{run_pd_node, PdConfig, PdNodeConfig};
use simkv::pd_client::{PdClient, PdClientConfig};
use simkv::planted::Bug;
use simkv::raftstore::{bootstrap_store, RaftStoreConfig, StoreEvent};
use simkv::rpc::RpcClient;
use simkv::server::{run_store_node, StoreNodeConfig};
use simkv::transport::NetFaults;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const STORE_PORT: u16 = 20160;
pub const PD_PORT: u16 = 2379;

/// Where the PD node listens.
pub fn pd_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), PD_PORT)
}

/// Records PD's events into `events` with their simulated times.
fn pd_sink(events: Arc<Mutex<Vec<crate::checker::pd::TimedPdEvent>>>) -> simkv::pd::PdEventSink {
    Arc::new(move |event: &simkv::pd::PdEvent| events.lock().unwrap().push((madsim::time::TimeHandle::current().elapsed(), event.clone())))
}

/// Nanoseconds of simulated time since the run started (histories are
/// timed with it).
pub fn now_ns() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
}

/// The simulated time since the run started.
pub fn elapsed() -> Duration {
    madsim::time::TimeHandle::current().elapsed()
}

pub struct StoreSlot {
    pub id: StoreId,
    pub addr: SocketAddr,
    pub node: NodeHandle,
    pub raft_disk: SimDisk,
    pub kv_disk: SimDisk,
    /// The store's clock (its rate can be changed while it runs).
    pub clock: simkv::clock::Clock,
}

/// The PD node: its disk survives kills, and its clock can be moved.
pub struct PdSlot {
    pub addr: SocketAddr,
    pub node: NodeHandle,
    pub disk: SimDisk,
    /// Added to PD's clock (a clock stepped back after a restart).
    pub clock_offset_ms: Arc<AtomicI64>,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub pd: PdSlot,
    /// The layout the stores were bootstrapped with (and the clients' region
    /// source until PD exists). What the regions are *now* is [`Cluster::topology`].
    pub initial_regions: Vec<Region>,
    pub addresses: BTreeMap<StoreId, SocketAddr>,
    pub stores: BTreeMap<StoreId, StoreSlot>,
    pub events: Arc<Mutex<Vec<TimedEvent>>>,
    /// Loss and delay injected into our transport, per kind of traffic.
    pub net_faults: Arc<NetFaults>,
    clients: Mutex<u32>,
}

pub fn store_addr(store_id: StoreId) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, store_id as u8)), STORE_PORT)
}

impl Cluster {
    /// Creates and starts every store node. Must run inside a madsim runtime.
    pub fn start(spec: ClusterSpec) -> Cluster {
        simkv::trace::init_for_tests(simkv::trace::QUIET_SIM_FILTER);
        let handle = Handle::current();
        let store_ids: Vec<StoreId> = (1..=spec.stores as u64).collect();
        let mut next_id = 100;
        let regions = presplit_regions(&spec.split_keys, &store_ids, spec.replicas, &mut next_id);
        let addresses: BTreeMap<StoreId, SocketAddr> = store_ids.iter().map(|&id| (id, store_addr(id))).collect();
        let events = spec.events.clone();
        let net_faults: Arc<NetFaults> = Arc::default();
        let mut stores = BTreeMap::new();
        for &id in &store_ids {
            let raft_disk = SimDisk::new(format!("store-{id}/raft"), spec.io.clone());
            let kv_disk = SimDisk::new(format!("store-{id}/kv"), spec.io.clone());
            kv_disk.set_verify_checksums(!spec.bugs.on(Bug::SkipsChecksums));
            let (raft, kv, regions, events) = (raft_disk.clone(), kv_disk.clone(), regions.clone(), events.clone());
            // Always a drifting clock (at rate 1 unless the run says otherwise),
            // so that a fault can change its rate.
            let clock = simkv::clock::Clock::drifting(spec.clock_rates.get(id as usize - 1).copied().unwrap_or(1.0));
            let cfg = StoreNodeConfig {
                store_id: id,
                addr: addresses[&id],
                addresses: addresses.clone(),
                raftstore: RaftStoreConfig { clock: clock.clone(), bugs: spec.bugs, ..spec.raftstore.clone() },
                events: Some(Arc::new(move |event: &StoreEvent| {
                    let at = madsim::time::TimeHandle::current().elapsed();
                    events.lock().unwrap().push(TimedEvent { at, event: event.clone() });
                })),
                net_faults: Some(net_faults.clone()),
                pd: Some(pd_addr()),
            };
            let node = handle
                .create_node()
                .name(format!("store-{id}"))
                .ip(addresses[&id].ip())
                .init(move || {
                    let (raft, kv, regions, cfg) = (raft.clone(), kv.clone(), regions.clone(), cfg.clone());
                    async move {
                        let (raft, kv) = (SimEngine::open(&raft), SimEngine::open(&kv));
                        match bootstrap_store(&raft, &kv, id, &regions).await {
                            Ok(_) => {}
                            Err(simkv::engine::EngineError::Closed(_)) => return,
                            Err(e) => return simkv::supervisor::fail_stop(id, &format!("bootstrap: {e}")).await,
                        }
                        if let Err(e) = run_store_node(cfg, raft, kv).await {
                            tracing::warn!(store = id, error = %e, "store node network failed");
                        }
                    }
                })
                .build();
            spec.node_names.lock().unwrap().insert(node.id(), format!("store-{id}"));
            stores.insert(id, StoreSlot { id, addr: addresses[&id], node, raft_disk, kv_disk, clock });
        }
        let pd = Self::start_pd(&spec, net_faults.clone());
        Cluster { spec, pd, initial_regions: regions, addresses, stores, events, net_faults, clients: Mutex::new(0) }
    }

    fn start_pd(spec: &ClusterSpec, net_faults: Arc<NetFaults>) -> PdSlot {
        let disk = SimDisk::new("pd", spec.io.clone());
        let clock_offset_ms: Arc<AtomicI64> = Arc::default();
        // PD's clock rate follows the stores' in the run's list, when there is one.
        let clock = simkv::clock::Clock::drifting(spec.clock_rates.get(spec.stores).copied().unwrap_or(1.0));
        let pd = PdConfig { max_replicas: spec.replicas, clock, bugs: spec.bugs, ..spec.pd.clone() };
        let cfg = PdNodeConfig {
            addr: pd_addr(),
            pd,
            clock_offset_ms: clock_offset_ms.clone(),
            net_faults: Some(net_faults),
            events: Some(pd_sink(spec.pd_events.clone())),
        };
        let d = disk.clone();
        let node = Handle::current()
            .create_node()
            .name("pd")
            .ip(pd_addr().ip())
            .init(move || {
                let (disk, cfg) = (d.clone(), cfg.clone());
                async move {
                    if let Err(e) = run_pd_node(cfg, SimEngine::open(&disk)).await {
                        tracing::warn!(error = %e, "pd node network failed");
                    }
                }
            })
            .build();
        spec.node_names.lock().unwrap().insert(node.id(), "pd".into());
        PdSlot { addr: pd_addr(), node, disk, clock_offset_ms }
    }

    /// A PD client from inside a node, on a port of its own.
    pub async fn pd_client(&self, ip: IpAddr) -> PdClient {
        let rpc = RpcClient::bind_with_faults(SocketAddr::new(ip, 0), Some(self.net_faults.clone())).await.expect("pd client binds");
        PdClient::new(Arc::new(rpc), self.pd.addr, PdClientConfig::default())
    }

    /// Kills PD and crashes its disk (unsynced writes may be lost).
    pub fn crash_pd(&self) {
        Handle::current().kill(self.pd.node.id());
        let report = self.pd.disk.crash(&mut madsim::rand::thread_rng());
        tracing::info!(?report, "crashed pd");
    }

    /// Restarts PD, its clock moved by `clock_offset_ms`.
    pub fn restart_pd(&self, clock_offset_ms: i64) {
        self.pd.clock_offset_ms.store(clock_offset_ms, std::sync::atomic::Ordering::Relaxed);
        Handle::current().restart(self.pd.node.id());
    }

    /// A client on a node of its own.
    pub fn client_node(&self) -> (NodeHandle, SocketAddr) {
        let mut n = self.clients.lock().unwrap();
        *n += 1;
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 2, *n as u8));
        let node = Handle::current().create_node().name(format!("client-{n}")).ip(ip).build();
        self.spec.node_names.lock().unwrap().insert(node.id(), format!("client-{n}"));
        (node, SocketAddr::new(ip, 30000))
    }

    /// Connects a raw client from inside a client node.
    pub async fn raw_client(&self, local: SocketAddr, mut cfg: ClientConfig) -> RawClient {
        cfg.net_faults = Some(self.net_faults.clone());
        super::connect_client(&self.spec, &self.addresses, self.pd_client(local.ip()).await, local, cfg).await
    }

    /// Kills the store's node and crashes its disks: unsynced writes may be lost.
    pub fn crash(&self, store_id: StoreId) {
        let slot = &self.stores[&store_id];
        Handle::current().kill(slot.node.id());
        let mut rng = madsim::rand::thread_rng();
        let raft = slot.raft_disk.crash(&mut rng);
        let kv = slot.kv_disk.crash(&mut rng);
        tracing::info!(store = store_id, ?raft, ?kv, "crashed store");
    }

    pub fn restart(&self, store_id: StoreId) {
        Handle::current().restart(self.stores[&store_id].node.id());
    }

    /// Cuts a store off from every other node, both directions.
    pub fn isolate(&self, store_id: StoreId) {
        madsim::net::NetSim::current().clog_node(self.stores[&store_id].node.id());
    }

    /// Stops a store's node from running (its timers and messages wait) until
    /// [`Cluster::resume`].
    pub fn pause(&self, store_id: StoreId) {
        Handle::current().pause(self.stores[&store_id].node.id());
    }

    pub fn resume(&self, store_id: StoreId) {
        Handle::current().resume(self.stores[&store_id].node.id());
    }

    /// Drops everything `from` sends to `to` (one direction).
    pub fn clog_link(&self, from: StoreId, to: StoreId) {
        madsim::net::NetSim::current().clog_link(self.stores[&from].node.id(), self.stores[&to].node.id());
    }

    pub fn unclog_link(&self, from: StoreId, to: StoreId) {
        madsim::net::NetSim::current().unclog_link(self.stores[&from].node.id(), self.stores[&to].node.id());
    }

    /// Drops everything node `a` sends to node `b` (one direction).
    pub fn clog_link_nodes(&self, a: NodeId, b: NodeId) {
        madsim::net::NetSim::current().clog_link(a, b);
    }

    pub fn unclog_link_nodes(&self, a: NodeId, b: NodeId) {
        madsim::net::NetSim::current().unclog_link(a, b);
    }

    /// The nemesis's IP.
    pub fn nemesis_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1))
    }

    /// A node of the testbed's own (the nemesis's), at `ip`, named for panic
    /// reports.
    pub fn control_node(&self, name: &str, ip: IpAddr) -> NodeHandle {
        let node = Handle::current().create_node().name(name).ip(ip).build();
        self.spec.node_names.lock().unwrap().insert(node.id(), name.into());
        node
    }

    pub fn heal(&self, store_id: StoreId) {
        madsim::net::NetSim::current().unclog_node(self.stores[&store_id].node.id());
    }

    /// The regions and leaders as the stores have reported them so far.
    pub fn topology(&self) -> Topology {
        let events = self.events.lock().unwrap();
        Topology::from_events(events.iter().map(|e| &e.event))
    }

    /// The store whose peer most recently became leader of `region_id`.
    pub fn leader_of(&self, region_id: u64) -> Option<StoreId> {
        self.topology().leader_of(region_id)
    }

    /// A region's data in every data CF, as one store's kv disk holds it now.
    pub async fn region_data(&self, store_id: StoreId, region: &Region) -> Vec<(Cf, KvPair)> {
        self.region_data_now(store_id, region)
    }

    /// [`Cluster::region_data`], read at once (tests, outside any task).
    pub fn region_data_now(&self, store_id: StoreId, region: &Region) -> Vec<(Cf, KvPair)> {
        let snap = self.stores[&store_id].kv_disk.snapshot();
        let (start, end) = simkv::codec::keys::region_data_range(&region.start_key, &region.end_key);
        DATA_CFS
            .into_iter()
            .flat_map(|cf| snap.scan(cf, &start, Some(&end), usize::MAX, false).expect("scan").into_iter().map(move |pair| (cf, pair)))
            .collect()
    }

    /// Ends the run's cluster before its report is made: nothing to do in
    /// simulation (the runtime's end stops every node). Failures it finds.
    pub fn finish(&self) -> Option<crate::checker::Failure> {
        None
    }

    pub fn events(&self) -> Vec<TimedEvent> {
        self.events.lock().unwrap().clone()
    }

    /// A fingerprint of everything the stores reported, with simulated times.
    pub fn digest(&self) -> u64 {
        events_fingerprint(&self.events.lock().unwrap())
    }
}
