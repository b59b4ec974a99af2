//! Request / response over the datagram transport: ids, the pending map,
//! timeouts and the task that hands each response to its caller.
//!
//! Used by every caller of a service: the raw client today, the PD client, the
//! transaction client and the stores' heartbeats next. A caller sends an
//! [`RpcRequest`] to an address and waits at most its timeout; a response that
//! arrives later (or twice) finds no one waiting and is dropped.

use crate::proto::{RpcRequest, RpcResponse};
#[cfg(madsim)]
use crate::transport::NetFaults;
use crate::transport::{Frame, Transport};
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Why a call got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RpcError {
    #[error("{addr} did not answer within {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("undecodable response from {addr}: {reason}")]
    Undecodable { addr: SocketAddr, reason: String },
    /// The request never left this node: `addr` refused the connection (or
    /// did moments ago). Safe to retry, a write included.
    #[error("{addr} is unreachable: the request was not sent")]
    NotSent { addr: SocketAddr },
}

/// A caller waiting for its response; `None` tells it the request was not sent.
type Pending = Arc<Mutex<BTreeMap<u64, oneshot::Sender<Option<Vec<u8>>>>>>;

/// One endpoint that calls services. Cheap to share behind an `Arc`.
pub struct RpcClient {
    transport: Transport,
    pending: Pending,
    next_id: Mutex<u64>,
}

impl RpcClient {
    /// Binds `local` and starts the task that routes responses to callers.
    pub async fn bind(local: SocketAddr) -> std::io::Result<RpcClient> {
        Self::start(Transport::bind(local).await?)
    }

    /// Like [`RpcClient::bind`], with faults injected into what it sends
    /// (simulation only).
    #[cfg(madsim)]
    pub async fn bind_with_faults(local: SocketAddr, faults: Option<Arc<NetFaults>>) -> std::io::Result<RpcClient> {
        Self::start(Transport::bind_with_faults(local, faults).await?)
    }

    fn start(transport: Transport) -> std::io::Result<RpcClient> {
        let pending: Pending = Arc::default();
        let (receiver, dispatch) = (transport.clone(), pending.clone());
        madsim::task::spawn(async move {
            while let Ok((frame, _from)) = receiver.recv().await {
                if let Ok(Frame::Response { id, payload }) = frame {
                    if let Some(tx) = dispatch.lock().expect("pending lock").remove(&id) {
                        let _ = tx.send(Some(payload));
                    }
                }
            }
        });
        // A request that could not leave fails at once instead of timing out.
        let not_sent = Arc::downgrade(&pending);
        transport.on_not_sent(Box::new(move |_to, id| {
            if let Some(tx) = not_sent.upgrade().and_then(|p| p.lock().expect("pending lock").remove(&id)) {
                let _ = tx.send(None);
            }
        }));
        Ok(RpcClient { transport, pending, next_id: Mutex::new(0) })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends `request` to `addr` and waits up to `timeout` for its answer.
    pub async fn call(&self, addr: SocketAddr, request: &RpcRequest, timeout: Duration) -> Result<RpcResponse, RpcError> {
        let id = {
            let mut next = self.next_id.lock().expect("id lock");
            *next += 1;
            *next
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.transport.send(addr, &Frame::Request { id, payload: request.encode() });
        let answer = madsim::time::timeout(timeout, rx).await;
        self.pending.lock().expect("pending lock").remove(&id);
        match answer {
            Ok(Ok(Some(payload))) => RpcResponse::decode(&payload).map_err(|reason| RpcError::Undecodable { addr, reason }),
            Ok(Ok(None)) => Err(RpcError::NotSent { addr }),
            _ => Err(RpcError::Timeout { addr, after: timeout }),
        }
    }

    /// Requests not yet answered (for tests and traces).
    pub fn in_flight(&self) -> usize {
        self.pending.lock().expect("pending lock").len()
    }
}
