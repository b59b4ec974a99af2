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

    /// What to do after `store`, asked about `region`, failed with `failure`
    /// (an error it answered, or no answer in time); updates the routing.
    fn after_failure(&mut self, region: &Region, store: StoreId, failure: Failure, is_write: bool) -> Next {
        match failure {
            Failure::Timeout(reason) => {
                // The store may be down: next time, start with the replica after it.
                self.suspect(region, store);
                if is_write {
                    // It may have reached raft: retrying blindly could apply it twice.
                    Next::Stop(ClientError::Unknown(reason))
                } else {
                    Next::Backoff
                }
            }
            Failure::Answered(error) => match error {
                ServerError::Region(RegionError::NotLeader { leader: Some(leader), region_id }) => {
                    // A hint we already followed means the leader is not ready yet.
                    if self.leaders.insert(region_id, leader.store_id) == Some(leader.store_id) {
                        Next::Backoff
                    } else {
                        Next::Retry
                    }
                }
                ServerError::Region(RegionError::EpochNotMatch { current_regions, .. }) => {
                    current_regions.into_iter().for_each(|r| self.update(r));
                    Next::Retry
                }
                ServerError::Region(RegionError::OutcomeUnknown { reason }) if is_write => Next::Stop(ClientError::Unknown(reason)),
                ServerError::Region(_) => {
                    self.leaders.remove(&region.id);
                    Next::Backoff
                }
                error @ (ServerError::InvalidRequest(_) | ServerError::Malformed(_)) => Next::Stop(ClientError::Invalid(error.to_string())),
            },
        }
    }

    /// Learns `region` unless what the cache holds is newer: the same region at
    /// a later epoch, or an overlapping region at a later version (it came from
    /// a later split). Otherwise it replaces its older self and every region
    /// it overlaps.
    fn update(&mut self, region: Region) {
        let stale = self.regions.values().any(|r| {
            if r.id == region.id {
                region.epoch.is_stale_against(&r.epoch)
            } else {
                r.overlaps(&region) && region.epoch.version < r.epoch.version
            }
        });
        if stale {
            return;
        }
        self.regions.retain(|_, r| r.id != region.id && !r.overlaps(&region));
        self.regions.insert(region.start_key.clone(), region);
    }
}

/// How one attempt failed.
#[derive(Debug)]
enum Failure {
    /// No answer within the RPC timeout.
    Timeout(String),
    Answered(ServerError),
}

/// What the client does after a failed attempt.
#[derive(Debug, PartialEq)]
enum Next {
    /// Try again at once: the routing learned something.
    Retry,
    /// Try again after the backoff.
    Backoff,
    /// Give up with this error.
    Stop(ClientError),
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
            let failure = match self.rpc(store, &request).await {
                Ok(Response(Ok(reply))) => {
                    self.routing.lock().expect("routing lock").leaders.insert(region.id, store);
                    return Ok(reply);
                }
                Ok(Response(Err(e))) => Failure::Answered(e),
                Err(timeout) => Failure::Timeout(timeout),
            };
            tracing::debug!(region = region.id, store, attempt, ?failure, "client request failed");
            last = match &failure {
                Failure::Timeout(reason) => reason.clone(),
                Failure::Answered(error) => error.to_string(),
            };
            let next = self.routing.lock().expect("routing lock").after_failure(&region, store, failure, is_write);
            match next {
                Next::Retry => {}
                Next::Backoff => madsim::time::sleep(self.backoff(attempt)).await,
                Next::Stop(error) => return Err(error),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Peer, RegionEpoch};

    fn region(id: RegionId, start: &str, end: &str, version: u64) -> Region {
        let peers = (1..=3).map(|s| Peer::voter(id * 10 + s, s)).collect();
        Region { id, start_key: start.as_bytes().to_vec(), end_key: end.as_bytes().to_vec(), epoch: RegionEpoch::new(1, version), peers }
    }

    fn routing(regions: Vec<Region>) -> Routing {
        Routing { regions: regions.into_iter().map(|r| (r.start_key.clone(), r)).collect(), leaders: BTreeMap::new() }
    }

    fn answered(e: RegionError) -> Failure {
        Failure::Answered(ServerError::Region(e))
    }

    #[test]
    fn timeouts_fail_writes_as_unknown_and_move_reads_to_the_next_replica() {
        let r = region(1, "", "", 1);
        let mut routing = routing(vec![r.clone()]);
        let next = routing.after_failure(&r, 2, Failure::Timeout("no answer".into()), true);
        assert_eq!(next, Next::Stop(ClientError::Unknown("no answer".into())), "a write that timed out may have happened");
        assert_eq!(routing.leaders.get(&1), Some(&3), "the replica after the silent store is tried next");
        assert_eq!(routing.after_failure(&r, 3, Failure::Timeout("no answer".into()), false), Next::Backoff);
        assert_eq!(routing.leaders.get(&1), Some(&1), "wraps around the replicas");
    }

    #[test]
    fn a_leader_hint_is_followed_at_once_then_waited_for() {
        let r = region(1, "", "", 1);
        let mut routing = routing(vec![r.clone()]);
        let hint = || answered(RegionError::NotLeader { region_id: 1, leader: Some(Peer::voter(12, 2)) });
        assert_eq!(routing.after_failure(&r, 1, hint(), true), Next::Retry);
        assert_eq!(routing.leaders.get(&1), Some(&2));
        assert_eq!(routing.after_failure(&r, 2, hint(), true), Next::Backoff, "the same hint again: the leader is not ready");
        // No hint: forget the leader and back off.
        assert_eq!(routing.after_failure(&r, 2, answered(RegionError::NotLeader { region_id: 1, leader: None }), true), Next::Backoff);
        assert_eq!(routing.leaders.get(&1), None);
    }

    #[test]
    fn epoch_not_match_refreshes_the_region_cache() {
        let old = region(1, "", "", 1);
        let mut routing = routing(vec![old.clone()]);
        // The region split: its new self and a new neighbour.
        let (left, right) = (region(1, "", "m", 2), region(2, "m", "", 2));
        let error = answered(RegionError::EpochNotMatch { message: "split".into(), current_regions: vec![left.clone(), right.clone()] });
        assert_eq!(routing.after_failure(&old, 1, error, true), Next::Retry);
        assert_eq!(routing.locate(b"a"), Some(left.clone()));
        assert_eq!(routing.locate(b"z"), Some(right));
        // A stale answer never replaces what is newer.
        routing.update(old);
        assert_eq!(routing.locate(b"a"), Some(left));
    }

    #[test]
    fn outcome_unknown_stops_writes_and_other_errors_back_off() {
        let r = region(1, "", "", 1);
        let mut routing = routing(vec![r.clone()]);
        let unknown = || answered(RegionError::OutcomeUnknown { reason: "snapshot".into() });
        assert_eq!(routing.after_failure(&r, 1, unknown(), true), Next::Stop(ClientError::Unknown("snapshot".into())));
        assert_eq!(routing.after_failure(&r, 1, unknown(), false), Next::Backoff, "a read can simply be retried");
        routing.leaders.insert(1, 1);
        assert_eq!(routing.after_failure(&r, 1, answered(RegionError::StaleCommand), true), Next::Backoff);
        assert_eq!(routing.leaders.get(&1), None, "the believed leader is forgotten");
        let invalid = routing.after_failure(&r, 1, Failure::Answered(ServerError::InvalidRequest("value too large".into())), true);
        assert_eq!(invalid, Next::Stop(ClientError::Invalid("invalid request: value too large".into())));
    }
}
