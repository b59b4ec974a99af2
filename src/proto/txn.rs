//! The transactional key-value service: Percolator's commands and MVCC reads,
//! each routed to one region.
//!
//! Keys on this wire are **user keys**: the store encodes them
//! (`codec::keys::txn_key`) to check them against the region's bounds and to
//! find them in the engine. A client routes a key by its encoded form.
//!
//! Reads ([`TxnRead`]) are served from a snapshot after ReadIndex or on the
//! lease, like raw reads. Writes ([`TxnWrite`]) are replicated through raft as
//! commands and **decided when applied**: every replica runs the same MVCC
//! action against the state the entry is applied to, so the outcome is a
//! function of the log (see the `raftstore::apply` module).

use super::errors::{KeyError, LockInfo};
use crate::meta::{RegionEpoch, RegionId};
use serde::{Deserialize, Serialize};

/// What a prewrite does to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Put(Vec<u8>),
    Delete,
    /// Lock the key without changing it (a read lock: `SELECT … FOR UPDATE`).
    Lock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMutation {
    pub key: Vec<u8>,
    pub op: TxnOp,
}

/// A transaction's fate, as its primary key tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Committed {
        commit_ts: u64,
    },
    RolledBack,
    /// Still locked and its TTL (from its start) not expired.
    Alive {
        ttl_ms: u64,
    },
}

/// Reads at a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnRead {
    Get {
        key: Vec<u8>,
        ts: u64,
    },
    /// Up to `limit` pairs with keys in `[start, end)` (empty end: unbounded),
    /// clipped to the region; descending from the end when `reverse`.
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        ts: u64,
        reverse: bool,
    },
    /// Up to `limit` of the region's locks whose start_ts ≤ `max_ts`.
    ScanLocks {
        max_ts: u64,
        limit: usize,
    },
}

/// Commands that write, decided at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnWrite {
    /// Locks every key for `start_ts` (all or none: any key error writes nothing).
    Prewrite { mutations: Vec<TxnMutation>, primary: Vec<u8>, start_ts: u64, ttl_ms: u64 },
    /// Turns the transaction's locks on `keys` into write records at `commit_ts`.
    Commit { keys: Vec<Vec<u8>>, start_ts: u64, commit_ts: u64 },
    /// Rolls back `keys`, always leaving a Rollback record.
    Rollback { keys: Vec<Vec<u8>>, start_ts: u64 },
    /// The status of the transaction from its primary at `current_ts`; an
    /// expired or missing transaction is rolled back.
    CheckTxnStatus { primary: Vec<u8>, start_ts: u64, current_ts: u64 },
    /// Commits (`Some`) or rolls back (`None`) every lock of transaction
    /// `start_ts` in the region.
    ResolveLock { start_ts: u64, commit_ts: Option<u64> },
    /// Extends the TTL of the transaction's primary lock.
    TxnHeartbeat { primary: Vec<u8>, start_ts: u64, ttl_ms: u64 },
    /// Drops the region's versions below `safe_point` that no read at or
    /// after it can see.
    Gc { safe_point: u64 },
}

impl TxnWrite {
    /// The user keys the command names (region-wide commands name none).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            TxnWrite::Prewrite { mutations, .. } => mutations.iter().map(|m| m.key.as_slice()).collect(),
            TxnWrite::Commit { keys, .. } | TxnWrite::Rollback { keys, .. } => keys.iter().map(Vec::as_slice).collect(),
            TxnWrite::CheckTxnStatus { primary, .. } | TxnWrite::TxnHeartbeat { primary, .. } => vec![primary],
            TxnWrite::ResolveLock { .. } | TxnWrite::Gc { .. } => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnCmd {
    Read(TxnRead),
    Write(TxnWrite),
}

/// A transactional request routed to one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub region_id: RegionId,
    pub epoch: RegionEpoch,
    pub cmd: TxnCmd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnReply {
    Value(Option<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    Done,
    Status(TxnStatus),
    /// The TTL in force after a heartbeat.
    Ttl(u64),
    Locks(Vec<LockInfo>),
}

/// A command that reached its region: its answer, or the keys it failed on.
pub type TxnResult = Result<TxnReply, Vec<KeyError>>;

/// Key errors travel inside `ServerError::Key`.
pub type TxnResponse = Result<TxnReply, super::ServerError>;
