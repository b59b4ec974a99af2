//! The raw KV client.
//!
//! Callers speak user keys; on the wire every key is an encoded raw key
//! (`codec::keys::raw_key`), the form regions are bounded by.

use super::error::{AttemptError, ClientError};
use super::region_cache::{RegionCache, RegionSource, RoutingEvent, RoutingObserver};
use crate::codec::keys;
use crate::meta::{Region, StoreId};
use crate::proto::{KvRequest, RawReply, RawRequest, RegionError, RpcRequest, RpcResponse, ServerError};
use crate::rpc::{RpcClient, RpcError};
#[cfg(madsim)]
use crate::transport::NetFaults;
use crate::transport::Transport;
use std::collections::BTreeMap;
use std::net::SocketAddr;
#[cfg(madsim)]
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long to wait for one answer.
    pub rpc_timeout: Duration,
    /// Attempts per operation before giving up.
    pub max_attempts: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Faults injected into this client's outgoing requests (simulation only).
    #[cfg(madsim)]
    pub net_faults: Option<Arc<NetFaults>>,
    /// Planted bugs (`crate::planted`): none outside simulation.
    pub bugs: crate::planted::Bugs,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rpc_timeout: Duration::from_secs(2),
            max_attempts: 20,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(1000),
            #[cfg(madsim)]
            net_faults: None,
            bugs: crate::planted::Bugs::NONE,
        }
    }
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

/// What to do after `store`, asked about `region`, failed with `failure`;
/// corrects the cache with what the failure taught.
fn after_failure(cache: &mut RegionCache, region: &Region, store: StoreId, failure: AttemptError, is_write: bool) -> Next {
    match failure {
        AttemptError::Rpc(RpcError::Timeout { .. }) | AttemptError::NoAddress(_) => {
            // The store may be down: next time, start with the replica after it.
            cache.suspect(region, store);
            if is_write && matches!(failure, AttemptError::Rpc(_)) {
                // It may have reached raft: retrying blindly could apply it twice.
                Next::Stop(ClientError::Unknown(failure))
            } else {
                Next::Backoff
            }
        }
        AttemptError::Rpc(RpcError::NotSent { .. }) => {
            // The store refused the connection: it is down, and the request
            // never left, so even a write may go to the next replica at once.
            cache.suspect(region, store);
            Next::Retry
        }
        AttemptError::NoRegion { .. } => Next::Backoff,
        AttemptError::Rpc(RpcError::Undecodable { .. }) => {
            Next::Stop(if is_write { ClientError::Unknown(failure) } else { ClientError::UnexpectedReply(failure.to_string()) })
        }
        AttemptError::Server(error) => match error {
            ServerError::Region(RegionError::NotLeader { leader: Some(leader), region_id }) => {
                // A hint we already followed means the leader is not ready yet.
                if cache.set_leader(region_id, leader.store_id) == Some(leader.store_id) {
                    Next::Backoff
                } else {
                    Next::Retry
                }
            }
            ServerError::Region(RegionError::EpochNotMatch { current_regions, .. }) => {
                current_regions.into_iter().for_each(|r| cache.update(r));
                Next::Retry
            }
            ServerError::Region(RegionError::RegionNotFound { .. } | RegionError::KeyNotInRegion { .. }) => {
                // Our routing is wrong: ask the source again.
                cache.invalidate(region.id);
                Next::Backoff
            }
            ServerError::Region(RegionError::OutcomeUnknown { .. }) if is_write => Next::Stop(ClientError::Unknown(AttemptError::Server(error))),
            ServerError::Region(_) | ServerError::Key(_) => {
                cache.forget_leader(region.id);
                Next::Backoff
            }
            ServerError::InvalidRequest(_) | ServerError::Malformed(_) => Next::Stop(ClientError::Invalid(error)),
        },
    }
}

/// Who answered a request: the region (at the epoch the client sent), the
/// store, and the region's peer on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub region: crate::meta::RegionId,
    pub store: StoreId,
    pub peer: Option<crate::meta::PeerId>,
}

pub struct RawClient {
    cfg: ClientConfig,
    rpc: RpcClient,
    /// Who answered the last request that got an answer.
    last_answered: Mutex<Option<Answered>>,
    /// Store addresses: those given at connect, and those learned from the
    /// region source for stores that joined later.
    addresses: Mutex<BTreeMap<StoreId, SocketAddr>>,
    cache: Mutex<RegionCache>,
    source: Box<dyn RegionSource>,
    observer: Option<RoutingObserver>,
}

