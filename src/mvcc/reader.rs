//! Reading MVCC data from an engine snapshot: locks, versions, a transaction's
//! commit record, and snapshot reads at a timestamp.

use super::{version_key, Lock, LockKind, Write, WriteKind};
use crate::codec::keys;
use crate::engine::{Cf, KvPair, ReadView};
use crate::planted::{Bug, Bugs};
use crate::proto::{KeyError, LockInfo};

pub struct MvccReader<'a, S: ReadView + ?Sized> {
    snap: &'a S,
    /// Planted bugs (`crate::planted`): none outside simulation.
    pub bugs: Bugs,
}

/// What the write CF says about one transaction on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitRecord {
    Committed { commit_ts: u64, kind: WriteKind },
    RolledBack,
    None,
}

impl<'a, S: ReadView + ?Sized> MvccReader<'a, S> {
    pub fn new(snap: &'a S) -> Self {
        MvccReader { snap, bugs: Bugs::NONE }
    }

    pub fn with_bugs(snap: &'a S, bugs: Bugs) -> Self {
        MvccReader { snap, bugs }
    }

    pub fn load_lock(&self, key: &[u8]) -> Option<Lock> {
        self.snap.read(Cf::Lock, &keys::data_key(&keys::txn_key(key))).expect("lock read").map(|v| Lock::decode(&v))
    }

