//! The raw KV client.

use crate::meta::{Region, RegionId, StoreId};
use crate::raftstore::RegionError;
use crate::server::proto::{RawReply, RawRequest, Request, Response, ServerError};
use crate::transport::{Frame, NetFaults, Transport};
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long to wait for one answer.
    pub rpc_timeout: Duration,
    /// Attempts per operation before giving up.
    pub max_attempts: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Faults injected into this client's outgoing requests (simulation only).
    pub net_faults: Option<Arc<NetFaults>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rpc_timeout: Duration::from_secs(2),
            max_attempts: 20,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(1000),
            net_faults: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The operation certainly did not take effect; `last` is the final error seen.
    #[error("failed after {attempts} attempts: {last}")]
    Failed { attempts: usize, last: String },
    /// A write whose outcome is unknown (timed out after it may have reached raft).
    /// It may still take effect later; it must not be retried blindly.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The request can never succeed (too large, no region covers the key, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

struct Routing {
    regions: BTreeMap<Vec<u8>, Region>,
    /// Which store we believe leads each region.
    leaders: BTreeMap<RegionId, StoreId>,
}

impl Routing {
    fn locate(&self, key: &[u8]) -> Option<Region> {
        self.regions.range(..=key.to_vec()).next_back().map(|(_, r)| r.clone()).filter(|r| r.contains(key))
    }

    /// `store` did not answer for `region`: guess the next replica as its leader.
    fn suspect(&mut self, region: &Region, store: StoreId) {
        let at = region.peers.iter().position(|p| p.store_id == store).unwrap_or(0);
        let next = region.peers[(at + 1) % region.peers.len()].store_id;
        self.leaders.insert(region.id, next);
    }

    fn update(&mut self, region: Region) {
        self.regions.retain(|_, r| r.id == region.id || !r.overlaps(&region));
        self.regions.retain(|_, r| r.id != region.id || r.epoch <= region.epoch);
        if !self.regions.values().any(|r| r.id == region.id && r.epoch > region.epoch) {
            self.regions.insert(region.start_key.clone(), region);
        }
    }
}

type Pending = Arc<Mutex<BTreeMap<u64, oneshot::Sender<Vec<u8>>>>>;

pub struct RawClient {
    cfg: ClientConfig,
    transport: Transport,
    addresses: BTreeMap<StoreId, SocketAddr>,
    routing: Mutex<Routing>,
    pending: Pending,
    next_id: Mutex<u64>,
}

