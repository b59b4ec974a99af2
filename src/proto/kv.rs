//! The key-value service: requests routed to one region, and their replies.
//!
//! Keys on this wire are **encoded keys** (see `codec::keys`): a raw key is the
//! user key behind the raw mode prefix, as clients build it. A store refuses a raw
//! request whose keys lie outside the raw key space.

use super::errors::ServerError;
use crate::meta::{RegionEpoch, RegionId};
use serde::{Deserialize, Serialize};

/// A request routed to one region, with the epoch the client believes it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvRequest {
    pub region_id: RegionId,
    pub epoch: RegionEpoch,
    pub cmd: RawRequest,
}

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
    /// Sets `key` to `new` (None deletes) if it holds `expected` (None = absent),
    /// decided when the command is applied.
    Cas {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
    /// Puts and deletes (`None`) of several keys of one region, applied atomically.
    BatchWrite {
        pairs: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// Up to `limit` pairs from `[start, end)`, stopping at the region's end.
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
}

impl RawRequest {
    /// Every key the request names (a scan: its start).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            RawRequest::Get { key } | RawRequest::Put { key, .. } | RawRequest::Delete { key } | RawRequest::Cas { key, .. } => vec![key],
            RawRequest::BatchWrite { pairs } => pairs.iter().map(|(k, _)| k.as_slice()).collect(),
            RawRequest::Scan { start, .. } => vec![start],
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, RawRequest::Get { .. } | RawRequest::Scan { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawReply {
    Value(Option<Vec<u8>>),
    Done,
    Cas { succeeded: bool, previous: Option<Vec<u8>> },
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
}

pub type KvReply = RawReply;
pub type KvResponse = Result<KvReply, ServerError>;
