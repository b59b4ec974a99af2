//! `RocksEngine`: the engine a real deployment runs on, backed by RocksDB.
//!
//! Compiled only in the real build: inside the simulator RocksDB's own threads and
//! clocks would escape madsim, so simulation uses [`SimEngine`](super::SimEngine) and
//! the [`conformance`](super::conformance) suite keeps the two honest.

use super::Mutation;
use super::{Cf, Engine, EngineError, IoKind, KvPair, Result, Snapshot, WriteBatch, ALL_CFS};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, SnapshotWithThreadMode, WriteOptions, DB};
use std::path::Path;
use std::sync::Arc;

/// A RocksDB instance with simkv's column families.
#[derive(Clone)]
pub struct RocksEngine {
    name: Arc<str>,
    db: Arc<DB>,
}

fn io_error(err: rocksdb::Error) -> EngineError {
    EngineError::Io(err.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path` with every CF of [`ALL_CFS`].
    pub fn open(name: impl Into<String>, path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let descriptors = ALL_CFS.iter().map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db = DB::open_cf_descriptors(&options, path, descriptors).map_err(io_error)?;
        Ok(RocksEngine { name: name.into().into(), db: Arc::new(db) })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(cf.name()).expect("every CF is created on open")
    }
}

impl Engine for RocksEngine {
    type Snap = RocksSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => rocks_batch.put_cf(self.cf(*cf), key, value),
                Mutation::Delete { cf, key } => rocks_batch.delete_cf(self.cf(*cf), key),
                Mutation::DeleteRange { cf, start, end } => rocks_batch.delete_range_cf(self.cf(*cf), start, end),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(rocks_batch, &options).map_err(io_error)
    }

    fn snapshot(&self) -> RocksSnapshot {
        let snapshot = self.db.snapshot();
        // SAFETY: the snapshot borrows the DB, which `RocksSnapshot` keeps alive in
        // an `Arc` declared after it, so the snapshot is released first on drop.
        let snapshot = unsafe { std::mem::transmute::<SnapshotWithThreadMode<'_, DB>, SnapshotWithThreadMode<'static, DB>>(snapshot) };
        RocksSnapshot { snapshot, engine: self.clone(), failure: std::sync::Mutex::new(None) }
    }

    async fn io(&self, _kind: IoKind, _bytes: usize) {}
}

/// A RocksDB snapshot that owns a handle on its database.
pub struct RocksSnapshot {
    // Field order matters: fields drop in declaration order.
    snapshot: SnapshotWithThreadMode<'static, DB>,
    engine: RocksEngine,
    /// The first read that failed (RocksDB verifies block checksums on every
    /// read): see [`Snapshot::failure`].
    failure: std::sync::Mutex<Option<EngineError>>,
}

impl RocksSnapshot {
    /// Records a failed read; the caller reads it as absent.
    fn failed(&self, cf: Cf, key: &[u8], err: rocksdb::Error) {
        let err = match err.kind() {
            rocksdb::ErrorKind::Corruption => EngineError::Corruption { engine: self.engine.name.to_string(), cf: cf.name(), key: key.to_vec() },
            _ => io_error(err),
        };
        self.failure.lock().expect("failure mutex").get_or_insert(err);
    }
}

impl Snapshot for RocksSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut options = ReadOptions::default();
        options.set_snapshot(&self.snapshot);
        match self.engine.db.get_cf_opt(self.engine.cf(cf), key, &options) {
            Ok(value) => Ok(value),
            Err(e) => {
                self.failed(cf, key, e);
                Ok(None)
            }
        }
    }

    fn failure(&self) -> Option<EngineError> {
        self.failure.lock().expect("failure mutex").clone()
    }

    fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: Option<&[u8]>, reverse: bool) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        if end.is_some_and(|end| end <= start) {
            return Box::new(std::iter::empty());
        }
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(start.to_vec());
        if let Some(end) = end {
            options.set_iterate_upper_bound(end.to_vec());
        }
        let mode = if reverse { IteratorMode::End } else { IteratorMode::From(start, Direction::Forward) };
        let iter = self.snapshot.iterator_cf_opt(self.engine.cf(cf), options, mode);
        let start = start.to_vec();
        Box::new(iter.map_while(move |item| match item {
            Ok((k, v)) => Some(Ok((k.into_vec(), v.into_vec()))),
            Err(e) => {
                self.failed(cf, &start, e);
                None
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (RocksEngine, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        (RocksEngine::open("conformance", dir.path()).expect("open rocksdb"), dir)
    }

    crate::engine_conformance_tests!(fresh());

    /// Synced data survives closing and reopening the database.
    #[madsim::test]
    async fn reopen_keeps_synced_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open("reopen", dir.path()).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(Cf::Raft, "log", "entry");
            batch.put(Cf::Write, "k", "v");
            engine.write(&batch, true).await.unwrap();
        }
        let engine = RocksEngine::open("reopen", dir.path()).unwrap();
        let snap = engine.snapshot();
        assert_eq!(snap.get(Cf::Raft, b"log").unwrap(), Some(b"entry".to_vec()));
        assert_eq!(snap.get(Cf::Write, b"k").unwrap(), Some(b"v".to_vec()));
    }
}
