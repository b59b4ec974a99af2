//! Errors as they cross the wire.

use crate::meta::{Peer, Region, RegionId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    /// A split that cannot be applied as asked (keys outside the region or out
    /// of order, ids that do not match the replicas).
    #[error("region {region_id}: split refused: {reason}")]
    SplitRefused { region_id: RegionId, reason: String },
    /// A membership change was proposed while another is not yet applied:
    /// at most one is pending per region. Retry once it is applied.
    #[error("region {region_id}: a membership change is pending (proposed at index {pending_index}, applied {applied_index})")]
    ConfChangePending { region_id: RegionId, pending_index: u64, applied_index: u64 },
    /// A membership change that cannot be made as asked (see the reason).
    #[error("region {region_id}: membership change refused: {reason}")]
    ConfChangeRefused { region_id: RegionId, reason: String },
    /// The command was handed to raft but its fate is unknown (the store stopped
    /// before it answered). It may or may not be applied; never retry blindly.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// This replica's data failed a checksum (or could not be read); it
    /// serves nothing until it is repaired from its peers. Retry: leadership
    /// moves to a healthy replica.
    #[error("region {region_id}: replica data is damaged and being repaired: {reason}")]
    DataCorrupted { region_id: RegionId, reason: String },
}

impl RegionError {
    /// True if the command certainly did not take effect.
    pub fn is_definite(&self) -> bool {
        !matches!(self, RegionError::OutcomeUnknown { .. })
    }
}

pub type RegionResult<T> = Result<T, RegionError>;

/// A lock as a reader or a conflicting writer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub key: Vec<u8>,
    pub primary: Vec<u8>,
    pub start_ts: u64,
    pub ttl_ms: u64,
}

/// Why one key of a transactional command failed. A command over many keys
/// answers one of these per failed key.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum KeyError {
    #[error("key {:?} is locked by transaction {} (primary {:?})", .0.key, .0.start_ts, .0.primary)]
    KeyIsLocked(LockInfo),
    #[error("write conflict on {key:?}: transaction {start_ts} meets a write committed at {conflict_commit_ts} by {conflict_start_ts}")]
    WriteConflict { key: Vec<u8>, start_ts: u64, conflict_start_ts: u64, conflict_commit_ts: u64 },
    #[error("transaction {start_ts} not found on key {key:?} (rolled back or never prewritten)")]
    TxnNotFound { key: Vec<u8>, start_ts: u64 },
    #[error("transaction already committed at {commit_ts}")]
    Committed { key: Vec<u8>, commit_ts: u64 },
    #[error("key {key:?} already exists")]
    AlreadyExist { key: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ServerError {
    #[error(transparent)]
    Region(#[from] RegionError),
    /// Per-key failures of a command that reached its region.
    #[error("{} key error(s), first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    Key(Vec<KeyError>),
    /// The request can never succeed as sent (too large, nonsensical, wrong key space).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request did not decode.
    #[error("malformed request: {0}")]
    Malformed(String),
}
