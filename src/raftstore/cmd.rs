//! What a region replicates through raft, what reads ask, and what they answer.
//!
//! A write command is a list of mutations over any data CFs and any keys of the
//! region, applied atomically in one batch (a raw put is one mutation; a
//! Percolator prewrite is many, over three CFs), or a compare-and-swap. A
//! compare-and-swap is decided at apply time, so every replica computes the same
//! outcome from the same log: it compares against the state the entry is applied
//! to, not the state it was proposed against. Keys are encoded keys (see
//! `codec::keys`); the engine key is `z` + key.

use crate::engine::{Cf, KvPair};
use crate::meta::{RegionEpoch, RegionId};
pub use crate::proto::pd::SplitIds;
pub use crate::proto::{ChangeKind, PeerChange};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub use crate::proto::{RegionError, RegionResult};
pub use crate::proto::{TxnRead, TxnResult, TxnWrite};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    Put { cf: Cf, key: Vec<u8>, value: Vec<u8> },
    Delete { cf: Cf, key: Vec<u8> },
}

impl Mutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key, .. } => key,
        }
    }

    pub fn cf(&self) -> Cf {
        match self {
            Mutation::Put { cf, .. } | Mutation::Delete { cf, .. } => *cf,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCmd {
    /// Applies every mutation, atomically.
    Mutate(Vec<Mutation>),
    /// Sets `key` (default CF) to `new` (None deletes) if its current value
    /// equals `expected` (None = absent).
    Cas { key: Vec<u8>, expected: Option<Vec<u8>>, new: Option<Vec<u8>> },
    /// A Percolator command, decided at apply time by the `mvcc` module against
    /// the state the entry is applied to (user keys; see `proto::txn`).
    Txn(TxnWrite),
}

impl WriteCmd {
    pub fn put(key: Vec<u8>, value: Vec<u8>) -> WriteCmd {
        WriteCmd::Mutate(vec![Mutation::Put { cf: Cf::Default, key, value }])
    }

    pub fn delete(key: Vec<u8>) -> WriteCmd {
        WriteCmd::Mutate(vec![Mutation::Delete { cf: Cf::Default, key }])
    }

    /// Every (encoded) key the command names: what must lie in the region.
    /// Raw keys are borrowed; transactional ones are encoded here.
    pub fn keys(&self) -> Vec<Cow<'_, [u8]>> {
        match self {
            WriteCmd::Mutate(mutations) => mutations.iter().map(|m| Cow::Borrowed(m.key())).collect(),
            WriteCmd::Cas { key, .. } => vec![Cow::Borrowed(key.as_slice())],
            WriteCmd::Txn(cmd) => cmd.keys().into_iter().map(|k| Cow::Owned(crate::codec::keys::txn_key(k))).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    Done,
    Cas { succeeded: bool, previous: Option<Vec<u8>> },
    Txn(TxnResult),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCmd {
    /// Truncates the log up to and including `index`, whose term is `term`.
    CompactLog { index: u64, term: u64 },
    /// Splits the region at `split_keys` (ascending, strictly inside it): the
    /// region keeps the first range, and each later range becomes a new region
    /// with the ids of the matching `ids` entry (peer ids in the order of the
    /// region's peers, on the same stores).
    BatchSplit { split_keys: Vec<Vec<u8>>, ids: Vec<SplitIds> },
    /// Changes the region's membership (see the `conf_change` module): one change
    /// is a simple change, several enter joint consensus, none leaves it. The
    /// raft configuration changes when the entry is **applied**, never earlier.
    ChangePeer { changes: Vec<PeerChange> },
}

impl AdminCmd {
    /// Which parts of the epoch the command must match, (version, conf_ver), as
    /// in TiKV's table: log compaction touches neither; a split (next) checks
    /// both, a membership change conf_ver.
    pub fn epoch_checks(&self) -> (bool, bool) {
        match self {
            AdminCmd::CompactLog { .. } => (false, false),
            AdminCmd::BatchSplit { .. } => (true, true),
            AdminCmd::ChangePeer { .. } => (false, true),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmdBody {
    Write(WriteCmd),
    Admin(AdminCmd),
}

impl CmdBody {
    /// (check version, check conf_ver): data commands depend on the key range
    /// (version); admin commands as their kind says.
    pub fn epoch_checks(&self) -> (bool, bool) {
        match self {
            CmdBody::Write(_) => (true, false),
            CmdBody::Admin(admin) => admin.epoch_checks(),
        }
    }
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
    /// An MVCC read (user keys), clipped to the region.
    Txn(TxnRead),
}

impl ReadCmd {
    /// The (encoded) keys that must lie in the region.
    pub fn keys(&self) -> Vec<Cow<'_, [u8]>> {
        match self {
            ReadCmd::Get { key } => vec![Cow::Borrowed(key.as_slice())],
            ReadCmd::Scan { start, .. } => vec![Cow::Borrowed(start.as_slice())],
            ReadCmd::Txn(TxnRead::Get { key, .. }) => vec![Cow::Owned(crate::codec::keys::txn_key(key))],
            // A transactional scan is clipped to the region it reached (the
            // client walks regions); a lock scan covers its region.
            ReadCmd::Txn(TxnRead::Scan { .. } | TxnRead::ScanLocks { .. }) => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    Value(Option<Vec<u8>>),
    Pairs(Vec<KvPair>),
    Txn(TxnResult),
}
