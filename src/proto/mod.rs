//! The wire protocol: every request, reply and error that crosses between a
//! client, a store and (next) PD, in one place.
//!
//! Each RPC is an [`RpcRequest`] whose variant names the service it is for (the
//! service tag), answered by the [`RpcResponse`] variant of the same service.
//! Both travel as our own bincode bytes inside a transport frame, in the
//! simulator too. Errors are typed: a [`RegionError`] says what the client should
//! do next (retry elsewhere, refresh routing, back off), a [`KeyError`] belongs to
//! one key of a transactional command, and a [`ServerError`] wraps both plus the
//! requests that can never succeed.
//!
//! This module is part of the ground floor: it uses `meta` and nothing above it,
//! so the client can speak to stores without knowing their internals.

pub mod admin;
pub mod errors;
pub mod kv;
pub mod pd;
pub mod txn;

pub use admin::{AdminReply, AdminRequest, AdminResponse, ChangeKind, LinkFaults, PeerChange, ProcessFaults};
pub use errors::{KeyError, LockInfo, RegionError, RegionResult, ServerError};
pub use kv::{KvReply, KvRequest, KvResponse, RawReply, RawRequest};
pub use pd::{PdError, PdReply, PdRequest, PdResponse};
pub use txn::{TxnCmd, TxnMutation, TxnOp, TxnRead, TxnReply, TxnRequest, TxnResponse, TxnResult, TxnStatus, TxnWrite};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which service an RPC is for; the tag every envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// A store's raw key-value service.
    Kv,
    /// A store's transactional key-value service.
    Txn,
    /// The placement driver.
    Pd,
    /// A store's admin service (membership, leadership, splits).
    Admin,
}

/// An RPC request, tagged by service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RpcRequest {
    Kv(KvRequest),
    Txn(TxnRequest),
    Pd(PdRequest),
    Admin(AdminRequest),
}

/// An RPC response, tagged by the service that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcResponse {
    Kv(KvResponse),
    Txn(TxnResponse),
    Pd(PdResponse),
    Admin(AdminResponse),
    /// The receiver does not serve this service, or could not decode the request.
    Rejected(ServerError),
}

impl RpcRequest {
    pub fn service(&self) -> Service {
        match self {
            RpcRequest::Kv(_) => Service::Kv,
            RpcRequest::Txn(_) => Service::Txn,
            RpcRequest::Pd(_) => Service::Pd,
            RpcRequest::Admin(_) => Service::Admin,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("requests serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<RpcRequest, String> {
        decode(bytes)
    }
}

impl RpcResponse {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("responses serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<RpcResponse, String> {
        decode(bytes)
    }
}

/// Decodes bytes from the network: a bad length prefix cannot make it allocate
/// more than the bytes could hold.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    use bincode::Options;
    bincode::options().with_fixint_encoding().with_limit(bytes.len() as u64 * 2 + 64).deserialize(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RegionEpoch;

    #[test]
    fn requests_and_responses_round_trip_with_their_service_tag() {
        let request = RpcRequest::Kv(KvRequest { region_id: 7, epoch: RegionEpoch::new(2, 3), cmd: RawRequest::Get { key: b"rk".to_vec() } });
        assert_eq!(request.service(), Service::Kv);
        assert_eq!(RpcRequest::decode(&request.encode()).unwrap(), request);
        let response = RpcResponse::Kv(Err(ServerError::Region(RegionError::StaleCommand)));
        assert_eq!(RpcResponse::decode(&response.encode()).unwrap(), response);
    }

    #[test]
    fn garbage_is_an_error_not_a_huge_allocation() {
        assert!(RpcRequest::decode(&[0xff; 12]).is_err());
        assert!(RpcResponse::decode(&[]).is_err());
    }
}
