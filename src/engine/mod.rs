//! Storage engines: ordered key-value stores with column families.
//!
//! Each store opens two engines, as TiKV does: the **raft engine** (raft logs and
//! raft state, in the `raft` CF) and the **kv engine** (the data CFs `default`,
//! `lock` and `write`, plus apply and region state). Everything above this layer sees
//! only the [`Engine`] trait:
//!
//! * writes are atomic [`WriteBatch`]es, each with a `sync` flag; a batch is either
//!   wholly visible or not at all, and only a synced batch (or one a later sync
//!   covers) is promised to survive a crash;
//! * reads go through a consistent [`Snapshot`] (point gets, forward and reverse
//!   range scans) that later writes do not disturb;
//! * [`Engine::io`] charges simulated IO time, so a slow disk slows whoever reads or
//!   writes it, snapshot generation and apply included.
//!
//! Two implementations: [`RocksEngine`](rocks::RocksEngine) on RocksDB, compiled in
//! the real build only, and [`SimEngine`](sim::SimEngine), the simulated disk whose
//! state outlives a simulated node and whose crash model the testbed drives. Both are
//! held to the same [`conformance`] suite.
//!
//! Deliberately not implemented: merge operators, compaction filters, ingestion of
//! external SST files (snapshots are applied as ordinary write batches).

pub mod conformance;
#[cfg(test)]
pub mod mem;
#[cfg(not(madsim))]
pub mod rocks;
pub mod sim;

use std::future::Future;
use thiserror::Error;

pub use sim::{CrashReport, Damage, IoProfile, SimDisk, SimEngine};

/// A column family. The order here is the order of [`ALL_CFS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Cf {
    /// Percolator's data column: large values, keyed by key + start_ts.
    Default,
    /// Percolator locks, keyed by key.
    Lock,
    /// Commit records, keyed by key + commit_ts.
    Write,
    /// Raft logs and raft state (the raft engine uses only this CF).
    Raft,
}

pub const ALL_CFS: [Cf; 4] = [Cf::Default, Cf::Lock, Cf::Write, Cf::Raft];
/// The column families that hold user data (what a region snapshot carries).
pub const DATA_CFS: [Cf; 3] = [Cf::Default, Cf::Lock, Cf::Write];

impl Cf {
    pub fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
            Cf::Raft => "raft",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What went wrong inside an engine. None of these is a client's fault: above the
/// engine, a write error in the apply path crashes the node rather than let
/// replicas diverge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("engine {0} is closed (its node crashed or it was reopened elsewhere)")]
    Closed(String),
    #[error("engine IO error: {0}")]
    Io(String),
    /// A stored value no longer matches its checksum.
    #[error("{engine}: the {cf} value at key {key:?} fails its checksum")]
    Corruption { engine: String, cf: &'static str, key: Vec<u8> },
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// One change inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `[start, end)`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

impl Mutation {
    /// The column family it touches.
    pub fn cf(&self) -> Cf {
        match self {
            Mutation::Put { cf, .. } | Mutation::Delete { cf, .. } | Mutation::DeleteRange { cf, .. } => *cf,
        }
    }
}

/// An ordered list of mutations applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    mutations: Vec<Mutation>,
    size_bytes: usize,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        self.size_bytes += key.len() + value.len();
        self.mutations.push(Mutation::Put { cf, key, value });
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        let key = key.into();
        self.size_bytes += key.len();
        self.mutations.push(Mutation::Delete { cf, key });
    }

    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        let (start, end) = (start.into(), end.into());
        self.size_bytes += start.len() + end.len();
        self.mutations.push(Mutation::DeleteRange { cf, start, end });
    }

    /// Appends one mutation as it is.
    pub fn push(&mut self, mutation: Mutation) {
        match mutation {
            Mutation::Put { cf, key, value } => self.put(cf, key, value),
            Mutation::Delete { cf, key } => self.delete(cf, key),
            Mutation::DeleteRange { cf, start, end } => self.delete_range(cf, start, end),
        }
    }

    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// Bytes of keys and values: what the simulated disk charges write time for.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }
}

/// What kind of IO is being charged; the simulated disk can slow each kind apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    Read,
    Write,
    Sync,
    /// Reading a region's data to build a raft snapshot.
    SnapshotRead,
    /// Writing a received raft snapshot into the kv engine.
    SnapshotWrite,
}

/// A key and its value, as scans return them.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A consistent, read-only view of an engine at one moment.
///
/// **Failed reads.** A value the disk cannot give back intact (its checksum
/// does not match, or its block cannot be read) does not come back as an
/// error from `get` or `iter`: it reads as absent, and the snapshot remembers
/// the failure in [`Snapshot::failure`]. Whatever is computed from a snapshot
/// must be checked there before it leaves the store (a read's answer, an
/// apply batch, a raft snapshot): if a read failed, the result is thrown away
/// and the replica is repaired from its peers. This keeps the many readers
/// above (MVCC, apply, split checks) free of error plumbing for a case that
/// always ends the same way.
pub trait Snapshot: Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Keys in `[start, end)` (`end = None`: to the end of the CF), ascending, or
    /// descending when `reverse`. Iterating stops whenever the caller stops.
    fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a>;

    /// At most `limit` pairs of [`Snapshot::iter`].
    fn scan(&self, cf: Cf, start: &[u8], end: Option<&[u8]>, limit: usize, reverse: bool) -> Result<Vec<KvPair>> {
        self.iter(cf, start, end, reverse).take(limit).collect()
    }

    /// The first read of this snapshot that failed, if any (see above).
    fn failure(&self) -> Option<EngineError> {
        None
    }

    /// Bytes of keys and values in `[start, end)`: the split checker's measure.
    /// Exact in both engines (a scan); large deployments would read SST properties.
    fn approximate_size(&self, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Result<u64> {
        let mut size = 0u64;
        for pair in self.iter(cf, start, end, false) {
            let (k, v) = pair?;
            size += (k.len() + v.len()) as u64;
        }
        Ok(size)
    }
}

/// What MVCC needs to read: point reads and ordered ranges. Every snapshot is
/// one; so is a batch being applied seen over the snapshot it is applied to
/// (`raftstore::apply`), so later commands of a batch see earlier ones.
pub trait ReadView {
    fn read(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn range<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a>;
}

impl<S: Snapshot> ReadView for S {
    fn read(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(cf, key)
    }

    fn range<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        self.iter(cf, start, end, reverse)
    }
}

/// An ordered, column-family key-value store.
pub trait Engine: Clone + Send + Sync + 'static {
    type Snap: Snapshot;

    /// A name for traces and errors, e.g. `store-1/kv`.
    fn name(&self) -> &str;

    /// Applies `batch` atomically. With `sync`, the batch and every earlier one are
    /// durable when this returns.
    fn write(&self, batch: &WriteBatch, sync: bool) -> impl Future<Output = Result<()>> + Send;

    /// A consistent view of the engine as of now.
    fn snapshot(&self) -> Self::Snap;

    /// Waits for the simulated IO time of an operation of `kind` moving `bytes`.
    /// Real engines pay real IO and return at once.
    fn io(&self, kind: IoKind, bytes: usize) -> impl Future<Output = ()> + Send;

    /// A point read through a fresh snapshot, paying read IO.
    fn get(&self, cf: Cf, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        let result = self.snapshot().get(cf, key);
        let bytes = key.len() + result.as_ref().ok().and_then(|v| v.as_ref()).map_or(0, Vec::len);
        async move {
            self.io(IoKind::Read, bytes).await;
            result
        }
    }
}