impl RawClient {
    /// Binds `local`; regions are learned from `source`.
    pub async fn connect(
        local: SocketAddr,
        addresses: BTreeMap<StoreId, SocketAddr>,
        source: Box<dyn RegionSource>,
        cfg: ClientConfig,
    ) -> std::io::Result<Self> {
        #[cfg(madsim)]
        let rpc = RpcClient::bind_with_faults(local, cfg.net_faults.clone()).await?;
        #[cfg(not(madsim))]
        let rpc = RpcClient::bind(local).await?;
        let mut cache = RegionCache::default();
        cache.bugs = cfg.bugs;
        Ok(RawClient { cfg, rpc, last_answered: Mutex::new(None), addresses: Mutex::new(addresses), cache: Mutex::new(cache), source, observer: None })
    }

    /// Reports what the client learns and sends to `observer` from now on.
    pub fn observe(&mut self, observer: RoutingObserver) {
        self.cache.get_mut().expect("cache lock").observer = Some(observer.clone());
        self.observer = Some(observer);
    }

    pub fn transport(&self) -> &Transport {
        self.rpc.transport()
    }

    /// Which store (and peer) answered the last request that got an answer,
    /// so a caller can say who served a result (a stale read's culprit);
    /// taken, so the next call says nothing until another answer comes.
    pub fn take_answered(&self) -> Option<Answered> {
        self.last_answered.lock().expect("answered lock").take()
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let key = keys::raw_key(key);
        match self.call(&key, RawRequest::Get { key: key.clone() }).await? {
            RawReply::Value(v) => Ok(v),
            other => Err(ClientError::UnexpectedReply(format!("{other:?} to a get"))),
        }
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let key = keys::raw_key(key);
        self.call(&key, RawRequest::Put { key: key.clone(), value: value.to_vec() }).await.map(|_| ())
    }

    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        let key = keys::raw_key(key);
        self.call(&key, RawRequest::Delete { key: key.clone() }).await.map(|_| ())
    }

    /// Sets `key` to `new` if it currently holds `expected`; returns whether it did
    /// and the value it found.
    pub async fn cas(&self, key: &[u8], expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<(bool, Option<Vec<u8>>), ClientError> {
        let key = keys::raw_key(key);
        let request = RawRequest::Cas { key: key.clone(), expected: expected.map(<[u8]>::to_vec), new: new.map(<[u8]>::to_vec) };
        match self.call(&key, request).await? {
            RawReply::Cas { succeeded, previous } => Ok((succeeded, previous)),
            other => Err(ClientError::UnexpectedReply(format!("{other:?} to a cas"))),
        }
    }

    /// Up to `limit` pairs from `[start, end)` (empty `end`: unbounded), crossing
    /// region boundaries as needed. Each region is read linearizably on its own;
    /// the scan as a whole is not one snapshot.
    pub async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ClientError> {
        let end = keys::raw_end_key(end);
        let mut out = Vec::new();
        let mut cursor = keys::raw_key(start);
        while out.len() < limit && cursor < end {
            let request = RawRequest::Scan { start: cursor.clone(), end: end.clone(), limit: limit - out.len() };
            // The region that answered bounds what it returned: the scan goes on
            // from its end (not from the end of a region the cache held before).
            let (reply, region) = self.call_in(&cursor, request).await?;
            let region_end = region.end_key;
            match reply {
                RawReply::Pairs(pairs) => {
                    for (k, v) in pairs {
                        let user = keys::decode_raw_key(&k).map_err(|e| ClientError::UnexpectedReply(format!("scan returned {k:?}: {e}")))?;
                        out.push((user.to_vec(), v));
                    }
                }
                other => return Err(ClientError::UnexpectedReply(format!("{other:?} to a scan"))),
            }
            if region_end.is_empty() {
                break;
            }
            cursor = region_end;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The region holding encoded key `key`: from the cache, else from the source.
    pub async fn locate(&self, key: &[u8]) -> Result<Region, ClientError> {
        if !crate::buggify::fires(crate::buggify::Site::RegionCacheMiss) {
            if let Some(region) = self.cache.lock().expect("cache lock").locate(key) {
                return Ok(region);
            }
        }
        let (region, leader) = self.source.region_by_key(key).await?.ok_or_else(|| ClientError::NoRegion { key: key.to_vec() })?;
        let mut cache = self.cache.lock().expect("cache lock");
        cache.update(region.clone());
        // What the cache now holds for the key: the source's answer, unless
        // the client has seen newer (the source lags behind); then the newest
        // region the client saw for the key, which the store will correct.
        let region =
            if cache.bugs.on(crate::planted::Bug::CacheTakesOlderRegions) { Some(region) } else { cache.locate(key).or_else(|| cache.newest_seen(key)) };
        let region = region.ok_or_else(|| ClientError::NoRegion { key: key.to_vec() })?;
        // The source's leader is a first guess; a belief the cache already
        // holds (learned from the stores themselves) is newer.
        if let Some(store) = leader.filter(|&s| region.peer_on_store(s).is_some()) {
            if cache.leader(region.id).is_none() {
                cache.set_leader(region.id, store);
            }
        }
        Ok(region)
    }

    /// Picks the store to try: the believed leader, else the replicas in turn.
    fn target(&self, region: &Region, attempt: usize) -> StoreId {
        match self.cache.lock().expect("cache lock").leader(region.id) {
            Some(store) if region.peer_on_store(store).is_some() => store,
            _ => region.peers[attempt % region.peers.len()].store_id,
        }
    }

    /// Exponential backoff, capped, with jitter (half to the whole of it,
    /// drawn from the run's seed) so clients that failed together do not retry
    /// together.
    fn backoff(&self, attempt: usize) -> Duration {
        use rand::Rng;
        let exp = self.cfg.backoff_base.saturating_mul(1u32 << attempt.min(16)).min(self.cfg.backoff_max);
        exp.mul_f64(madsim::rand::thread_rng().gen_range(0.5..=1.0))
    }

    async fn call(&self, key: &[u8], cmd: RawRequest) -> Result<RawReply, ClientError> {
        self.call_in(key, cmd).await.map(|(reply, _)| reply)
    }

    /// Sends `cmd` to the region holding `key`, following the routing as it
    /// learns; returns the answer and the region that gave it.
    async fn call_in(&self, key: &[u8], cmd: RawRequest) -> Result<(RawReply, Region), ClientError> {
        let is_write = cmd.is_write();
        let build = |region: &Region| RpcRequest::Kv(KvRequest { region_id: region.id, epoch: region.epoch, cmd: cmd.clone() });
        self.route(key, is_write, build, |store, response| match response {
            RpcResponse::Kv(Ok(reply)) => Ok(reply),
            RpcResponse::Kv(Err(error)) | RpcResponse::Rejected(error) => Err(AttemptError::Server(error)),
            _ => Err(AttemptError::Server(ServerError::Malformed(format!("store {store} answered with a response of another service")))),
        })
        .await
    }

    /// Sends the request `build` makes for the region holding encoded key
    /// `key` to that region's leader, following the routing as it learns
    /// (leader hints, epoch changes, silent stores) with bounded backoff;
    /// `extract` turns a response into the answer or the attempt's failure.
    /// A `write` that may have reached raft and timed out is not retried:
    /// its outcome is unknown. Returns the answer and the region that gave it.
    pub async fn route<R>(
        &self,
        key: &[u8],
        is_write: bool,
        build: impl Fn(&Region) -> RpcRequest,
        extract: impl Fn(StoreId, RpcResponse) -> Result<R, AttemptError>,
    ) -> Result<(R, Region), ClientError> {
        let mut last = None;
        for attempt in 0..self.cfg.max_attempts {
            let region = match self.locate(key).await {
                Ok(region) => region,
                Err(ClientError::NoRegion { key }) => {
                    last = Some(AttemptError::NoRegion { key, reason: "the region source does not know it".into() });
                    madsim::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(ClientError::Pd(e)) => {
                    last = Some(AttemptError::NoRegion { key: key.to_vec(), reason: e.to_string() });
                    madsim::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let store = self.target(&region, attempt);
            let request = build(&region);
            if let Some(observer) = &self.observer {
                observer(&RoutingEvent::Sent { region: region.clone(), store, key: key.to_vec() });
            }
            tracing::debug!(region = region.id, store, attempt, ?request, "client request");
            let failure = match self.send(store, &request).await.and_then(|response| extract(store, response)) {
                Ok(reply) => {
                    self.cache.lock().expect("cache lock").set_leader(region.id, store);
                    let peer = region.peer_on_store(store).map(|p| p.id);
                    *self.last_answered.lock().expect("answered lock") = Some(Answered { region: region.id, store, peer });
                    return Ok((reply, region));
                }
                Err(failure) => failure,
            };
            tracing::debug!(region = region.id, store, attempt, %failure, "client request failed");
            last = Some(failure.clone());
            let next = after_failure(&mut self.cache.lock().expect("cache lock"), &region, store, failure, is_write);
            match next {
                Next::Retry => {}
                Next::Backoff => madsim::time::sleep(self.backoff(attempt)).await,
                Next::Stop(error) => return Err(error),
            }
        }
        let last = last.unwrap_or(AttemptError::NoAddress(0));
        Err(ClientError::Failed { attempts: self.cfg.max_attempts, last })
    }

    /// One request to `store`, one response.
    async fn send(&self, store: StoreId, request: &RpcRequest) -> Result<RpcResponse, AttemptError> {
        let known = self.addresses.lock().expect("addresses lock").get(&store).copied();
        let addr = match known {
            Some(addr) => addr,
            None => {
                let addr = self.source.store_addr(store).await.ok_or(AttemptError::NoAddress(store))?;
                self.addresses.lock().expect("addresses lock").insert(store, addr);
                addr
            }
        };
        Ok(self.rpc.call(addr, request, self.cfg.rpc_timeout).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::region_cache::tests::region;
    use crate::meta::Peer;

    fn cache(regions: Vec<Region>) -> RegionCache {
        let mut cache = RegionCache::default();
        regions.into_iter().for_each(|r| cache.update(r));
        cache
    }

    fn answered(e: RegionError) -> AttemptError {
        AttemptError::Server(ServerError::Region(e))
    }

    fn timeout() -> AttemptError {
        AttemptError::Rpc(RpcError::Timeout { addr: SocketAddr::from(([10, 0, 1, 2], 20160)), after: Duration::from_secs(2) })
    }

    #[test]
    fn timeouts_fail_writes_as_unknown_and_move_reads_to_the_next_replica() {
        let r = region(1, "", "", 1);
        let mut cache = cache(vec![r.clone()]);
        let next = after_failure(&mut cache, &r, 2, timeout(), true);
        assert_eq!(next, Next::Stop(ClientError::Unknown(timeout())), "a write that timed out may have happened");
        assert_eq!(cache.leader(1), Some(3), "the replica after the silent store is tried next");
        assert_eq!(after_failure(&mut cache, &r, 3, timeout(), false), Next::Backoff);
        assert_eq!(cache.leader(1), Some(1), "wraps around the replicas");
        assert_eq!(after_failure(&mut cache, &r, 1, AttemptError::NoAddress(1), true), Next::Backoff, "never sent: safe to retry");
    }

    #[test]
    fn a_leader_hint_is_followed_at_once_then_waited_for() {
        let r = region(1, "", "", 1);
        let mut cache = cache(vec![r.clone()]);
        let hint = || answered(RegionError::NotLeader { region_id: 1, leader: Some(Peer::voter(12, 2)) });
        assert_eq!(after_failure(&mut cache, &r, 1, hint(), true), Next::Retry);
        assert_eq!(cache.leader(1), Some(2));
        assert_eq!(after_failure(&mut cache, &r, 2, hint(), true), Next::Backoff, "the same hint again: the leader is not ready");
        // No hint: forget the leader and back off.
        assert_eq!(after_failure(&mut cache, &r, 2, answered(RegionError::NotLeader { region_id: 1, leader: None }), true), Next::Backoff);
        assert_eq!(cache.leader(1), None);
    }

    #[test]
    fn epoch_not_match_refreshes_the_region_cache() {
        let old = region(1, "", "", 1);
        let mut cache = cache(vec![old.clone()]);
        // The region split: its new self and a new neighbour.
        let (left, right) = (region(1, "", "m", 2), region(2, "m", "", 2));
        let error = answered(RegionError::EpochNotMatch { message: "split".into(), current_regions: vec![left.clone(), right.clone()] });
        assert_eq!(after_failure(&mut cache, &old, 1, error, true), Next::Retry);
        assert_eq!(cache.locate(b"a"), Some(left.clone()));
        assert_eq!(cache.locate(b"z"), Some(right));
    }

    #[test]
    fn a_region_the_store_does_not_know_is_reloaded() {
        let r = region(1, "", "", 1);
        let mut cache = cache(vec![r.clone()]);
        assert_eq!(after_failure(&mut cache, &r, 1, answered(RegionError::RegionNotFound { region_id: 1 }), false), Next::Backoff);
        assert_eq!(cache.locate(b"a"), None, "the next attempt asks the source");
    }

    #[test]
    fn outcome_unknown_stops_writes_and_other_errors_back_off() {
        let r = region(1, "", "", 1);
        let mut cache = cache(vec![r.clone()]);
        let unknown = || answered(RegionError::OutcomeUnknown { reason: "snapshot".into() });
        assert_eq!(after_failure(&mut cache, &r, 1, unknown(), true), Next::Stop(ClientError::Unknown(unknown())));
        assert_eq!(after_failure(&mut cache, &r, 1, unknown(), false), Next::Backoff, "a read can simply be retried");
        cache.set_leader(1, 1);
        assert_eq!(after_failure(&mut cache, &r, 1, answered(RegionError::StaleCommand), true), Next::Backoff);
        assert_eq!(cache.leader(1), None, "the believed leader is forgotten");
        let too_large = ServerError::InvalidRequest("value too large".into());
        assert_eq!(after_failure(&mut cache, &r, 1, AttemptError::Server(too_large.clone()), true), Next::Stop(ClientError::Invalid(too_large)));
    }
}
