//! The client side of PD, for stores (heartbeats, splits, ids) and clients
//! (timestamps, routing): every call retried with bounded backoff until PD
//! answers or the attempts run out.

use crate::meta::{Peer, Region, RegionId, StoreId};
use crate::proto::pd::{RegionHeartbeat, SplitIds, StoreStats};
use crate::proto::{PdError, PdReply, PdRequest, RpcRequest, RpcResponse};
use crate::rpc::{RpcClient, RpcError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PdClientError {
    /// PD did not answer (down, partitioned) within the attempts.
    #[error("pd unreachable after {attempts} attempts: {last}")]
    Unreachable { attempts: usize, last: RpcError },
    #[error(transparent)]
    Pd(#[from] PdError),
    #[error("unexpected answer from pd: {0}")]
    Unexpected(String),
}

pub type PdResult<T> = Result<T, PdClientError>;

#[derive(Debug, Clone)]
pub struct PdClientConfig {
    pub timeout: Duration,
    pub attempts: usize,
    pub backoff: Duration,
}

impl Default for PdClientConfig {
    fn default() -> Self {
        PdClientConfig { timeout: Duration::from_millis(500), attempts: 4, backoff: Duration::from_millis(100) }
    }
}

#[derive(Clone)]
pub struct PdClient {
    rpc: Arc<RpcClient>,
    addr: SocketAddr,
    cfg: PdClientConfig,
}

impl PdClient {
    pub fn new(rpc: Arc<RpcClient>, addr: SocketAddr, cfg: PdClientConfig) -> PdClient {
        PdClient { rpc, addr, cfg }
    }

    async fn call(&self, request: PdRequest) -> PdResult<PdReply> {
        let rpc = RpcRequest::Pd(request);
        let mut last = None;
        for attempt in 0..self.cfg.attempts {
            if attempt > 0 {
                madsim::time::sleep(self.cfg.backoff.saturating_mul(1 << attempt.min(6))).await;
            }
            match self.rpc.call(self.addr, &rpc, self.cfg.timeout).await {
                Ok(RpcResponse::Pd(Ok(reply))) => return Ok(reply),
                Ok(RpcResponse::Pd(Err(e))) => return Err(e.into()),
                Ok(other) => return Err(PdClientError::Unexpected(format!("{other:?}"))),
                Err(e) => last = Some(e),
            }
        }
        Err(PdClientError::Unreachable { attempts: self.cfg.attempts, last: last.expect("at least one attempt") })
    }

    fn unexpected<T>(reply: PdReply) -> PdResult<T> {
        Err(PdClientError::Unexpected(format!("{reply:?}")))
    }

    /// `count` timestamps; returns the last (the batch is the `count` values
    /// ending at it).
    pub async fn get_ts(&self, count: u32) -> PdResult<u64> {
        match self.call(PdRequest::Tso { count }).await? {
            PdReply::Ts(ts) => Ok(ts),
            other => Self::unexpected(other),
        }
    }

    pub async fn alloc_ids(&self, count: u32) -> PdResult<u64> {
        match self.call(PdRequest::AllocIds { count }).await? {
            PdReply::FirstId(id) => Ok(id),
            other => Self::unexpected(other),
        }
    }

    pub async fn is_bootstrapped(&self) -> PdResult<bool> {
        match self.call(PdRequest::IsBootstrapped).await? {
            PdReply::Bootstrapped(b) => Ok(b),
            other => Self::unexpected(other),
        }
    }

    pub async fn bootstrap(&self, store: StoreId, addr: SocketAddr, region: Region) -> PdResult<()> {
        self.call(PdRequest::Bootstrap { store, addr, region }).await.map(|_| ())
    }

    pub async fn put_store(&self, store: StoreId, addr: SocketAddr) -> PdResult<()> {
        self.call(PdRequest::PutStore { store, addr }).await.map(|_| ())
    }

    pub async fn store_addr(&self, store: StoreId) -> PdResult<SocketAddr> {
        match self.call(PdRequest::GetStore { store }).await? {
            PdReply::Store { addr } => Ok(addr),
            other => Self::unexpected(other),
        }
    }

    pub async fn store_heartbeat(&self, store: StoreId, stats: StoreStats) -> PdResult<()> {
        self.call(PdRequest::StoreHeartbeat { store, stats }).await.map(|_| ())
    }

    /// Reports a region; returns what PD asks of its leader, if anything.
    pub async fn region_heartbeat(&self, heartbeat: RegionHeartbeat) -> PdResult<Option<crate::proto::pd::RegionCommand>> {
        match self.call(PdRequest::RegionHeartbeat(heartbeat)).await? {
            PdReply::Heartbeat(command) => Ok(command),
            other => Self::unexpected(other),
        }
    }

    pub async fn region_by_key(&self, key: &[u8]) -> PdResult<(Region, Option<Peer>)> {
        match self.call(PdRequest::RegionByKey { key: key.to_vec() }).await? {
            PdReply::Region { region, leader } => Ok((region, leader)),
            other => Self::unexpected(other),
        }
    }

    pub async fn region_by_id(&self, region_id: RegionId) -> PdResult<(Region, Option<Peer>)> {
        match self.call(PdRequest::RegionById { region_id }).await? {
            PdReply::Region { region, leader } => Ok((region, leader)),
            other => Self::unexpected(other),
        }
    }

    pub async fn scan_regions(&self, start: &[u8], limit: u32) -> PdResult<Vec<(Region, Option<Peer>)>> {
        match self.call(PdRequest::ScanRegions { start: start.to_vec(), limit }).await? {
            PdReply::Regions(regions) => Ok(regions),
            other => Self::unexpected(other),
        }
    }

    pub async fn ask_split(&self, region: Region, split_count: u32) -> PdResult<Vec<SplitIds>> {
        match self.call(PdRequest::AskSplit { region, split_count }).await? {
            PdReply::SplitIds(ids) => Ok(ids),
            other => Self::unexpected(other),
        }
    }

    pub async fn add_operator(&self, region_id: RegionId, operator: crate::proto::pd::OperatorRequest) -> PdResult<()> {
        self.call(PdRequest::AddOperator { region_id, operator }).await.map(|_| ())
    }

    pub async fn report_split(&self, regions: Vec<Region>) -> PdResult<()> {
        self.call(PdRequest::ReportSplit { regions }).await.map(|_| ())
    }
}
