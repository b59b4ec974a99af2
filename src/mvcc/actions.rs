//! Percolator's commands on one key, as pure functions: a reader over the
//! state the command is applied to in, writes ([`MvccTxn`]) or a key error
//! out.

use super::reader::CommitRecord;
use super::{Lock, LockKind, MvccReader, MvccTxn, Write, WriteKind, SHORT_VALUE_MAX};
use crate::engine::ReadView;
use crate::meta::physical_ms;
use crate::planted::Bug;
pub use crate::proto::TxnOp as Op;
pub use crate::proto::TxnStatus;
use crate::proto::{KeyError, LockInfo};

/// Prewrite `key` for transaction `start_ts` with primary `primary`:
/// `KeyIsLocked` if another transaction holds a lock; `WriteConflict` if a
/// write committed at or after `start_ts` exists (or this transaction was
/// already rolled back here); nothing to do if its own lock is already there;
/// otherwise the lock (and the value in the default CF when it is long).
pub fn prewrite<S: ReadView + ?Sized>(
    reader: &MvccReader<S>,
    txn: &mut MvccTxn,
    key: &[u8],
    op: Op,
    primary: &[u8],
    start_ts: u64,
    ttl_ms: u64,
) -> Result<(), KeyError> {
    if let Some(lock) = reader.load_lock(key) {
        if lock.start_ts == start_ts {
            return Ok(()); // a retried prewrite
        }
        return Err(KeyError::KeyIsLocked(LockInfo { key: key.to_vec(), primary: lock.primary, start_ts: lock.start_ts, ttl_ms: lock.ttl_ms }));
    }
    for (commit_ts, write) in reader.writes(key, u64::MAX) {
        if commit_ts < start_ts || reader.bugs.on(Bug::PrewriteSkipsConflictCheck) {
            break;
        }
        if write.kind == WriteKind::Rollback && write.start_ts != start_ts {
            continue; // another transaction's rollback changed nothing
        }
        return Err(KeyError::WriteConflict { key: key.to_vec(), start_ts, conflict_start_ts: write.start_ts, conflict_commit_ts: commit_ts });
    }
    let (kind, value) = match op {
        Op::Put(value) => (LockKind::Put, Some(value)),
        Op::Delete => (LockKind::Delete, None),
        Op::Lock => (LockKind::Lock, None),
    };
    let short_value = match value {
        Some(value) if value.len() > SHORT_VALUE_MAX => {
            txn.put_value(key, start_ts, value);
            None
        }
        other => other,
    };
    txn.put_lock(key, &Lock { kind, primary: primary.to_vec(), start_ts, ttl_ms, short_value });
    Ok(())
}

/// Commit `key` of transaction `start_ts` at `commit_ts`: its lock becomes a
/// write record. Committing again is a no-op; a key whose lock is gone and
/// that was never committed (rolled back, or never prewritten) is
/// `TxnNotFound`.
pub fn commit<S: ReadView + ?Sized>(reader: &MvccReader<S>, txn: &mut MvccTxn, key: &[u8], start_ts: u64, commit_ts: u64) -> Result<(), KeyError> {
    match reader.load_lock(key) {
        Some(lock) if lock.start_ts == start_ts => {
            let kind = match lock.kind {
                LockKind::Put => WriteKind::Put,
                LockKind::Delete => WriteKind::Delete,
                LockKind::Lock => WriteKind::Lock,
            };
            txn.put_write(key, commit_ts, &Write { kind, start_ts, short_value: lock.short_value });
            if !reader.bugs.on(Bug::CommitLeavesLock) {
                txn.unlock(key);
            }
            Ok(())
        }
        _ if reader.bugs.on(Bug::CommitIgnoresRollback) => Ok(()),
        _ => match reader.commit_record(key, start_ts) {
            CommitRecord::Committed { .. } => Ok(()),
            CommitRecord::RolledBack | CommitRecord::None => Err(KeyError::TxnNotFound { key: key.to_vec(), start_ts }),
        },
    }
}

