//! What a region replicates through raft, what reads ask, and what they answer.
//!
//! Write commands are decided at apply time, so every replica computes the same
//! outcome from the same log: a compare-and-swap compares against the state the
//! entry is applied to, not the state it was proposed against.

use crate::engine::KvPair;
use crate::meta::{Peer, Region, RegionEpoch, RegionId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCmd {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Sets `key` to `new` (None deletes) if its current value equals `expected`
    /// (None = absent).
    Cas {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
}

impl WriteCmd {
    pub fn key(&self) -> &[u8] {
        match self {
            WriteCmd::Put { key, .. } | WriteCmd::Delete { key } | WriteCmd::Cas { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    Done,
    Cas { succeeded: bool, previous: Option<Vec<u8>> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCmd {
    /// Truncates the log up to and including `index`, whose term is `term`.
    CompactLog { index: u64, term: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmdBody {
    Write(WriteCmd),
    Admin(AdminCmd),
}

/// The payload of a normal raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftCmd {
    pub region_id: RegionId,
    /// The epoch the proposer saw; checked again at apply time.
    pub epoch: RegionEpoch,
    pub body: CmdBody,
}

impl RaftCmd {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("commands serialize")
    }

    /// Decodes an entry's data. A committed entry that does not decode is corrupt
    /// state: the caller crashes the node.
    pub fn decode(data: &[u8]) -> Result<RaftCmd, bincode::Error> {
        bincode::deserialize(data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadCmd {
    Get {
        key: Vec<u8>,
    },
    /// Up to `limit` pairs from `[start, end)`, clipped to the region (empty end =
    /// to the region's end).
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    Value(Option<Vec<u8>>),
    Pairs(Vec<KvPair>),
}

/// Why a region could not serve a request. Every variant tells the client what to
/// do next: retry elsewhere, refresh its routing, or back off.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum RegionError {
    #[error("region {region_id}: not leader (leader hint: {leader:?})")]
    NotLeader { region_id: RegionId, leader: Option<Peer> },
    #[error("region {region_id} not found on this store")]
    RegionNotFound { region_id: RegionId },
    #[error("key {key:?} is not in region {region_id} [{start_key:?}, {end_key:?})")]
    KeyNotInRegion { key: Vec<u8>, region_id: RegionId, start_key: Vec<u8>, end_key: Vec<u8> },
    #[error("epoch not match: {message}")]
    EpochNotMatch { message: String, current_regions: Vec<Region> },
    #[error("stale command: superseded by a new leader's log")]
    StaleCommand,
    #[error("server is busy: {reason}")]
    ServerIsBusy { reason: String },
    /// The command was handed to raft but its fate is unknown (the store stopped
    /// before it answered). It may or may not be applied; never retry blindly.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String },
}

impl RegionError {
    /// True if the command certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        !matches!(self, RegionError::OutcomeUnknown { .. })
    }
}

pub type RegionResult<T> = Result<T, RegionError>;
