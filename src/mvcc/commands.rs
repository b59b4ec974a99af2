//! Whole transactional commands over one region's range: the wire's
//! [`TxnWrite`] and [`TxnRead`] turned into the per-key actions, with the
//! command's answer. A write command is all or nothing: if any key fails, it
//! writes nothing and answers every failed key.

use super::actions;
use super::{MvccReader, MvccTxn};
use crate::codec::keys;
use crate::engine::ReadView;
use crate::proto::{LockInfo, TxnRead, TxnReply, TxnResult, TxnWrite};

/// The engine keys `[lower, upper)` of a region with bounds `start_key` and
/// `end_key` (encoded keys) that hold transactional data.
pub fn txn_data_range(start_key: &[u8], end_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (space_lower, space_upper) = super::reader::data_range(b"", b"");
    let (region_lower, region_upper) = keys::region_data_range(start_key, end_key);
    (region_lower.max(space_lower), region_upper.min(space_upper))
}

/// Executes `cmd` against `reader` for a region whose transactional data is
/// in `range`. Returns what to write (nothing if the command failed) and the
/// answer.
pub fn execute_write<S: ReadView + ?Sized>(reader: &MvccReader<S>, range: (&[u8], &[u8]), cmd: &TxnWrite) -> (MvccTxn, TxnResult) {
    let mut txn = MvccTxn::default();
    let mut errors = Vec::new();
    let reply = match cmd {
        TxnWrite::Prewrite { mutations, primary, start_ts, ttl_ms } => {
            for m in mutations {
                if let Err(e) = actions::prewrite(reader, &mut txn, &m.key, m.op.clone(), primary, *start_ts, *ttl_ms) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::Commit { keys, start_ts, commit_ts } => {
            for key in keys {
                if let Err(e) = actions::commit(reader, &mut txn, key, *start_ts, *commit_ts) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::Rollback { keys, start_ts } => {
            for key in keys {
                if let Err(e) = actions::rollback(reader, &mut txn, key, *start_ts) {
                    errors.push(e);
                }
            }
            TxnReply::Done
        }
        TxnWrite::CheckTxnStatus { primary, start_ts, current_ts } => {
            TxnReply::Status(actions::check_txn_status(reader, &mut txn, primary, *start_ts, crate::meta::physical_ms(*current_ts)))
        }
        TxnWrite::ResolveLock { start_ts, commit_ts } => {
            for (key, lock) in reader.locks(range.0, range.1) {
                if lock.start_ts == *start_ts {
                    if let Err(e) = actions::resolve_lock(reader, &mut txn, &key, *start_ts, *commit_ts) {
                        errors.push(e);
                    }
                }
            }
            TxnReply::Done
        }
        TxnWrite::TxnHeartbeat { primary, start_ts, ttl_ms } => match actions::txn_heartbeat(reader, &mut txn, primary, *start_ts, *ttl_ms) {
            Ok(ttl) => TxnReply::Ttl(ttl),
            Err(e) => {
                errors.push(e);
                TxnReply::Done
            }
        },
        TxnWrite::Gc { safe_point } => {
            for key in reader.versioned_keys(range.0, range.1) {
                actions::gc(reader, &mut txn, &key, *safe_point);
            }
            TxnReply::Done
        }
    };
    if errors.is_empty() {
        (txn, Ok(reply))
    } else {
        (MvccTxn::default(), Err(errors))
    }
}

/// Serves a read for a region whose transactional data is in `range`.
pub fn execute_read<S: ReadView + ?Sized>(reader: &MvccReader<S>, range: (&[u8], &[u8]), cmd: &TxnRead) -> TxnResult {
    match cmd {
        TxnRead::Get { key, ts } => reader.get(key, *ts).map(TxnReply::Value).map_err(|e| vec![e]),
        TxnRead::Scan { start, end, limit, ts, reverse } => {
            let (lower, upper) = super::reader::data_range(start, end);
            let lower = lower.max(range.0.to_vec());
            let upper = upper.min(range.1.to_vec());
            if lower >= upper {
                return Ok(TxnReply::Pairs(vec![]));
            }
            reader.scan_data_range(&lower, &upper, *limit, *ts, *reverse).map(TxnReply::Pairs).map_err(|e| vec![e])
        }
        TxnRead::ScanLocks { max_ts, limit } => Ok(TxnReply::Locks(
            reader
                .locks(range.0, range.1)
                .into_iter()
                .filter(|(_, lock)| lock.start_ts <= *max_ts)
                .take(*limit)
                .map(|(key, lock)| LockInfo { key, primary: lock.primary, start_ts: lock.start_ts, ttl_ms: lock.ttl_ms })
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, SimEngine};
    use crate::proto::{KeyError, TxnMutation, TxnOp};

    async fn write(engine: &SimEngine, range: (&[u8], &[u8]), cmd: TxnWrite) -> TxnResult {
        let snap = engine.snapshot();
        let (txn, result) = execute_write(&MvccReader::new(&snap), range, &cmd);
        engine.write(&txn.into_write_batch(), true).await.unwrap();
        result
    }

    fn read(engine: &SimEngine, range: (&[u8], &[u8]), cmd: TxnRead) -> TxnResult {
        let snap = engine.snapshot();
        execute_read(&MvccReader::new(&snap), range, &cmd)
    }

    fn prewrite(keys: &[&str], op: TxnOp, start_ts: u64) -> TxnWrite {
        TxnWrite::Prewrite {
            mutations: keys.iter().map(|k| TxnMutation { key: k.as_bytes().to_vec(), op: op.clone() }).collect(),
            primary: keys[0].as_bytes().to_vec(),
            start_ts,
            ttl_ms: 1000,
        }
    }

    #[madsim::test]
    async fn commands_are_all_or_nothing_and_region_wide_ones_stay_in_their_range() {
        let e = SimEngine::in_memory("kv");
        let all = txn_data_range(b"", b"");
        let all = (all.0.as_slice(), all.1.as_slice());
        assert_eq!(write(&e, all, prewrite(&["b"], TxnOp::Put(b"1".to_vec()), 10)).await, Ok(TxnReply::Done));
        // One key locked by another transaction: nothing of the command is written.
        let refused = write(&e, all, prewrite(&["a", "b", "c"], TxnOp::Put(b"2".to_vec()), 11)).await;
        assert!(matches!(&refused, Err(errors) if matches!(&errors[..], [KeyError::KeyIsLocked(l)] if l.key == b"b")), "{refused:?}");
        assert_eq!(read(&e, all, TxnRead::ScanLocks { max_ts: u64::MAX, limit: 10 }).map(|r| matches!(r, TxnReply::Locks(l) if l.len() == 1)), Ok(true));
        // Transaction 20 locks a, c and e; a region [b, d) resolves only its own.
        write(&e, all, prewrite(&["a", "c", "e"], TxnOp::Put(b"3".to_vec()), 20)).await.unwrap();
        let middle = txn_data_range(&keys::txn_key(b"b"), &keys::txn_key(b"d"));
        let middle = (middle.0.as_slice(), middle.1.as_slice());
        write(&e, middle, TxnWrite::ResolveLock { start_ts: 20, commit_ts: Some(21) }).await.unwrap();
        let locks = |max_ts| match read(&e, all, TxnRead::ScanLocks { max_ts, limit: 10 }) {
            Ok(TxnReply::Locks(locks)) => locks.into_iter().map(|l| (String::from_utf8(l.key).unwrap(), l.start_ts)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(locks(u64::MAX), vec![("a".into(), 20), ("b".into(), 10), ("e".into(), 20)], "c was committed, the rest left");
        assert_eq!(locks(15), vec![("b".into(), 10)], "only locks at or below max_ts");
        assert_eq!(read(&e, middle, TxnRead::Get { key: b"c".to_vec(), ts: 25 }), Ok(TxnReply::Value(Some(b"3".to_vec()))));
        assert!(
            matches!(read(&e, all, TxnRead::Get { key: b"e".to_vec(), ts: 25 }), Err(e) if matches!(&e[..], [KeyError::KeyIsLocked(l)] if l.start_ts == 20))
        );
        // A scan is clipped to the region it is served by.
        write(&e, all, TxnWrite::Rollback { keys: vec![b"b".to_vec()], start_ts: 10 }).await.unwrap();
        let scanned = read(&e, middle, TxnRead::Scan { start: b"".to_vec(), end: b"".to_vec(), limit: 10, ts: 25, reverse: false });
        assert_eq!(scanned, Ok(TxnReply::Pairs(vec![(b"c".to_vec(), b"3".to_vec())])));
    }

    #[madsim::test]
    async fn a_read_lock_blocks_writers_not_readers_and_leaves_no_value() {
        let e = SimEngine::in_memory("kv");
        let all = txn_data_range(b"", b"");
        let all = (all.0.as_slice(), all.1.as_slice());
        write(&e, all, prewrite(&["k"], TxnOp::Put(b"v".to_vec()), 10)).await.unwrap();
        write(&e, all, TxnWrite::Commit { keys: vec![b"k".to_vec()], start_ts: 10, commit_ts: 11 }).await.unwrap();
        write(&e, all, prewrite(&["k"], TxnOp::Lock, 20)).await.unwrap();
        assert_eq!(read(&e, all, TxnRead::Get { key: b"k".to_vec(), ts: 30 }), Ok(TxnReply::Value(Some(b"v".to_vec()))), "a read lock blocks no reader");
        assert!(matches!(write(&e, all, prewrite(&["k"], TxnOp::Delete, 21)).await, Err(e) if matches!(e[..], [KeyError::KeyIsLocked(_)])));
        write(&e, all, TxnWrite::Commit { keys: vec![b"k".to_vec()], start_ts: 20, commit_ts: 22 }).await.unwrap();
        assert_eq!(read(&e, all, TxnRead::Get { key: b"k".to_vec(), ts: 30 }), Ok(TxnReply::Value(Some(b"v".to_vec()))), "a Lock record is skipped");
        // But it is a write as far as conflicts go: a transaction that started before it meets it.
        assert!(
            matches!(write(&e, all, prewrite(&["k"], TxnOp::Delete, 21)).await, Err(e) if matches!(e[..], [KeyError::WriteConflict { conflict_commit_ts: 22, .. }]))
        );
    }
}
