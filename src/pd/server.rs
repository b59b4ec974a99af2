//! The PD node: its state, how it answers each request, and its network loop.

use super::alloc::{self, IdAlloc};
use super::events::{PdEvent, PdEventSink, ReportKind};
use super::routing::{RegionEntry, RoutingTable};
use super::schedule::{self, ClusterView, Decision, Operator, Progress};
use super::tso::{self, Tso};
use crate::engine::{Cf, Engine, EngineError, Snapshot as _, WriteBatch};
use crate::meta::{Peer, PeerRole, Region, RegionId, StoreId};
use crate::planted::Bug;
use crate::proto::pd::{OperatorRequest, RegionCommand, SplitIds, StoreStats};
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
    /// Whether PD schedules (replicas, region and leader balance).
    pub schedule: bool,
    /// Voters each region should have.
    pub max_replicas: usize,
    /// A store silent this long is down: its replicas are replaced.
    pub max_store_down_ms: u64,
    /// A store silent this long gets no new replicas (it may be down).
    pub store_unreachable_ms: u64,
    /// An operator not finished within this long is given up.
    pub operator_timeout_ms: u64,
    /// Balance operators (region moves, leader transfers) in flight at once.
    pub max_balance_operators: usize,
    /// Planted bugs (`crate::planted`): none outside simulation.
    #[serde(skip)]
    pub bugs: crate::planted::Bugs,
    /// PD's clock: its timestamps' physical part, store down detection and
    /// operator deadlines advance with it (see `crate::clock`).
    #[serde(skip)]
    pub clock: crate::clock::Clock,
}

impl Default for PdConfig {
    fn default() -> Self {
        PdConfig {
            tso_window_ms: 3000,
            id_step: 1000,
            first_id: 1000,
            schedule: true,
            max_replicas: 3,
            max_store_down_ms: 30_000,
            store_unreachable_ms: 5_000,
            operator_timeout_ms: 60_000,
            max_balance_operators: 2,
            bugs: crate::planted::Bugs::NONE,
            clock: crate::clock::Clock::exact(),
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
    /// Where PD's events go (the testbed's checkers), if anywhere.
    pub events: Option<PdEventSink>,
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
    /// The answer being sent opened a new time window (a PD crash point).
    window_moved: bool,
    /// A window bound to save once the answer is out (a planted bug).
    unsaved_window: Option<u64>,
    ids: IdAlloc,
    bootstrapped: bool,
    stores: BTreeMap<StoreId, StoreRecord>,
    pub routing: RoutingTable,
    operators: BTreeMap<RegionId, Operator>,
    /// When this PD started (a store is not down before PD has waited for it).
    started_ms: u64,
    /// Wall-clock milliseconds when PD opened and its clock's reading then:
    /// time since advances as PD's clock does.
    anchor: (u64, madsim::time::Instant),
    pub operator_stats: OperatorStats,
    events: Option<PdEventSink>,
}

/// How PD's operators ended, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorStats {
    pub finished: BTreeMap<&'static str, u64>,
    pub failed: BTreeMap<&'static str, u64>,
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
        let started_ms = (clock_ms() as i64 + clock_offset_ms.load(Ordering::Relaxed)).max(0) as u64;
        let anchor = (clock_ms(), cfg.clock.now());
        Ok(PdServer {
            anchor,
            engine,
            cfg,
            clock_offset_ms,
            tso,
            window_moved: false,
            unsaved_window: None,
            ids,
            bootstrapped,
            stores,
            routing: RoutingTable::default(),
            operators: BTreeMap::new(),
            started_ms,
            operator_stats: OperatorStats::default(),
            events: None,
        })
    }

    /// Reports PD's events to `sink` from now on, starting with this opening.
    pub fn set_events(&mut self, sink: PdEventSink) {
        sink(&PdEvent::Opened { ts_floor: self.tso.floor() });
        self.events = Some(sink);
    }

    fn emit(&self, event: impl FnOnce() -> PdEvent) {
        if let Some(sink) = &self.events {
            sink(&event());
        }
    }