/// Roll back `key` of transaction `start_ts`: its lock and value go, and a
/// Rollback record at `start_ts` is **always** left (also when no lock was
/// ever written), so a late prewrite of this transaction fails. A committed
/// transaction is never rolled back (`Committed`).
pub fn rollback<S: ReadView + ?Sized>(reader: &MvccReader<S>, txn: &mut MvccTxn, key: &[u8], start_ts: u64) -> Result<(), KeyError> {
    match reader.commit_record(key, start_ts) {
        CommitRecord::Committed { commit_ts, .. } => return Err(KeyError::Committed { key: key.to_vec(), commit_ts }),
        CommitRecord::RolledBack => return Ok(()),
        CommitRecord::None => {}
    }
    match reader.load_lock(key).filter(|l| l.start_ts == start_ts) {
        Some(lock) => {
            if lock.kind == LockKind::Put && lock.short_value.is_none() {
                txn.delete_value(key, start_ts);
            }
            txn.unlock(key);
        }
        None if reader.bugs.on(Bug::RollbackLeavesNoRecord) => return Ok(()),
        None => {}
    }
    txn.put_write(key, start_ts, &Write { kind: WriteKind::Rollback, start_ts, short_value: None });
    Ok(())
}

/// The status of transaction `start_ts` from its `primary` key at `now_ms`
/// (the physical part of a current timestamp): committed, rolled back, alive,
/// or — its lock expired, or no lock and no record — rolled back now.
pub fn check_txn_status<S: ReadView + ?Sized>(reader: &MvccReader<S>, txn: &mut MvccTxn, primary: &[u8], start_ts: u64, now_ms: u64) -> TxnStatus {
    if let Some(lock) = reader.load_lock(primary).filter(|l| l.start_ts == start_ts) {
        if physical_ms(start_ts) + lock.ttl_ms > now_ms {
            return TxnStatus::Alive { ttl_ms: lock.ttl_ms };
        }
    }
    match reader.commit_record(primary, start_ts) {
        CommitRecord::Committed { commit_ts, .. } => TxnStatus::Committed { commit_ts },
        CommitRecord::RolledBack => TxnStatus::RolledBack,
        CommitRecord::None => {
            rollback(reader, txn, primary, start_ts).expect("not committed: rollback cannot fail");
            TxnStatus::RolledBack
        }
    }
}

/// Resolves `key`'s lock of transaction `start_ts` as its primary decided:
/// commit it at `commit_ts`, or (`None`) roll it back. A key whose lock is
/// another transaction's (or gone) is left as it is.
pub fn resolve_lock<S: ReadView + ?Sized>(
    reader: &MvccReader<S>,
    txn: &mut MvccTxn,
    key: &[u8],
    start_ts: u64,
    commit_ts: Option<u64>,
) -> Result<(), KeyError> {
    if reader.load_lock(key).is_none_or(|l| l.start_ts != start_ts) {
        return Ok(());
    }
    match commit_ts {
        Some(commit_ts) => commit(reader, txn, key, start_ts, commit_ts),
        None => rollback(reader, txn, key, start_ts),
    }
}

/// Extends the TTL of transaction `start_ts`'s lock on its primary to
/// `ttl_ms` (never shortens it); returns the TTL now in force, or
/// `TxnNotFound` if the lock is gone.
pub fn txn_heartbeat<S: ReadView + ?Sized>(reader: &MvccReader<S>, txn: &mut MvccTxn, primary: &[u8], start_ts: u64, ttl_ms: u64) -> Result<u64, KeyError> {
    match reader.load_lock(primary) {
        Some(mut lock) if lock.start_ts == start_ts => {
            if ttl_ms > lock.ttl_ms {
                lock.ttl_ms = ttl_ms;
                txn.put_lock(primary, &lock);
            }
            Ok(lock.ttl_ms)
        }
        _ => Err(KeyError::TxnNotFound { key: primary.to_vec(), start_ts }),
    }
}

