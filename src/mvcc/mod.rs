//! MVCC on the three data column families, as Percolator and TiKV lay it out.
//! Pure logic over an engine snapshot: it reads, and says what to write; it
//! knows nothing of raft (the raftstore replicates what it decides).
//!
//! * **Lock CF**: `txn_key(k)` → [`Lock`] (kind, primary, start_ts, TTL, the
//!   value itself when short).
//! * **Write CF**: `txn_key(k) + !commit_ts` → [`Write`] (Put / Delete / Lock /
//!   Rollback, start_ts, the value itself when ≤ [`SHORT_VALUE_MAX`] bytes —
//!   then the Default CF is not written).
//! * **Default CF**: `txn_key(k) + !start_ts` → a value too long to be short.
//!
//! Timestamps are appended inverted (`!ts`, big-endian), so a seek from `k +
//! !ts` finds the newest version at or below `ts` first. Keys given to this
//! module are user keys; what it writes ([`Modify`]) carries encoded keys
//! (without the engine's `z` prefix), as raft commands do.

pub mod actions;
pub mod commands;
pub mod reader;

use crate::codec::keys;
use crate::engine::Cf;
use serde::{Deserialize, Serialize};

pub use actions::{Op, TxnStatus};
pub use reader::MvccReader;

/// Values up to this many bytes live in the lock and write records themselves.
pub const SHORT_VALUE_MAX: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    Put,
    Delete,
    /// A read lock (`SELECT … FOR UPDATE`): commits as a `Lock` write.
    Lock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub kind: LockKind,
    pub primary: Vec<u8>,
    pub start_ts: u64,
    pub ttl_ms: u64,
    pub short_value: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteKind {
    Put,
    Delete,
    Lock,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub kind: WriteKind,
    pub start_ts: u64,
    pub short_value: Option<Vec<u8>>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("mvcc records serialize")
}

/// A record that does not decode is corrupt data: the caller stops the node.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> T {
    bincode::deserialize(bytes).unwrap_or_else(|e| panic!("corrupt {what}: {e}"))
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Lock {
        decode(bytes, "lock")
    }
}

impl Write {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Write {
        decode(bytes, "write record")
    }
}

/// One change to the engine, with an encoded key (no `z`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modify {
    Put { cf: Cf, key: Vec<u8>, value: Vec<u8> },
    Delete { cf: Cf, key: Vec<u8> },
}

/// `txn_key(k) + !ts`: a version of `k` in the write or default CF.
pub fn version_key(user_key: &[u8], ts: u64) -> Vec<u8> {
    let mut key = keys::txn_key(user_key);
    crate::codec::number::encode_u64_desc(&mut key, ts);
    key
}

/// What one transactional command writes, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MvccTxn {
    pub modifies: Vec<Modify>,
}

impl MvccTxn {
    pub fn put_lock(&mut self, key: &[u8], lock: &Lock) {
        self.modifies.push(Modify::Put { cf: Cf::Lock, key: keys::txn_key(key), value: lock.encode() });
    }

    pub fn unlock(&mut self, key: &[u8]) {
        self.modifies.push(Modify::Delete { cf: Cf::Lock, key: keys::txn_key(key) });
    }

    pub fn put_value(&mut self, key: &[u8], start_ts: u64, value: Vec<u8>) {
        self.modifies.push(Modify::Put { cf: Cf::Default, key: version_key(key, start_ts), value });
    }

    pub fn delete_value(&mut self, key: &[u8], start_ts: u64) {
        self.modifies.push(Modify::Delete { cf: Cf::Default, key: version_key(key, start_ts) });
    }

    pub fn put_write(&mut self, key: &[u8], commit_ts: u64, write: &Write) {
        self.modifies.push(Modify::Put { cf: Cf::Write, key: version_key(key, commit_ts), value: write.encode() });
    }

    pub fn delete_write(&mut self, key: &[u8], commit_ts: u64) {
        self.modifies.push(Modify::Delete { cf: Cf::Write, key: version_key(key, commit_ts) });
    }

    /// The writes as one engine batch (engine keys: `z` + key).
    pub fn into_write_batch(self) -> crate::engine::WriteBatch {
        let mut batch = crate::engine::WriteBatch::new();
        for m in self.modifies {
            match m {
                Modify::Put { cf, key, value } => batch.put(cf, keys::data_key(&key), value),
                Modify::Delete { cf, key } => batch.delete(cf, keys::data_key(&key)),
            }
        }
        batch
    }
}
