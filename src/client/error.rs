//! What a client call can end in.

use crate::meta::StoreId;
use crate::proto::ServerError;
use crate::rpc::RpcError;
use thiserror::Error;

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttemptError {
    /// No (usable) answer.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The store answered with an error.
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("no address known for store {0}")]
    NoAddress(StoreId),
    /// Routing could not say which region holds the key (PD does not know it
    /// yet, or cannot be reached and the cache has no answer).
    #[error("no region known for key {key:?}: {reason}")]
    NoRegion { key: Vec<u8>, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The operation certainly did not take effect; `last` is the final failure.
    #[error("failed after {attempts} attempts: {last}")]
    Failed { attempts: usize, last: AttemptError },
    /// A write whose outcome is unknown (timed out after it may have reached raft).
    /// It may still take effect later; it must not be retried blindly.
    #[error("outcome unknown: {0}")]
    Unknown(AttemptError),
    /// The request can never succeed as sent (too large, outside the key space).
    #[error("invalid request: {0}")]
    Invalid(ServerError),
    /// No region is known for the key.
    #[error("no region covers key {key:?}")]
    NoRegion { key: Vec<u8> },
    /// PD, asked where a key lives, could not say (unreachable, or an error).
    #[error("pd: {0}")]
    Pd(crate::pd_client::PdClientError),
    /// The store answered with a reply of the wrong kind: a protocol bug.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
}