    /// Takes `entry` into the routing table, reporting it if it was taken (a
    /// report of an older leader of the same epoch is dropped silently).
    fn learn(&mut self, entry: RegionEntry, via: ReportKind) -> Result<(), PdError> {
        let (id, term) = (entry.region.id, entry.term);
        if self.cfg.bugs.on(Bug::PdAcceptsStaleHeartbeat) {
            self.routing.learn_unchecked(entry)?;
        } else {
            self.routing.learn(entry)?;
        }
        if let Some(now) = self.routing.by_id(id).filter(|e| e.term == term) {
            let (region, leader) = (now.region.clone(), now.leader);
            self.emit(|| PdEvent::RegionAccepted { region, leader, term, via });
        }
        Ok(())
    }

    /// Answers `requester`'s routing question with `entry`, reporting it.
    fn routed(&self, entry: &RegionEntry, requester: Option<SocketAddr>) -> (Region, Option<Peer>) {
        let (region, leader) = (entry.region.clone(), entry.leader);
        self.emit(|| PdEvent::Routed { region: region.clone(), leader, to: requester });
        (region, leader)
    }

    /// [`PdServer::answer`] for a request that came from `from`.
    pub async fn handle_from(&mut self, request: PdRequest, from: SocketAddr) -> PdResponse {
        self.answer(request, Some(from)).await
    }

