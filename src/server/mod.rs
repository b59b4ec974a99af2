//! The RPC surface of a store.
//!
//! A store node runs [`run_store_node`]: it binds the node's transport, opens the
//! raftstore, and then serves every incoming frame: raft traffic goes to the store
//! loop, client requests are checked here (service, size limits, the raw key
//! space) and then handed to the region through a [`StoreHandle`], and each
//! answer goes back to the caller as a response frame carrying the request's id.
//!
//! Every failure a client can see is a typed [`ServerError`]: a region error (what
//! to do next is in the variant), an invalid request (never retry), or a request
//! that could not be decoded.

use crate::codec::keys;
use crate::engine::Engine;
use crate::meta::StoreId;
use crate::pd_client::{PdClient, PdClientConfig};
use crate::proto::{
    AdminReply, AdminRequest, KvRequest, RawReply, RawRequest, RpcRequest, RpcResponse, ServerError, TxnCmd, TxnRead, TxnRequest, TxnResponse, TxnWrite,
};
use crate::raftstore::store::StoreSetup;
use crate::raftstore::{EventSink, Mutation, RaftStoreConfig, ReadCmd, ReadResult, Store, StoreHandle, WriteCmd, WriteResult};
use crate::rpc::RpcClient;
#[cfg(madsim)]
use crate::transport::NetFaults;
use crate::transport::{Frame, Transport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
#[cfg(madsim)]
use std::sync::Arc;

/// What a store node needs to start.
#[derive(Clone)]
pub struct StoreNodeConfig {
    pub store_id: StoreId,
    pub addr: SocketAddr,
    /// Where every store listens, this one included.
    pub addresses: BTreeMap<StoreId, SocketAddr>,
    pub raftstore: RaftStoreConfig,
    pub events: Option<EventSink>,
    /// Where PD listens; `None` runs the store without PD (a fixed layout, no
    /// splits, no heartbeats).
    pub pd: Option<SocketAddr>,
    /// Faults injected into this node's outgoing traffic (simulation only).
    #[cfg(madsim)]
    pub net_faults: Option<Arc<NetFaults>>,
}

/// Runs a store node until it is killed. Returns only if its network fails.
pub async fn run_store_node<E: Engine>(cfg: StoreNodeConfig, raft_engine: E, kv_engine: E) -> std::io::Result<()> {
    #[cfg(madsim)]
    let transport = Transport::bind_with_faults(cfg.addr, cfg.net_faults.clone()).await?;
    #[cfg(not(madsim))]
    let transport = Transport::bind(cfg.addr).await?;
    let pd = match cfg.pd {
        Some(pd_addr) => Some(connect_pd(&cfg, pd_addr).await?),
        None => None,
    };
    let kv_engine_for_reads = kv_engine.clone();
    let opened = Store::open(StoreSetup {
        store_id: cfg.store_id,
        cfg: cfg.raftstore.clone(),
        raft_engine,
        kv_engine: kv_engine.clone(),
        transport: transport.clone(),
        addresses: cfg.addresses.clone(),
        events: cfg.events.clone(),
        pd: pd.clone(),
    })
    .await;
    // The kv engine as it is now, for the testbed's comparison of replicas.
    let kv = kv_engine_for_reads.clone();
    let region_data: RegionData = std::sync::Arc::new(move |start: &[u8], end: &[u8]| {
        use crate::engine::Snapshot as _;
        let snap = kv.snapshot();
        let (start, end) = keys::region_data_range(start, end);
        let mut out = Vec::new();
        for cf in crate::engine::DATA_CFS {
            let pairs = snap.scan(cf, &start, Some(&end), usize::MAX, false).map_err(|e| e.to_string())?;
            out.extend(pairs.into_iter().map(|(key, value)| (cf.name().to_string(), key, value)));
        }
        Ok(out)
    });
    let (store, handle) = match opened {
        Ok(opened) => opened,
        Err(crate::raftstore::Stopped::Closed) => {
            tracing::warn!(store = cfg.store_id, "engines closed while opening the store");
            return Ok(());
        }
        Err(crate::raftstore::Stopped::Failed(reason)) => {
            crate::supervisor::fail_stop(cfg.store_id, &reason).await;
            return Ok(());
        }
    };
    if let Some(pd) = pd {
        madsim::task::spawn(register_with_pd(pd, cfg.store_id, cfg.addr, store.regions()));
    }
    madsim::task::spawn(store.run());
    let limits = Limits { max_entry_bytes: cfg.raftstore.max_entry_bytes };
    loop {
        let (frame, from) = transport.recv().await?;
        match frame {
            Ok(Frame::Raft(envelopes)) => envelopes.into_iter().for_each(|e| handle.raft(e)),
            Ok(Frame::SnapshotChunk(chunk)) => handle.snapshot_chunk(from, chunk),
            Ok(Frame::Request { id, payload }) => {
                let (handle, transport, clock, region_data) = (handle.clone(), transport.clone(), cfg.raftstore.clock.clone(), region_data.clone());
                madsim::task::spawn(async move {
                    let response = serve(&handle, limits, &payload, Some((&transport, &clock, &region_data))).await;
                    transport.send(from, &Frame::Response { id, payload: response.encode() });
                });
            }
            Ok(Frame::Response { .. }) => tracing::debug!(store = cfg.store_id, %from, "unexpected response frame"),
            Err(e) => tracing::warn!(store = cfg.store_id, %from, error = %e, "rejected malformed frame"),
        }
    }
}

/// The store's PD client, on a port of its own, after registering the store
/// with PD (and bootstrapping the cluster if this store holds the first region
/// and PD has not been bootstrapped).
async fn connect_pd(cfg: &StoreNodeConfig, pd_addr: SocketAddr) -> std::io::Result<PdClient> {
    let local = SocketAddr::new(cfg.addr.ip(), 0);
    #[cfg(madsim)]
    let rpc = RpcClient::bind_with_faults(local, cfg.net_faults.clone()).await?;
    #[cfg(not(madsim))]
    let rpc = RpcClient::bind(local).await?;
    Ok(PdClient::new(std::sync::Arc::new(rpc), pd_addr, PdClientConfig::default()))
}

/// Registers the store with PD until PD answers; the store holding the first
/// region (the one that starts the key space, at its first version)
/// bootstraps the cluster.
async fn register_with_pd(pd: PdClient, store: StoreId, addr: SocketAddr, regions: Vec<crate::meta::Region>) {
    let first = regions.into_iter().find(|r| r.start_key.is_empty() && r.epoch.version == 1);
    loop {
        let registered = async {
            if let Some(region) = &first {
                if !pd.is_bootstrapped().await? {
                    match pd.bootstrap(store, addr, region.clone()).await {
                        Ok(()) | Err(crate::pd_client::PdClientError::Pd(crate::proto::PdError::AlreadyBootstrapped)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            pd.put_store(store, addr).await
        };
        match registered.await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(store, error = %e, "registering with pd");
                madsim::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_entry_bytes: usize,
}

/// Decodes one request, checks it, and serves it.
/// Reads a key range of the kv engine in every data CF (see
/// [`AdminRequest::RegionData`]).
type RegionData = std::sync::Arc<dyn Fn(&[u8], &[u8]) -> Result<Vec<(String, Vec<u8>, Vec<u8>)>, String> + Send + Sync>;

/// `process`: the node's transport, clock and kv engine, for the admin
/// requests about the whole process.
async fn serve(handle: &StoreHandle, limits: Limits, payload: &[u8], process: Option<(&Transport, &crate::clock::Clock, &RegionData)>) -> RpcResponse {
    match RpcRequest::decode(payload) {
        Ok(RpcRequest::Kv(request)) => RpcResponse::Kv(serve_kv(handle, limits, request).await),
        Ok(RpcRequest::Txn(request)) => RpcResponse::Txn(serve_txn(handle, limits, request).await),
        Ok(RpcRequest::Admin(AdminRequest::RegionData { start_key, end_key })) => match process {
            Some((_, _, read)) => RpcResponse::Admin(read(&start_key, &end_key).map(AdminReply::Data).map_err(ServerError::InvalidRequest)),
            None => RpcResponse::Admin(Err(ServerError::InvalidRequest("no engine to read here".into()))),
        },
        Ok(RpcRequest::Admin(request)) => match process.and_then(|(transport, clock, _)| crate::control::serve_process(transport, clock, &request)) {
            Some(response) => RpcResponse::Admin(response),
            None => RpcResponse::Admin(serve_admin(handle, request).await),
        },
        Ok(other) => RpcResponse::Rejected(ServerError::InvalidRequest(format!("a store does not serve {:?} requests", other.service()))),
        Err(e) => RpcResponse::Rejected(ServerError::Malformed(e)),
    }
}

async fn serve_kv(handle: &StoreHandle, limits: Limits, mut request: KvRequest) -> Result<RawReply, ServerError> {
    check(&request.cmd, limits)?;
    if let RawRequest::Scan { end, .. } = &mut request.cmd {
        if end.is_empty() {
            // A raw scan never leaves the raw key space.
            *end = keys::RAW_MAX_KEY.to_vec();
        }
    }
    let (region_id, epoch) = (request.region_id, request.epoch);
    let reply = match request.cmd {
        RawRequest::Get { key } => handle.read(region_id, epoch, ReadCmd::Get { key }).await.map(read_reply),
        RawRequest::Scan { start, end, limit } => handle.read(region_id, epoch, ReadCmd::Scan { start, end, limit }).await.map(read_reply),
        write => handle.write(region_id, epoch, write_cmd(write)).await.map(write_reply),
    };
    Ok(reply?)
}

/// A transactional request: a read served like a raw read, a write
/// replicated as one command and decided when applied. Key errors travel as
/// `ServerError::Key`.
async fn serve_txn(handle: &StoreHandle, limits: Limits, request: TxnRequest) -> TxnResponse {
    check_txn(&request.cmd, limits)?;
    let (region_id, epoch) = (request.region_id, request.epoch);
    let result = match request.cmd {
        TxnCmd::Read(read) => match handle.read(region_id, epoch, ReadCmd::Txn(read)).await? {
            ReadResult::Txn(result) => result,
            other => return Err(ServerError::Malformed(format!("a transactional read answered {other:?}"))),
        },
        TxnCmd::Write(write) => match handle.write(region_id, epoch, WriteCmd::Txn(write)).await? {
            WriteResult::Txn(result) => result,
            other => return Err(ServerError::Malformed(format!("a transactional command answered {other:?}"))),
        },
    };
    result.map_err(ServerError::Key)
}

/// Refuses transactional requests that can never succeed: no keys where keys
/// are needed, a key twice in one command, a zero limit, a commit before its
/// start, more bytes than one entry may carry.
fn check_txn(cmd: &TxnCmd, limits: Limits) -> Result<(), ServerError> {
    let invalid = |message: String| Err(ServerError::InvalidRequest(message));
    let bytes = match cmd {
        TxnCmd::Read(TxnRead::Get { key, .. }) => key.len(),
        TxnCmd::Read(TxnRead::Scan { start, end, limit, .. }) => {
            if *limit == 0 {
                return invalid("scan limit must be positive".into());
            }
            start.len() + end.len()
        }
        TxnCmd::Read(TxnRead::ScanLocks { limit, .. }) => {
            if *limit == 0 {
                return invalid("lock scan limit must be positive".into());
            }
            0
        }
        TxnCmd::Write(write) => {
            let keys = write.keys();
            let distinct: std::collections::BTreeSet<&[u8]> = keys.iter().copied().collect();
            if distinct.len() != keys.len() {
                return invalid("a key appears twice in one transactional command".into());
            }
            match write {
                TxnWrite::Prewrite { mutations, primary, .. } => {
                    if mutations.is_empty() {
                        return invalid("a prewrite needs at least one mutation".into());
                    }
                    primary.len() + mutations.iter().map(|m| m.key.len() + if let crate::proto::TxnOp::Put(v) = &m.op { v.len() } else { 0 }).sum::<usize>()
                }
                TxnWrite::Commit { keys, start_ts, commit_ts } => {
                    if keys.is_empty() {
                        return invalid("a commit needs at least one key".into());
                    }
                    if commit_ts < start_ts {
                        return invalid(format!("commit_ts {commit_ts} is before start_ts {start_ts}"));
                    }
                    keys.iter().map(Vec::len).sum()
                }
                TxnWrite::Rollback { keys, .. } => {
                    if keys.is_empty() {
                        return invalid("a rollback needs at least one key".into());
                    }
                    keys.iter().map(Vec::len).sum()
                }
                TxnWrite::ResolveLock { start_ts, commit_ts: Some(commit_ts) } if commit_ts < start_ts => {
                    return invalid(format!("commit_ts {commit_ts} is before start_ts {start_ts}"));
                }
                other => other.keys().iter().map(|k| k.len()).sum(),
            }
        }
    };
    if bytes > limits.max_entry_bytes {
        return invalid(format!("request carries {bytes} bytes, over the {}-byte limit", limits.max_entry_bytes));
    }
    Ok(())
}

async fn serve_admin(handle: &StoreHandle, request: AdminRequest) -> Result<AdminReply, ServerError> {
    match request {
        AdminRequest::ChangePeer { region_id, epoch, changes } => {
            if changes.len() > 16 {
                return Err(ServerError::InvalidRequest(format!("{} changes in one request; at most 16", changes.len())));
            }
            handle.change_peer(region_id, epoch, changes).await?;
            Ok(AdminReply::Applied)
        }
        AdminRequest::TransferLeader { region_id, to_store } => {
            handle.transfer_leader(region_id, to_store)?;
            Ok(AdminReply::Started)
        }
        AdminRequest::Split { region_id, split_key } => {
            if split_key.is_empty() {
                return Err(ServerError::InvalidRequest("a split key cannot be empty".into()));
            }
            handle.ask_split(region_id, split_key);
            Ok(AdminReply::Started)
        }
        AdminRequest::SetProcessFaults(_) | AdminRequest::SetClockRate { .. } | AdminRequest::RegionData { .. } => {
            Err(ServerError::InvalidRequest("not served here: a request about a whole process".into()))
        }
    }
}

/// The raftstore command a raw write becomes.
fn write_cmd(request: RawRequest) -> WriteCmd {
    match request {
        RawRequest::Put { key, value } => WriteCmd::put(key, value),
        RawRequest::Delete { key } => WriteCmd::delete(key),
        RawRequest::Cas { key, expected, new } => WriteCmd::Cas { key, expected, new },
        RawRequest::BatchWrite { pairs } => WriteCmd::Mutate(
            pairs
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => Mutation::Put { cf: crate::engine::Cf::Default, key, value },
                    None => Mutation::Delete { cf: crate::engine::Cf::Default, key },
                })
                .collect(),
        ),
        RawRequest::Get { .. } | RawRequest::Scan { .. } => unreachable!("reads are served as reads"),
    }
}

fn read_reply(result: ReadResult) -> RawReply {
    match result {
        ReadResult::Value(v) => RawReply::Value(v),
        ReadResult::Pairs(p) => RawReply::Pairs(p),
        ReadResult::Txn(_) => unreachable!("a raw read answers raw results"),
    }
}

fn write_reply(result: WriteResult) -> RawReply {
    match result {
        WriteResult::Done => RawReply::Done,
        WriteResult::Cas { succeeded, previous } => RawReply::Cas { succeeded, previous },
        WriteResult::Txn(_) => unreachable!("a raw write answers raw results"),
    }
}

/// Refuses what can never succeed: keys outside the raw key space, an empty
/// batch, a zero scan limit, more bytes than one entry may carry.
fn check(cmd: &RawRequest, limits: Limits) -> Result<(), ServerError> {
    let invalid = |message: String| Err(ServerError::InvalidRequest(message));
    if let Some(key) = cmd.keys().into_iter().find(|k| keys::decode_raw_key(k).is_err()) {
        return invalid(format!("key {key:?} is not in the raw key space (prefix {:?})", keys::RAW_PREFIX as char));
    }
    let bytes = match cmd {
        RawRequest::Put { key, value } => key.len() + value.len(),
        RawRequest::Cas { key, expected, new } => key.len() + expected.as_ref().map_or(0, Vec::len) + new.as_ref().map_or(0, Vec::len),
        RawRequest::Get { key } | RawRequest::Delete { key } => key.len(),
        RawRequest::BatchWrite { pairs } => {
            if pairs.is_empty() {
                return invalid("a batch write needs at least one key".into());
            }
            pairs.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum()
        }
        RawRequest::Scan { start, end, limit } => {
            if *limit == 0 {
                return invalid("scan limit must be positive".into());
            }
            if end.as_slice() > keys::RAW_MAX_KEY {
                return invalid(format!("scan end {end:?} is past the raw key space"));
            }
            start.len() + end.len()
        }
    };
    if bytes > limits.max_entry_bytes {
        return invalid(format!("request carries {bytes} bytes, over the {}-byte limit", limits.max_entry_bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RegionEpoch;
    use crate::proto::RegionError;
    use crate::raftstore::{RegionResult, StoreMsg};
    use futures::channel::mpsc;
    use futures::StreamExt;

    const LIMITS: Limits = Limits { max_entry_bytes: 64 };

    fn raw(key: &str) -> Vec<u8> {
        keys::raw_key(key.as_bytes())
    }

    fn request(cmd: RawRequest) -> Vec<u8> {
        RpcRequest::Kv(KvRequest { region_id: 4, epoch: RegionEpoch::new(1, 2), cmd }).encode()
    }

    /// A store loop stand-in: answers every request with `answer` and records
    /// what reached it.
    fn fake_store(answer: RegionResult<()>) -> (StoreHandle, futures::channel::mpsc::UnboundedReceiver<String>) {
        let (tx, mut inbox) = mpsc::channel::<StoreMsg>(16);
        let (seen_tx, seen) = mpsc::unbounded();
        madsim::task::spawn(async move {
            while let Some(msg) = inbox.next().await {
                match msg {
                    StoreMsg::Write { region_id, epoch, cmd, callback } => {
                        let _ = seen_tx.unbounded_send(format!("write {region_id} {epoch} {cmd:?}"));
                        let _ = callback.send(answer.clone().map(|()| WriteResult::Done));
                    }
                    StoreMsg::Read { region_id, cmd, callback, .. } => {
                        let _ = seen_tx.unbounded_send(format!("read {region_id} {cmd:?}"));
                        let _ = callback.send(answer.clone().map(|()| ReadResult::Value(Some(b"v".to_vec()))));
                    }
                    _ => {}
                }
            }
        });
        (StoreHandle::new(tx), seen)
    }

    #[madsim::test]
    async fn requests_reach_their_region_as_raftstore_commands() {
        let (handle, mut seen) = fake_store(Ok(()));
        let put = serve(&handle, LIMITS, &request(RawRequest::Put { key: raw("a"), value: b"1".to_vec() }), None).await;
        assert_eq!(put, RpcResponse::Kv(Ok(RawReply::Done)));
        assert_eq!(seen.next().await.unwrap(), format!("write 4 conf_ver=1 version=2 {:?}", WriteCmd::put(raw("a"), b"1".to_vec())));
        let batch = RawRequest::BatchWrite { pairs: vec![(raw("a"), None), (raw("b"), Some(b"2".to_vec()))] };
        assert_eq!(serve(&handle, LIMITS, &request(batch), None).await, RpcResponse::Kv(Ok(RawReply::Done)));
        let expected = WriteCmd::Mutate(vec![
            Mutation::Delete { cf: crate::engine::Cf::Default, key: raw("a") },
            Mutation::Put { cf: crate::engine::Cf::Default, key: raw("b"), value: b"2".to_vec() },
        ]);
        assert_eq!(seen.next().await.unwrap(), format!("write 4 conf_ver=1 version=2 {expected:?}"));
        let get = serve(&handle, LIMITS, &request(RawRequest::Get { key: raw("a") }), None).await;
        assert_eq!(get, RpcResponse::Kv(Ok(RawReply::Value(Some(b"v".to_vec())))));
        assert_eq!(seen.next().await.unwrap(), format!("read 4 {:?}", ReadCmd::Get { key: raw("a") }));
    }

    #[madsim::test]
    async fn region_errors_pass_through_typed() {
        let error = RegionError::NotLeader { region_id: 4, leader: None };
        let (handle, _seen) = fake_store(Err(error.clone()));
        let answer = serve(&handle, LIMITS, &request(RawRequest::Delete { key: raw("a") }), None).await;
        assert_eq!(answer, RpcResponse::Kv(Err(ServerError::Region(error))));
    }

    #[madsim::test]
    async fn invalid_and_malformed_requests_never_reach_the_store() {
        let (handle, mut seen) = fake_store(Ok(()));
        let invalid = |r: RpcResponse| matches!(r, RpcResponse::Kv(Err(ServerError::InvalidRequest(_))));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::Get { key: b"no-prefix".to_vec() }), None).await));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::Get { key: keys::txn_key(b"a") }), None).await));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::Put { key: raw("a"), value: vec![0; 64] }), None).await));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::Scan { start: raw("a"), end: vec![], limit: 0 }), None).await));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::Scan { start: raw("a"), end: keys::txn_key(b""), limit: 1 }), None).await));
        assert!(invalid(serve(&handle, LIMITS, &request(RawRequest::BatchWrite { pairs: vec![] }), None).await));
        assert!(matches!(serve(&handle, LIMITS, &[1, 2, 3], None).await, RpcResponse::Rejected(ServerError::Malformed(_))));
        drop(handle);
        assert_eq!(seen.next().await, None, "nothing reached the store");
    }
}