    /// Versions of `key` in the write CF with commit_ts ≤ `ts`, newest first.
    pub fn writes(&self, key: &[u8], ts: u64) -> impl Iterator<Item = (u64, Write)> + '_ {
        let start = keys::data_key(&version_key(key, ts));
        let mut end = keys::data_key(&version_key(key, 0));
        end.push(0);
        self.snap.range(Cf::Write, &start, Some(&end), false).map(|pair| {
            let (k, v) = pair.expect("write CF read");
            let (_, commit_ts) = keys::decode_mvcc_key(&k).expect("write CF key");
            (commit_ts, Write::decode(&v))
        })
    }

    /// The newest Put or Delete at or below `ts` (skipping Rollback and Lock).
    pub fn data_write(&self, key: &[u8], ts: u64) -> Option<(u64, Write)> {
        self.writes(key, ts).find(|(_, w)| matches!(w.kind, WriteKind::Put | WriteKind::Delete))
    }

    /// What became of transaction `start_ts` on `key`.
    pub fn commit_record(&self, key: &[u8], start_ts: u64) -> CommitRecord {
        for (commit_ts, write) in self.writes(key, u64::MAX) {
            if commit_ts < start_ts {
                break; // a transaction commits at or after it starts
            }
            if write.start_ts == start_ts {
                return match write.kind {
                    WriteKind::Rollback => CommitRecord::RolledBack,
                    kind => CommitRecord::Committed { commit_ts, kind },
                };
            }
        }
        CommitRecord::None
    }

    /// A value written by a Put record of transaction `start_ts`.
    fn value_of(&self, key: &[u8], write: Write) -> Vec<u8> {
        match write.short_value {
            Some(v) => v,
            None => self
                .snap
                .read(Cf::Default, &keys::data_key(&version_key(key, write.start_ts)))
                .expect("default CF read")
                .unwrap_or_else(|| panic!("committed value of {key:?} at start_ts {} is missing from the default CF", write.start_ts)),
        }
    }

    /// `key` as of `read_ts`: blocked by another transaction's lock at or
    /// below `read_ts` (`KeyIsLocked`), else the newest Put or Delete.
    pub fn get(&self, key: &[u8], read_ts: u64) -> Result<Option<Vec<u8>>, KeyError> {
        if let Some(lock) = self.load_lock(key).filter(|_| !self.bugs.on(Bug::TxnReadsIgnoreLocks)) {
            check_lock(key, &lock, read_ts)?;
        }
        Ok(match self.data_write(key, read_ts) {
            Some((_, write)) if write.kind == WriteKind::Put => Some(self.value_of(key, write)),
            _ => None,
        })
    }

    /// Up to `limit` (key, value) pairs with user keys in `[start, end)` (empty
    /// end: unbounded) as of `read_ts`, ascending. Any lock in the range that
    /// would block a read blocks the scan.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize, read_ts: u64) -> Result<Vec<KvPair>, KeyError> {
        self.scan_in(start, end, limit, read_ts, false)
    }

    /// [`MvccReader::scan`] from the end of the range down, descending.
    pub fn reverse_scan(&self, start: &[u8], end: &[u8], limit: usize, read_ts: u64) -> Result<Vec<KvPair>, KeyError> {
        self.scan_in(start, end, limit, read_ts, true)
    }

    fn scan_in(&self, start: &[u8], end: &[u8], limit: usize, read_ts: u64, reverse: bool) -> Result<Vec<KvPair>, KeyError> {
        let (lower, upper) = data_range(start, end);
        self.scan_data_range(&lower, &upper, limit, read_ts, reverse)
    }

    /// [`MvccReader::scan`] over engine keys `[lower, upper)` (data keys of
    /// the transactional key space, e.g. a region's range clipped to it).
    pub fn scan_data_range(&self, lower: &[u8], upper: &[u8], limit: usize, read_ts: u64, reverse: bool) -> Result<Vec<KvPair>, KeyError> {
        let (lower, upper) = (lower.to_vec(), upper.to_vec());
        if !self.bugs.on(Bug::TxnReadsIgnoreLocks) {
            for (key, lock) in self.locks(&lower, &upper) {
                check_lock(&key, &lock, read_ts)?;
            }
        }
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for pair in self.snap.range(Cf::Write, &lower, Some(&upper), reverse) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = pair.expect("write CF read");
            let (key, _) = keys::decode_mvcc_key(&k).expect("write CF key");
            if last.as_ref() == Some(&key) {
                continue;
            }
            if let Some(value) = self.get(&key, read_ts)? {
                out.push((key.clone(), value));
            }
            last = Some(key);
        }
        Ok(out)
    }

    /// Every lock in engine keys `[lower, upper)`, with its user key, ascending.
    pub fn locks(&self, lower: &[u8], upper: &[u8]) -> Vec<(Vec<u8>, Lock)> {
        self.snap
            .range(Cf::Lock, lower, Some(upper), false)
            .map(|pair| {
                let (k, v) = pair.expect("lock CF read");
                (keys::decode_lock_key(&k).expect("lock CF key"), Lock::decode(&v))
            })
            .collect()
    }

    /// Every user key with a version in the write CF within engine keys
    /// `[lower, upper)`, ascending.
    pub fn versioned_keys(&self, lower: &[u8], upper: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for pair in self.snap.range(Cf::Write, lower, Some(upper), false) {
            let (k, _) = pair.expect("write CF read");
            let (key, _) = keys::decode_mvcc_key(&k).expect("write CF key");
            if out.last() != Some(&key) {
                out.push(key);
            }
        }
        out
    }
}

/// Engine keys `[lower, upper)` of user keys `[start, end)` (empty end: to
/// the end of the transactional key space).
pub fn data_range(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let lower = keys::data_key(&keys::txn_key(start));
    let upper = if end.is_empty() { keys::data_end_key(&[keys::TXN_PREFIX + 1]) } else { keys::data_key(&keys::txn_key(end)) };
    (lower, upper)
}

/// A lock blocks a read at `read_ts` if another transaction may commit below
/// it (a read lock blocks nothing).
fn check_lock(key: &[u8], lock: &Lock, read_ts: u64) -> Result<(), KeyError> {
    if lock.kind != LockKind::Lock && lock.start_ts <= read_ts {
        return Err(KeyError::KeyIsLocked(LockInfo { key: key.to_vec(), primary: lock.primary.clone(), start_ts: lock.start_ts, ttl_ms: lock.ttl_ms }));
    }
    Ok(())
}
