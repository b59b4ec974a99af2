//! The RPC surface of a store.
//!
//! A store node runs [`run_store_node`]: it binds the node's transport, opens the
//! raftstore, and then serves every incoming frame: raft traffic goes to the store
//! loop, client requests are checked here (size limits, well-formedness) and then
//! handed to the region through a [`StoreHandle`], and each answer goes back to the
//! caller as a response frame carrying the request's id.
//!
//! Every failure a client can see is a typed [`ServerError`]: a region error (what
//! to do next is in the variant), an invalid request (never retry), or a request
//! that could not be decoded.

pub mod proto;

use crate::engine::Engine;
use crate::meta::StoreId;
use crate::raftstore::{EventSink, RaftStoreConfig, ReadCmd, ReadResult, Store, StoreHandle, WriteCmd, WriteResult};
use crate::transport::{Frame, NetFaults, Transport};
use proto::{RawReply, RawRequest, Request, Response, ServerError};
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    /// Faults injected into this node's outgoing traffic (simulation only).
    pub net_faults: Option<Arc<NetFaults>>,
}

/// Runs a store node until it is killed. Returns only if its network fails.
pub async fn run_store_node<E: Engine>(cfg: StoreNodeConfig, raft_engine: E, kv_engine: E) -> std::io::Result<()> {
    let transport = Transport::bind_with_faults(cfg.addr, cfg.net_faults.clone()).await?;
    let opened = Store::open(cfg.store_id, cfg.raftstore.clone(), raft_engine, kv_engine, transport.clone(), cfg.addresses.clone(), cfg.events.clone()).await;
    let Ok((store, handle)) = opened else {
        tracing::warn!(store = cfg.store_id, "engines closed while opening the store");
        return Ok(());
    };
    madsim::task::spawn(store.run());
    let limits = Limits { max_entry_bytes: cfg.raftstore.max_entry_bytes };
    loop {
        let (frame, from) = transport.recv().await?;
        match frame {
            Ok(Frame::Raft(envelopes)) => envelopes.into_iter().for_each(|e| handle.raft(e)),
            Ok(Frame::SnapshotChunk(chunk)) => handle.snapshot_chunk(from, chunk),
            Ok(Frame::Request { id, payload }) => {
                let (handle, transport) = (handle.clone(), transport.clone());
                madsim::task::spawn(async move {
                    let response = serve(&handle, limits, &payload).await;
                    transport.send(from, &Frame::Response { id, payload: response.encode() });
                });
            }
            Ok(Frame::Response { .. }) => {
                tracing::debug!(store = cfg.store_id, %from, "unexpected response frame")
            }
            Err(e) => {
                tracing::warn!(store = cfg.store_id, %from, error = %e, "rejected malformed frame")
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_entry_bytes: usize,
}

async fn serve(handle: &StoreHandle, limits: Limits, payload: &[u8]) -> Response {
    let request = match Request::decode(payload) {
        Ok(r) => r,
        Err(e) => return Response(Err(ServerError::Malformed(e))),
    };
    if let Err(e) = check_limits(&request.body, limits) {
        return Response(Err(e));
    }
    let (region_id, epoch) = (request.region_id, request.epoch);
    let reply = match request.body {
        RawRequest::Get { key } => handle.read(region_id, epoch, ReadCmd::Get { key }).await.map(|r| match r {
            ReadResult::Value(v) => RawReply::Value(v),
            ReadResult::Pairs(_) => unreachable!("get answers a value"),
        }),
        RawRequest::Scan { start, end, limit } => handle.read(region_id, epoch, ReadCmd::Scan { start, end, limit }).await.map(|r| match r {
            ReadResult::Pairs(p) => RawReply::Pairs(p),
            ReadResult::Value(_) => unreachable!("scan answers pairs"),
        }),
        RawRequest::Put { key, value } => handle.write(region_id, epoch, WriteCmd::Put { key, value }).await.map(write_reply),
        RawRequest::Delete { key } => handle.write(region_id, epoch, WriteCmd::Delete { key }).await.map(write_reply),
        RawRequest::Cas { key, expected, new } => handle.write(region_id, epoch, WriteCmd::Cas { key, expected, new }).await.map(write_reply),
    };
    Response(reply.map_err(ServerError::Region))
}

fn write_reply(result: WriteResult) -> RawReply {
    match result {
        WriteResult::Done => RawReply::Done,
        WriteResult::Cas { succeeded, previous } => RawReply::Cas { succeeded, previous },
    }
}

fn check_limits(body: &RawRequest, limits: Limits) -> Result<(), ServerError> {
    let bytes = match body {
        RawRequest::Put { key, value } => key.len() + value.len(),
        RawRequest::Cas { key, expected, new } => key.len() + expected.as_ref().map_or(0, Vec::len) + new.as_ref().map_or(0, Vec::len),
        RawRequest::Get { key } | RawRequest::Delete { key } => key.len(),
        RawRequest::Scan { start, end, limit } => {
            if *limit == 0 {
                return Err(ServerError::InvalidRequest("scan limit must be positive".into()));
            }
            start.len() + end.len()
        }
    };
    if bytes > limits.max_entry_bytes {
        return Err(ServerError::InvalidRequest(format!("request carries {bytes} bytes, over the {}-byte limit", limits.max_entry_bytes)));
    }
    Ok(())
}