    /// Wall-clock milliseconds as this node sees them.
    fn now_ms(&self) -> u64 {
        let since = self.cfg.clock.now().saturating_duration_since(self.anchor.1).as_millis() as i64;
        (self.anchor.0 as i64 + since + self.clock_offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    async fn persist(&self, key: &[u8], value: Vec<u8>) -> Result<(), PdError> {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, key.to_vec(), value);
        self.engine.write(&batch, true).await.map_err(|e| PdError::Storage(e.to_string()))
    }

    pub fn stores(&self) -> &BTreeMap<StoreId, StoreRecord> {
        &self.stores
    }

    /// Answers one request from inside the process (no sender to name).
    pub async fn handle(&mut self, request: PdRequest) -> PdResponse {
        self.answer(request, None).await
    }

    /// Answers one request; `requester` (who sent it) is named in the
    /// events for timestamps and routing answers.
    async fn answer(&mut self, request: PdRequest, requester: Option<SocketAddr>) -> PdResponse {
        match request {
            PdRequest::Tso { count } => loop {
                match self.tso.next(self.now_ms(), count as u64, self.cfg.tso_window_ms) {
                    tso::Next::Ready(ts) => {
                        self.emit(|| PdEvent::TsHandedOut { last: ts, count: count.max(1), to: requester });
                        return Ok(PdReply::Ts(ts));
                    }
                    tso::Next::Save(until) => {
                        let (skip, later) = (self.cfg.bugs.on(Bug::TsoWindowNotPersisted), self.cfg.bugs.on(Bug::TsoAnsweredBeforeSave));
                        if later {
                            // Planted bug: the window is saved after the answer goes out.
                            self.unsaved_window = Some(until);
                        } else if !skip {
                            self.persist(TSO_KEY, until.to_be_bytes().to_vec()).await?;
                        }
                        self.tso.saved(until);
                        self.window_moved = true;
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
                self.learn(RegionEntry { region, leader: None, term: 0, approximate_size: 0, approximate_keys: 0 }, ReportKind::Bootstrap)?;
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
                    region: hb.region.clone(),
                    leader: Some(hb.leader),
                    term: hb.term,
                    approximate_size: hb.approximate_size,
                    approximate_keys: hb.approximate_keys,
                };
                self.learn(entry, ReportKind::Heartbeat)?;
                Ok(PdReply::Heartbeat(self.schedule(&hb.region, &hb.leader, &hb.pending_peers).await?))
            }
            PdRequest::RegionByKey { key } => {
                let (region, leader) =
                    self.routing.by_key(&key).map(|e| self.routed(e, requester)).ok_or_else(|| PdError::RegionNotFound(format!("key {key:?}")))?;
                Ok(PdReply::Region { region, leader })
            }
            PdRequest::RegionById { region_id } => {
                let (region, leader) =
                    self.routing.by_id(region_id).map(|e| self.routed(e, requester)).ok_or_else(|| PdError::RegionNotFound(format!("id {region_id}")))?;
                Ok(PdReply::Region { region, leader })
            }
            PdRequest::ScanRegions { start, limit } => {
                Ok(PdReply::Regions(self.routing.scan(&start, limit.max(1) as usize).into_iter().map(|e| self.routed(e, requester)).collect()))
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
            PdRequest::AddOperator { region_id, operator } => self.add_operator(region_id, operator).await,
            PdRequest::ReportSplit { regions } => {
                for region in regions {
                    // A region PD already knows at a newer epoch stays as it is.
                    match self.learn(RegionEntry { region, leader: None, term: 0, approximate_size: 0, approximate_keys: 0 }, ReportKind::SplitReport) {
                        Ok(()) | Err(PdError::StaleRegion { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(PdReply::Done)
            }
        }
    }

    /// Moves the region's operator on, or starts one; returns the command for
    /// its leader, if any.
    async fn schedule(&mut self, region: &Region, leader: &Peer, pending: &[Peer]) -> Result<Option<RegionCommand>, PdError> {
        if !self.cfg.schedule {
            return Ok(None);
        }
        let now = self.now_ms();
        if let Some(op) = self.operators.get_mut(&region.id) {
            match op.advance(region, leader, pending, now) {
                Progress::Command(command) => return Ok(Some(command)),
                Progress::Waiting => return Ok(None),
                Progress::Finished => {
                    tracing::info!(region = region.id, kind = op.kind, "operator finished");
                    *self.operator_stats.finished.entry(op.kind).or_default() += 1;
                    let kind = op.kind;
                    self.operators.remove(&region.id);
                    self.emit(|| PdEvent::OperatorEnded { region_id: region.id, kind, finished: true });
                }
                Progress::Failed(why) => {
                    tracing::info!(region = region.id, kind = op.kind, why, "operator failed");
                    *self.operator_stats.failed.entry(op.kind).or_default() += 1;
                    let kind = op.kind;
                    self.operators.remove(&region.id);
                    self.emit(|| PdEvent::OperatorEnded { region_id: region.id, kind, finished: false });
                    return Ok(None);
                }
            }
        }
        let view = self.cluster_view(now);
        let Some(decision) = schedule::decide(region, leader, pending, self.cfg.max_replicas, &view) else {
            return Ok(None);
        };
        let new_peer_id = match decision.new_peer_store() {
            Some(_) => Some(self.alloc_ids(1).await?),
            None => None,
        };
        let mut op = decision.into_operator(region.id, new_peer_id, now + self.cfg.operator_timeout_ms);
        tracing::info!(region = region.id, ?decision, "operator started");
        self.emit(|| PdEvent::OperatorStarted { region_id: region.id, what: format!("{decision:?}") });
        let first = op.advance(region, leader, pending, now);
        self.operators.insert(region.id, op);
        Ok(match first {
            Progress::Command(command) => Some(command),
            _ => None,
        })
    }

    /// Starts an operator asked for by hand, unless the region has one.
    async fn add_operator(&mut self, region_id: RegionId, request: OperatorRequest) -> PdResponse {
        let entry = self.routing.by_id(region_id).ok_or_else(|| PdError::RegionNotFound(format!("id {region_id}")))?;
        let region = entry.region.clone();
        if let Some(op) = self.operators.get(&region_id) {
            return Err(PdError::Invalid(format!("region {region_id} already has a {} operator", op.kind)));
        }
        let voter_on = |store| region.peer_on_store(store).filter(|p| p.role == PeerRole::Voter).copied();
        let decision = match request {
            OperatorRequest::MovePeer { from_store, to_store } => match (voter_on(from_store), region.peer_on_store(to_store)) {
                (Some(from), None) => Decision::MoveReplica { from, store: to_store },
                _ => return Err(PdError::Invalid(format!("region {region_id} has no voter on store {from_store} or already one on store {to_store}"))),
            },
            OperatorRequest::TransferLeader { to_store } => match voter_on(to_store) {
                Some(_) => Decision::TransferLeader { to_store },
                None => return Err(PdError::Invalid(format!("region {region_id} has no voter on store {to_store}"))),
            },
            OperatorRequest::RemoveReAdd { store } => match voter_on(store) {
                Some(old) if region.voter_count() >= 3 => Decision::RemoveReAdd { old },
                _ => return Err(PdError::Invalid(format!("region {region_id} has no voter on store {store} to spare"))),
            },
        };
        let new_peer_id = match decision.new_peer_store() {
            Some(_) => Some(self.alloc_ids(1).await?),
            None => None,
        };
        let deadline = self.now_ms() + self.cfg.operator_timeout_ms;
        tracing::info!(region = region_id, ?decision, "operator added by request");
        self.emit(|| PdEvent::OperatorStarted { region_id, what: format!("{decision:?} (asked for)") });
        self.operators.insert(region_id, decision.into_operator(region_id, new_peer_id, deadline));
        Ok(PdReply::Done)
    }

    /// Which stores are up or down, and how many regions and leaders each
    /// holds (a region with an operator in flight counted as it will be).
    fn cluster_view(&self, now: u64) -> ClusterView {
        let silent = |record: &StoreRecord| now.saturating_sub(record.last_heartbeat_ms.max(self.started_ms));
        let mut view = ClusterView::default();
        for (&id, record) in &self.stores {
            if record.last_heartbeat_ms > 0 && now.saturating_sub(record.last_heartbeat_ms) <= self.cfg.store_unreachable_ms {
                view.up.push(id);
            } else if silent(record) > self.cfg.max_store_down_ms {
                view.down.push(id);
            }
        }
        // Each region counts where it will be once its operator is done.
        let mut balancing = 0;
        for entry in self.routing.regions() {
            let mut stores: Vec<StoreId> = entry.region.peers.iter().map(|p| p.store_id).collect();
            if let Some(op) = self.operators.get(&entry.region.id) {
                stores.retain(|&s| Some(s) != op.decision.leaving_store());
                stores.extend(op.decision.new_peer_store().filter(|s| !stores.contains(s)));
                if matches!(op.decision, Decision::MoveReplica { .. } | Decision::TransferLeader { .. }) {
                    balancing += 1;
                }
            }
            for store in stores {
                *view.regions.entry(store).or_default() += 1;
            }
            if let Some(leader) = entry.leader {
                *view.leaders.entry(leader.store_id).or_default() += 1;
            }
        }
        view.balance_allowed = balancing < self.cfg.max_balance_operators;
        view
    }

    async fn alloc_ids(&mut self, count: u64) -> Result<u64, PdError> {
        loop {
            match self.ids.next(count, self.cfg.id_step) {
                alloc::Next::Ready(first) => {
                    self.emit(|| PdEvent::IdsHandedOut { first, count });
                    return Ok(first);
                }
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
    if let Some(sink) = cfg.events.clone() {
        pd.set_events(sink);
    }
    loop {
        let (frame, from) = transport.recv().await?;
        let Ok(Frame::Request { id, payload }) = frame else {
            continue;
        };
        let response = match RpcRequest::decode(&payload) {
            Ok(RpcRequest::Pd(request)) => RpcResponse::Pd(pd.handle_from(request, from).await),
            Ok(RpcRequest::Admin(request)) if request.region_id().is_none() => {
                let answer = crate::control::serve_process(&transport, &cfg.pd.clock, &request)
                    .unwrap_or_else(|| Err(ServerError::InvalidRequest("PD holds no region data".into())));
                RpcResponse::Admin(answer)
            }
            Ok(other) => RpcResponse::Rejected(ServerError::InvalidRequest(format!("PD does not serve {:?} requests", other.service()))),
            Err(e) => RpcResponse::Rejected(ServerError::Malformed(e)),
        };
        if matches!(response, RpcResponse::Pd(Err(PdError::Storage(_)))) {
            tracing::warn!("pd: storage closed; stopping");
            return Ok(());
        }
        if crate::buggify::fires(crate::buggify::Site::SlowPdReply) {
            let transport = transport.clone();
            madsim::task::spawn(async move {
                crate::buggify::delay_ms(100, 1000).await;
                transport.send(from, &Frame::Response { id, payload: response.encode() });
            });
        } else {
            transport.send(from, &Frame::Response { id, payload: response.encode() });
        }
        if std::mem::take(&mut pd.window_moved) {
            // The answer is on its way: a crash now races its client against
            // PD's restart.
            crate::buggify::crash_point(crate::buggify::Site::CrashPdAfterTso, crate::buggify::PD).await;
        }
        if let Some(until) = pd.unsaved_window.take() {
            if pd.persist(TSO_KEY, until.to_be_bytes().to_vec()).await.is_err() {
                tracing::warn!("pd: storage closed; stopping");
                return Ok(());
            }
        }
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
        assert_eq!(pd.handle(PdRequest::RegionHeartbeat(heartbeat(left.clone(), 6))).await, Ok(PdReply::Heartbeat(None)));
        assert_eq!(pd.handle(PdRequest::RegionById { region_id: 1 }).await, Ok(PdReply::Region { region: left.clone(), leader: Some(left.peers[0]) }));
        let Ok(PdReply::Regions(all)) = pd.handle(PdRequest::ScanRegions { start: vec![], limit: 10 }).await else { panic!() };
        assert_eq!(all.iter().map(|(r, _)| r.id).collect::<Vec<_>>(), vec![1, right.id]);
        // What PD persisted survives a restart; the routing table is relearned.
        let mut pd = PdServer::open(engine, PdConfig::default(), Arc::default()).unwrap();
        assert_eq!(pd.handle(PdRequest::IsBootstrapped).await, Ok(PdReply::Bootstrapped(true)));
        assert_eq!(pd.handle(PdRequest::GetStore { store: 2 }).await, Ok(PdReply::Store { addr: addr(2) }));
        assert!(pd.routing.is_empty());
    }

    /// An operator from start to finish through heartbeats: a region with two
    /// voters gets a learner on the emptiest up store, promoted once caught up.
    #[madsim::test]
    async fn operators_are_delivered_in_heartbeat_replies_and_checked_off() {
        use crate::proto::{ChangeKind, PeerChange};
        let mut pd = PdServer::open(SimEngine::in_memory("pd"), PdConfig::default(), Arc::default()).unwrap();
        let mut region = whole(1);
        region.peers.truncate(2);
        pd.handle(PdRequest::Bootstrap { store: 1, addr: addr(1), region: region.clone() }).await.unwrap();
        for store in 1..=3 {
            pd.handle(PdRequest::PutStore { store, addr: addr(store as u8) }).await.unwrap();
            let stats = StoreStats::default();
            pd.handle(PdRequest::StoreHeartbeat { store, stats }).await.unwrap();
        }
        let reply = |r: PdResponse| match r {
            Ok(PdReply::Heartbeat(command)) => command,
            other => panic!("{other:?}"),
        };
        let Some(RegionCommand::ChangePeer { changes, .. }) = reply(pd.handle(PdRequest::RegionHeartbeat(heartbeat(region.clone(), 6))).await) else {
            panic!("expected a membership change")
        };
        let learner = changes[0].peer;
        assert_eq!(changes, vec![PeerChange { kind: ChangeKind::AddLearner, peer: learner }]);
        assert_eq!(learner.store_id, 3);
        assert!(learner.id >= PdConfig::default().first_id, "a fresh id from PD");
        // The learner exists but lags: nothing to do yet.
        region.peers.push(learner);
        region.epoch.conf_ver += 1;
        let mut lagging = heartbeat(region.clone(), 6);
        lagging.pending_peers = vec![learner];
        assert_eq!(reply(pd.handle(PdRequest::RegionHeartbeat(lagging)).await), None);
        let Some(RegionCommand::ChangePeer { changes, .. }) = reply(pd.handle(PdRequest::RegionHeartbeat(heartbeat(region.clone(), 6))).await) else {
            panic!("expected the promotion")
        };
        assert_eq!(changes[0].kind, ChangeKind::AddVoter);
        region.peers[2].role = crate::meta::PeerRole::Voter;
        region.epoch.conf_ver += 1;
        assert_eq!(reply(pd.handle(PdRequest::RegionHeartbeat(heartbeat(region, 6))).await), None);
        assert_eq!(pd.operator_stats.finished.get("add-replica"), Some(&1));
    }

    fn heartbeat(region: Region, term: u64) -> crate::proto::pd::RegionHeartbeat {
        crate::proto::pd::RegionHeartbeat { leader: region.peers[0], region, pending_peers: vec![], approximate_size: 0, approximate_keys: 0, term }
    }
}