/// Garbage-collects `key`'s versions below `safe_point`: keeps the newest
/// version a read at `safe_point` sees (unless it is a Delete, which is
/// dropped with everything under it), drops every older one, every Rollback
/// and Lock record below the safe point, and their long values. Locks are
/// never touched.
pub fn gc<S: ReadView + ?Sized>(reader: &MvccReader<S>, txn: &mut MvccTxn, key: &[u8], safe_point: u64) {
    let mut kept_visible = reader.bugs.on(Bug::GcDropsVisibleVersion);
    for (commit_ts, write) in reader.writes(key, safe_point) {
        let drop_it = match write.kind {
            WriteKind::Rollback | WriteKind::Lock => true,
            WriteKind::Put if !kept_visible => {
                kept_visible = true;
                false
            }
            WriteKind::Delete if !kept_visible => {
                kept_visible = true;
                true
            }
            WriteKind::Put | WriteKind::Delete => true,
        };
        if drop_it {
            txn.delete_write(key, commit_ts);
            if write.kind == WriteKind::Put && write.short_value.is_none() {
                txn.delete_value(key, write.start_ts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::keys;
    use crate::engine::{Engine, SimEngine};

    async fn apply(engine: &SimEngine, txn: MvccTxn) {
        engine.write(&txn.into_write_batch(), true).await.unwrap();
    }

    /// Runs one command against the engine's current state and applies its writes.
    async fn run<T>(engine: &SimEngine, f: impl FnOnce(&MvccReader<<SimEngine as Engine>::Snap>, &mut MvccTxn) -> T) -> T {
        let snap = engine.snapshot();
        let mut txn = MvccTxn::default();
        let out = f(&MvccReader::new(&snap), &mut txn);
        apply(engine, txn).await;
        out
    }

    async fn get(engine: &SimEngine, key: &[u8], ts: u64) -> Result<Option<Vec<u8>>, KeyError> {
        let snap = engine.snapshot();
        MvccReader::new(&snap).get(key, ts)
    }

    #[madsim::test]
    async fn a_transaction_commits_and_reads_see_it_only_from_its_commit_ts() {
        let e = SimEngine::in_memory("kv");
        let long = vec![7u8; SHORT_VALUE_MAX + 1];
        run(&e, |r, t| prewrite(r, t, b"a", Op::Put(b"1".to_vec()), b"a", 10, 3000)).await.unwrap();
        run(&e, |r, t| prewrite(r, t, b"b", Op::Put(long.clone()), b"a", 10, 3000)).await.unwrap();
        // Locked: a read at or after start_ts blocks; one before does not.
        assert!(matches!(get(&e, b"a", 11).await, Err(KeyError::KeyIsLocked(l)) if l.start_ts == 10 && l.primary == b"a"));
        assert_eq!(get(&e, b"a", 9).await, Ok(None));
        run(&e, |r, t| commit(r, t, b"a", 10, 15)).await.unwrap();
        run(&e, |r, t| commit(r, t, b"b", 10, 15)).await.unwrap();
        run(&e, |r, t| commit(r, t, b"b", 10, 15)).await.expect("committing again is a no-op");
        assert_eq!(get(&e, b"a", 14).await, Ok(None));
        assert_eq!(get(&e, b"a", 15).await, Ok(Some(b"1".to_vec())));
        assert_eq!(get(&e, b"b", 20).await, Ok(Some(long)), "a long value comes from the default CF");
        let snap = e.snapshot();
        let scanned = MvccReader::new(&snap).scan(b"", b"", 10, 20).unwrap();
        assert_eq!(scanned.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"b".to_vec()]);
        let backwards = MvccReader::new(&snap).reverse_scan(b"", b"", 10, 20).unwrap();
        assert_eq!(backwards.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), vec![b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(MvccReader::new(&snap).reverse_scan(b"", b"b", 1, 20).unwrap(), vec![(b"a".to_vec(), b"1".to_vec())], "end excluded, limit kept");
        // A later delete hides the value from reads after it.
        run(&e, |r, t| prewrite(r, t, b"a", Op::Delete, b"a", 30, 3000)).await.unwrap();
        run(&e, |r, t| commit(r, t, b"a", 30, 31)).await.unwrap();
        assert_eq!(get(&e, b"a", 31).await, Ok(None));
        assert_eq!(get(&e, b"a", 30).await, Ok(Some(b"1".to_vec())));
    }

    #[madsim::test]
    async fn conflicts_locks_and_rollbacks_are_refused_with_their_key_errors() {
        let e = SimEngine::in_memory("kv");
        run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"1".to_vec()), b"k", 10, 3000)).await.unwrap();
        assert!(matches!(run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"2".to_vec()), b"k", 12, 3000)).await, Err(KeyError::KeyIsLocked(_))));
        run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"1".to_vec()), b"k", 10, 3000)).await.expect("its own lock: idempotent");
        run(&e, |r, t| commit(r, t, b"k", 10, 20)).await.unwrap();
        // A transaction that started before the commit meets it.
        let conflict = run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"3".to_vec()), b"k", 15, 3000)).await;
        assert_eq!(conflict, Err(KeyError::WriteConflict { key: b"k".to_vec(), start_ts: 15, conflict_start_ts: 10, conflict_commit_ts: 20 }));
        // A committed transaction is never rolled back.
        assert_eq!(run(&e, |r, t| rollback(r, t, b"k", 10)).await, Err(KeyError::Committed { key: b"k".to_vec(), commit_ts: 20 }));
        // Rolling back a transaction that never prewrote leaves a record: its late prewrite fails.
        run(&e, |r, t| rollback(r, t, b"k", 25)).await.unwrap();
        assert!(matches!(run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"4".to_vec()), b"k", 25, 3000)).await, Err(KeyError::WriteConflict { .. })));
        assert_eq!(run(&e, |r, t| commit(r, t, b"k", 25, 30)).await, Err(KeyError::TxnNotFound { key: b"k".to_vec(), start_ts: 25 }));
        // Another transaction's rollback is not a conflict.
        run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"5".to_vec()), b"k", 24, 3000)).await.expect("a rollback of another transaction changed nothing");
        // A rolled-back prewrite leaves no lock and no value.
        run(&e, |r, t| rollback(r, t, b"k", 24)).await.unwrap();
        assert_eq!(get(&e, b"k", 100).await, Ok(Some(b"1".to_vec())));
    }

    #[madsim::test]
    async fn secondaries_resolve_as_the_primary_decided_and_heartbeats_extend() {
        let e = SimEngine::in_memory("kv");
        for key in [b"p", b"s"] {
            run(&e, |r, t| prewrite(r, t, key, Op::Put(b"v".to_vec()), b"p", 10, 1000)).await.unwrap();
        }
        assert_eq!(run(&e, |r, t| txn_heartbeat(r, t, b"p", 10, 5000)).await, Ok(5000));
        assert_eq!(run(&e, |r, t| txn_heartbeat(r, t, b"p", 10, 10)).await, Ok(5000), "never shortened");
        run(&e, |r, t| commit(r, t, b"p", 10, 12)).await.unwrap();
        // A reader blocked by the secondary resolves it as the primary says.
        assert!(matches!(get(&e, b"s", 20).await, Err(KeyError::KeyIsLocked(_))));
        run(&e, |r, t| resolve_lock(r, t, b"s", 10, Some(12))).await.unwrap();
        assert_eq!(get(&e, b"s", 20).await, Ok(Some(b"v".to_vec())));
        assert_eq!(run(&e, |r, t| txn_heartbeat(r, t, b"p", 10, 9000)).await, Err(KeyError::TxnNotFound { key: b"p".to_vec(), start_ts: 10 }));
        // Another transaction's lock is not resolved by mistake.
        run(&e, |r, t| prewrite(r, t, b"s", Op::Delete, b"s", 30, 1000)).await.unwrap();
        run(&e, |r, t| resolve_lock(r, t, b"s", 10, None)).await.unwrap();
        assert!(matches!(get(&e, b"s", 40).await, Err(KeyError::KeyIsLocked(l)) if l.start_ts == 30));
    }

    #[madsim::test]
    async fn gc_keeps_what_a_read_at_the_safe_point_sees() {
        let e = SimEngine::in_memory("kv");
        let long = vec![1u8; SHORT_VALUE_MAX + 10];
        let write = |key: &'static [u8], op: Op, start: u64, commit_ts: u64| {
            let e = e.clone();
            async move {
                run(&e, |r, t| prewrite(r, t, key, op, key, start, 1000)).await.unwrap();
                run(&e, |r, t| commit(r, t, key, start, commit_ts)).await.unwrap();
            }
        };
        write(b"k", Op::Put(long.clone()), 10, 11).await;
        write(b"k", Op::Put(b"2".to_vec()), 20, 21).await;
        run(&e, |r, t| rollback(r, t, b"k", 25)).await.unwrap();
        write(b"k", Op::Put(b"3".to_vec()), 30, 31).await;
        write(b"d", Op::Put(b"x".to_vec()), 10, 11).await;
        write(b"d", Op::Delete, 20, 21).await;
        run(&e, |r, t| prewrite(r, t, b"k", Op::Put(b"4".to_vec()), b"k", 40, 1000)).await.unwrap();
        run(&e, |r, t| gc(r, t, b"k", 26)).await;
        run(&e, |r, t| gc(r, t, b"d", 26)).await;
        let snap = e.snapshot();
        let reader = MvccReader::new(&snap);
        let versions: Vec<u64> = reader.writes(b"k", u64::MAX).map(|(ts, _)| ts).collect();
        assert_eq!(versions, vec![31, 21], "the version visible at 26 stays; older ones and the rollback go");
        assert_eq!(reader.get(b"k", 26), Ok(Some(b"2".to_vec())));
        assert_eq!(reader.writes(b"d", u64::MAX).count(), 0, "a delete at the safe point takes everything under it");
        assert!(
            crate::engine::Snapshot::get(&snap, crate::engine::Cf::Default, &keys::data_key(&crate::mvcc::version_key(b"k", 10))).unwrap().is_none(),
            "its long value too"
        );
        assert!(reader.load_lock(b"k").is_some(), "locks are never collected");
    }

    #[madsim::test]
    async fn the_primary_tells_a_transactions_fate() {
        let e = SimEngine::in_memory("kv");
        let ts = |ms: u64| ms << 18;
        run(&e, |r, t| prewrite(r, t, b"p", Op::Put(b"1".to_vec()), b"p", ts(1000), 3000)).await.unwrap();
        assert_eq!(run(&e, |r, t| check_txn_status(r, t, b"p", ts(1000), 2000)).await, TxnStatus::Alive { ttl_ms: 3000 });
        // Expired: rolled back by whoever asks.
        assert_eq!(run(&e, |r, t| check_txn_status(r, t, b"p", ts(1000), 5000)).await, TxnStatus::RolledBack);
        assert_eq!(get(&e, b"p", ts(9000)).await, Ok(None), "the lock is gone");
        assert_eq!(run(&e, |r, t| commit(r, t, b"p", ts(1000), ts(1001))).await, Err(KeyError::TxnNotFound { key: b"p".to_vec(), start_ts: ts(1000) }));
        run(&e, |r, t| prewrite(r, t, b"q", Op::Put(b"2".to_vec()), b"q", ts(2000), 3000)).await.unwrap();
        run(&e, |r, t| commit(r, t, b"q", ts(2000), ts(2001))).await.unwrap();
        assert_eq!(run(&e, |r, t| check_txn_status(r, t, b"q", ts(2000), 9000)).await, TxnStatus::Committed { commit_ts: ts(2001) });
    }

    /// A model-based test: random transactions over four keys (puts, deletes,
    /// long values), committed, rolled back, or abandoned — with no decision,
    /// or with only the primary committed — then resolved from the primary as
    /// a reader would, and garbage collection below every live lock. After
    /// each step, reads at random timestamps agree with a model of committed
    /// versions: a lock at or below the read timestamp blocks, otherwise the
    /// newest version at or below it is seen.
    mod model {
        use super::*;
        use crate::engine::mem::MemSnapshot;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// The engine as a sorted map, taking each command's writes at once.
        fn run<T>(mem: &mut MemSnapshot, f: impl FnOnce(&MvccReader<MemSnapshot>, &mut MvccTxn) -> T) -> T {
            let mut txn = MvccTxn::default();
            let out = f(&MvccReader::new(mem), &mut txn);
            mem.write(&txn.into_write_batch());
            out
        }

        #[derive(Debug, Clone)]
        enum Fate {
            Commit,
            Rollback,
            /// The client died before deciding.
            Abandon,
            /// The client died after committing the primary only.
            PrimaryOnly,
        }

        #[derive(Debug, Clone)]
        enum Step {
            Txn {
                keys: Vec<(usize, Option<usize>)>,
                fate: Fate,
            },
            /// Every abandoned transaction resolved from its primary.
            Resolve,
            /// GC at this fraction of the way from the last safe point to now.
            Gc(u8),
            Read {
                key: usize,
                back: u8,
            },
        }

        const KEYS: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];

        fn value(n: usize) -> Option<Vec<u8>> {
            // Some values are long (kept in the default CF), one in five a delete.
            match n % 5 {
                0 => None,
                1 => Some(vec![b'L'; SHORT_VALUE_MAX + 1 + n]),
                _ => Some(format!("v{n}").into_bytes()),
            }
        }

        fn step() -> impl Strategy<Value = Step> {
            let fate = prop_oneof![4 => Just(Fate::Commit), 2 => Just(Fate::Rollback), 1 => Just(Fate::Abandon), 1 => Just(Fate::PrimaryOnly)];
            let keys = proptest::collection::vec((0..4usize, proptest::option::of(0..100usize)), 1..4);
            prop_oneof![
                5 => (keys, fate).prop_map(|(keys, fate)| Step::Txn { keys, fate }),
                1 => Just(Step::Resolve),
                1 => any::<u8>().prop_map(Step::Gc),
                4 => (0..4usize, any::<u8>()).prop_map(|(key, back)| Step::Read { key, back }),
            ]
        }

        /// A committed version: (commit_ts, value; `None` a delete).
        type Version = (u64, Option<Vec<u8>>);

        /// A lock left behind: (start_ts, value, primary key, the primary's
        /// commit_ts if it committed).
        type Left = (u64, Option<Vec<u8>>, usize, Option<u64>);

        /// The model: committed versions per key, and the locks left behind.
        #[derive(Default)]
        struct Model {
            versions: BTreeMap<usize, Vec<Version>>,
            locks: BTreeMap<usize, Left>,
            ts: u64,
            gc_floor: u64,
        }

        impl Model {
            fn next_ts(&mut self) -> u64 {
                self.ts += 1;
                self.ts
            }

            fn read(&self, key: usize, ts: u64) -> Result<Option<Vec<u8>>, u64> {
                if let Some((start_ts, ..)) = self.locks.get(&key).filter(|l| l.0 <= ts) {
                    return Err(*start_ts);
                }
                let versions = self.versions.get(&key).map(Vec::as_slice).unwrap_or_default();
                Ok(versions.iter().rev().find(|(c, _)| *c <= ts).and_then(|(_, v)| v.clone()))
            }
        }

        fn transaction(mem: &mut MemSnapshot, m: &mut Model, keys: &[(usize, Option<usize>)], fate: &Fate) -> Result<(), TestCaseError> {
            let mut seen = std::collections::BTreeSet::new();
            let keys: Vec<(usize, Option<Vec<u8>>)> = keys.iter().filter(|(k, _)| seen.insert(*k)).map(|(k, v)| (*k, v.and_then(value))).collect();
            let start_ts = m.next_ts();
            let primary = keys[0].0;
            let mut written = Vec::new();
            for (k, v) in &keys {
                let op = v.clone().map_or(Op::Delete, Op::Put);
                match run(mem, |r, t| prewrite(r, t, KEYS[*k], op, KEYS[primary], start_ts, 1)) {
                    Ok(()) => written.push(*k),
                    Err(KeyError::KeyIsLocked(l)) => {
                        prop_assert_eq!(Some(l.start_ts), m.locks.get(k).map(|l| l.0), "locked by whom the model says");
                        for w in &written {
                            run(mem, |r, t| rollback(r, t, KEYS[*w], start_ts)).unwrap();
                        }
                        return Ok(());
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("prewrite of a fresh transaction failed: {e:?}"))),
                }
            }
            match fate {
                Fate::Commit => {
                    let commit_ts = m.next_ts();
                    for (k, v) in &keys {
                        run(mem, |r, t| commit(r, t, KEYS[*k], start_ts, commit_ts)).unwrap();
                        m.versions.entry(*k).or_default().push((commit_ts, v.clone()));
                    }
                }
                Fate::Rollback => {
                    for (k, _) in &keys {
                        run(mem, |r, t| rollback(r, t, KEYS[*k], start_ts)).unwrap();
                    }
                    let late = run(mem, |r, t| commit(r, t, KEYS[primary], start_ts, start_ts + 1));
                    prop_assert!(matches!(late, Err(KeyError::TxnNotFound { .. })), "a rolled-back transaction cannot commit: {:?}", late);
                }
                Fate::Abandon | Fate::PrimaryOnly => {
                    let mut primary_commit = None;
                    if matches!(fate, Fate::PrimaryOnly) {
                        let commit_ts = m.next_ts();
                        run(mem, |r, t| commit(r, t, KEYS[primary], start_ts, commit_ts)).unwrap();
                        m.versions.entry(primary).or_default().push((commit_ts, keys[0].1.clone()));
                        primary_commit = Some(commit_ts);
                    }
                    for (k, v) in keys.iter().filter(|(k, _)| primary_commit.is_none() || *k != primary) {
                        m.locks.insert(*k, (start_ts, v.clone(), primary, primary_commit));
                    }
                }
            }
            Ok(())
        }

        /// What a reader does with locks it meets: asks the primary, then
        /// commits or rolls back the lock as the primary decided.
        fn resolve(mem: &mut MemSnapshot, m: &mut Model) -> Result<(), TestCaseError> {
            for (k, (start_ts, v, primary, primary_commit)) in std::mem::take(&mut m.locks) {
                let status = run(mem, |r, t| check_txn_status(r, t, KEYS[primary], start_ts, u64::MAX));
                let commit_ts = match (status, primary_commit) {
                    (TxnStatus::Committed { commit_ts }, Some(expected)) => {
                        prop_assert_eq!(commit_ts, expected);
                        Some(commit_ts)
                    }
                    (TxnStatus::RolledBack, None) => None,
                    (status, expected) => return Err(TestCaseError::fail(format!("primary says {status:?}, the model {expected:?}"))),
                };
                run(mem, |r, t| resolve_lock(r, t, KEYS[k], start_ts, commit_ts)).unwrap();
                if let Some(commit_ts) = commit_ts {
                    let versions = m.versions.entry(k).or_default();
                    versions.push((commit_ts, v));
                    versions.sort_by_key(|(c, _)| *c);
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn percolator_commands_agree_with_a_model(steps in proptest::collection::vec(step(), 1..60)) {
                let (mut mem, mut m) = (MemSnapshot::default(), Model::default());
                for step in steps {
                    match step {
                        Step::Txn { keys, fate } => transaction(&mut mem, &mut m, &keys, &fate)?,
                        Step::Resolve => resolve(&mut mem, &mut m)?,
                        Step::Gc(fraction) => {
                            // Below every live lock, as a safe point is.
                            let ceiling = m.locks.values().map(|l| l.0 - 1).min().unwrap_or(m.ts).min(m.ts);
                            let safe_point = m.gc_floor.max(m.gc_floor + (ceiling.saturating_sub(m.gc_floor)) * fraction as u64 / 255);
                            for key in KEYS {
                                run(&mut mem, |r, t| gc(r, t, key, safe_point));
                            }
                            m.gc_floor = safe_point;
                        }
                        Step::Read { key, back } => {
                            let ts = m.ts.saturating_sub(back as u64 % 8).max(m.gc_floor);
                            let got = MvccReader::new(&mem).get(KEYS[key], ts);
                            match m.read(key, ts) {
                                Ok(expected) => prop_assert_eq!(got, Ok(expected), "key {} at {}", key, ts),
                                Err(start_ts) => prop_assert!(matches!(&got, Err(KeyError::KeyIsLocked(l)) if l.start_ts == start_ts), "key {} at {}: {:?}", key, ts, got),
                            }
                        }
                    }
                }
            }
        }
    }
}
