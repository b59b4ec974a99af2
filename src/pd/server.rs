//! The PD node: its state, how it answers each request, and its network loop.

use super::alloc::{self, IdAlloc};
use super::routing::{RegionEntry, RoutingTable};
use super::tso::{self, Tso};
use crate::engine::{Cf, Engine, EngineError, Snapshot as _, WriteBatch};
use crate::meta::StoreId;
use crate::proto::pd::{SplitIds, StoreStats};
use crate::proto::{PdError, PdReply, PdRequest, PdResponse, RpcRequest, RpcResponse, ServerError};
use crate::transport::{Frame, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const TSO_KEY: &[u8] = b"pd/tso-window";
const ID_KEY: &[u8] = b"pd/id-end";
const BOOTSTRAP_KEY: &[u8] = b"pd/bootstrap";
const STORE_PREFIX: &[u8] = b"pd/store/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PdConfig {
    /// How far ahead of the clock the timestamp window is saved.
    pub tso_window_ms: u64,
    /// How many ids are reserved by one save.
    pub id_step: u64,
    /// The first id PD hands out (lower ids are the operator's: stores 1..).
    pub first_id: u64,
    /// Planted bug (simulation only): the timestamp window is never persisted,
    /// so a restarted PD whose clock went back hands out smaller timestamps.
    #[cfg(madsim)]
    pub bug_tso_window_not_persisted: bool,
}

impl Default for PdConfig {
    fn default() -> Self {
        PdConfig {
            tso_window_ms: 3000,
            id_step: 1000,
            first_id: 1000,
            #[cfg(madsim)]
            bug_tso_window_not_persisted: false,
        }
    }
}

/// What a PD node needs to start.
#[derive(Clone)]
pub struct PdNodeConfig {
    pub addr: SocketAddr,
    pub pd: PdConfig,
    /// Added to the node's clock (simulation: the nemesis moves it, as a clock
    /// stepped back by NTP after a restart would be).
    pub clock_offset_ms: Arc<AtomicI64>,
    #[cfg(madsim)]
    pub net_faults: Option<Arc<crate::transport::NetFaults>>,
}

/// A store as PD knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRecord {
    pub addr: SocketAddr,
    pub stats: StoreStats,
    pub last_heartbeat_ms: u64,
}

pub struct PdServer<E: Engine> {
    engine: E,
    cfg: PdConfig,
    clock_offset_ms: Arc<AtomicI64>,
    tso: Tso,
    ids: IdAlloc,
    bootstrapped: bool,
    stores: BTreeMap<StoreId, StoreRecord>,
    pub routing: RoutingTable,
}

fn u64_of(bytes: Option<Vec<u8>>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map_or(0, u64::from_be_bytes)
}

impl<E: Engine> PdServer<E> {
    /// Loads what PD persisted: the timestamp window, the id high-water mark,
    /// the bootstrap record, store addresses.
    pub fn open(engine: E, cfg: PdConfig, clock_offset_ms: Arc<AtomicI64>) -> Result<Self, EngineError> {
        let snap = engine.snapshot();
        let tso = Tso::recover(u64_of(snap.get(Cf::Default, TSO_KEY)?));
        let ids = IdAlloc::recover(u64_of(snap.get(Cf::Default, ID_KEY)?), cfg.first_id);
        let bootstrapped = snap.get(Cf::Default, BOOTSTRAP_KEY)?.is_some();
        let mut end = STORE_PREFIX.to_vec();
        end.push(0xff);
        let mut stores = BTreeMap::new();
        for (key, value) in snap.scan(Cf::Default, STORE_PREFIX, Some(&end), usize::MAX, false)? {
            let id = u64_of(Some(key[STORE_PREFIX.len()..].to_vec()));
            let addr = String::from_utf8_lossy(&value).parse().unwrap_or_else(|e| panic!("pd: corrupt address of store {id}: {e}"));
            stores.insert(id, StoreRecord { addr, stats: StoreStats::default(), last_heartbeat_ms: 0 });
        }
        tracing::info!(stores = stores.len(), bootstrapped, "pd opened");
        Ok(PdServer { engine, cfg, clock_offset_ms, tso, ids, bootstrapped, stores, routing: RoutingTable::default() })
    }

