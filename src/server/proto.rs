//! The raw KV RPC: requests, replies and errors as they cross the wire.

use crate::engine::KvPair;
use crate::meta::{RegionEpoch, RegionId};
use crate::raftstore::RegionError;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawRequest {
    Get {
        key: Vec<u8>,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    Cas {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
    /// Up to `limit` pairs from `[start, end)`, stopping at the region's end.
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
}

/// A request routed to one region, with the epoch the client believes it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub region_id: RegionId,
    pub epoch: RegionEpoch,
    pub body: RawRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawReply {
    Value(Option<Vec<u8>>),
    Done,
    Cas { succeeded: bool, previous: Option<Vec<u8>> },
    Pairs(Vec<KvPair>),
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ServerError {
    #[error(transparent)]
    Region(#[from] RegionError),
    /// The request can never succeed as sent (too large, nonsensical).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request did not decode.
    #[error("malformed request: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Result<RawReply, ServerError>);

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    use bincode::Options;
    bincode::options().with_fixint_encoding().with_limit(bytes.len() as u64 * 2 + 64).deserialize(bytes).map_err(|e| e.to_string())
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("requests serialize")
    }
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        decode(bytes)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("responses serialize")
    }
    pub fn decode(bytes: &[u8]) -> Result<Response, String> {
        decode(bytes)
    }
}