impl RawClient {
    /// Binds `local` and starts the task that routes responses to callers.
    pub async fn connect(local: SocketAddr, addresses: BTreeMap<StoreId, SocketAddr>, regions: Vec<Region>, cfg: ClientConfig) -> std::io::Result<Self> {
        let transport = Transport::bind_with_faults(local, cfg.net_faults.clone()).await?;
        let pending: Pending = Arc::default();
        let (receiver, dispatch) = (transport.clone(), pending.clone());
        madsim::task::spawn(async move {
            while let Ok((frame, _from)) = receiver.recv().await {
                if let Ok(Frame::Response { id, payload }) = frame {
                    if let Some(tx) = dispatch.lock().expect("pending lock").remove(&id) {
                        let _ = tx.send(payload);
                    }
                }
            }
        });
        let regions = regions.into_iter().map(|r| (r.start_key.clone(), r)).collect();
        Ok(RawClient { cfg, transport, addresses, routing: Mutex::new(Routing { regions, leaders: BTreeMap::new() }), pending, next_id: Mutex::new(1) })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.call(key, RawRequest::Get { key: key.to_vec() }, false).await? {
            RawReply::Value(v) => Ok(v),
            other => Err(ClientError::Invalid(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.call(key, RawRequest::Put { key: key.to_vec(), value: value.to_vec() }, true).await.map(|_| ())
    }

    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        self.call(key, RawRequest::Delete { key: key.to_vec() }, true).await.map(|_| ())
    }

    /// Sets `key` to `new` if it currently holds `expected`; returns whether it did
    /// and the value it found.
    pub async fn cas(&self, key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<(bool, Option<Vec<u8>>), ClientError> {
        let request = RawRequest::Cas { key: key.to_vec(), expected: expected.map(<[u8]>::to_vec), new: new.map(<[u8]>::to_vec) };
        match self.call(key, request, true).await? {
            RawReply::Cas { succeeded, previous } => Ok((succeeded, previous)),
            other => Err(ClientError::Invalid(format!("unexpected reply {other:?}"))),
        }
    }

    /// Up to `limit` pairs from `[start, end)` (empty `end`: unbounded), crossing
    /// region boundaries as needed.
    pub async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ClientError> {
        let mut out = Vec::new();
        let mut cursor = start.to_vec();
        while out.len() < limit {
            let region_end = self.locate(&cursor)?.end_key;
            let request = RawRequest::Scan { start: cursor.clone(), end: end.to_vec(), limit: limit - out.len() };
            match self.call(&cursor, request, false).await? {
                RawReply::Pairs(pairs) => out.extend(pairs),
                other => return Err(ClientError::Invalid(format!("unexpected reply {other:?}"))),
            }
            let done = region_end.is_empty() || (!end.is_empty() && region_end.as_slice() >= end);
            if done {
                break;
            }
            cursor = region_end;
        }
        out.truncate(limit);
        Ok(out)
    }

    fn locate(&self, key: &[u8]) -> Result<Region, ClientError> {
        self.routing.lock().expect("routing lock").locate(key).ok_or_else(|| ClientError::Invalid(format!("no region covers key {key:?}")))
    }

    /// Picks the store to try: the believed leader, else the replicas in turn.
    fn target(&self, region: &Region, attempt: usize) -> StoreId {
        let routing = self.routing.lock().expect("routing lock");
        match routing.leaders.get(&region.id) {
            Some(&store) if region.peer_on_store(store).is_some() => store,
            _ => region.peers[attempt % region.peers.len()].store_id,
        }
    }

    fn backoff(&self, attempt: usize) -> Duration {
        let exp = self.cfg.backoff_base.saturating_mul(1u32 << attempt.min(16));
        exp.min(self.cfg.backoff_max)
    }

    async fn call(&self, key: &[u8], body: RawRequest, is_write: bool) -> Result<RawReply, ClientError> {
        let mut last = String::from("no attempt made");
        for attempt in 0..self.cfg.max_attempts {
            let region = self.locate(key)?;
            let store = self.target(&region, attempt);
            let request = Request { region_id: region.id, epoch: region.epoch, body: body.clone() };
            tracing::debug!(region = region.id, store, attempt, ?body, "client request");
            let error = match self.rpc(store, &request).await {
                Ok(Response(Ok(reply))) => {
                    self.routing.lock().expect("routing lock").leaders.insert(region.id, store);
                    return Ok(reply);
                }
                Ok(Response(Err(e))) => e,
                Err(timeout) => {
                    // The store may be down: next time, start with the replica after it.
                    self.routing.lock().expect("routing lock").suspect(&region, store);
                    if is_write {
                        return Err(ClientError::Unknown(timeout));
                    }
                    last = timeout;
                    madsim::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
            };
            tracing::debug!(region = region.id, store, attempt, %error, "client request failed");
            last = error.to_string();
            match error {
                ServerError::Region(RegionError::NotLeader { leader: Some(leader), region_id }) => {
                    // A hint we already followed means the leader is not ready yet.
                    let repeated = self.routing.lock().expect("routing lock").leaders.insert(region_id, leader.store_id) == Some(leader.store_id);
                    if repeated {
                        madsim::time::sleep(self.backoff(attempt)).await;
                    }
                }
                ServerError::Region(RegionError::EpochNotMatch { current_regions, .. }) => {
                    let mut routing = self.routing.lock().expect("routing lock");
                    current_regions.into_iter().for_each(|r| routing.update(r));
                    drop(routing);
                }
                ServerError::Region(RegionError::OutcomeUnknown { reason }) if is_write => return Err(ClientError::Unknown(reason)),
                ServerError::Region(_) => {
                    self.routing.lock().expect("routing lock").leaders.remove(&region.id);
                    madsim::time::sleep(self.backoff(attempt)).await;
                }
                ServerError::InvalidRequest(_) | ServerError::Malformed(_) => return Err(ClientError::Invalid(last)),
            }
        }
        Err(ClientError::Failed { attempts: self.cfg.max_attempts, last })
    }

    /// One request, one answer or a timeout.
    async fn rpc(&self, store: StoreId, request: &Request) -> Result<Response, String> {
        let addr = *self.addresses.get(&store).ok_or_else(|| format!("no address for store {store}"))?;
        let id = {
            let mut next = self.next_id.lock().expect("id lock");
            *next += 1;
            *next
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.transport.send(addr, &Frame::Request { id, payload: request.encode() });
        let answer = madsim::time::timeout(self.cfg.rpc_timeout, rx).await;
        self.pending.lock().expect("pending lock").remove(&id);
        match answer {
            Ok(Ok(payload)) => Response::decode(&payload).map_err(|e| format!("undecodable response from store {store}: {e}")),
            _ => Err(format!("store {store} did not answer within {:?}", self.cfg.rpc_timeout)),
        }
    }
}