    /// Wall-clock milliseconds as this node sees them.
    fn now_ms(&self) -> u64 {
        (clock_ms() as i64 + self.clock_offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    async fn persist(&self, key: &[u8], value: Vec<u8>) -> Result<(), PdError> {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, key.to_vec(), value);
        self.engine.write(&batch, true).await.map_err(|e| PdError::Storage(e.to_string()))
    }

    pub fn stores(&self) -> &BTreeMap<StoreId, StoreRecord> {
        &self.stores
    }

    /// Answers one request.
    pub async fn handle(&mut self, request: PdRequest) -> PdResponse {
        match request {
            PdRequest::Tso { count } => loop {
                match self.tso.next(self.now_ms(), count as u64, self.cfg.tso_window_ms) {
                    tso::Next::Ready(ts) => return Ok(PdReply::Ts(ts)),
                    tso::Next::Save(until) => {
                        #[cfg(madsim)]
                        let skip = self.cfg.bug_tso_window_not_persisted;
                        #[cfg(not(madsim))]
                        let skip = false;
                        if !skip {
                            self.persist(TSO_KEY, until.to_be_bytes().to_vec()).await?;
                        }
                        self.tso.saved(until);
                    }
                }
            },
            PdRequest::AllocIds { count } => Ok(PdReply::FirstId(self.alloc_ids(count as u64).await?)),
            PdRequest::IsBootstrapped => Ok(PdReply::Bootstrapped(self.bootstrapped)),
            PdRequest::Bootstrap { store, addr, region } => {
                if self.bootstrapped {
                    return Err(PdError::AlreadyBootstrapped);
                }
                // The first region starts the key space: the whole of it, or (a
                // cluster laid out in advance) its first range, the rest of
                // which PD learns from heartbeats.
                if !region.start_key.is_empty() {
                    return Err(PdError::Invalid(format!("the first region must start the key space, not at {:?}", region.start_key)));
                }
                self.put_store(store, addr).await?;
                self.persist(BOOTSTRAP_KEY, bincode::serialize(&region).expect("regions serialize")).await?;
                self.bootstrapped = true;
                self.routing.learn(RegionEntry { region, leader: None, term: 0, approximate_size: 0, approximate_keys: 0 })?;
                Ok(PdReply::Done)
            }
            PdRequest::PutStore { store, addr } => {
                self.put_store(store, addr).await?;
                Ok(PdReply::Done)
            }
            PdRequest::GetStore { store } => self.stores.get(&store).map(|s| PdReply::Store { addr: s.addr }).ok_or(PdError::StoreNotFound(store)),
            PdRequest::StoreHeartbeat { store, stats } => {
                let now = self.now_ms();
                let record = self.stores.get_mut(&store).ok_or(PdError::StoreNotFound(store))?;
                record.stats = stats;
                record.last_heartbeat_ms = now;
                Ok(PdReply::Done)
            }
            PdRequest::RegionHeartbeat(hb) => {
                if !self.bootstrapped {
                    return Err(PdError::NotBootstrapped);
                }
                let entry = RegionEntry {
                    region: hb.region,
                    leader: Some(hb.leader),
                    term: hb.term,
                    approximate_size: hb.approximate_size,
                    approximate_keys: hb.approximate_keys,
                };
                self.routing.learn(entry)?;
                Ok(PdReply::Done)
            }
            PdRequest::RegionByKey { key } => self
                .routing
                .by_key(&key)
                .map(|e| PdReply::Region { region: e.region.clone(), leader: e.leader })
                .ok_or_else(|| PdError::RegionNotFound(format!("key {key:?}"))),
            PdRequest::RegionById { region_id } => self
                .routing
                .by_id(region_id)
                .map(|e| PdReply::Region { region: e.region.clone(), leader: e.leader })
                .ok_or_else(|| PdError::RegionNotFound(format!("id {region_id}"))),
            PdRequest::ScanRegions { start, limit } => {
                Ok(PdReply::Regions(self.routing.scan(&start, limit.max(1) as usize).into_iter().map(|e| (e.region.clone(), e.leader)).collect()))
            }
            PdRequest::AskSplit { region, split_count } => {
                if split_count == 0 || split_count > 64 {
                    return Err(PdError::Invalid(format!("a split makes 1 to 64 new regions, not {split_count}")));
                }
                if let Some(known) = self.routing.by_id(region.id) {
                    if region.epoch.is_stale_against(&known.region.epoch) {
                        return Err(PdError::StaleRegion {
                            region_id: region.id,
                            message: format!("asked at {}, PD knows {}", region.epoch, known.region.epoch),
                        });
                    }
                }
                let per_region = 1 + region.peers.len() as u64;
                let first = self.alloc_ids(per_region * split_count as u64).await?;
                let ids = (0..split_count as u64)
                    .map(|i| {
                        let base = first + i * per_region;
                        SplitIds { new_region_id: base, new_peer_ids: (1..per_region).map(|p| base + p).collect() }
                    })
                    .collect();
                Ok(PdReply::SplitIds(ids))
            }
            PdRequest::ReportSplit { regions } => {
                for region in regions {
                    // A region PD already knows at a newer epoch stays as it is.
                    match self.routing.learn(RegionEntry { region, leader: None, term: 0, approximate_size: 0, approximate_keys: 0 }) {
                        Ok(()) | Err(PdError::StaleRegion { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(PdReply::Done)
            }
        }
    }

    async fn alloc_ids(&mut self, count: u64) -> Result<u64, PdError> {
        loop {
            match self.ids.next(count, self.cfg.id_step) {
                alloc::Next::Ready(first) => return Ok(first),
                alloc::Next::Save(end) => {
                    self.persist(ID_KEY, end.to_be_bytes().to_vec()).await?;
                    self.ids.saved(end);
                }
            }
        }
    }

    async fn put_store(&mut self, store: StoreId, addr: SocketAddr) -> Result<(), PdError> {
        if self.stores.get(&store).map(|s| s.addr) != Some(addr) {
            let mut key = STORE_PREFIX.to_vec();
            key.extend_from_slice(&store.to_be_bytes());
            self.persist(&key, addr.to_string().into_bytes()).await?;
        }
        let record = self.stores.entry(store).or_insert(StoreRecord { addr, stats: StoreStats::default(), last_heartbeat_ms: 0 });
        record.addr = addr;
        Ok(())
    }
}

/// Wall-clock milliseconds: simulated time in simulation (from a fixed epoch,
/// so timestamps look like real ones), the system clock otherwise.
#[cfg(madsim)]
fn clock_ms() -> u64 {
    const EPOCH_MS: u64 = 1_700_000_000_000;
    EPOCH_MS + madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

#[cfg(not(madsim))]
fn clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs a PD node until it is killed: requests are answered one at a time, in
/// arrival order, so PD's state needs no locks.
pub async fn run_pd_node<E: Engine>(cfg: PdNodeConfig, engine: E) -> std::io::Result<()> {
    #[cfg(madsim)]
    let transport = Transport::bind_with_faults(cfg.addr, cfg.net_faults.clone()).await?;
    #[cfg(not(madsim))]
    let transport = Transport::bind(cfg.addr).await?;
    let Ok(mut pd) = PdServer::open(engine, cfg.pd.clone(), cfg.clock_offset_ms.clone()) else {
        tracing::warn!("pd: engine closed while opening");
        return Ok(());
    };
    loop {
        let (frame, from) = transport.recv().await?;
        let Ok(Frame::Request { id, payload }) = frame else {
            continue;
        };
        let response = match RpcRequest::decode(&payload) {
            Ok(RpcRequest::Pd(request)) => RpcResponse::Pd(pd.handle(request).await),
            Ok(other) => RpcResponse::Rejected(ServerError::InvalidRequest(format!("PD does not serve {:?} requests", other.service()))),
            Err(e) => RpcResponse::Rejected(ServerError::Malformed(e)),
        };
        if matches!(response, RpcResponse::Pd(Err(PdError::Storage(_)))) {
            tracing::warn!("pd: storage closed; stopping");
            return Ok(());
        }
        transport.send(from, &Frame::Response { id, payload: response.encode() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SimEngine;
    use crate::meta::{Peer, Region, RegionEpoch};

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 1, n], 20160))
    }

    fn whole(id: u64) -> Region {
        Region {
            id,
            start_key: vec![],
            end_key: vec![],
            epoch: RegionEpoch::new(1, 1),
            peers: vec![Peer::voter(id + 1, 1), Peer::voter(id + 2, 2), Peer::voter(id + 3, 3)],
        }
    }

    async fn ts(pd: &mut PdServer<SimEngine>) -> u64 {
        match pd.handle(PdRequest::Tso { count: 1 }).await {
            Ok(PdReply::Ts(ts)) => ts,
            other => panic!("{other:?}"),
        }
    }

    async fn id(pd: &mut PdServer<SimEngine>) -> u64 {
        match pd.handle(PdRequest::AllocIds { count: 1 }).await {
            Ok(PdReply::FirstId(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    #[madsim::test]
    async fn a_restart_with_a_clock_gone_back_never_repeats_a_timestamp_or_an_id() {
        let engine = SimEngine::in_memory("pd");
        let offset = Arc::new(AtomicI64::new(0));
        let mut pd = PdServer::open(engine.clone(), PdConfig::default(), offset.clone()).unwrap();
        let (t1, i1) = (ts(&mut pd).await, id(&mut pd).await);
        let (t2, i2) = (ts(&mut pd).await, id(&mut pd).await);
        assert!(t2 > t1 && i2 > i1);
        // Restart, and the clock steps back ten seconds.
        offset.store(-10_000, Ordering::Relaxed);
        let mut pd = PdServer::open(engine, PdConfig::default(), offset).unwrap();
        let (t3, i3) = (ts(&mut pd).await, id(&mut pd).await);
        assert!(t3 > t2, "{t3} after {t2}");
        assert!(i3 > i2, "{i3} after {i2}");
    }

    #[madsim::test]
    async fn bootstrap_once_then_learn_regions_from_heartbeats_and_splits() {
        let engine = SimEngine::in_memory("pd");
        let mut pd = PdServer::open(engine.clone(), PdConfig::default(), Arc::default()).unwrap();
        assert_eq!(pd.handle(PdRequest::IsBootstrapped).await, Ok(PdReply::Bootstrapped(false)));
        assert!(matches!(pd.handle(PdRequest::RegionHeartbeat(heartbeat(whole(1), 5))).await, Err(PdError::NotBootstrapped)));
        let mut right_half = whole(1);
        right_half.start_key = b"m".to_vec();
        assert!(matches!(pd.handle(PdRequest::Bootstrap { store: 1, addr: addr(1), region: right_half }).await, Err(PdError::Invalid(_))));
        assert_eq!(pd.handle(PdRequest::Bootstrap { store: 1, addr: addr(1), region: whole(1) }).await, Ok(PdReply::Done));
        assert_eq!(pd.handle(PdRequest::Bootstrap { store: 1, addr: addr(1), region: whole(1) }).await, Err(PdError::AlreadyBootstrapped));
        assert_eq!(pd.handle(PdRequest::PutStore { store: 2, addr: addr(2) }).await, Ok(PdReply::Done));
        assert_eq!(pd.handle(PdRequest::GetStore { store: 2 }).await, Ok(PdReply::Store { addr: addr(2) }));
        assert_eq!(pd.handle(PdRequest::GetStore { store: 9 }).await, Err(PdError::StoreNotFound(9)));
        // A split: ids for one new region and its three peers.
        let Ok(PdReply::SplitIds(ids)) = pd.handle(PdRequest::AskSplit { region: whole(1), split_count: 1 }).await else { panic!() };
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].new_peer_ids.len(), 3);
        let (mut left, mut right) = (whole(1), whole(ids[0].new_region_id));
        left.end_key = b"m".to_vec();
        right.start_key = b"m".to_vec();
        left.epoch.version = 2;
        right.epoch.version = 2;
        assert_eq!(pd.handle(PdRequest::ReportSplit { regions: vec![left.clone(), right.clone()] }).await, Ok(PdReply::Done));
        assert_eq!(pd.handle(PdRequest::RegionByKey { key: b"z".to_vec() }).await, Ok(PdReply::Region { region: right.clone(), leader: None }));
        // A late heartbeat of the parent is refused; the new leader's is learned.
        assert!(matches!(pd.handle(PdRequest::RegionHeartbeat(heartbeat(whole(1), 5))).await, Err(PdError::StaleRegion { .. })));
        assert_eq!(pd.handle(PdRequest::RegionHeartbeat(heartbeat(left.clone(), 6))).await, Ok(PdReply::Done));
        assert_eq!(pd.handle(PdRequest::RegionById { region_id: 1 }).await, Ok(PdReply::Region { region: left.clone(), leader: Some(left.peers[0]) }));
        let Ok(PdReply::Regions(all)) = pd.handle(PdRequest::ScanRegions { start: vec![], limit: 10 }).await else { panic!() };
        assert_eq!(all.iter().map(|(r, _)| r.id).collect::<Vec<_>>(), vec![1, right.id]);
        // What PD persisted survives a restart; the routing table is relearned.
        let mut pd = PdServer::open(engine, PdConfig::default(), Arc::default()).unwrap();
        assert_eq!(pd.handle(PdRequest::IsBootstrapped).await, Ok(PdReply::Bootstrapped(true)));
        assert_eq!(pd.handle(PdRequest::GetStore { store: 2 }).await, Ok(PdReply::Store { addr: addr(2) }));
        assert!(pd.routing.is_empty());
    }

    fn heartbeat(region: Region, term: u64) -> crate::proto::pd::RegionHeartbeat {
        crate::proto::pd::RegionHeartbeat { leader: region.peers[0], region, pending_peers: vec![], approximate_size: 0, approximate_keys: 0, term }
    }
}
